// Anthropic's Messages API (POST /v1/messages) as a translation layer over the OpenAI chat-completions path:
// a Messages request is validated and rewritten as the chat-completions body that parse_request
// (openai_api.h) already understands, and the parsed output (chat_output.h) is written back as a Messages
// response or as its server-sent events. No HTTP here (http_server.cc wires it in).
//
// Definitions followed: Anthropic's API reference for "Create a Message", its "Streaming Messages" guide
// and its "Errors" page, checked against the types and the stream accumulator of the official
// @anthropic-ai/sdk npm package (MessageStreamEvent, RawContentBlockStartEvent, MessageStream's
// #accumulateMessage: a tool_use block's input is the partial-JSON parse of its input_json_delta pieces).
//
// Accepted request fields (unknown top-level fields are ignored; metadata, service_tier, cache_control and
// citations on blocks are accepted and ignored):
//   model (string, required), max_tokens (integer >= 1, required), messages (required, non-empty; role
//   user | assistant; content a string or an array of blocks), system (string or text blocks),
//   stop_sequences (strings, at most kMaxStop), stream (bool), temperature (0..1), top_p (0..1), top_k
//   (integer >= 0), tools ([{name, description?, input_schema: object, type?: "custom"}]; names unique, 1 to
//   64 of [A-Za-z0-9_.-], what the chat path renders), tool_choice
//   ({type: auto | any | tool | none, name (tool), disable_parallel_tool_use}), thinking ({type: "enabled",
//   budget_tokens >= 1024 and < max_tokens} | {type: "disabled"} | {type: "adaptive"}).
// Content blocks: text {text} (both roles); tool_use {id, name, input: object} (assistant);
// tool_result {tool_use_id, content?: string or text blocks, is_error?} (user); thinking {thinking,
// signature?} and redacted_thinking (assistant, history). image, document and the server-tool blocks are a
// 400 "not supported" naming the block; so are server tools (a tool whose `type` is not "custom").
//
// Conversion (the OpenAI body's keys in the client's order: ordered_json throughout):
//   system → a leading {"role": "system"} message (text blocks joined with "\n"; omitted when empty);
//   a user message's tool_result blocks → one {"role": "tool", "tool_call_id", "content"} message each, in
//     order, then its text blocks (joined with "\n") as one user message (none when it had only results);
//     is_error is validated but not rendered (the chat templates have no place for it);
//   an assistant message → {"role": "assistant", "content": its text (null when it has calls and no
//     text), "reasoning_content": its thinking blocks joined (when any), "tool_calls": [{id, type:
//     "function", function: {name, arguments: compact JSON text of input}}] (when any)}; redacted_thinking
//     is dropped (it is another server's encrypted reasoning);
//   tools → [{type: "function", function: {name, description, parameters: input_schema}}];
//   tool_choice auto → "auto", any → "required", tool → {type: "function", function: {name}}, none →
//     "none"; disable_parallel_tool_use → parallel_tool_calls: false;
//   thinking enabled / adaptive → chat_template_kwargs {"thinking": true}; disabled → {"thinking": false};
//     budget_tokens is reported (AnthropicRequest::thinking_budget) but not enforced;
//   stop_sequences → stop (all of them); max_tokens, temperature, top_p, top_k, stream, model as they are.
// Every violation is a 400 ApiError whose param is the Anthropic field path
// ("messages[2].content[0].tool_use_id") and whose message starts with it.
//
// Responses: content blocks in the order [thinking {thinking, signature: ""}] [text] [tool_use {id, name,
// input}]…; our reasoning is not signed, so the signature is empty (the SDK takes any string). stop_reason:
// max_tokens when the length limit ended it, else tool_use when there are calls, else stop_sequence when
// a stop sequence matched, else end_turn; stop_sequence is the matched string (null when none matched).
// A call whose arguments are not a JSON object (a call cut off, or text the model got wrong; see
// chat_output.h) keeps its tool_use block with input {} and is followed by a text block holding the raw
// arguments text, so nothing is lost; only there does the streamed content differ from the response's
// (the stream sent the raw text as input_json_delta, which the SDK parses leniently), and where one delta
// holds several kinds of output (they are taken reasoning, then content, then calls).
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/sequence.h"
#include "server/chat_output.h"
#include "server/openai_api.h"

