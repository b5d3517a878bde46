// Flags shared by the commands that render chat prompts — `dsv3 chat`, `dsv3 generate --chat/--messages`
// and `dsv3 tokenizer chat` (docs/serving.md):
//   --chat-template FILE         a Jinja template replacing the checkpoint's (io/chat_prompt.h)
//   --chat-template-kwargs JSON  extra template variables, e.g. '{"thinking": true}' for DeepSeek-V3.1
//   --tools FILE                 OpenAI tools: a JSON array of {"type": "function", "function": {...}}
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <string>

namespace dsv3::cli {

struct ChatFlags {
  std::string template_file, kwargs_json, tools_file;

  void add_to(CLI::App& app);
  // Parsed and checked; dsv3::Error naming the flag when the JSON is invalid or of the wrong shape.
  nlohmann::ordered_json kwargs() const;  // an object ({} when absent)
  nlohmann::ordered_json tools() const;   // an array, or null when absent
};

// A JSON file of chat messages (an array, or an object with "messages"), in the file's key order.
nlohmann::ordered_json read_messages_file(const std::string& path);

}  // namespace dsv3::cli
