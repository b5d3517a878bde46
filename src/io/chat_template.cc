// DeepSeek-V3 / R1 chat prompts: each published Jinja template (kDeepSeek*ChatTemplateJinja below) transcribed
// statement by statement; the Jinja namespace flags (is_first, is_tool, is_output_first) keep their names.
#include "io/chat_template.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"

namespace dsv3::io {

using json = nlohmann::json;

// deepseek-ai/DeepSeek-V3 tokenizer_config.json "chat_template" (December 2024 release).
const char* const kDeepSeekV3ChatTemplateJinja =
    "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}{% set ns = "
    "namespace(is_first=false, is_tool=false, is_output_first=true, system_prompt='', is_first_sp=true) %}{%- for "
    "message in messages %}{%- if message['role'] == 'system' %}{%- if ns.is_first_sp %}{% set ns.system_prompt = "
    "ns.system_prompt + message['content'] %}{% set ns.is_first_sp = false %}{%- else %}{% set ns.system_prompt = "
    "ns.system_prompt + '\\n\\n' + message['content'] %}{%- endif %}{%- endif %}{%- endfor %}{{bos_token}}{{ns."
    "system_prompt}}{%- for message in messages %}{%- if message['role'] == 'user' %}{%- set ns.is_tool = false "
    "-%}{{'<｜User｜>' + message['content']}}{%- endif %}{%- if message['role'] == 'assistant' and "
    "message['content'] is none %}{%- set ns.is_tool = false -%}{%- for tool in message['tool_calls']%}{%- if not "
    "ns.is_first %}{{'<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + tool['type'] + "
    "'<｜tool▁sep｜>' + tool['function']['name'] + '\\n' + '```json' + '\\n' + tool['function']['arguments'] + "
    "'\\n' + '```' + '<｜tool▁call▁end｜>'}}{%- set ns.is_first = true -%}{%- else %}{{'\\n' + "
    "'<｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] + '\\n' + '```json' + "
    "'\\n' + tool['function']['arguments'] + '\\n' + '```' + "
    "'<｜tool▁call▁end｜>'}}{{'<｜tool▁calls▁end｜><｜end▁of▁sentence｜>'}}{%- endif %}{%- endfor %}{%- endif "
    "%}{%- if message['role'] == 'assistant' and message['content'] is not none %}{%- if ns.is_tool "
    "%}{{'<｜tool▁outputs▁end｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}{%- set ns.is_tool = false "
    "-%}{%- else %}{{'<｜Assistant｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}{%- endif %}{%- endif "
    "%}{%- if message['role'] == 'tool' %}{%- set ns.is_tool = true -%}{%- if ns.is_output_first "
    "%}{{'<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}{%- "
    "set ns.is_output_first = false %}{%- else %}{{'\\n<｜tool▁output▁begin｜>' + message['content'] + "
    "'<｜tool▁output▁end｜>'}}{%- endif %}{%- endif %}{%- endfor -%}{% if ns.is_tool "
    "%}{{'<｜tool▁outputs▁end｜>'}}{% endif %}{% if add_generation_prompt and not ns.is_tool "
    "%}{{'<｜Assistant｜>'}}{% endif %}";

// deepseek-ai/DeepSeek-R1 tokenizer_config.json "chat_template" (as updated to open the reasoning block;
// the January 2025 release ended with {{'<｜Assistant｜>'}} instead).
const char* const kDeepSeekR1ChatTemplateJinja =
    "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}{% set ns = "
    "namespace(is_first=false, is_tool=false, is_output_first=true, system_prompt='', is_first_sp=true) %}{%- for "
    "message in messages %}{%- if message['role'] == 'system' %}{%- if ns.is_first_sp %}{% set ns.system_prompt = "
    "ns.system_prompt + message['content'] %}{% set ns.is_first_sp = false %}{%- else %}{% set ns.system_prompt = "
    "ns.system_prompt + '\\n\\n' + message['content'] %}{%- endif %}{%- endif %}{%- endfor %}{{ bos_token }}{{ "
    "ns.system_prompt }}{%- for message in messages %}{%- if message['role'] == 'user' %}{%- set ns.is_tool = "
    "false -%}{{'<｜User｜>' + message['content']}}{%- endif %}{%- if message['role'] == 'assistant' and "
    "'tool_calls' in message %}{%- set ns.is_tool = false -%}{%- for tool in message['tool_calls'] %}{%- if not "
    "ns.is_first %}{%- if message['content'] is none "
    "%}{{'<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + "
    "tool['function']['name'] + '\\n' + '```json' + '\\n' + tool['function']['arguments'] + '\\n' + '```' + "
    "'<｜tool▁call▁end｜>'}}{%- else %}{{'<｜Assistant｜>' + message['content'] + "
    "'<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>' + tool['type'] + '<｜tool▁sep｜>' + tool['function']['name'] "
    "+ '\\n' + '```json' + '\\n' + tool['function']['arguments'] + '\\n' + '```' + '<｜tool▁call▁end｜>'}}{%- "
    "endif %}{%- set ns.is_first = true -%}{%- else %}{{'\\n' + '<｜tool▁call▁begin｜>' + tool['type'] + "
    "'<｜tool▁sep｜>' + tool['function']['name'] + '\\n' + '```json' + '\\n' + tool['function']['arguments'] + "
    "'\\n' + '```' + '<｜tool▁call▁end｜>'}}{%- endif %}{%- endfor "
    "%}{{'<｜tool▁calls▁end｜><｜end▁of▁sentence｜>'}}{%- endif %}{%- if message['role'] == 'assistant' and "
    "'tool_calls' not in message %}{%- if ns.is_tool %}{{'<｜tool▁outputs▁end｜>' + message['content'] + "
    "'<｜end▁of▁sentence｜>'}}{%- set ns.is_tool = false -%}{%- else %}{% set content = message['content'] %}{% "
    "if '</think>' in content %}{% set content = content.split('</think>')[-1] %}{% endif %}{{'<｜Assistant｜>' + "
    "content + '<｜end▁of▁sentence｜>'}}{%- endif %}{%- endif %}{%- if message['role'] == 'tool' %}{%- set "
    "ns.is_tool = true -%}{%- if ns.is_output_first %}{{'<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>' + "
    "message['content'] + '<｜tool▁output▁end｜>'}}{%- set ns.is_output_first = false %}{%- else "
    "%}{{'<｜tool▁output▁begin｜>' + message['content'] + '<｜tool▁output▁end｜>'}}{%- endif %}{%- endif %}{%- "
    "endfor -%}{% if ns.is_tool %}{{'<｜tool▁outputs▁end｜>'}}{% endif %}{% if add_generation_prompt and not "
    "ns.is_tool %}{{'<｜Assistant｜><think>\\n'}}{% endif %}";

namespace {

constexpr const char* kUser = "<｜User｜>";
constexpr const char* kAssistant = "<｜Assistant｜>";
constexpr const char* kCallsBegin = "<｜tool▁calls▁begin｜>";
constexpr const char* kCallsEnd = "<｜tool▁calls▁end｜>";
constexpr const char* kCallBegin = "<｜tool▁call▁begin｜>";
constexpr const char* kCallEnd = "<｜tool▁call▁end｜>";
constexpr const char* kSep = "<｜tool▁sep｜>";
constexpr const char* kOutputsBegin = "<｜tool▁outputs▁begin｜>";
constexpr const char* kOutputsEnd = "<｜tool▁outputs▁end｜>";
constexpr const char* kOutputBegin = "<｜tool▁output▁begin｜>";
constexpr const char* kOutputEnd = "<｜tool▁output▁end｜>";

// type<｜tool▁sep｜>name\n```json\narguments\n```<｜tool▁call▁end｜> (preceded by the caller's prefix).
std::string call_body(const ToolCall& t) {
  return t.type + kSep + t.name + "\n```json\n" + t.arguments + "\n```" + kCallEnd;
}

const std::string& need(const ChatMessage& m, size_t i) {
  if (!m.content) fail("chat template: message {} ({}) has null content where the template needs text", i, m.role);
  return *m.content;
}

}  // namespace

std::optional<ChatFormat> detect_chat_format(std::string_view t) {
  auto has = [&](std::string_view s) { return t.find(s) != std::string_view::npos; };
  if (!has("<｜User｜>") || !has("<｜Assistant｜>")) return std::nullopt;
  if (has("is_last_user") || has("thinking")) return std::nullopt;  // V3-0324 / V3.1+: different format
  if (has("'tool_calls' in message")) return ChatFormat::kDeepSeekR1;
  if (has("message['content'] is none")) return ChatFormat::kDeepSeekV3;
  return std::nullopt;
}

ChatTemplate ChatTemplate::from_config_json(std::string_view config_json, const std::string& label) {
  json cfg;
  try {
    cfg = json::parse(config_json.begin(), config_json.end());
  } catch (const json::exception& e) {
    fail("{}: invalid JSON: {}", label, e.what());
  }
  if (!cfg.is_object()) fail("{}: top level must be a JSON object", label);
  ChatTemplate t;
  auto token = [&](const char* key, std::string& dst) {
    if (!cfg.contains(key) || cfg[key].is_null()) return;
    const json& v = cfg[key];
    if (v.is_string())
      dst = v.get<std::string>();
    else if (v.is_object() && v.contains("content") && v["content"].is_string())
      dst = v["content"].get<std::string>();
    else
      fail("{}: \"{}\" must be a string or an object with \"content\"", label, key);
  };
  token("bos_token", t.bos_token);
  token("eos_token", t.eos_token);
  if (cfg.contains("chat_template") && !cfg["chat_template"].is_null()) {
    if (!cfg["chat_template"].is_string())
      fail("{}: \"chat_template\" must be a string (named template lists are not supported)", label);
    std::string jinja = cfg["chat_template"].get<std::string>();
    auto format = detect_chat_format(jinja);
    if (!format) {
      fail(
          "{}: chat_template is not one of the DeepSeek-V3 / R1 templates this renderer implements "
          "(Jinja is not interpreted; DeepSeek-V3-0324 / V3.1 templates are not implemented)",
          label);
    }
    t.format = *format;
    // R1's first release ended the generation prompt at <｜Assistant｜>; the update opens <think>.
    t.think_prefix = *format == ChatFormat::kDeepSeekR1 && jinja.find("<think>") != std::string::npos;
  }
  return t;
}

ChatTemplate ChatTemplate::load(const std::string& path_or_dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path p(path_or_dir);
  if (fs::is_directory(p, ec))
    p /= "tokenizer_config.json";
  else if (p.filename() == "tokenizer.json")
    p = p.parent_path() / "tokenizer_config.json";
  std::ifstream f(p, std::ios::binary);
  if (!f) fail("{}: cannot open file", p.string());
  std::ostringstream ss;
  ss << f.rdbuf();
  return from_config_json(ss.str(), p.string());
}

std::string ChatTemplate::render(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const {
  const bool r1 = format == ChatFormat::kDeepSeekR1;
  const std::string& eos = eos_token;
  bool is_first = false, is_tool = false, is_output_first = true;

  std::string system_prompt;
  bool is_first_sp = true;
  for (size_t i = 0; i < messages.size(); ++i) {
    if (messages[i].role != "system") continue;
    if (!is_first_sp) system_prompt += "\n\n";
    system_prompt += need(messages[i], i);
    is_first_sp = false;
  }
  std::string out = bos_token + system_prompt;

  for (size_t i = 0; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    if (m.role == "user") {
      is_tool = false;
      out += kUser + need(m, i);
    }
    // Tool calls. V3: assistant with null content; R1: assistant with a "tool_calls" key.
    bool calls = m.role == "assistant" && (r1 ? m.tool_calls.has_value() : !m.content.has_value());
    if (calls) {
      is_tool = false;
      static const std::vector<ToolCall> kNone;
      const std::vector<ToolCall>& tcs = m.tool_calls ? *m.tool_calls : kNone;
      for (const ToolCall& tc : tcs) {
        if (!is_first) {
          out += kAssistant;
          if (r1 && m.content) out += *m.content;
          out += std::string(kCallsBegin) + kCallBegin + call_body(tc);
          is_first = true;
        } else {
          out += std::string("\n") + kCallBegin + call_body(tc);
          if (!r1) out += kCallsEnd + eos;  // V3 closes after every later call
        }
      }
      if (r1) out += kCallsEnd + eos;
    }
    // Assistant text. V3: content not null; R1: no "tool_calls" key.
    bool text = m.role == "assistant" && (r1 ? !m.tool_calls.has_value() : m.content.has_value());
    if (text) {
      const std::string& content = need(m, i);
      if (is_tool) {
        out += kOutputsEnd + content + eos;
        is_tool = false;
      } else if (r1) {
        size_t k = content.rfind("</think>");
        out += kAssistant + (k == std::string::npos ? content : content.substr(k + 8)) + eos;
      } else {
        out += kAssistant + content + eos;
      }
    }
    if (m.role == "tool") {
      is_tool = true;
      if (is_output_first) {
        out += std::string(kOutputsBegin) + kOutputBegin + need(m, i) + kOutputEnd;
        is_output_first = false;
      } else {
        out += (r1 ? "" : "\n") + std::string(kOutputBegin) + need(m, i) + kOutputEnd;
      }
    }
  }
  if (is_tool) out += kOutputsEnd;
  if (add_generation_prompt && !is_tool) out += r1 && think_prefix ? "<｜Assistant｜><think>\n" : kAssistant;
  return out;
}

std::vector<ChatMessage> chat_messages_from_json(std::string_view json_text) {
  json j;
  try {
    j = json::parse(json_text.begin(), json_text.end());
  } catch (const json::exception& e) {
    fail("chat messages: invalid JSON: {}", e.what());
  }
  if (j.is_object() && j.contains("messages")) j = j["messages"];
  return chat_messages_from_value(j);
}

std::vector<ChatMessage> chat_messages_from_value(const json& j) {
  if (!j.is_array()) fail("chat messages: expected an array of messages");
  std::vector<ChatMessage> out;
  for (size_t i = 0; i < j.size(); ++i) {
    const json& m = j[i];
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string())
      fail("chat messages: message {} needs a string \"role\"", i);
    ChatMessage cm;
    cm.role = m["role"].get<std::string>();
    if (m.contains("content") && !m["content"].is_null()) {
      if (!m["content"].is_string()) fail("chat messages: message {} content must be a string or null", i);
      cm.content = m["content"].get<std::string>();
    }
    if (m.contains("tool_calls") && !m["tool_calls"].is_null()) {
      if (!m["tool_calls"].is_array()) fail("chat messages: message {} tool_calls must be an array", i);
      cm.tool_calls.emplace();
      for (const json& t : m["tool_calls"]) {
        ToolCall tc;
        if (t.contains("type") && t["type"].is_string()) tc.type = t["type"].get<std::string>();
        const json f = t.value("function", json::object());
        if (!f.is_object() || !f.contains("name") || !f["name"].is_string())
          fail("chat messages: message {} has a tool call without function.name", i);
        tc.name = f["name"].get<std::string>();
        if (f.contains("arguments")) {
          tc.arguments = f["arguments"].is_string() ? f["arguments"].get<std::string>() : f["arguments"].dump();
        }
        cm.tool_calls->push_back(std::move(tc));
      }
    }
    out.push_back(std::move(cm));
  }
  return out;
}

}  // namespace dsv3::io
