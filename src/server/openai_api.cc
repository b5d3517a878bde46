#include "server/openai_api.h"

#include <atomic>
#include <cctype>
#include <chrono>
#include <cmath>
#include <limits>
#include <random>

#include "core/error.h"
#include "io/utf8.h"
#include "server/chat_family.h"

namespace dsv3::server {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

ApiError::ApiError(int status_, std::string message, std::string type_, std::optional<std::string> param_,
                   std::optional<std::string> code_)
    : std::runtime_error(std::move(message)),
      status(status_),
      type(std::move(type_)),
      param(std::move(param_)),
      code(std::move(code_)) {}

json ApiError::to_json() const {
  return json{{"error",
               {{"message", what()},
                {"type", type},
                {"param", param ? json(*param) : json(nullptr)},
                {"code", code ? json(*code) : json(nullptr)}}}};
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

template <typename J>
J parse_json_body(std::string_view text, int max_depth) {
  // nlohmann's parser keeps its own stack on the heap, but copying, dumping and destroying a value recurse
  // once per level: a body nested 100,000 deep would overflow the thread's stack there. The callback sees
  // each container open with its depth (0: the top level); past the limit the value is discarded at once,
  // so nothing deeper than the limit is ever built, and the request is refused.
  bool too_deep = false;
  typename J::parser_callback_t limit = [&](int depth, typename J::parse_event_t event, J&) {
    if ((event == J::parse_event_t::object_start || event == J::parse_event_t::array_start) && depth >= max_depth)
      too_deep = true;
    return !too_deep;
  };
  J body = J::parse(text.begin(), text.end(), limit, /*allow_exceptions=*/false);
  if (too_deep)
    throw ApiError(400, fmt::format("The request body is nested deeper than {} levels.", max_depth),
                   "invalid_request_error", std::nullopt, "json_too_deep");
  if (body.is_discarded())
    throw ApiError(400, "We could not parse the JSON body of your request: it is not valid JSON.",
                   "invalid_request_error", std::nullopt, "invalid_json");
  return body;
}
template json parse_json_body<json>(std::string_view, int);
template ojson parse_json_body<ojson>(std::string_view, int);

namespace {

uint64_t random_u64() {
  static std::atomic<uint64_t> counter{0};
  thread_local std::mt19937_64 gen(std::random_device{}() ^
                                   uint64_t(std::chrono::steady_clock::now().time_since_epoch().count()) ^
                                   (counter.fetch_add(1) * 0x9e3779b97f4a7c15ull));
  return gen();
}

[[noreturn]] void bad(const std::string& param, const std::string& message) {
  throw ApiError(400, message, "invalid_request_error", param);
}

// Typed accessors: absent or null → nullopt; a present value of the wrong type → 400 naming the field.
std::optional<double> get_number(const json& j, const char* key, double lo, double hi) {
  if (!j.contains(key) || j[key].is_null()) return std::nullopt;
  const json& v = j[key];
  if (!v.is_number()) bad(key, fmt::format("'{}' must be a number", key));
  const double x = v.get<double>();
  if (!std::isfinite(x) || x < lo || x > hi)
    bad(key, fmt::format("'{}' must be between {} and {}, got {}", key, lo, hi, x));
  return x;
}

std::optional<int64_t> get_int(const json& j, const char* key, int64_t lo, int64_t hi) {
  if (!j.contains(key) || j[key].is_null()) return std::nullopt;
  const json& v = j[key];
  int64_t x = 0;
  if (v.is_number_integer()) {
    if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))
      bad(key, fmt::format("'{}' is out of range", key));
    x = v.get<int64_t>();
  } else if (v.is_number_float() && std::isfinite(v.get<double>()) && v.get<double>() == std::floor(v.get<double>()) &&
             std::fabs(v.get<double>()) < 9e15) {
    x = int64_t(v.get<double>());
  } else {
    bad(key, fmt::format("'{}' must be an integer", key));
  }
  if (x < lo || x > hi) bad(key, fmt::format("'{}' must be between {} and {}, got {}", key, lo, hi, x));
  return x;
}

std::optional<bool> get_bool(const json& j, const char* key) {
  if (!j.contains(key) || j[key].is_null()) return std::nullopt;
  if (!j[key].is_boolean()) bad(key, fmt::format("'{}' must be a boolean", key));
  return j[key].get<bool>();
}

std::vector<int32_t> token_array(const json& a, const ApiContext& ctx, const char* param) {
  std::vector<int32_t> ids;
  for (const json& v : a) {
    if (!v.is_number_integer()) bad(param, "a token-id prompt must hold integers only");
    const int64_t id = v.get<int64_t>();
    if (id < 0 || id >= ctx.vocab_size)
      bad(param, fmt::format("token id {} is outside the vocabulary [0, {})", id, ctx.vocab_size));
    ids.push_back(int32_t(id));
  }
  return ids;
}

const io::Tokenizer& need_tokenizer(const ApiContext& ctx, const char* param) {
  if (!ctx.tokenizer) bad(param, "this model has no tokenizer.json; give the prompt as token ids");
  return *ctx.tokenizer;
}

// Refuses, before tokenizing, a text whose byte length alone proves it cannot fit: no token covers more
// than ctx.max_token_bytes bytes, so a text of more than max_token_bytes * (context - 1) bytes has at
// least context tokens.
void check_bytes(const ApiContext& ctx, size_t bytes, const char* param) {
  if (ctx.max_token_bytes <= 0 || ctx.context < 2) return;
  const uint64_t most = uint64_t(ctx.max_token_bytes) * uint64_t(ctx.context - 1);
  if (uint64_t(bytes) > most)
    throw ApiError(400,
                   fmt::format("This model's maximum context length is {} tokens. However, your {} is {} bytes, "
                               "which is more than {} tokens of at most {} bytes each.",
                               ctx.context, param, bytes, ctx.context - 1, ctx.max_token_bytes),
                   "invalid_request_error", param, "context_length_exceeded");
}

std::vector<int32_t> encode_text(const ApiContext& ctx, const std::string& text, bool add_bos) {
  const io::Tokenizer& tok = need_tokenizer(ctx, "prompt");
  check_bytes(ctx, text.size(), "prompt");
  std::vector<int32_t> ids;
  if (add_bos && tok.add_bos() && tok.bos_id()) ids.push_back(*tok.bos_id());
  tok.encode_into(text, ids, /*allow_special=*/true);
  return ids;
}

template <typename J>
const J* member(const J& obj, const char* key) {
  auto it = obj.find(key);
  return it == obj.end() || it->is_null() ? nullptr : &*it;
}

// One client message, validated and normalised as the chat template takes it (a JSON object): role
// "developer" becomes "system"; content a string or null (text parts joined); tool call arguments as JSON
// text (an object is serialised). Other keys (name, tool_call_id, reasoning_content, prefix, ...) pass through
// for the template to read. Every malformed field is a 400 naming it.
ojson chat_message(const ojson& m, const std::string& p) {
  if (!m.is_object()) bad(p, fmt::format("{} must be an object", p));
  const ojson* role = member(m, "role");
  if (!role || !role->is_string()) bad(p + ".role", fmt::format("{} needs a string 'role'", p));
  ojson out = m;
  std::string r = role->get<std::string>();
  if (r == "developer") r = "system";
  if (r != "system" && r != "user" && r != "assistant" && r != "tool")
    bad(p + ".role", fmt::format("unknown role '{}' (expected system, developer, user, assistant or tool)", r));
  out["role"] = r;
  if (const ojson* c = member(m, "content")) {
    if (c->is_array()) {  // content parts: text only
      std::string text;
      for (size_t k = 0; k < c->size(); ++k) {
        const ojson& part = (*c)[k];
        const std::string pp = fmt::format("{}.content[{}]", p, k);
        const ojson* type = part.is_object() ? member(part, "type") : nullptr;
        const ojson* t = part.is_object() ? member(part, "text") : nullptr;
        if (!type || !type->is_string() || *type != "text" || !t || !t->is_string())
          bad(pp,
              fmt::format("{}: only text content parts ({{\"type\": \"text\", \"text\": \"...\"}}) are supported", pp));
        text += t->get<std::string>();
      }
      out["content"] = std::move(text);
    } else if (!c->is_string()) {
      bad(p + ".content", fmt::format("{}.content must be a string, an array of text parts or null", p));
    }
  } else if (r != "assistant") {
    bad(p + ".content", fmt::format("{} ({}) needs content", p, r));
  } else {
    out["content"] = nullptr;
  }
  for (const char* key : {"name", "tool_call_id", "reasoning_content"})
    if (const ojson* v = member(m, key); v && !v->is_string())
      bad(p + "." + key, fmt::format("{}.{} must be a string", p, key));
  if (const ojson* calls = member(m, "tool_calls")) {
    const std::string pc = p + ".tool_calls";
    if (r != "assistant") bad(pc, fmt::format("{}: only assistant messages carry tool calls", pc));
    if (!calls->is_array()) bad(pc, fmt::format("{} must be an array", pc));
    ojson norm = ojson::array();
    for (size_t k = 0; k < calls->size(); ++k) {
      const ojson& t = (*calls)[k];
      const std::string pt = fmt::format("{}[{}]", pc, k);
      if (!t.is_object()) bad(pt, fmt::format("{} must be an object", pt));
      ojson tc = t;
      if (const ojson* type = member(t, "type")) {
        if (!type->is_string()) bad(pt + ".type", fmt::format("{}.type must be a string", pt));
      } else {
        tc["type"] = "function";
      }
      if (const ojson* id = member(t, "id"); id && !id->is_string())
        bad(pt + ".id", fmt::format("{}.id must be a string", pt));
      const ojson* f = member(t, "function");
      if (!f || !f->is_object()) bad(pt + ".function", fmt::format("{} needs a 'function' object", pt));
      const ojson* name = member(*f, "name");
      if (!name || !name->is_string()) bad(pt + ".function.name", fmt::format("{}.function needs a string 'name'", pt));
      if (const ojson* args = member(*f, "arguments")) {
        if (!args->is_string() && !args->is_object())
          bad(pt + ".function.arguments",
              fmt::format("{}.function.arguments must be a string (JSON text) or an object", pt));
        if (args->is_object())
          tc["function"]["arguments"] =
              args->dump(-1, ' ', false, ojson::error_handler_t::replace);  // depth-limited at parse
      } else {
        tc["function"]["arguments"] = "{}";
      }
      norm.push_back(std::move(tc));
    }
    out["tool_calls"] = std::move(norm);
  } else {
    out.erase("tool_calls");  // null: as if absent (R1's template tests for the key)
  }
  return out;
}

// `tools`: [{"type": "function", "function": {"name", "description"?, "parameters"?, "strict"?}}].
ojson chat_tools(const ojson& body) {
  const ojson* tools = member(body, "tools");
  if (!tools) return ojson(nullptr);
  if (!tools->is_array()) bad("tools", "'tools' must be an array");
  if (tools->size() > 512) bad("tools", "'tools' holds at most 512 functions");
  for (size_t i = 0; i < tools->size(); ++i) {
    const ojson& t = (*tools)[i];
    const std::string p = fmt::format("tools[{}]", i);
    if (!t.is_object()) bad(p, fmt::format("{} must be an object", p));
    const ojson* type = member(t, "type");
    if (!type || *type != "function") bad(p + ".type", fmt::format("{}.type must be \"function\"", p));
    const ojson* f = member(t, "function");
    if (!f || !f->is_object()) bad(p + ".function", fmt::format("{} needs a 'function' object", p));
    const ojson* name = member(*f, "name");
    if (!name || !name->is_string() || name->get<std::string>().empty() || name->get<std::string>().size() > 64)
      bad(p + ".function.name", fmt::format("{}.function.name must be a string of 1 to 64 characters", p));
    for (char c : name->get<std::string>())
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.')
        bad(p + ".function.name", fmt::format("{}.function.name '{}' may hold only letters, digits, '_', '-' and '.'",
                                              p, name->get<std::string>()));
    if (const ojson* d = member(*f, "description"); d && !d->is_string())
      bad(p + ".function.description", fmt::format("{}.function.description must be a string", p));
    if (const ojson* ps = member(*f, "parameters"); ps && !ps->is_object())
      bad(p + ".function.parameters", fmt::format("{}.function.parameters must be a JSON Schema object", p));
  }
  return *tools;
}

void chat_tool_choice(const ojson& body, ApiRequest& r) {
  const ojson* tc = member(body, "tool_choice");
  const bool has_tools = r.tools.is_array() && !r.tools.empty();
  r.tool_choice = has_tools ? "auto" : "none";
  if (tc) {
    if (tc->is_string()) {
      const std::string v = tc->get<std::string>();
      if (v != "none" && v != "auto" && v != "required")
        bad("tool_choice", fmt::format("'tool_choice' must be none, auto, required or a function, got '{}'", v));
      if (v != "none" && !has_tools) bad("tool_choice", fmt::format("tool_choice '{}' needs 'tools'", v));
      r.tool_choice = v;
    } else if (tc->is_object()) {
      const ojson* f = member(*tc, "function");
      const ojson* name = f && f->is_object() ? member(*f, "name") : nullptr;
      if (!name || !name->is_string())
        bad("tool_choice", "'tool_choice' as an object must be {\"type\": \"function\", \"function\": {\"name\"}}");
      bool found = false;
      if (has_tools)
        for (const ojson& t : r.tools) found = found || t["function"]["name"] == *name;
      if (!found)
        bad("tool_choice.function.name",
            fmt::format("tool_choice names '{}', which is not in 'tools'", name->get<std::string>()));
      r.tool_choice = "function";
      r.tool_choice_name = name->get<std::string>();
    } else {
      bad("tool_choice", "'tool_choice' must be a string or an object");
    }
  }
  if (const ojson* p = member(body, "parallel_tool_calls")) {
    if (!p->is_boolean()) bad("parallel_tool_calls", "'parallel_tool_calls' must be a boolean");
    r.parallel_tool_calls = p->get<bool>();
  }
}

std::string render_chat(const ApiContext& ctx, const io::ChatPromptInput& in) {
  try {
    return ctx.chat_prompt->render(in);
  } catch (const Error& e) {
    bad("messages", fmt::format("the chat template could not render these messages: {}", e.what()));
  }
}

// User and tool text is client data: unless ctx.parse_special_in_user_text, a special token typed into it
// (<｜Assistant｜>, <｜tool▁calls▁begin｜>, ...) is encoded as plain text. The template is rendered with a
// marker in place of each such content; the text between markers (the template's own, specials included)
// is encoded with specials, each content without. Every marker sits between special tokens of the
// template, so for text without specials the ids equal those of encoding the whole rendering.
std::vector<int32_t> encode_chat(const ApiContext& ctx, io::ChatPromptInput in, std::string* rendered) {
  const io::Tokenizer& tok = need_tokenizer(ctx, "messages");
  if (ctx.parse_special_in_user_text) {
    *rendered = render_chat(ctx, in);
    check_bytes(ctx, rendered->size(), "messages");
    return tok.encode(*rendered, /*allow_special=*/true);  // the rendered text starts with the BOS text
  }
  const std::string marker = fmt::format("\x1f{:016x}\x1f", random_u64());
  std::vector<std::string> client;
  size_t bytes = 0;
  for (ojson& m : in.messages) {
    const std::string& role = m["role"].get_ref<const std::string&>();
    if (!m["content"].is_string()) continue;
    std::string& c = m["content"].get_ref<std::string&>();
    if (role != "assistant") bytes += c.size();  // rendered verbatim
    if (role == "user" || role == "tool") {
      if (c.find(marker) != std::string::npos) bad("messages", "message text holds the server's marker");
      client.push_back(std::move(c));
      c = marker;
    }
  }
  check_bytes(ctx, bytes, "messages");
  const std::string text = render_chat(ctx, in);
  std::vector<int32_t> ids;
  size_t at = 0;
  rendered->clear();
  for (const std::string& c : client) {
    const size_t k = text.find(marker, at);
    if (k == std::string::npos)
      bad("messages",
          "the chat template dropped or altered a user or tool message's text, so it cannot be kept apart from "
          "the template's special tokens (start the server with --parse-special-in-user-text to render it as HF "
          "does)");
    tok.encode_into(std::string_view(text).substr(at, k - at), ids, /*allow_special=*/true);
    tok.encode_into(c, ids, /*allow_special=*/false);
    rendered->append(text, at, k - at);
    rendered->append(c);
    at = k + marker.size();
  }
  if (text.find(marker, at) != std::string::npos) bad("messages", "the chat template repeated a message's text");
  tok.encode_into(std::string_view(text).substr(at), ids, /*allow_special=*/true);
  rendered->append(text, at, std::string::npos);
  return ids;
}

std::vector<int32_t> chat_prompt(const ojson& body, const ApiContext& ctx, ApiRequest& r) {
  if (!ctx.chat_prompt) bad("messages", "this server has no chat template");
  const ojson* msgs = member(body, "messages");
  if (!msgs) bad("messages", "'messages' is a required property");
  if (!msgs->is_array()) bad("messages", "'messages' must be an array");
  if (msgs->empty()) bad("messages", "'messages' must hold at least one message");
  io::ChatPromptInput in;
  for (size_t i = 0; i < msgs->size(); ++i)
    in.messages.push_back(chat_message((*msgs)[i], fmt::format("messages[{}]", i)));
  r.tools = chat_tools(body);
  chat_tool_choice(body, r);
  in.tools = r.tool_choice == "none" ? ojson(nullptr) : r.tools;  // "none": the model is not shown the tools
  in.kwargs = ctx.default_kwargs.is_object() ? ctx.default_kwargs : ojson::object();
  if (const ojson* kw = member(body, "chat_template_kwargs")) {
    if (!kw->is_object()) bad("chat_template_kwargs", "'chat_template_kwargs' must be an object");
    for (const auto& [k, v] : kw->items()) {
      if (k == "messages" || k == "tools" || k == "add_generation_prompt" || k == "documents")
        bad("chat_template_kwargs." + k, fmt::format("chat_template_kwargs may not set '{}'", k));
      in.kwargs[k] = v;
    }
  }
  r.chat_template_kwargs = in.kwargs;
  std::string rendered;
  std::vector<int32_t> ids = encode_chat(ctx, std::move(in), &rendered);
  r.prompt_opens_reasoning = prompt_opens_reasoning(rendered);
  r.prompt_text = std::move(rendered);
  return ids;
}

std::vector<int32_t> completion_prompt(const json& body, const ApiContext& ctx) {
  const json* p = member(body, "prompt");
  if (!p) bad("prompt", "'prompt' is a required property");
  if (p->is_array() && !p->empty() && ((*p)[0].is_string() || (*p)[0].is_array())) {
    if (p->size() != 1) bad("prompt", "batched prompts are not supported: send one prompt per request");
    p = &(*p)[0];
  }
  if (p->is_string()) return encode_text(ctx, p->get<std::string>(), /*add_bos=*/true);
  if (p->is_array()) {
    if (p->empty()) bad("prompt", "'prompt' is empty");
    return token_array(*p, ctx, "prompt");
  }
  bad("prompt", "'prompt' must be a string, an array of token ids, or a one-element array of either");
}

// response_format: {"type": "text" | "json_object" | "json_schema", "json_schema": {"name", "schema",
// "strict", "description"}}. The schema itself is compiled later (structured_output.h), which names its
// unsupported keywords.
void response_format(const ojson& body, ApiRequest& r) {
  const ojson* rf = member(body, "response_format");
  if (!rf) return;
  if (!rf->is_object()) bad("response_format", "'response_format' must be an object");
  const ojson* type = member(*rf, "type");
  if (!type || !type->is_string())
    bad("response_format.type", "'response_format.type' must be \"text\", \"json_object\" or \"json_schema\"");
  const std::string t = type->get<std::string>();
  if (t == "text") return;
  if (t == "json_object") {
    r.response_format = ResponseFormat::kJsonObject;
    return;
  }
  if (t != "json_schema")
    bad("response_format.type",
        fmt::format("'response_format.type' must be \"text\", \"json_object\" or \"json_schema\", got '{}'", t));
  const ojson* js = member(*rf, "json_schema");
  if (!js || !js->is_object())
    bad("response_format.json_schema", "response_format of type json_schema needs a 'json_schema' object");
  const ojson* name = member(*js, "name");
  if (!name || !name->is_string() || name->get<std::string>().empty() || name->get<std::string>().size() > 64)
    bad("response_format.json_schema.name",
        "'response_format.json_schema.name' must be a string of 1 to 64 characters");
  for (char c : name->get<std::string>())
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-')
      bad("response_format.json_schema.name",
          "'response_format.json_schema.name' may hold only letters, digits, '_' and '-'");
  if (const ojson* st = member(*js, "strict"); st && !st->is_boolean())
    bad("response_format.json_schema.strict", "'response_format.json_schema.strict' must be a boolean");
  if (const ojson* d = member(*js, "description"); d && !d->is_string())
    bad("response_format.json_schema.description", "'response_format.json_schema.description' must be a string");
  const ojson* schema = member(*js, "schema");
  if (!schema) {
    r.json_schema = ojson::object();  // OpenAI: no schema, any JSON object
    r.response_format = ResponseFormat::kJsonObject;
  } else {
    if (!schema->is_object() && !schema->is_boolean())
      bad("response_format.json_schema.schema", "'response_format.json_schema.schema' must be a JSON Schema object");
    r.json_schema = *schema;
    r.response_format = ResponseFormat::kJsonSchema;
  }
  r.json_schema_name = name->get<std::string>();
}

}  // namespace

