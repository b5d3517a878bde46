// Which output format a checkpoint's chat template implies, so that the server parses tool calls and
// reasoning the way that template renders them (chat_output.h):
//   the DeepSeek-V3.2 encoder                                   → DSML tool calls, <think> reasoning
//   a template with <|tool_calls_section_begin|>                → Kimi-K2
//   <｜tool▁sep｜> followed by ```json in the call rendering      → DeepSeek-V3 / R1 / V3-0324
//   <｜tool▁sep｜> without the ```json fence                     → DeepSeek-V3.1
//   the built-in renderer                                       → DeepSeek-V3
// Reasoning is split when the template mentions <think> (R1, V3.1, V3.2, Kimi-K2-Thinking); whether the
// output starts inside the block is decided per request, from the rendered prompt's end.
// `--tool-call-format` and `--reasoning` on `dsv3 serve` override the detection.
#pragma once

#include <string>
#include <string_view>

#include "io/chat_prompt.h"
#include "server/chat_output.h"

namespace dsv3::server {

struct ChatFamily {
  ToolCallFormat tools = ToolCallFormat::kNone;
  bool reasoning = false;
};

ChatFamily detect_chat_family(const io::ChatPrompt& prompt);

// True when a rendered prompt ends inside a reasoning block (its generation prompt opened <think>, trailing
// spaces and newlines aside): the output then starts as reasoning.
bool prompt_opens_reasoning(std::string_view prompt);

}  // namespace dsv3::server
