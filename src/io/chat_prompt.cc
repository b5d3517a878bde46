#include "io/chat_prompt.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "io/dsv32_encoding.h"
#include "io/jinja/template.h"

namespace dsv3::io {

using json = nlohmann::ordered_json;
namespace fs = std::filesystem;

const char* prompt_renderer_name(PromptRenderer r) {
  switch (r) {
    case PromptRenderer::kJinja:
      return "jinja";
    case PromptRenderer::kDeepSeekV32:
      return "dsv32";
    case PromptRenderer::kBuiltin:
      return "builtin";
  }
  return "?";
}

namespace {

std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) fail("{}: cannot read", p.string());
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

json parse_config(std::string_view text, const std::string& label) {
  json cfg = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (cfg.is_discarded()) fail("{}: invalid JSON", label);
  if (!cfg.is_object()) fail("{}: top level must be a JSON object", label);
  return cfg;
}

// Every "*_token" entry of tokenizer_config.json that is a string or {"content": string}: HF passes them all
// (tokenizer.special_tokens_map) to the template.
json special_tokens_of(const json& cfg) {
  json out = json::object();
  for (const auto& [k, v] : cfg.items()) {
    if (k.size() < 6 || k.compare(k.size() - 6, 6, "_token") != 0) continue;
    if (v.is_string())
      out[k] = v;
    else if (v.is_object() && v.contains("content") && v["content"].is_string())
      out[k] = v["content"];
  }
  return out;
}

// ChatTemplate's bos / eos from the special tokens (the built-in and V3.2 renderers write them).
ChatTemplate special_template(const json& specials) {
  ChatTemplate t;
  if (specials.contains("bos_token")) t.bos_token = specials["bos_token"].get<std::string>();
  if (specials.contains("eos_token")) t.eos_token = specials["eos_token"].get<std::string>();
  return t;
}

}  // namespace

ChatPrompt ChatPrompt::builtin(ChatTemplate t) {
  ChatPrompt p;
  p.renderer_ = PromptRenderer::kBuiltin;
  p.origin_ = t.format == ChatFormat::kDeepSeekR1 ? "built-in DeepSeek-R1" : "built-in DeepSeek-V3";
  p.special_tokens_ = json{{"bos_token", t.bos_token}, {"eos_token", t.eos_token}};
  p.special_ = std::move(t);
  return p;
}

ChatPrompt ChatPrompt::dsv32(ChatTemplate special_tokens) {
  ChatPrompt p = builtin(std::move(special_tokens));
  p.renderer_ = PromptRenderer::kDeepSeekV32;
  p.origin_ = "built-in DeepSeek-V3.2 encoder (encoding_dsv32)";
  return p;
}

ChatPrompt ChatPrompt::from_jinja(std::string source, std::string_view tokenizer_config_json, std::string name) {
  ChatPrompt p;
  if (!tokenizer_config_json.empty()) p.special_tokens_ = special_tokens_of(parse_config(tokenizer_config_json, name));
  p.special_ = special_template(p.special_tokens_);
  p.renderer_ = PromptRenderer::kJinja;
  p.default_ = std::make_shared<jinja::Template>(source, name);
  p.default_source_ = std::move(source);
  p.origin_ = std::move(name);
  return p;
}