ApiRequest parse_request(Endpoint endpoint, std::string_view body_text, const ApiContext& ctx) {
  const json body = parse_json_body(body_text);
  if (!body.is_object()) throw ApiError(400, "The request body must be a JSON object.");
  ApiRequest r;
  r.endpoint = endpoint;
  const bool chat = endpoint == Endpoint::Chat;
  if (body.contains("model") && !body["model"].is_null()) {
    if (!body["model"].is_string()) bad("model", "'model' must be a string");
    r.model = body["model"].get<std::string>();
  }
  if (auto n = get_int(body, "n", 1, 128); n && *n != 1)
    bad("n", "n > 1 is not supported: send one request per completion");
  if (auto s = get_bool(body, "stream")) r.stream = *s;
  if (body.contains("stream_options") && !body["stream_options"].is_null()) {
    const json& so = body["stream_options"];
    if (!so.is_object()) bad("stream_options", "'stream_options' must be an object");
    if (!r.stream) bad("stream_options", "'stream_options' is only allowed when 'stream' is true");
    if (auto u = get_bool(so, "include_usage")) r.include_usage = *u;
  }

  runtime::SamplingParams& sp = r.sampling;
  if (auto t = get_number(body, "temperature", 0, 2)) sp.temperature = *t;
  if (auto p = get_number(body, "top_p", 0, 1)) {
    sp.top_p = *p;
    if (sp.top_p == 0) sp.top_k = 1;  // all mass on the most probable token
    if (sp.top_p == 0) sp.top_p = 1;
  }
  if (auto f = get_number(body, "frequency_penalty", -2, 2)) sp.frequency_penalty = *f;
  if (auto p = get_number(body, "presence_penalty", -2, 2)) sp.presence_penalty = *p;
  if (auto k = get_int(body, "top_k", 0, std::numeric_limits<int32_t>::max()); k && *k > 0) sp.top_k = *k;
  if (auto m = get_number(body, "min_p", 0, 1)) sp.min_p = *m;
  if (auto rp = get_number(body, "repetition_penalty", 1e-6, 1e6)) sp.repetition_penalty = *rp;
  if (auto s = get_int(body, "seed", std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()))
    sp.seed = uint64_t(*s);
  else
    sp.seed = random_u64();
  if (auto ie = get_bool(body, "ignore_eos")) r.ignore_eos = *ie;

  if (body.contains("stop") && !body["stop"].is_null()) {
    const json& st = body["stop"];
    if (st.is_string()) {
      r.stop.push_back(st.get<std::string>());
    } else if (st.is_array()) {
      if (st.size() > kMaxStop) bad("stop", fmt::format("'stop' holds at most {} sequences", kMaxStop));
      for (const json& s : st) {
        if (!s.is_string()) bad("stop", "'stop' must be a string or an array of strings");
        r.stop.push_back(s.get<std::string>());
      }
    } else {
      bad("stop", "'stop' must be a string or an array of strings");
    }
    for (const std::string& s : r.stop)
      if (s.empty()) bad("stop", "stop sequences must not be empty");
    if (!ctx.tokenizer && !r.stop.empty()) bad("stop", "stop sequences need a model with a tokenizer");
  }

  if (chat) {
    if (auto lp = get_bool(body, "logprobs")) r.logprobs = *lp;
    if (auto tl = get_int(body, "top_logprobs", 0, 20)) {
      if (!r.logprobs) bad("top_logprobs", "'top_logprobs' needs 'logprobs': true");
      r.top_logprobs = *tl;
    }
  } else {
    if (auto lp = get_int(body, "logprobs", 0, 20)) {
      r.logprobs = true;
      r.top_logprobs = *lp;
    }
    if (auto echo = get_bool(body, "echo"); echo && *echo) bad("echo", "'echo' is not supported");
    if (body.contains("suffix") && !body["suffix"].is_null()) bad("suffix", "'suffix' is not supported");
    if (auto bo = get_int(body, "best_of", 1, 128); bo && *bo != 1) bad("best_of", "best_of > 1 is not supported");
  }
  if (r.logprobs) sp.logprobs = r.top_logprobs;
  if (member(body, "response_format")) response_format(parse_json_body<ojson>(body_text), r);

  r.prompt = chat ? chat_prompt(parse_json_body<ojson>(body_text), ctx, r) : completion_prompt(body, ctx);
  const int64_t n = int64_t(r.prompt.size());
  const char* prompt_param = chat ? "messages" : "prompt";
  if (n + 1 > ctx.context)
    throw ApiError(400,
                   fmt::format("This model's maximum context length is {} tokens. However, your {} resulted in {} "
                               "tokens, which leaves no room for a completion.",
                               ctx.context, chat ? "messages" : "prompt", n),
                   "invalid_request_error", prompt_param, "context_length_exceeded");
  std::optional<int64_t> max = get_int(body, "max_tokens", 1, std::numeric_limits<int32_t>::max());
  if (chat)
    if (auto m = get_int(body, "max_completion_tokens", 1, std::numeric_limits<int32_t>::max())) max = m;
  if (max && n + *max > ctx.context)
    throw ApiError(400,
                   fmt::format("This model's maximum context length is {} tokens. However, you requested {} tokens "
                               "({} in the {}, {} in the completion). Please reduce the length of the {} or "
                               "completion.",
                               ctx.context, n + *max, n, prompt_param, *max, prompt_param),
                   "invalid_request_error", "max_tokens", "context_length_exceeded");
  r.max_tokens = max ? *max : ctx.context - n;
  try {
    sp.validate();
  } catch (const Error& e) {
    bad("sampling", e.what());
  }
  return r;
}

