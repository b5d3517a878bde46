// Structured output for the chat and completion APIs: the grammar a request's output must follow, built
// from its response_format (a JSON Schema, or any JSON object) or from a tool_choice that forces a call
// ("required", or a named function): then the output is one call (or, with parallel_tool_calls, up to
// kMaxForcedCalls calls) in the model family's own tool-call syntax (chat_output.h), its arguments valid
// against the tool's `parameters` schema. A forced call takes precedence over response_format.
//
// The grammar is applied by runtime::GrammarConstraint (sampling masks). In thinking mode (the rendered
// prompt opened <think>) it applies only after the reasoning block closes: the reasoning is free.
//
// Per family (what the templates render and chat_output.h parses):
//   V3 / R1
//   <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME\n```json\nARGS\n```<｜tool▁call▁end｜>
//               calls separated by "\n", then <｜tool▁calls▁end｜>
//   V3.1 <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>NAME<｜tool▁sep｜>ARGS<｜tool▁call▁end｜>…<｜tool▁calls▁end｜> V3.2
//   DSML   \n\n<｜DSML｜function_calls>\n<｜DSML｜invoke name="NAME">\n then one line per parameter of the
//               schema's `properties` (required ones always, optional ones may be left out, in schema order):
//               <｜DSML｜parameter name="P" string="false">JSON</｜DSML｜parameter>\n, then </｜DSML｜invoke>, calls
//               separated by "\n", then \n</｜DSML｜function_calls>. Every value is written as JSON
//               (string="false", which DSML allows for any value), so a string parameter is a JSON string.
//               A schema without `properties` takes no parameters; one that requires what it does not list
//               is refused.
//   Kimi-K2     <|tool_calls_section_begin|><|tool_call_begin|>functions.NAME:IDX<|tool_call_argument_begin|>ARGS
//               <|tool_call_end|>…<|tool_calls_section_end|>
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "io/grammar/grammar.h"
#include "server/chat_output.h"
#include "server/openai_api.h"

namespace dsv3::server {

constexpr int64_t kMaxForcedCalls = 8;  // parallel_tool_calls with a forced tool_choice: at most this many

// The grammar of a forced tool call: any of `tools` (name empty) or the named one. Throws ApiError (400)
// naming tools[i].function.parameters when a schema cannot be compiled.
grammar::Grammar tool_call_grammar(ToolCallFormat format, const nlohmann::ordered_json& tools, const std::string& name,
                                   bool parallel);

// What a request's output must follow: null when it is free. Throws ApiError (400) naming the field whose
// schema uses what the compiler does not support (response_format.json_schema.schema,
// tools[i].function.parameters), or when a call is forced and the model's format is unknown.
std::shared_ptr<const grammar::Grammar> request_grammar(const ApiRequest& r, ToolCallFormat format);

}  // namespace dsv3::server
