// The OpenAI HTTP API's JSON: request parsing and validation for /v1/chat/completions and /v1/completions,
// and the response / stream-chunk / error objects (shapes as in OpenAI's API reference; "object" names
// chat.completion, chat.completion.chunk, text_completion). No HTTP here (http_server.h).
//
// Accepted request fields (others are ignored, as OpenAI-compatible servers do):
//   chat:        messages (required; content a string, null, or an array of {"type": "text"} parts; roles
//                system | developer (as system) | user | assistant | tool; tool_calls, tool_call_id, name,
//                reasoning_content), tools, tool_choice (none | auto | required | {"type": "function",
//                "function": {"name"}}), parallel_tool_calls, chat_template_kwargs (object, merged over the
//                server's --chat-template-kwargs), logprobs (bool), top_logprobs (0..20), max_completion_tokens
//   completions: prompt (string, token-id array, or a one-element array of either), logprobs (0..20),
//                echo (false only), suffix (null only), best_of (1 only)
//   both:        response_format ({"type": "text"} | {"type": "json_object"} | {"type": "json_schema",
//                "json_schema": {"name", "schema", "strict", "description"}}; the grammar is compiled by
//                server/structured_output.h), model, max_tokens, temperature (0..2), top_p (0..1), n (1 only), stream,
//                stream_options {include_usage}, stop (string or up to 16 strings), seed, frequency_penalty and
//                presence_penalty (-2..2); extensions: top_k, min_p, repetition_penalty, ignore_eos
// Every violation is an ApiError naming the field in "param". Bodies nested deeper than kMaxJsonDepth are
// refused while parsing (nothing deeper is built, so no copy or dump of client JSON can recurse far).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "io/chat_prompt.h"
#include "io/tokenizer.h"
#include "runtime/sampler.h"
#include "runtime/sequence.h"
#include "server/chat_output.h"

namespace dsv3::server {

// {"error": {"message", "type", "param", "code"}} with an HTTP status.
struct ApiError : std::runtime_error {
  ApiError(int status, std::string message, std::string type = "invalid_request_error",
           std::optional<std::string> param = std::nullopt, std::optional<std::string> code = std::nullopt);
  int status;
  std::string type;
  std::optional<std::string> param, code;
  nlohmann::json to_json() const;
};

enum class Endpoint { Chat, Completion };

// response_format: free text, any JSON object, or JSON that validates against a schema.
enum class ResponseFormat { kText, kJsonObject, kJsonSchema };

struct ApiContext {
  const io::Tokenizer* tokenizer = nullptr;                                  // required for text prompts and chat
  const io::ChatPrompt* chat_prompt = nullptr;                               // required for chat
  nlohmann::ordered_json default_kwargs = nlohmann::ordered_json::object();  // --chat-template-kwargs
  int64_t context = 4096;                                                    // prompt + completion tokens
  int64_t vocab_size = 0;                                                    // token-id prompts are checked against it
  // The longest token's byte length (0: unknown): a text prompt longer than this times the context is
  // refused before it is tokenized.
  int64_t max_token_bytes = 0;
  // false (default): special tokens typed into user and tool text are plain text; true: parsed, as HF's
  // apply_chat_template + encode does (--parse-special-in-user-text).
  bool parse_special_in_user_text = false;
};

struct ApiRequest {
  Endpoint endpoint = Endpoint::Chat;
  std::string model;
  std::vector<int32_t> prompt;
  runtime::SamplingParams sampling;
  int64_t max_tokens = 0;  // resolved: explicit, or what the context leaves
  std::vector<std::string> stop;
  bool stream = false, include_usage = false;
  bool logprobs = false;
  int64_t top_logprobs = 0;
  bool ignore_eos = false;
  ResponseFormat response_format = ResponseFormat::kText;
  nlohmann::ordered_json json_schema;  // kJsonSchema: response_format.json_schema.schema (an object or a boolean)
  std::string json_schema_name;        // kJsonSchema: response_format.json_schema.name
  // chat only
  nlohmann::ordered_json tools;      // null or the validated `tools` array (the client's key order)
  std::string tool_choice = "none";  // none | auto | required | function (tools given: auto by default)
  std::string tool_choice_name;      // tool_choice "function": its name
  bool parallel_tool_calls = true;
  nlohmann::ordered_json chat_template_kwargs = nlohmann::ordered_json::object();  // what the template got
  std::string prompt_text;                                                         // chat: the rendered prompt
  bool prompt_opens_reasoning = false;  // the rendered prompt ends with <think>: the output starts as reasoning
};

constexpr size_t kMaxStop = 16;  // stop sequences (OpenAI allows 4; Anthropic's stop_sequences more)

constexpr int kMaxJsonDepth = 64;

// Parses a request body as JSON: a 400 ApiError when it is not JSON ("invalid_json") or nests objects and
// arrays deeper than max_depth ("json_too_deep", the message naming the limit).
// J: nlohmann::json or nlohmann::ordered_json (keys in the client's order, as chat templates see them).
template <typename J = nlohmann::json>
J parse_json_body(std::string_view text, int max_depth = kMaxJsonDepth);

// Parses and validates a request body; throws ApiError. The sampling seed is random when absent.
ApiRequest parse_request(Endpoint endpoint, std::string_view body, const ApiContext& ctx);

// ---- responses -------------------------------------------------------------------------------------------

// Per-token logprobs as OpenAI reports them (chat: "content" entries; completions: the legacy arrays).
nlohmann::json chat_logprobs_json(const io::Tokenizer* tok, const std::vector<runtime::TokenLogprobs>& lps);
nlohmann::json completion_logprobs_json(const io::Tokenizer* tok, const std::vector<runtime::TokenLogprobs>& lps,
                                        int64_t text_offset);

struct ResponseMeta {
  std::string id, model;
  int64_t created = 0;
};

// prompt_tokens_details.cached_tokens: prompt tokens not computed again (prefix cache, reused caches).
nlohmann::json usage_json(int64_t prompt_tokens, int64_t completion_tokens, int64_t cached_tokens = 0);

// The parsed output (chat_output.h) as OpenAI writes it. A message: {"role": "assistant", "content": text or
// null (null when there are tool calls and no text), "reasoning_content" (when there is reasoning),
// "tool_calls": [{"id", "type": "function", "function": {"name", "arguments"}}] (when there are calls)}.
// A stream delta: only the fields the piece has; a call's first piece carries id, type and name, later ones
// only index and arguments.
nlohmann::json chat_message_json(const std::string& reasoning, const std::string& content,
                                 const std::vector<ToolCallOut>& calls);
nlohmann::json chat_delta_json(const OutputDelta& d);
const char* finish_reason_json(runtime::FinishReason r);  // "stop" | "length"

// Serialises JSON for the wire: invalid UTF-8 (never expected) is replaced rather than thrown on.
std::string dump(const nlohmann::json& j);

// A fresh id: prefix + 24 hex digits.
std::string make_id(const char* prefix);

}  // namespace dsv3::server
