// Chat prompts of the DeepSeek-V3 family, rendered exactly as the Jinja chat_template published in
// deepseek-ai/DeepSeek-V3 and deepseek-ai/DeepSeek-R1 tokenizer_config.json renders them (HF
// apply_chat_template). No Jinja is interpreted: each family's format is written out directly.
//
//   bos + system prompts (joined by "\n\n")
//   user:       <｜User｜>{content}
//   assistant:  <｜Assistant｜>{content}<｜end▁of▁sentence｜>
//               R1: content = the text after the last "</think>" (prior reasoning is dropped)
//   tool calls: <｜Assistant｜>[content]<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>{type}<｜tool▁sep｜>{name}\n
//               ```json\n{arguments}\n```<｜tool▁call▁end｜>[\n<｜tool▁call▁begin｜>...]<｜tool▁calls▁end｜>
//               <｜end▁of▁sentence｜>
//   tool:       <｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>{content}<｜tool▁output▁end｜>, further outputs
//               [\n]<｜tool▁output▁begin｜>...; closed by <｜tool▁outputs▁end｜> (before the next assistant
//               content, or at the end)
//   generation prompt: <｜Assistant｜> (V3), <｜Assistant｜><think>\n (R1); none right after tool outputs.
// The published templates' quirks are reproduced on purpose, so prompts match what the models saw:
//   V3: an assistant message with content renders only its content (its tool_calls are dropped); one with
//       null content renders its tool calls, and closes them (<｜tool▁calls▁end｜><｜end▁of▁sentence｜>) only
//       after a second call; tool outputs after the first are prefixed by "\n".
//   R1: tool calls render when the message has a "tool_calls" key (content, if any, first); tool outputs
//       are not separated by "\n".
//   Both: the "first tool call" and "first tool output" flags are never reset, so later tool-call
//       messages start with "\n<｜tool▁call▁begin｜>" and later output groups lack <｜tool▁outputs▁begin｜>.
//   Messages with other roles are ignored. bos_token comes from tokenizer_config.json; the end-of-sentence
//   string is the config's eos_token (the templates hard-code <｜end▁of▁sentence｜>, the same string).
// The rendered prompt starts with the bos text: encode it with allow_special and do not add bos again.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dsv3::io {

struct ToolCall {
  std::string type = "function";
  std::string name;
  std::string arguments;  // JSON text, inserted verbatim
};

struct ChatMessage {
  std::string role;                                 // system | user | assistant | tool
  std::optional<std::string> content;               // null: assistant message carrying only tool calls
  std::optional<std::vector<ToolCall>> tool_calls;  // absent vs present-but-empty matters for R1
};

enum class ChatFormat { kDeepSeekV3, kDeepSeekR1 };

struct ChatTemplate {
  ChatFormat format = ChatFormat::kDeepSeekV3;
  std::string bos_token = "<｜begin▁of▁sentence｜>";
  std::string eos_token = "<｜end▁of▁sentence｜>";
  // R1 only: the generation prompt opens the reasoning block (<｜Assistant｜><think>\n), as R1's updated
  // template does; false renders R1's first-release template (<｜Assistant｜>).
  bool think_prefix = true;

  // From tokenizer_config.json (a path to it or its directory): bos_token, eos_token and the format,
  // recognised from its chat_template (absent: DeepSeek-V3). A template of another family, or a later
  // DeepSeek variant (V3-0324 / V3.1, which track is_last_user), is a dsv3::Error.
  static ChatTemplate load(const std::string& path_or_dir);
  static ChatTemplate from_config_json(std::string_view config_json,
                                       const std::string& label = "tokenizer_config.json");

  // The prompt text. Throws dsv3::Error for a message the template cannot render (null content where text
  // is required).
  std::string render(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const;
};

// OpenAI-style messages: [{"role": ..., "content": str|null, "tool_calls": [{"type": ..., "function":
// {"name": ..., "arguments": str|object}}]}]. Object arguments are serialized compactly.
std::vector<ChatMessage> chat_messages_from_json(std::string_view json_text);
std::vector<ChatMessage> chat_messages_from_value(const nlohmann::json& messages);  // a parsed array

// Which family a Jinja chat_template belongs to; nullopt when it is not one we render.
std::optional<ChatFormat> detect_chat_format(std::string_view jinja);

// The published Jinja templates (data, for tokenizer_config.json files we write and for peer tests).
extern const char* const kDeepSeekV3ChatTemplateJinja;
extern const char* const kDeepSeekR1ChatTemplateJinja;

}  // namespace dsv3::io
