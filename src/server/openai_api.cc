#include "server/openai_api.h"

#include <atomic>
#include <chrono>
#include <cmath>
#include <limits>
#include <random>

#include "core/error.h"
#include "io/utf8.h"

namespace dsv3::server {

using json = nlohmann::json;

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

json parse_json_body(std::string_view text, int max_depth) {
  // nlohmann's parser keeps its own stack on the heap, but copying, dumping and destroying a value recurse
  // once per level: a body nested 100,000 deep would overflow the thread's stack there. The callback sees
  // each container open with its depth (0: the top level); past the limit the value is discarded at once,
  // so nothing deeper than the limit is ever built, and the request is refused.
  bool too_deep = false;
  json::parser_callback_t limit = [&](int depth, json::parse_event_t event, json&) {
    if ((event == json::parse_event_t::object_start || event == json::parse_event_t::array_start) && depth >= max_depth)
      too_deep = true;
    return !too_deep;
  };
  json body = json::parse(text.begin(), text.end(), limit, /*allow_exceptions=*/false);
  if (too_deep)
    throw ApiError(400, fmt::format("The request body is nested deeper than {} levels.", max_depth),
                   "invalid_request_error", std::nullopt, "json_too_deep");
  if (body.is_discarded())
    throw ApiError(400, "We could not parse the JSON body of your request: it is not valid JSON.",
                   "invalid_request_error", std::nullopt, "invalid_json");
  return body;
}

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

const json* member(const json& obj, const char* key) {
  auto it = obj.find(key);
  return it == obj.end() || it->is_null() ? nullptr : &*it;
}

// One client message as the chat template takes it; every malformed field is a 400 naming it.
io::ChatMessage chat_message(const json& m, const std::string& p) {
  if (!m.is_object()) bad(p, fmt::format("{} must be an object", p));
  const json* role = member(m, "role");
  if (!role || !role->is_string()) bad(p + ".role", fmt::format("{} needs a string 'role'", p));
  io::ChatMessage cm;
  cm.role = role->get<std::string>();
  if (cm.role == "developer") cm.role = "system";
  if (cm.role != "system" && cm.role != "user" && cm.role != "assistant" && cm.role != "tool")
    bad(p + ".role", fmt::format("unknown role '{}' (expected system, developer, user, assistant or tool)", cm.role));
  if (const json* c = member(m, "content")) {
    if (c->is_array()) {  // content parts: text only
      std::string text;
      for (size_t k = 0; k < c->size(); ++k) {
        const json& part = (*c)[k];
        const std::string pp = fmt::format("{}.content[{}]", p, k);
        const json* type = part.is_object() ? member(part, "type") : nullptr;
        const json* t = part.is_object() ? member(part, "text") : nullptr;
        if (!type || !type->is_string() || *type != "text" || !t || !t->is_string())
          bad(pp,
              fmt::format("{}: only text content parts ({{\"type\": \"text\", \"text\": \"...\"}}) are supported", pp));
        text += t->get<std::string>();
      }
      cm.content = std::move(text);
    } else if (c->is_string()) {
      cm.content = c->get<std::string>();
    } else {
      bad(p + ".content", fmt::format("{}.content must be a string, an array of text parts or null", p));
    }
  } else if (cm.role != "assistant") {
    bad(p + ".content", fmt::format("{} ({}) needs content", p, cm.role));
  }
  if (const json* calls = member(m, "tool_calls")) {
    const std::string pc = p + ".tool_calls";
    if (cm.role != "assistant") bad(pc, fmt::format("{}: only assistant messages carry tool calls", pc));
    if (!calls->is_array()) bad(pc, fmt::format("{} must be an array", pc));
    cm.tool_calls.emplace();
    for (size_t k = 0; k < calls->size(); ++k) {
      const json& t = (*calls)[k];
      const std::string pt = fmt::format("{}[{}]", pc, k);
      if (!t.is_object()) bad(pt, fmt::format("{} must be an object", pt));
      io::ToolCall tc;
      if (const json* type = member(t, "type")) {
        if (!type->is_string()) bad(pt + ".type", fmt::format("{}.type must be a string", pt));
        tc.type = type->get<std::string>();
      }
      const json* f = member(t, "function");
      if (!f || !f->is_object()) bad(pt + ".function", fmt::format("{} needs a 'function' object", pt));
      const json* name = member(*f, "name");
      if (!name || !name->is_string()) bad(pt + ".function.name", fmt::format("{}.function needs a string 'name'", pt));
      tc.name = name->get<std::string>();
      if (const json* args = member(*f, "arguments")) {
        if (!args->is_string() && !args->is_object())
          bad(pt + ".function.arguments",
              fmt::format("{}.function.arguments must be a string (JSON text) or an object", pt));
        tc.arguments = args->is_string() ? args->get<std::string>() : dump(*args);  // depth-limited at parse
      }
      cm.tool_calls->push_back(std::move(tc));
    }
  }
  return cm;
}

// User and tool text is client data: unless ctx.parse_special_in_user_text, a special token typed into it
// (<｜Assistant｜>, <｜tool▁calls▁begin｜>, ...) is encoded as plain text. The template is rendered with a
// marker in place of each such content; the text between markers (the template's own, specials included)
// is encoded with specials, each content without. Every marker sits between special tokens of the
// template, so for text without specials the ids equal those of encoding the whole rendering.
std::vector<int32_t> encode_chat(const ApiContext& ctx, std::vector<io::ChatMessage> msgs) {
  const io::Tokenizer& tok = need_tokenizer(ctx, "messages");
  auto render = [&](const std::vector<io::ChatMessage>& m) {
    try {
      return ctx.chat_template->render(m, /*add_generation_prompt=*/true);
    } catch (const Error& e) {
      bad("messages", e.what());
    }
  };
  if (ctx.parse_special_in_user_text) {
    const std::string text = render(msgs);
    check_bytes(ctx, text.size(), "messages");
    return tok.encode(text, /*allow_special=*/true);  // the rendered text starts with the BOS text
  }
  const std::string marker = fmt::format("\x1f{:016x}\x1f", random_u64());
  std::vector<std::string> client;
  size_t bytes = 0;
  for (io::ChatMessage& m : msgs) {
    if (m.role != "assistant" && m.content) bytes += m.content->size();  // rendered verbatim
    if ((m.role == "user" || m.role == "tool") && m.content) {
      if (m.content->find(marker) != std::string::npos) bad("messages", "message text holds the server's marker");
      client.push_back(std::move(*m.content));
      m.content = marker;
    }
  }
  check_bytes(ctx, bytes, "messages");
  const std::string text = render(msgs);
  std::vector<int32_t> ids;
  size_t at = 0;
  for (const std::string& c : client) {
    const size_t k = text.find(marker, at);
    if (k == std::string::npos) bad("messages", "the chat template dropped a message's text");
    tok.encode_into(std::string_view(text).substr(at, k - at), ids, /*allow_special=*/true);
    tok.encode_into(c, ids, /*allow_special=*/false);
    at = k + marker.size();
  }
  if (text.find(marker, at) != std::string::npos) bad("messages", "the chat template repeated a message's text");
  tok.encode_into(std::string_view(text).substr(at), ids, /*allow_special=*/true);
  return ids;
}

std::vector<int32_t> chat_prompt(const json& body, const ApiContext& ctx) {
  const json* msgs = member(body, "messages");
  if (!msgs) bad("messages", "'messages' is a required property");
  if (!msgs->is_array()) bad("messages", "'messages' must be an array");
  if (msgs->empty()) bad("messages", "'messages' must hold at least one message");
  std::vector<io::ChatMessage> norm;
  for (size_t i = 0; i < msgs->size(); ++i) norm.push_back(chat_message((*msgs)[i], fmt::format("messages[{}]", i)));
  return encode_chat(ctx, std::move(norm));
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
      if (st.size() > 4) bad("stop", "'stop' holds at most 4 sequences");
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

  r.prompt = chat ? chat_prompt(body, ctx) : completion_prompt(body, ctx);
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

json usage_json(int64_t prompt_tokens, int64_t completion_tokens) {
  return json{{"prompt_tokens", prompt_tokens},
              {"completion_tokens", completion_tokens},
              {"total_tokens", prompt_tokens + completion_tokens}};
}

const char* finish_reason_json(runtime::FinishReason r) {
  return r == runtime::FinishReason::Length ? "length" : "stop";
}

std::string make_id(const char* prefix) {
  return fmt::format("{}{:016x}{:08x}", prefix, random_u64(), uint32_t(random_u64()));
}

}  // namespace dsv3::server
