// The model's generated text → what the chat APIs return: reasoning (the text inside <think>…</think>),
// content, and tool calls, parsed incrementally as text streams in, per model family. Markers are matched as
// text (the generated special tokens are decoded, not skipped), and text that might still turn into a marker
// is held back until it is decided, so a marker is never leaked into content or reasoning.
//
// Tool-call formats (what the families' chat templates render for an assistant's calls, and what the models
// then generate):
//   kDeepSeekV3   V3 / R1 / V3-0324:
//                 <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME\n```json\nARGS\n```
//                 <｜tool▁call▁end｜>[<｜tool▁call▁begin｜>…]<｜tool▁calls▁end｜>
//   kDeepSeekV31  V3.1 / V3.1-Terminus: <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>NAME<｜tool▁sep｜>ARGS
//                 <｜tool▁call▁end｜>…<｜tool▁calls▁end｜>
//   kDeepSeekV32  V3.2's DSML (encoding_dsv32.py): <｜DSML｜function_calls> <｜DSML｜invoke name="NAME">
//                 <｜DSML｜parameter name="P" string="true|false">VALUE</｜DSML｜parameter> … </｜DSML｜invoke>
//                 </｜DSML｜function_calls>; parameters are gathered into a JSON arguments object
//   kKimiK2       <|tool_calls_section_begin|><|tool_call_begin|>functions.NAME:IDX<|tool_call_argument_begin|>
//                 ARGS<|tool_call_end|>…<|tool_calls_section_end|>
// Nothing is dropped and nothing is an error. A call is committed once its name is complete: its first delta
// (id, name) goes out then and its arguments stream as they arrive, so it stays a call whatever follows
// (arguments that are not JSON or are cut off are returned as the model wrote them; a cut-off DSML call's
// object is closed). What is not committed — a section with no complete call header, an empty name, garbage
// or a marker out of place, an unclosed section's tail — is returned as content, verbatim with its markers.
// The stream's deltas, concatenated, always equal the totals, however the text was chunked. Details and
// sources: chat_output.cc.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace dsv3::server {

enum class ToolCallFormat { kNone, kDeepSeekV3, kDeepSeekV31, kDeepSeekV32, kKimiK2 };

// "deepseek_v3" | "deepseek_v31" | "deepseek_v32" | "kimi_k2" | "none"; unknown names are a dsv3::Error.
ToolCallFormat parse_tool_call_format(std::string_view name);
const char* tool_call_format_name(ToolCallFormat f);

struct ToolCallOut {
  std::string id;         // "call_" + 24 random hex digits; Kimi-K2: the model's own "functions.NAME:IDX"
  std::string name;       // function name
  std::string arguments;  // JSON object text: as the model wrote it (JSON formats), or built as
                          // encoding_dsv32.py does ({"k": "v", "n": 1}) for DSML
};

// What one feed() adds. Tool-call pieces carry their call's index (0, 1, …): the first piece of a call has
// id and name set, later pieces only arguments text; concatenated, a call's pieces give its arguments.
struct ToolCallDelta {
  int index = 0;
  std::string id, name, arguments;
};

struct OutputDelta {
  std::string reasoning = {}, content = {};
  std::vector<ToolCallDelta> tool_calls = {};
  bool empty() const { return reasoning.empty() && content.empty() && tool_calls.empty(); }
};

struct OutputParserOptions {
  ToolCallFormat tools = ToolCallFormat::kNone;  // kNone: tool markers are ordinary content
  bool reasoning = false;                        // split <think>…</think> (R1, V3.1/V3.2 thinking, Kimi-K2-Thinking)
  bool starts_in_reasoning = false;  // the prompt ended inside the block (its generation prompt opened <think>)
};

class OutputParser {
 public:
  explicit OutputParser(OutputParserOptions options);
  ~OutputParser();
  OutputParser(OutputParser&&) noexcept;
  OutputParser& operator=(OutputParser&&) noexcept;

  // Text as generated (any size, may split a marker or a UTF-8 sequence... callers pass whole UTF-8).
  OutputDelta feed(std::string_view text);
  // Generation ended: what was held back, decided. An unclosed reasoning block stays reasoning; an unclosed
  // or malformed tool call is returned as content.
  OutputDelta finish();

  // Everything so far (complete after finish()).
  const std::string& reasoning() const;
  const std::string& content() const;
  const std::vector<ToolCallOut>& tool_calls() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dsv3::server
