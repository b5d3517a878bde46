#include "cli/chat_flags.h"

#include <fstream>
#include <sstream>

#include "core/error.h"

namespace dsv3::cli {

using ojson = nlohmann::ordered_json;

namespace {

ojson parse_file(const std::string& path, const char* flag) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail("{} {}: cannot read it", flag, path);
  std::ostringstream ss;
  ss << f.rdbuf();
  const std::string text = ss.str();
  ojson j = ojson::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) fail("{} {}: not valid JSON", flag, path);
  return j;
}

}  // namespace

void ChatFlags::add_to(CLI::App& app) {
  app.add_option("--chat-template", template_file, "Jinja chat template file replacing the model's");
  app.add_option("--chat-template-kwargs", kwargs_json,
                 "Extra chat template variables as a JSON object, e.g. '{\"thinking\": true}'");
  app.add_option("--tools", tools_file, "JSON file: OpenAI tools [{\"type\": \"function\", \"function\": {...}}]");
}

ojson ChatFlags::kwargs() const {
  if (kwargs_json.empty()) return ojson::object();
  ojson j = ojson::parse(kwargs_json, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) fail("--chat-template-kwargs: expected a JSON object, got {}", kwargs_json);
  for (const char* reserved : {"messages", "tools", "add_generation_prompt", "documents"})
    if (j.contains(reserved)) fail("--chat-template-kwargs may not set '{}'", reserved);
  return j;
}

ojson ChatFlags::tools() const {
  if (tools_file.empty()) return nullptr;
  ojson j = parse_file(tools_file, "--tools");
  if (!j.is_array()) fail("--tools {}: expected a JSON array of tools", tools_file);
  for (size_t i = 0; i < j.size(); ++i) {
    const ojson& t = j[i];
    if (!t.is_object() || t.value("type", "") != "function" || !t.contains("function") || !t["function"].is_object() ||
        !t["function"].contains("name") || !t["function"]["name"].is_string())
      fail("--tools {}: tool {} must be {{\"type\": \"function\", \"function\": {{\"name\": ..., ...}}}}", tools_file,
           i);
  }
  return j;
}

ojson read_messages_file(const std::string& path) {
  ojson j = parse_file(path, "--messages");
  if (j.is_object() && j.contains("messages")) j = ojson(j["messages"]);
  if (!j.is_array()) fail("--messages {}: expected an array of messages", path);
  for (size_t i = 0; i < j.size(); ++i)
    if (!j[i].is_object() || !j[i].contains("role") || !j[i]["role"].is_string())
      fail("--messages {}: message {} needs a string \"role\"", path, i);
  return j;
}

}  // namespace dsv3::cli