// ---- responses ---------------------------------------------------------------------------------------------

namespace {
std::string token_text(const io::Tokenizer* tok, int32_t id) {
  if (!tok || !tok->is_valid_id(id)) return fmt::format("<{}>", id);
  return io::utf8::repair(tok->token_bytes(id));
}
json token_bytes(const io::Tokenizer* tok, int32_t id) {
  json b = json::array();
  if (tok && tok->is_valid_id(id))
    for (unsigned char c : tok->token_bytes(id)) b.push_back(int(c));
  return b;
}
}  // namespace

json chat_logprobs_json(const io::Tokenizer* tok, const std::vector<runtime::TokenLogprobs>& lps) {
  json content = json::array();
  for (const auto& lp : lps) {
    json top = json::array();
    for (const auto& t : lp.top)
      top.push_back({{"token", token_text(tok, t.id)}, {"logprob", t.logprob}, {"bytes", token_bytes(tok, t.id)}});
    content.push_back({{"token", token_text(tok, lp.chosen.id)},
                       {"logprob", lp.chosen.logprob},
                       {"bytes", token_bytes(tok, lp.chosen.id)},
                       {"top_logprobs", top}});
  }
  return json{{"content", content}};
}

json completion_logprobs_json(const io::Tokenizer* tok, const std::vector<runtime::TokenLogprobs>& lps,
                              int64_t text_offset) {
  json tokens = json::array(), token_logprobs = json::array(), top = json::array(), offsets = json::array();
  for (const auto& lp : lps) {
    const std::string t = token_text(tok, lp.chosen.id);
    tokens.push_back(t);
    token_logprobs.push_back(lp.chosen.logprob);
    json alt = json::object();
    for (const auto& a : lp.top) alt[token_text(tok, a.id)] = a.logprob;
    top.push_back(alt);
    offsets.push_back(text_offset);
    text_offset += int64_t(t.size());
  }
  return json{{"tokens", tokens}, {"token_logprobs", token_logprobs}, {"top_logprobs", top}, {"text_offset", offsets}};
}