ChatPrompt ChatPrompt::load(const std::string& dir, std::string_view model_type, const std::string& template_file) {
  std::error_code ec;
  const fs::path d = fs::is_directory(dir, ec) ? fs::path(dir) : fs::path(dir).parent_path();
  const fs::path cfg_path = fs::is_directory(dir, ec) ? d / "tokenizer_config.json" : fs::path(dir);
  json cfg = json::object();
  if (fs::exists(cfg_path, ec)) cfg = parse_config(read_file(cfg_path), cfg_path.string());
  const json specials = special_tokens_of(cfg);
  for (const char* k : {"bos_token", "eos_token"})
    if (cfg.contains(k) && !cfg[k].is_null() && !specials.contains(k))
      fail("{}: \"{}\" must be a string or an object with \"content\"", cfg_path.string(), k);

  ChatPrompt p;
  p.special_tokens_ = specials;
  p.special_ = special_template(specials);
  auto jinja_from = [&](std::string source, const std::string& origin) {
    p.renderer_ = PromptRenderer::kJinja;
    p.default_ = std::make_shared<jinja::Template>(source, origin);
    p.default_source_ = std::move(source);
    p.origin_ = origin;
  };
  if (!template_file.empty()) {
    jinja_from(read_file(template_file), template_file);
    return p;
  }
  if (const fs::path jf = d / "chat_template.jinja"; fs::exists(jf, ec)) {
    jinja_from(read_file(jf), jf.string());
    return p;
  }
  if (cfg.contains("chat_template") && !cfg["chat_template"].is_null()) {
    const json& t = cfg["chat_template"];
    const std::string label = cfg_path.string() + " chat_template";
    if (t.is_string()) {
      jinja_from(t.get<std::string>(), label);
      return p;
    }
    if (!t.is_array()) fail("{}: must be a string or a list of {{\"name\", \"template\"}}", label);
    for (size_t i = 0; i < t.size(); ++i) {
      const json& e = t[i];
      if (!e.is_object() || !e.contains("name") || !e["name"].is_string() || !e.contains("template") ||
          !e["template"].is_string())
        fail("{}[{}]: expected {{\"name\": string, \"template\": string}}", label, i);
      const std::string name = e["name"].get<std::string>(), src = e["template"].get<std::string>();
      if (name == "default") {
        jinja_from(src, label + "[default]");
      } else if (name == "tool_use") {
        p.tool_use_ = std::make_shared<jinja::Template>(src, label + "[tool_use]");
        p.tool_use_source_ = src;
      }
    }
    if (!p.default_) fail("{}: the list has no template named \"default\"", label);
    p.origin_ = label;
    return p;
  }
  if (model_type == "deepseek_v32") return dsv32(p.special_);
  ChatPrompt b = builtin(p.special_);
  b.special_tokens_ = specials.empty() ? b.special_tokens_ : specials;
  return b;
}

const std::string& ChatPrompt::template_source(bool with_tools) const {
  return with_tools && tool_use_ ? tool_use_source_ : default_source_;
}

std::string ChatPrompt::render(const ChatPromptInput& in) const {
  if (!in.messages.is_array()) fail("chat messages: expected an array");
  if (!in.kwargs.is_object()) fail("chat_template_kwargs: expected an object");
  if (!in.tools.is_null() && !in.tools.is_array()) fail("tools: expected an array or null");
  const bool has_tools = in.tools.is_array();
  switch (renderer_) {
    case PromptRenderer::kBuiltin:
      return special_.render(chat_messages_from_value(nlohmann::json(in.messages)), in.add_generation_prompt);
    case PromptRenderer::kDeepSeekV32: {
      const json* th = in.kwargs.contains("thinking") ? &in.kwargs["thinking"] : nullptr;
      if (th && !th->is_boolean()) fail("chat_template_kwargs.thinking: expected a boolean");
      return encode_dsv32(
          in.messages, has_tools ? in.tools : json::array(),  //
          Dsv32EncodeOptions{.thinking = th && th->get<bool>(), .add_generation_prompt = in.add_generation_prompt});
    }
    case PromptRenderer::kJinja:
      break;
  }
  // HF apply_chat_template: the special tokens, then the kwargs (which may override them), then its own
  // variables.
  json ctx = special_tokens_;
  for (const auto& [k, v] : in.kwargs.items()) ctx[k] = v;
  ctx["messages"] = in.messages;
  ctx["tools"] = has_tools ? in.tools : json(nullptr);
  ctx["documents"] = nullptr;
  ctx["add_generation_prompt"] = in.add_generation_prompt;
  const jinja::Template& t = has_tools && tool_use_ ? *tool_use_ : *default_;
  return t.render(ctx);
}

}  // namespace dsv3::io
