// Anthropic Messages ↔ OpenAI chat completions (anthropic_api.h has the field list, the conversion and the
// choices made where the two APIs differ).
#include "server/anthropic_api.h"

#include <fmt/format.h>

#include <cctype>
#include <cmath>
#include <limits>
#include <optional>
#include <set>

namespace dsv3::server {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

namespace {

[[noreturn]] void bad(const std::string& param, const std::string& message) {
  throw ApiError(400, fmt::format("{}: {}", param, message), "invalid_request_error", param);
}

// Absent or null → nullptr.
const ojson* member(const ojson& obj, const char* key) {
  auto it = obj.find(key);
  return it == obj.end() || it->is_null() ? nullptr : &*it;
}

const ojson& required(const ojson& obj, const char* key, const std::string& path) {
  const ojson* v = member(obj, key);
  if (!v) bad(path, "is a required field");
  return *v;
}

const std::string& string_at(const ojson& v, const std::string& path) {
  if (!v.is_string()) bad(path, "must be a string");
  return v.get_ref<const std::string&>();
}

int64_t int_at(const ojson& v, const std::string& path, int64_t lo, int64_t hi) {
  int64_t x = 0;
  if (v.is_number_unsigned()) {
    if (v.get<uint64_t>() > uint64_t(hi)) bad(path, fmt::format("must be at most {}", hi));
    x = int64_t(v.get<uint64_t>());
  } else if (v.is_number_integer()) {
    x = v.get<int64_t>();
  } else if (v.is_number_float() && std::isfinite(v.get<double>()) && v.get<double>() == std::floor(v.get<double>()) &&
             std::fabs(v.get<double>()) < 9e15) {
    x = int64_t(v.get<double>());
  } else {
    bad(path, "must be an integer");
  }
  if (x < lo || x > hi) bad(path, fmt::format("must be between {} and {}, got {}", lo, hi, x));
  return x;
}

double number_at(const ojson& v, const std::string& path, double lo, double hi) {
  if (!v.is_number()) bad(path, "must be a number");
  const double x = v.get<double>();
  if (!std::isfinite(x) || x < lo || x > hi) bad(path, fmt::format("must be between {} and {}, got {}", lo, hi, x));
  return x;
}

bool bool_at(const ojson& v, const std::string& path) {
  if (!v.is_boolean()) bad(path, "must be a boolean");
  return v.get<bool>();
}

const std::string& block_type(const ojson& b, const std::string& path) {
  if (!b.is_object()) bad(path, "must be an object (a content block)");
  return string_at(required(b, "type", path + ".type"), path + ".type");
}

[[noreturn]] void unsupported_block(const std::string& type, const std::string& path) {
  bad(path, fmt::format("'{}' content blocks are not supported by this server", type));
}

void append(std::string& to, const std::string& text) {
  if (!to.empty()) to += '\n';
  to += text;
}

// The text of a text block; other blocks are refused (system, tool_result content).
std::string text_block(const ojson& b, const std::string& path) {
  const std::string& type = block_type(b, path);
  if (type != "text") unsupported_block(type, path);
  return string_at(required(b, "text", path + ".text"), path + ".text");
}

// A string, or an array of text blocks joined with "\n".
std::string text_or_blocks(const ojson& v, const std::string& path) {
  if (v.is_string()) return v.get<std::string>();
  if (!v.is_array()) bad(path, "must be a string or an array of text blocks");
  std::string text;
  for (size_t k = 0; k < v.size(); ++k) append(text, text_block(v[k], fmt::format("{}[{}]", path, k)));
  return text;
}

// One Anthropic message → its OpenAI messages (appended to `out`).
void convert_message(const ojson& m, const std::string& p, ojson& out) {
  if (!m.is_object()) bad(p, "must be an object");
  const std::string& role = string_at(required(m, "role", p + ".role"), p + ".role");
  if (role != "user" && role != "assistant")
    bad(p + ".role", fmt::format("unknown role '{}' (expected user or assistant; the system prompt is the "
                                 "top-level 'system' field)",
                                 role));
  const bool user = role == "user";
  const ojson& content = required(m, "content", p + ".content");
  if (content.is_string()) {
    out.push_back(ojson{{"role", role}, {"content", content}});
    return;
  }
  if (!content.is_array()) bad(p + ".content", "must be a string or an array of content blocks");
  std::string text, reasoning;
  bool has_text = false;
  int results = 0;
  ojson calls = ojson::array();
  for (size_t k = 0; k < content.size(); ++k) {
    const ojson& b = content[k];
    const std::string pb = fmt::format("{}.content[{}]", p, k);
    const std::string& type = block_type(b, pb);
    if (type == "text") {
      append(text, string_at(required(b, "text", pb + ".text"), pb + ".text"));
      has_text = true;
    } else if (type == "tool_result") {
      if (!user) bad(pb, "tool_result blocks belong to user messages");
      const std::string& id = string_at(required(b, "tool_use_id", pb + ".tool_use_id"), pb + ".tool_use_id");
      std::string result;
      if (const ojson* c = member(b, "content")) result = text_or_blocks(*c, pb + ".content");
      if (const ojson* e = member(b, "is_error")) bool_at(*e, pb + ".is_error");
      out.push_back(ojson{{"role", "tool"}, {"tool_call_id", id}, {"content", std::move(result)}});
      ++results;
    } else if (type == "tool_use") {
      if (user) bad(pb, "tool_use blocks belong to assistant messages");
      const std::string& id = string_at(required(b, "id", pb + ".id"), pb + ".id");
      const std::string& name = string_at(required(b, "name", pb + ".name"), pb + ".name");
      if (name.empty()) bad(pb + ".name", "must not be empty");
      const ojson& input = required(b, "input", pb + ".input");
      if (!input.is_object()) bad(pb + ".input", "must be an object");
      calls.push_back(
          ojson{{"id", id}, {"type", "function"}, {"function", {{"name", name}, {"arguments", dump_ordered(input)}}}});
    } else if (type == "thinking") {
      if (user) bad(pb, "thinking blocks belong to assistant messages");
      append(reasoning, string_at(required(b, "thinking", pb + ".thinking"), pb + ".thinking"));
      if (const ojson* s = member(b, "signature")) string_at(*s, pb + ".signature");
    } else if (type == "redacted_thinking") {
      if (user) bad(pb, "redacted_thinking blocks belong to assistant messages");
      // Another server's encrypted reasoning: nothing here can render it, so it is dropped.
    } else {
      unsupported_block(type, pb);  // image, document, search_result, server-tool blocks, unknown types
    }
  }
  if (user) {
    if (has_text || results == 0)  // only tool results: no user message after them
      out.push_back(ojson{{"role", "user"}, {"content", std::move(text)}});
    return;
  }
  ojson a = {{"role", "assistant"}};
  a["content"] = !has_text && !calls.empty() ? ojson(nullptr) : ojson(std::move(text));
  if (!reasoning.empty()) a["reasoning_content"] = std::move(reasoning);
  if (!calls.empty()) a["tool_calls"] = std::move(calls);
  out.push_back(std::move(a));
}

// The server can render a tool name only in what openai_api.cc accepts for function names.
void check_tool_name(const std::string& name, const std::string& path) {
  if (name.empty() || name.size() > 64) bad(path, "must be a string of 1 to 64 characters");
  for (char c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.')
      bad(path, fmt::format("'{}' may hold only letters, digits, '_', '-' and '.'", name));
}

ojson convert_tools(const ojson& tools, std::set<std::string>& names) {
  if (!tools.is_array()) bad("tools", "must be an array");
  if (tools.size() > 512) bad("tools", "holds at most 512 tools");
  ojson out = ojson::array();
  for (size_t i = 0; i < tools.size(); ++i) {
    const ojson& t = tools[i];
    const std::string p = fmt::format("tools[{}]", i);
    if (!t.is_object()) bad(p, "must be an object");
    if (const ojson* type = member(t, "type"); type && *type != "custom")
      bad(p + ".type", fmt::format("server tools ({}) are not supported; give client tools as {{name, "
                                   "description, input_schema}}",
                                   type->dump()));
    const std::string& name = string_at(required(t, "name", p + ".name"), p + ".name");
    check_tool_name(name, p + ".name");
    if (!names.insert(name).second) bad(p + ".name", fmt::format("tool name '{}' is given twice", name));
    const ojson& schema = required(t, "input_schema", p + ".input_schema");
    if (!schema.is_object()) bad(p + ".input_schema", "must be a JSON Schema object");
    ojson f = {{"name", name}};
    if (const ojson* d = member(t, "description")) f["description"] = string_at(*d, p + ".description");
    f["parameters"] = schema;
    out.push_back(ojson{{"type", "function"}, {"function", std::move(f)}});
  }
  return out;
}

void convert_tool_choice(const ojson& tc, const std::set<std::string>& names, ojson& out) {
  if (!tc.is_object()) bad("tool_choice", "must be an object {\"type\": \"auto\" | \"any\" | \"tool\" | \"none\"}");
  const std::string& type = string_at(required(tc, "type", "tool_choice.type"), "tool_choice.type");
  if (type == "auto") {
    out["tool_choice"] = "auto";
  } else if (type == "any") {
    out["tool_choice"] = "required";
  } else if (type == "none") {
    out["tool_choice"] = "none";
  } else if (type == "tool") {
    const std::string& name = string_at(required(tc, "name", "tool_choice.name"), "tool_choice.name");
    if (!names.count(name)) bad("tool_choice.name", fmt::format("names '{}', which is not in 'tools'", name));
    out["tool_choice"] = ojson{{"type", "function"}, {"function", {{"name", name}}}};
  } else {
    bad("tool_choice.type", fmt::format("unknown type '{}' (expected auto, any, tool or none)", type));
  }
  if ((type == "any" || type == "tool") && names.empty())
    bad("tool_choice", fmt::format("tool_choice '{}' needs 'tools'", type));
  if (const ojson* d = member(tc, "disable_parallel_tool_use"))
    if (bool_at(*d, "tool_choice.disable_parallel_tool_use")) out["parallel_tool_calls"] = false;
}

// JSON text parsed with its keys in order, syntax and depth checked (nothing deeper than kMaxJsonDepth is built).
ojson parse_ordered(std::string_view text) { return parse_json_body<ojson>(text); }

// A call's arguments as an object; nullopt when they are not JSON (depth-limited) or not an object.
std::optional<ojson> arguments_object(const std::string& text) {
  try {
    ojson v = parse_ordered(text);
    if (v.is_object()) return v;
  } catch (const ApiError&) {
  } catch (const ojson::exception&) {
  }
  return std::nullopt;
}

ojson stop_sequence_json(const MessagesEnd& end) {
  return end.matched_stop.empty() ? ojson(nullptr) : ojson(end.matched_stop);
}

}  // namespace

AnthropicRequest parse_messages_request(std::string_view text) {
  const ojson body = parse_ordered(text);
  if (!body.is_object()) throw ApiError(400, "The request body must be a JSON object.");
  AnthropicRequest r;
  ojson& o = r.openai;
  o = ojson::object();

  r.model = string_at(required(body, "model", "model"), "model");
  o["model"] = r.model;
  r.max_tokens =
      int_at(required(body, "max_tokens", "max_tokens"), "max_tokens", 1, std::numeric_limits<int32_t>::max());

  const ojson& msgs = required(body, "messages", "messages");
  if (!msgs.is_array()) bad("messages", "must be an array");
  if (msgs.empty()) bad("messages", "must hold at least one message");
  ojson messages = ojson::array();
  if (const ojson* sys = member(body, "system")) {
    std::string s = text_or_blocks(*sys, "system");
    if (!s.empty()) messages.push_back(ojson{{"role", "system"}, {"content", std::move(s)}});
  }
  for (size_t i = 0; i < msgs.size(); ++i) convert_message(msgs[i], fmt::format("messages[{}]", i), messages);
  o["messages"] = std::move(messages);
  o["max_tokens"] = r.max_tokens;

  if (const ojson* s = member(body, "stream")) r.stream = bool_at(*s, "stream");
  o["stream"] = r.stream;
  if (const ojson* st = member(body, "stop_sequences")) {
    if (!st->is_array()) bad("stop_sequences", "must be an array of strings");
    if (st->size() > kMaxStop) bad("stop_sequences", fmt::format("holds at most {} sequences", kMaxStop));
    for (size_t k = 0; k < st->size(); ++k) {
      const std::string p = fmt::format("stop_sequences[{}]", k);
      const std::string& s = string_at((*st)[k], p);
      if (s.empty()) bad(p, "must not be empty");
      r.stop_sequences.push_back(s);
    }
    if (!r.stop_sequences.empty()) o["stop"] = r.stop_sequences;
  }
  if (const ojson* t = member(body, "temperature")) o["temperature"] = number_at(*t, "temperature", 0, 1);
  if (const ojson* t = member(body, "top_p")) o["top_p"] = number_at(*t, "top_p", 0, 1);
  if (const ojson* k = member(body, "top_k")) o["top_k"] = int_at(*k, "top_k", 0, std::numeric_limits<int32_t>::max());

  std::set<std::string> names;
  if (const ojson* tools = member(body, "tools")) {
    ojson t = convert_tools(*tools, names);
    if (!t.empty()) o["tools"] = std::move(t);
  }
  if (const ojson* tc = member(body, "tool_choice")) convert_tool_choice(*tc, names, o);

  if (const ojson* th = member(body, "thinking")) {
    if (!th->is_object()) bad("thinking", "must be an object {\"type\": \"enabled\" | \"disabled\"}");
    const std::string& type = string_at(required(*th, "type", "thinking.type"), "thinking.type");
    if (type == "enabled") {
      r.thinking_budget = int_at(required(*th, "budget_tokens", "thinking.budget_tokens"), "thinking.budget_tokens",
                                 kMinThinkingBudget, std::numeric_limits<int32_t>::max());
      if (r.thinking_budget >= r.max_tokens)
        bad("thinking.budget_tokens",
            fmt::format("must be less than max_tokens ({}), got {}", r.max_tokens, r.thinking_budget));
      r.thinking = true;
    } else if (type == "adaptive") {
      r.thinking = true;
    } else if (type != "disabled") {
      bad("thinking.type", fmt::format("unknown type '{}' (expected enabled, disabled or adaptive)", type));
    }
    o["chat_template_kwargs"] = ojson{{"thinking", r.thinking}};
  }
  return r;
}

const char* anthropic_error_type(int status) {
  switch (status) {
    case 400:
      return "invalid_request_error";
    case 401:
      return "authentication_error";
    case 403:
      return "permission_error";
    case 404:
      return "not_found_error";
    case 413:
      return "request_too_large";
    case 429:
      return "rate_limit_error";
    case 503:
    case 529:
      return "overloaded_error";
    default:
      return status >= 500 ? "api_error" : "invalid_request_error";
  }
}

json anthropic_error_json(const ApiError& e) {
  return json{{"type", "error"}, {"error", {{"type", anthropic_error_type(e.status)}, {"message", e.what()}}}};
}

const char* messages_stop_reason(const MessagesEnd& end, bool has_tool_calls) {
  if (end.finish == runtime::FinishReason::Length) return "max_tokens";
  if (has_tool_calls) return "tool_use";
  if (!end.matched_stop.empty()) return "stop_sequence";
  return "end_turn";
}

std::string dump_ordered(const ojson& j) { return j.dump(-1, ' ', false, ojson::error_handler_t::replace); }

namespace {
// usage: the whole message's (input_tokens, output_tokens) or message_delta's (output_tokens); with a prefix-cache
// hit, input_tokens counts only the tokens computed and cache_read_input_tokens the rest (both in message_delta too,
// which then corrects message_start's input_tokens, sent before the lookup).
ojson messages_usage(const MessagesEnd& end, bool whole) {
  ojson u = ojson::object();
  if (whole || end.cached_tokens > 0) u["input_tokens"] = end.input_tokens - end.cached_tokens;
  if (end.cached_tokens > 0) u["cache_read_input_tokens"] = end.cached_tokens;
  u["output_tokens"] = end.output_tokens;
  return u;
}
}  // namespace

ojson messages_response(const ResponseMeta& meta, const std::string& reasoning, const std::string& content,
                        const std::vector<ToolCallOut>& calls, const MessagesEnd& end) {
  ojson blocks = ojson::array();
  if (!reasoning.empty()) blocks.push_back(ojson{{"type", "thinking"}, {"thinking", reasoning}, {"signature", ""}});
  if (!content.empty()) blocks.push_back(ojson{{"type", "text"}, {"text", content}});
  for (const ToolCallOut& c : calls) {
    std::optional<ojson> input = arguments_object(c.arguments);
    blocks.push_back(
        ojson{{"type", "tool_use"}, {"id", c.id}, {"name", c.name}, {"input", input ? *input : ojson::object()}});
    if (!input && !c.arguments.empty()) blocks.push_back(ojson{{"type", "text"}, {"text", c.arguments}});
  }
  return ojson{{"id", meta.id},
               {"type", "message"},
               {"role", "assistant"},
               {"model", meta.model},
               {"content", std::move(blocks)},
               {"stop_reason", messages_stop_reason(end, !calls.empty())},
               {"stop_sequence", stop_sequence_json(end)},
               {"usage", messages_usage(end, true)}};
}

// ---- streaming ---------------------------------------------------------------------------------------------

MessagesStream::MessagesStream(ResponseMeta meta, int64_t input_tokens)
    : meta_(std::move(meta)), input_tokens_(input_tokens) {}

std::string MessagesStream::event(const char* name, const ojson& data) {
  return fmt::format("event: {}\ndata: {}\n\n", name, dump_ordered(data));
}

std::string MessagesStream::start() {
  if (started_ || ended_) return "";
  started_ = true;
  const ojson message = {{"id", meta_.id},
                         {"type", "message"},
                         {"role", "assistant"},
                         {"model", meta_.model},
                         {"content", ojson::array()},
                         {"stop_reason", nullptr},
                         {"stop_sequence", nullptr},
                         {"usage", {{"input_tokens", input_tokens_}, {"output_tokens", 0}}}};
  return event("message_start", ojson{{"type", "message_start"}, {"message", message}}) +
         event("ping", ojson{{"type", "ping"}});
}

std::string MessagesStream::open(Block kind, ojson content_block) {
  std::string out = close();
  open_ = kind;
  ++index_;
  return out +
         event("content_block_start",
               ojson{{"type", "content_block_start"}, {"index", index_}, {"content_block", std::move(content_block)}});
}

std::string MessagesStream::close() {
  if (open_ == Block::kNone) return "";
  std::string out;
  if (open_ == Block::kThinking)
    out += event("content_block_delta", ojson{{"type", "content_block_delta"},
                                              {"index", index_},
                                              {"delta", {{"type", "signature_delta"}, {"signature", ""}}}});
  out += event("content_block_stop", ojson{{"type", "content_block_stop"}, {"index", index_}});
  open_ = Block::kNone;
  open_call_ = -1;
  return out;
}

std::string MessagesStream::feed(const OutputDelta& d) {
  if (ended_) return "";
  std::string out = start();
  auto delta = [&](int index, ojson body) {
    out += event("content_block_delta",
                 ojson{{"type", "content_block_delta"}, {"index", index}, {"delta", std::move(body)}});
  };
  if (!d.reasoning.empty()) {
    if (open_ != Block::kThinking)
      out += open(Block::kThinking, ojson{{"type", "thinking"}, {"thinking", ""}, {"signature", ""}});
    delta(index_, ojson{{"type", "thinking_delta"}, {"thinking", d.reasoning}});
  }
  if (!d.content.empty()) {
    if (open_ != Block::kText) out += open(Block::kText, ojson{{"type", "text"}, {"text", ""}});
    delta(index_, ojson{{"type", "text_delta"}, {"text", d.content}});
  }
  for (const ToolCallDelta& c : d.tool_calls) {
    auto it = call_blocks_.find(c.index);
    if (it == call_blocks_.end()) {  // a new call: its first piece carries id and name
      out += open(Block::kToolUse,
                  ojson{{"type", "tool_use"}, {"id", c.id}, {"name", c.name}, {"input", ojson::object()}});
      open_call_ = c.index;
      it = call_blocks_.emplace(c.index, index_).first;
    }
    // A piece for a call whose block was closed (the parser never interleaves calls) still goes to that
    // call's block: the SDK accumulates deltas by block index.
    if (!c.arguments.empty()) delta(it->second, ojson{{"type", "input_json_delta"}, {"partial_json", c.arguments}});
  }
  return out;
}

std::string MessagesStream::finish(const MessagesEnd& end) {
  if (ended_) return "";
  std::string out = start();
  out += close();
  ended_ = true;
  out += event("message_delta", ojson{{"type", "message_delta"},
                                      {"delta",
                                       {{"stop_reason", messages_stop_reason(end, !call_blocks_.empty())},
                                        {"stop_sequence", stop_sequence_json(end)}}},
                                      {"usage", messages_usage(end, false)}});
  out += event("message_stop", ojson{{"type", "message_stop"}});
  return out;
}

std::string MessagesStream::error(const ApiError& e) {
  if (ended_) return "";
  ended_ = true;
  return event("error", anthropic_error_json(e));
}

}  // namespace dsv3::server