json usage_json(int64_t prompt_tokens, int64_t completion_tokens, int64_t cached_tokens) {
  return json{{"prompt_tokens", prompt_tokens},
              {"completion_tokens", completion_tokens},
              {"total_tokens", prompt_tokens + completion_tokens},
              {"prompt_tokens_details", {{"cached_tokens", cached_tokens}}}};
}

json chat_message_json(const std::string& reasoning, const std::string& content,
                       const std::vector<ToolCallOut>& calls) {
  json m = {{"role", "assistant"}, {"content", content.empty() && !calls.empty() ? json(nullptr) : json(content)}};
  if (!reasoning.empty()) m["reasoning_content"] = reasoning;
  if (!calls.empty()) {
    json tc = json::array();
    for (const ToolCallOut& c : calls)
      tc.push_back({{"id", c.id}, {"type", "function"}, {"function", {{"name", c.name}, {"arguments", c.arguments}}}});
    m["tool_calls"] = std::move(tc);
  }
  return m;
}

json chat_delta_json(const OutputDelta& d) {
  json j = json::object();
  if (!d.reasoning.empty()) j["reasoning_content"] = d.reasoning;
  if (!d.content.empty()) j["content"] = d.content;
  if (!d.tool_calls.empty()) {
    json tc = json::array();
    for (const ToolCallDelta& c : d.tool_calls) {
      json f = {{"arguments", c.arguments}};
      json e = {{"index", c.index}};
      if (!c.id.empty()) {
        e["id"] = c.id;
        e["type"] = "function";
        f["name"] = c.name;
      }
      e["function"] = std::move(f);
      tc.push_back(std::move(e));
    }
    j["tool_calls"] = std::move(tc);
  }
  return j;
}

const char* finish_reason_json(runtime::FinishReason r) {
  return r == runtime::FinishReason::Length ? "length" : "stop";
}

std::string make_id(const char* prefix) {
  return fmt::format("{}{:016x}{:08x}", prefix, random_u64(), uint32_t(random_u64()));
}

}  // namespace dsv3::server
