// A chat conversation → the prompt text a model was trained on, by the renderer its checkpoint calls for:
//
//   jinja    the checkpoint's own chat template: tokenizer_config.json "chat_template" (a string, or HF's
//            list of named templates, where "tool_use" is taken when tools are given and "default"
//            otherwise), or chat_template.jinja beside it (which wins, as in transformers >= 4.43), or a
//            file named on the command line. Rendered by io/jinja with HF apply_chat_template's variables:
//            messages, tools (None when absent), documents (None), add_generation_prompt, the special tokens
//            of tokenizer_config.json (bos_token, eos_token, unk_token, pad_token), and every
//            chat_template_kwargs key (e.g. {"thinking": true} for DeepSeek-V3.1).
//   dsv32    DeepSeek-V3.2's Python encoder (io/dsv32_encoding.h): config.json model_type "deepseek_v32"
//            and no template; kwargs "thinking" (bool) selects thinking mode.
//   builtin  DeepSeek-V3's template written out in C++ (io/chat_template.h), for checkpoints with no template.
//
// Messages are OpenAI's chat messages as JSON (role, content as a string or null, tool_calls, tool_call_id,
// name, reasoning_content, ...), passed to a Jinja template as they are: templates read the keys they know.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "io/chat_template.h"

namespace dsv3::io {

namespace jinja {
class Template;
}

enum class PromptRenderer { kJinja, kDeepSeekV32, kBuiltin };
const char* prompt_renderer_name(PromptRenderer r);  // "jinja" | "dsv32" | "builtin"

// Ordered JSON: objects keep the client's key order, as the Python dicts HF renders from do.
struct ChatPromptInput {
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  nlohmann::ordered_json tools;  // null, or OpenAI's [{"type": "function", "function": {...}}]
  nlohmann::ordered_json kwargs = nlohmann::ordered_json::object();  // chat_template_kwargs
  bool add_generation_prompt = true;
};

class ChatPrompt {
 public:
  // From a model (or tokenizer) directory: tokenizer_config.json and chat_template.jinja when present;
  // `model_type` is config.json's. `template_file` (optional) overrides the directory's template.
  // A template that does not parse is a dsv3::Error naming the file and the line.
  static ChatPrompt load(const std::string& dir, std::string_view model_type = {},
                         const std::string& template_file = {});
  // A Jinja template given as text; special tokens from `tokenizer_config_json` (may be empty).
  static ChatPrompt from_jinja(std::string source, std::string_view tokenizer_config_json = {},
                               std::string name = "chat_template");
  static ChatPrompt builtin(ChatTemplate t = {});
  static ChatPrompt dsv32(ChatTemplate special_tokens = {});

  // The prompt (starting with the BOS text where the template writes it: encode with special tokens parsed
  // and without adding BOS again). Throws dsv3::Error naming the template line or the message.
  std::string render(const ChatPromptInput& input) const;

  PromptRenderer renderer() const { return renderer_; }
  // The Jinja source actually used for `with_tools` (empty for the other renderers).
  const std::string& template_source(bool with_tools = false) const;
  // Where the template came from ("DIR/tokenizer_config.json", "FILE", "built-in DeepSeek-V3", ...).
  const std::string& origin() const { return origin_; }
  const std::string& bos_token() const { return special_.bos_token; }
  const std::string& eos_token() const { return special_.eos_token; }

 private:
  PromptRenderer renderer_ = PromptRenderer::kBuiltin;
  ChatTemplate special_;                                                      // bos / eos (and the built-in format)
  nlohmann::ordered_json special_tokens_ = nlohmann::ordered_json::object();  // *_token of tokenizer_config
  std::shared_ptr<const jinja::Template> default_, tool_use_;
  std::string default_source_, tool_use_source_, origin_;
};

}  // namespace dsv3::io
