#include "server/chat_family.h"

#include <string_view>

namespace dsv3::server {

ChatFamily detect_chat_family(const io::ChatPrompt& prompt) {
  switch (prompt.renderer()) {
    case io::PromptRenderer::kDeepSeekV32:
      return {.tools = ToolCallFormat::kDeepSeekV32, .reasoning = true};
    case io::PromptRenderer::kBuiltin:
      return {.tools = ToolCallFormat::kDeepSeekV3, .reasoning = false};
    case io::PromptRenderer::kJinja:
      break;
  }
  // Both templates (default and tool_use) count.
  const std::string t = prompt.template_source(false) + prompt.template_source(true);
  auto has = [&](std::string_view s) { return t.find(s) != std::string::npos; };
  ChatFamily f;
  f.reasoning = has("<think>") || has("</think>");
  if (has("<|tool_calls_section_begin|>"))
    f.tools = ToolCallFormat::kKimiK2;
  else if (has("<｜DSML｜"))
    f.tools = ToolCallFormat::kDeepSeekV32;
  else if (has("<｜tool▁sep｜>"))
    f.tools = has("```json") ? ToolCallFormat::kDeepSeekV3 : ToolCallFormat::kDeepSeekV31;
  return f;
}

bool prompt_opens_reasoning(std::string_view prompt) {
  while (!prompt.empty() && (prompt.back() == '\n' || prompt.back() == ' ')) prompt.remove_suffix(1);
  return prompt.ends_with("<think>");
}

}  // namespace dsv3::server
