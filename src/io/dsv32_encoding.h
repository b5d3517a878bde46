// DeepSeek-V3.2's prompt format, written natively: the checkpoint (deepseek-ai/DeepSeek-V3.2, -Exp,
// -Speciale) publishes no Jinja chat template but a Python encoder, encoding/encoding_dsv32.py, whose
// encode_messages(messages, thinking_mode, drop_thinking=True, add_default_bos_token=True) defines the prompt.
// encode_dsv32 returns exactly the text that function returns for the same conversation, from OpenAI chat
// request fields. The format in short (every marker is a special token; the caller tokenizes the text with
// special tokens parsed and adds no BOS of its own):
//   <｜begin▁of▁sentence｜>
//   system     CONTENT, then "\n\n" + the tools block when it carries tools, then "\n\n## Response Format:..."
//              when it carries a response_format; no role marker.
//   user       <｜User｜>CONTENT<｜Assistant｜> + "<think>" when thinking and this is the last user turn,
//              "</think>" otherwise.
//   developer  like user, with CONTENT = [tools block] [response format] "\n\n# The user's message is: TEXT".
//   assistant  [REASONING</think> — only in thinking mode, only after the last user turn] CONTENT
//              ["\n\n<｜DSML｜function_calls>\n" invokes "\n</｜DSML｜function_calls>"] <｜end▁of▁sentence｜>;
//              an invoke is <｜DSML｜invoke name="N">\n PARAMS \n</｜DSML｜invoke>, a parameter
//              <｜DSML｜parameter name="K" string="true|false">V</｜DSML｜parameter> with V raw for strings and
//              json.dumps(V, ensure_ascii=False) otherwise.
//   tool       results of one assistant's calls, matched by position (tool_call_id is not used):
//              "\n\n<function_results>" before the first, "\n<result>CONTENT</result>" each, and after the
//              last "\n</function_results>\n\n" + "<think>" (thinking, after the last user turn) or "</think>".
// Reasoning of turns before the last user turn is never rendered (drop_thinking only removes it from the
// message list, which the renderer would skip anyway — and drops developer messages before the last user
// turn, after which the reference fails; so do we).
//
// Mapping from the OpenAI request (ours; the Python takes tools on a message):
//   - `tools` (request level, [{"type": "function", "function": {...}}]) go on the first message when it is
//     a system message without tools of its own, else on a new system message put first. (vLLM always puts
//     a new system message first; for a request with a system prompt that renders the tools before it.)
//   - content: a string, null (system/assistant: empty; refused for user/developer/tool, where the Python
//     would print "None"), or text parts [{"type": "text", "text": T}] joined with "\n" (as vLLM does).
//   - reasoning: "reasoning_content", or vLLM's "reasoning" when that is absent.
//   - tool_calls[i].function.arguments: a JSON object text (as the Python requires) or an object.
// What the Python refuses (assertions, KeyError, NotImplementedError, json.loads errors) is a dsv3::Error
// naming messages[i] (the caller's index) and the field.
//
// Left out of the Python definition: `context` (incremental encoding of a continuation) and
// parse_message_from_completion_text (the completion parser lives in server/chat_output).
// Added: add_generation_prompt=false leaves out the last message's trailing opener (user/developer:
// "<｜Assistant｜>" and the think marker; tool: "\n\n" and the think marker), as vLLM's copy does; true
// (the default) is the Python's only behaviour.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace dsv3::io {

struct Dsv32EncodeOptions {
  bool thinking = false;              // thinking_mode "thinking" (true) or "chat" (false)
  bool add_generation_prompt = true;  // false: no opener after the last message (see above)
  bool drop_thinking = true;          // encode_messages' drop_thinking (applies in thinking mode only)
  bool add_bos = true;                // add_default_bos_token
};

// `messages`: OpenAI chat messages; `tools`: null or an array of OpenAI function tools. Pass ordered JSON
// parsed straight from the request: the tool schemas are serialised in their key order, as Python keeps
// it (a key-sorted nlohmann::json converts implicitly but changes the prompt when keys were not sorted).
std::string encode_dsv32(const nlohmann::ordered_json& messages, const nlohmann::ordered_json& tools,
                         const Dsv32EncodeOptions& options = {});

}  // namespace dsv3::io