namespace dsv3::server {

constexpr int64_t kMinThinkingBudget = 1024;  // Anthropic's lower bound on thinking.budget_tokens

struct AnthropicRequest {
  // The chat-completions request body: give openai.dump() to parse_request(Endpoint::Chat, …) (the
  // strings in it came from parsed JSON, so they are valid UTF-8 and dump() does not throw).
  nlohmann::ordered_json openai;
  std::string model;
  int64_t max_tokens = 0;
  bool stream = false;
  bool thinking = false;                    // thinking enabled (or adaptive): the client expects thinking blocks
  int64_t thinking_budget = 0;              // budget_tokens when enabled (0: none given)
  std::vector<std::string> stop_sequences;  // as given (also openai["stop"])
};

// Parses and validates a Messages request body (parse_json_body: depth-limited); throws ApiError (400).
AnthropicRequest parse_messages_request(std::string_view body);

// {"type": "error", "error": {"type", "message"}}: the type from e.status (400 invalid_request_error,
// 401 authentication_error, 403 permission_error, 404 not_found_error, 413 request_too_large,
// 429 rate_limit_error, 503 and 529 overloaded_error, 500 and other 5xx api_error, other 4xx
// invalid_request_error); the message is e.what() (this layer's messages name the field; Anthropic's
// error object has no param field).
nlohmann::json anthropic_error_json(const ApiError& e);
const char* anthropic_error_type(int status);

// How generation ended, for stop_reason / stop_sequence / usage.
struct MessagesEnd {
  runtime::FinishReason finish = runtime::FinishReason::Stop;
  std::string matched_stop = {};  // JobUpdate::matched_stop: the stop sequence that ended the text (empty: none)
  int64_t input_tokens = 0, output_tokens = 0;
  // Of input_tokens, those read from the prefix cache: usage then reports input_tokens − cached as
  // input_tokens and cached as cache_read_input_tokens (Anthropic's split; absent when 0).
  int64_t cached_tokens = 0;
};

// "end_turn" | "max_tokens" | "stop_sequence" | "tool_use" (precedence as in the file comment).
const char* messages_stop_reason(const MessagesEnd& end, bool has_tool_calls);

// The non-streaming response: {"id": meta.id ("msg_" + 24 hex: make_id("msg_")), "type": "message",
// "role": "assistant", "model": meta.model, "content": […], "stop_reason", "stop_sequence",
// "usage": {"input_tokens", "output_tokens"}}. meta.created is not used. ordered_json, so that a tool_use
// input keeps the model's key order (the client sends it back, and it is rendered again as written):
// serialise it with dump_ordered (openai_api.h's dump would take a sorted copy).
nlohmann::ordered_json messages_response(const ResponseMeta& meta, const std::string& reasoning,
                                         const std::string& content, const std::vector<ToolCallOut>& calls,
                                         const MessagesEnd& end);

// JSON for the wire, key order kept; invalid UTF-8 (never expected) is replaced rather than thrown on.
std::string dump_ordered(const nlohmann::ordered_json& j);

// The streaming response, as server-sent events ("event: NAME\ndata: JSON\n\n"), from the parser's
// deltas. Blocks open and close as the kind of output changes (reasoning → thinking, content → text, a
// new tool-call index → tool_use); a thinking block gets a signature_delta ("") before its
// content_block_stop. Empty pieces open nothing.
class MessagesStream {
 public:
  MessagesStream(ResponseMeta meta, int64_t input_tokens);

  // message_start (the message with empty content, stop_reason null, usage {input_tokens, output_tokens:
  // 0}) then ping. Called by feed() / finish() when not yet called; returns "" when already sent.
  std::string start();
  // content_block_start / content_block_delta / content_block_stop events for one delta.
  std::string feed(const OutputDelta& d);
  // Closes the open block, then message_delta {delta: {stop_reason, stop_sequence}, usage:
  // {output_tokens}} and message_stop (stop_reason tool_use when a tool call was streamed). Further calls
  // to feed / finish / error return "".
  std::string finish(const MessagesEnd& end);
  // "event: error" with anthropic_error_json(e) (an error after the stream began); ends the stream.
  std::string error(const ApiError& e);

  // One event as the wire writes it.
  static std::string event(const char* name, const nlohmann::ordered_json& data);

 private:
  enum class Block { kNone, kThinking, kText, kToolUse };
  std::string open(Block kind, nlohmann::ordered_json content_block);
  std::string close();

  ResponseMeta meta_;
  int64_t input_tokens_ = 0;
  bool started_ = false, ended_ = false;
  Block open_ = Block::kNone;
  int index_ = -1;                  // the open (or last) block's index
  int open_call_ = -1;              // the tool-call index of the open tool_use block
  std::map<int, int> call_blocks_;  // tool-call index → its block index
};

}  // namespace dsv3::server
