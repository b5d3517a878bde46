#include "server/http_server.h"

#include <httplib.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "core/error.h"
#include "io/chat_prompt.h"
#include "io/tokenizer.h"
#include "runtime/constraint.h"
#include "runtime/generator.h"
#include "runtime/grammar_constraint.h"
#include "runtime/model_bundle.h"
#include "runtime/scheduler.h"
#include "server/anthropic_api.h"
#include "server/chat_family.h"
#include "server/chat_output.h"
#include "server/histogram.h"
#include "server/openai_api.h"
#include "server/structured_output.h"
#include "server/web_ui.h"

namespace dsv3::server {

using json = nlohmann::json;
using runtime::Job;
using runtime::JobUpdate;

namespace {

constexpr auto kPoll = std::chrono::milliseconds(50);

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

void send_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status;
  res.set_content(dump(e.to_json()), "application/json");
}

// SIGINT / SIGTERM are taken by one thread in sigwait (run_server). Threads started before run_server blocked
// them (MPI's own, under mpirun) may still be handed one: this handler passes it on to the waiting thread.
std::atomic<bool> g_have_sigwaiter{false};
pthread_t g_sigwaiter;
void pass_signal_on(int s) {
  if (g_have_sigwaiter.load()) pthread_kill(g_sigwaiter, s);
}

// Constant-time comparison of the presented key.
bool same_key(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i % (b.empty() ? 1 : b.size())]);
  return diff == 0 && !b.empty();
}

int64_t longest_token(const io::Tokenizer* tok) {
  if (!tok || !tok->byte_level_decoder()) return 0;  // other decoders may add bytes: no bound
  size_t most = 0;
  for (int64_t id = 0; id < tok->vocab_size(); ++id)
    if (tok->is_valid_id(int32_t(id))) most = std::max(most, tok->token_bytes(int32_t(id)).size());
  return int64_t(most);
}

// Set on the threads of AdmissionQueue's overflow lane: the pre-routing handler answers 503 at once.
thread_local bool t_overflow = false;

// httplib hands each accepted connection to a TaskQueue, which serves it on one thread until it closes.
// A fixed pool lets a few slow or silent clients (slowloris) hold every thread while the rest wait in an
// unbounded queue; here a connection gets a thread of its own (idle ones are reused, new ones started up
// to `max` at once). Past `max`, connections go to an overflow lane of a few threads that read each
// request and answer 503 + Retry-After, so a flood is refused rather than queued or reset.
class AdmissionQueue : public httplib::TaskQueue {
 public:
  AdmissionQueue(size_t initial, size_t max) : max_(std::max<size_t>(max, 1)) {
    std::lock_guard lk(mu_);
    for (size_t i = 0; i < std::min(initial, max_); ++i) start_worker();
    for (int i = 0; i < kOverflowThreads; ++i)
      overflow_threads_.emplace_back([this] {
        t_overflow = true;
        run(overflow_, overflow_cv_, idle_overflow_);
      });
  }

  void enqueue(std::function<void()> fn) override {
    bool overflow = false;
    {
      std::lock_guard lk(mu_);
      if (idle_workers_ > jobs_.size() || workers_.size() < max_) {
        if (idle_workers_ <= jobs_.size()) start_worker();
        jobs_.push_back(std::move(fn));
      } else {
        overflow = true;
        overflow_.push_back(std::move(fn));
      }
    }
    (overflow ? overflow_cv_ : jobs_cv_).notify_one();
  }

  void shutdown() override {
    {
      std::lock_guard lk(mu_);
      shutdown_ = true;
    }
    jobs_cv_.notify_all();
    overflow_cv_.notify_all();
    for (auto& t : workers_) t.join();
    for (auto& t : overflow_threads_) t.join();
  }

 private:
  static constexpr int kOverflowThreads = 2;

  void start_worker() {  // mu_ held
    workers_.emplace_back([this] { run(jobs_, jobs_cv_, idle_workers_); });
  }

  // Serves `q` until shutdown; what was queued before shutdown still runs (it closes its socket).
  void run(std::deque<std::function<void()>>& q, std::condition_variable& cv, size_t& idle) {
    for (;;) {
      std::function<void()> fn;
      {
        std::unique_lock lk(mu_);
        ++idle;
        cv.wait(lk, [&] { return shutdown_ || !q.empty(); });
        --idle;
        if (q.empty()) return;
        fn = std::move(q.front());
        q.pop_front();
      }
      fn();
    }
  }

  const size_t max_;
  std::mutex mu_;
  std::condition_variable jobs_cv_, overflow_cv_;
  std::deque<std::function<void()>> jobs_, overflow_;
  std::vector<std::thread> workers_, overflow_threads_;
  size_t idle_workers_ = 0, idle_overflow_ = 0;  // threads waiting for a connection
  bool shutdown_ = false;
};

// httplib 0.11 (Debian's) listens with a backlog of 5: of a burst of connections the kernel drops (or
// resets) all but 5 waiting for accept(), and a dropped SYN is retried only after a second. listen() on a
// listening socket sets a new backlog (Linux, BSD).
class Listener : public httplib::Server {
 public:
  void set_backlog(int n) {
    if (::listen(svr_sock_, n) != 0) fail("cannot set the listen backlog to {}: {}", n, std::strerror(errno));
  }
};

class Server {
 public:
  Server(const ServerOptions& o)
      : opt_(o), bundle_(runtime::ModelBundle::load(o.model_dir, o.model_options, o.chat_template_file)) {
    namespace fs = std::filesystem;
    const ModelConfig& c = bundle_.model->config();
    prompt_ = bundle_.chat_prompt.value_or(io::ChatPrompt::builtin());
    family_ = detect_chat_family(prompt_);
    if (o.tool_call_format != "auto") family_.tools = parse_tool_call_format(o.tool_call_format);
    if (o.reasoning != "auto") family_.reasoning = o.reasoning == "on";
    nlohmann::ordered_json kwargs = nlohmann::ordered_json::object();
    if (!o.chat_template_kwargs.empty()) {
      kwargs = nlohmann::ordered_json::parse(o.chat_template_kwargs, nullptr, /*allow_exceptions=*/false);
      if (!kwargs.is_object()) fail("--chat-template-kwargs: expected a JSON object, got {}", o.chat_template_kwargs);
    }
    if (!o.script_replies_file.empty()) load_script(o.script_replies_file);
    if (o.ctx < 2) fail("--ctx must be >= 2, got {}", o.ctx);
    engine_ = std::make_unique<runtime::Engine>(*bundle_.model,
                                                runtime::EngineOptions{.spec = runtime::parse_spec_mode(o.spec),
                                                                       .draft = o.draft,
                                                                       .prefill_chunk = o.prefill_chunk,
                                                                       .max_context = o.ctx,
                                                                       .prefix_cache_bytes = o.cache_mem,
                                                                       .prefix_block = o.cache_block});
    scheduler_ = std::make_unique<runtime::Scheduler>(
        *engine_, bundle_.tokenizer ? &*bundle_.tokenizer : nullptr,
        runtime::SchedulerOptions{.parallel = o.parallel, .max_queue = o.max_queue});
    name_ = o.model_name.empty() ? fs::path(o.model_dir).lexically_normal().filename().string() : o.model_name;
    if (name_.empty()) name_ = fs::path(o.model_dir).lexically_normal().parent_path().filename().string();
    api_ctx_ = {.tokenizer = bundle_.tokenizer ? &*bundle_.tokenizer : nullptr,
                .chat_prompt = bundle_.tokenizer ? &prompt_ : nullptr,
                .default_kwargs = kwargs,
                .context = engine_->max_context(),
                .vocab_size = c.vocab_size,
                .max_token_bytes = longest_token(bundle_.tokenizer ? &*bundle_.tokenizer : nullptr),
                .parse_special_in_user_text = o.parse_special_in_user_text};
    started_ = unix_now();
    std::fprintf(stderr, "dsv3 serve: chat template: %s (%s); tool calls: %s; reasoning: %s; kwargs: %s\n",
                 prompt_.origin().c_str(), io::prompt_renderer_name(prompt_.renderer()),
                 tool_call_format_name(family_.tools), family_.reasoning ? "split" : "off", dump(kwargs).c_str());
  }

  // Shutting down: responses in flight cancel their jobs instead of running to the end.
  void begin_stop() { stopping_ = true; }

  void install(httplib::Server& svr) {
    svr.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      if (t_overflow) {
        res.set_header("Retry-After", "1");
        res.set_header("Connection", "close");
        send_error(res, ApiError(503, "The server is overloaded: too many connections. Retry later.", "server_error",
                                 std::nullopt, "server_overloaded"));
        return httplib::Server::HandlerResponse::Handled;
      }
      size_t header_bytes = 0;
      for (const auto& [k, v] : req.headers) header_bytes += k.size() + v.size() + 4;
      if (int64_t(req.headers.size()) > opt_.max_headers || int64_t(header_bytes) > opt_.max_header_bytes) {
        res.set_header("Connection", "close");
        send_error(res, ApiError(431,
                                 fmt::format("The request has {} headers ({} bytes); the limits are {} headers and "
                                             "{} bytes.",
                                             req.headers.size(), header_bytes, opt_.max_headers, opt_.max_header_bytes),
                                 "invalid_request_error", std::nullopt, "headers_too_large"));
        return httplib::Server::HandlerResponse::Handled;
      }
      if (opt_.api_key.empty() || req.path.rfind("/v1/", 0) != 0) return httplib::Server::HandlerResponse::Unhandled;
      // OpenAI clients send "Authorization: Bearer KEY", Anthropic's "x-api-key: KEY"; either is taken.
      const std::string auth = req.get_header_value("Authorization");
      const std::string xkey = req.get_header_value("x-api-key");
      const std::string prefix = "Bearer ";
      if (auth.rfind(prefix, 0) == 0 && same_key(auth.substr(prefix.size()), opt_.api_key))
        return httplib::Server::HandlerResponse::Unhandled;
      if (!xkey.empty() && same_key(xkey, opt_.api_key)) return httplib::Server::HandlerResponse::Unhandled;
      const ApiError e(401,
                       auth.empty() && xkey.empty()
                           ? "You didn't provide an API key. Provide it in the Authorization header "
                             "(Authorization: Bearer YOUR_KEY) or the x-api-key header."
                           : "Incorrect API key provided.",
                       "invalid_request_error", std::nullopt, "invalid_api_key");
      if (req.path == "/v1/messages") {
        res.status = e.status;
        res.set_content(dump(anthropic_error_json(e)), "application/json");
      } else {
        send_error(res, e);
      }
      return httplib::Server::HandlerResponse::Handled;
    });
    svr.Get("/health", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(R"({"status":"ok"})", "application/json");
    });
    svr.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
      json m = {{"id", name_}, {"object", "model"}, {"created", started_}, {"owned_by", "dsv3"}};
      res.set_content(dump(json{{"object", "list"}, {"data", json::array({m})}}), "application/json");
    });
    svr.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(metrics_text(), "text/plain; version=0.0.4");
    });
    svr.Get("/props", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(dump(props_json()), "application/json");
    });
    svr.Post("/tokenize", [this](const httplib::Request& req, httplib::Response& res,
                                 const httplib::ContentReader& read) { tokenize(req, res, read); });
    svr.Post("/detokenize", [this](const httplib::Request& req, httplib::Response& res,
                                   const httplib::ContentReader& read) { detokenize(req, res, read); });
    svr.Post("/v1/chat/completions",
             [this](const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& read) {
               complete(Endpoint::Chat, req, res, read);
             });
    svr.Post("/v1/messages",
             [this](const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& read) {
               complete(Endpoint::Chat, req, res, read, /*anthropic=*/true);
             });
    svr.Post("/v1/completions",
             [this](const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& read) {
               complete(Endpoint::Completion, req, res, read);
             });
    if (opt_.web_ui) install_web_ui(svr);  // GET / and /web/NAME
    svr.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return;
      if (res.status == 404)
        send_error(res, ApiError(404, fmt::format("Unknown request URL: {} {}.", req.method, req.path),
                                 "invalid_request_error", std::nullopt, "unknown_url"));
      else if (res.status == 413)
        send_error(res, ApiError(413, "The request body is too large.", "invalid_request_error", std::nullopt,
                                 "body_too_large"));
      else if (res.status >= 400)
        send_error(res, ApiError(res.status, fmt::format("HTTP error {}.", res.status), "invalid_request_error"));
    });
    // Every client mistake is an ApiError (400 naming the field) before it gets here: what reaches this
    // handler is a server bug, logged on stderr; the client is not shown library internals.
    svr.set_exception_handler([](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
      std::string what = "unknown exception";
      try {
        if (ep) std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        what = e.what();
      } catch (...) {
      }
      std::fprintf(stderr, "dsv3 serve: internal error on %s %s: %s\n", req.method.c_str(), req.path.c_str(),
                   what.c_str());
      send_error(res, ApiError(500, "The server had an internal error while processing your request.", "server_error"));
    });
    svr.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
      // Labels only from the routes served: a client-chosen path would be a label injection (a quote or
      // newline in it forges samples) and an unbounded series count.
      static const char* const kRoutes[] = {"/v1/chat/completions",
                                            "/v1/completions",
                                            "/v1/messages",
                                            "/v1/models",
                                            "/health",
                                            "/metrics",
                                            "/props",
                                            "/tokenize",
                                            "/detokenize"};
      const char* label = "other";
      for (const char* r : kRoutes)
        if (req.path == r) label = r;
      std::lock_guard lk(mu_);
      ++requests_[{label, res.status}];
    });
  }

 private:
  // Relays one job to the client; the same code serves streaming (SSE chunks as tokens arrive) and
  // non-streaming (one JSON body at the end) responses, both sent chunked so that a client that goes away
  // is noticed while its job runs.
  struct Relay {
    std::shared_ptr<Job> job;
    ApiRequest req;
    ResponseMeta meta;
    bool sent_role = false, finished = false;
    std::string text;                              // non-streaming: everything
    std::vector<runtime::TokenLogprobs> logprobs;  // non-streaming: everything
    int64_t text_offset = 0;                       // completions logprobs
    std::optional<OutputParser> parser;            // chat: reasoning and tool calls split from the text
    std::optional<MessagesStream> anthropic;       // /v1/messages: the event writer (also for non-streaming)
    ResponseMeta anthropic_meta;
    bool single_call = false;                                   // parallel_tool_calls false: the first call only
    std::shared_ptr<const runtime::GrammarConstraint> grammar;  // structured output: its masks' cost
    std::chrono::steady_clock::time_point received;             // when the request was read
    bool first_token = false;                                   // time to first token observed
  };

  // The parser a chat request's output goes through; null when nothing is to be split.
  std::optional<OutputParser> output_parser(const ApiRequest& r) const {
    const bool tools = r.tool_choice != "none" && family_.tools != ToolCallFormat::kNone;
    if (!tools && !family_.reasoning) return std::nullopt;
    return OutputParser({.tools = tools ? family_.tools : ToolCallFormat::kNone,
                         .reasoning = family_.reasoning,
                         .starts_in_reasoning = family_.reasoning && r.prompt_opens_reasoning});
  }

  // --script-replies: a JSON array of strings (or {"prefix": string}); the n-th chat request's output is
  // forced to reply n (mod the count), or to begin with it, by a sampling constraint (runtime/constraint.h). A testing
  // aid: tool-call and reasoning round trips against SDKs with a random model.
  void load_script(const std::string& path) {
    std::ifstream f(path);
    if (!f) fail("--script-replies {}: cannot read it", path);
    json j = json::parse(f, nullptr, /*allow_exceptions=*/false);
    if (!j.is_array() || j.empty()) fail("--script-replies {}: expected a non-empty JSON array of strings", path);
    if (!bundle_.tokenizer) fail("--script-replies needs a model with tokenizer.json");
    if (bundle_.eos_ids.empty()) fail("--script-replies needs an end-of-sequence token id (config.json eos_token_id)");
    for (const json& r : j) {
      const bool prefix = r.is_object() && r.size() == 1 && r.contains("prefix") && r["prefix"].is_string();
      if (!r.is_string() && !prefix)
        fail("--script-replies {}: every reply must be a string or {{\"prefix\": string}}", path);
      script_.push_back({bundle_.tokenizer->encode(prefix ? r["prefix"].get<std::string>() : r.get<std::string>(),
                                                   /*allow_special=*/true),
                         prefix});
    }
  }

  // The body, counted against --max-body-bytes as it arrives (a chunked body has no length to check first).
  std::string read_body(const httplib::ContentReader& read, httplib::Response& res) {
    std::string body;
    bool too_big = false;
    const bool ok = read([&](const char* data, size_t n) {
      if (int64_t(body.size() + n) > opt_.max_body_bytes) {
        too_big = true;
        return false;
      }
      body.append(data, n);
      return true;
    });
    if (ok) return body;
    res.set_header("Connection", "close");  // the rest of the body is not read
    if (too_big || res.status == 413)
      throw ApiError(413, fmt::format("The request body is larger than {} bytes.", opt_.max_body_bytes),
                     "invalid_request_error", std::nullopt, "body_too_large");
    throw ApiError(400, "The request body could not be read.", "invalid_request_error");
  }

  // anthropic: POST /v1/messages, translated to a chat request (anthropic_api.h) and answered in
  // Anthropic's shapes (errors included).
  void complete(Endpoint ep, const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& read,
                bool anthropic = false) {
    const auto received = std::chrono::steady_clock::now();
    ApiRequest r;
    std::shared_ptr<Job> job;
    std::optional<OutputParser> parser;
    std::shared_ptr<runtime::GrammarConstraint> grammar_c;
    const ScriptedText* script = nullptr;
    AnthropicRequest a;
    try {
      std::string body = read_body(read, res);
      if (ep == Endpoint::Chat && !bundle_.tokenizer)
        throw ApiError(400,
                       "this model has no tokenizer.json, so chat is unavailable; use /v1/completions with "
                       "token ids",
                       "invalid_request_error", "messages");
      if (anthropic) {
        a = parse_messages_request(body);
        body = dump_ordered(a.openai);
      }
      r = parse_request(ep, body, api_ctx_);
      runtime::GenerationRequest g;
      g.prompt = r.prompt;
      g.sampling = r.sampling;
      g.max_tokens = r.max_tokens;
      g.eos_ids = bundle_.eos_ids;
      g.emit_vocab = bundle_.emit_vocab();
      g.ignore_eos = r.ignore_eos;
      if (ep == Endpoint::Chat) {
        parser = output_parser(r);
        if (anthropic && !parser) parser.emplace(OutputParserOptions{});  // blocks are built from its pieces
        if (!script_.empty()) {
          script = &script_[script_next_++ % script_.size()];
          if (!script->prefix_only)
            g.constraint = std::make_shared<runtime::ScriptedReply>(script->tokens, bundle_.eos_ids.front());
        }
      }
      // Structured output (response_format, a forced tool call): a grammar over the output; in thinking
      // mode it starts after the reasoning block.
      if (g.constraint == nullptr)
        if (std::shared_ptr<const grammar::Grammar> gr = request_grammar(r, family_.tools)) {
          if (!bundle_.tokenizer)
            throw ApiError(400, "structured output needs a model with tokenizer.json", "invalid_request_error",
                           "response_format");
          grammar_c = std::make_shared<runtime::GrammarConstraint>(
              std::move(gr), token_vocabulary(),
              runtime::GrammarConstraintOptions{
                  .eos_ids = bundle_.eos_ids,
                  .start_after = r.prompt_opens_reasoning ? std::string("</think>") : std::string()});
          g.constraint = grammar_c;
        }
      if (script && script->prefix_only)
        g.constraint = std::make_shared<runtime::ForcedPrefix>(script->tokens, g.constraint);
      try {
        job = scheduler_->submit(std::move(g), r.stop, /*skip_special=*/!parser.has_value());
      } catch (const Error& e) {
        throw ApiError(400, e.what(), "invalid_request_error");
      }
      if (!job) {
        res.set_header("Retry-After", "1");
        throw ApiError(503, "The server is overloaded: too many requests are waiting. Retry later.", "server_error",
                       std::nullopt, "server_overloaded");
      }
    } catch (const ApiError& e) {
      if (anthropic) {
        res.status = e.status;
        res.set_content(dump(anthropic_error_json(e)), "application/json");
      } else {
        send_error(res, e);
      }
      return;
    }
    auto relay = std::make_shared<Relay>();
    relay->job = job;
    if (anthropic) {
      relay->anthropic_meta = {.id = make_id("msg_"), .model = a.model, .created = unix_now()};
      relay->anthropic.emplace(relay->anthropic_meta, job->prompt_tokens());
    }
    relay->single_call = !r.parallel_tool_calls;
    relay->grammar = std::move(grammar_c);
    relay->received = received;
    relay->req = std::move(r);
    relay->parser = std::move(parser);
    relay->meta = {.id = make_id(ep == Endpoint::Chat ? "chatcmpl-" : "cmpl-"), .model = name_, .created = unix_now()};
    const bool stream = relay->req.stream;
    auto provider = [this, relay](size_t, httplib::DataSink& sink) {
      if (relay->finished) {
        sink.done();
        return true;
      }
      if (stopping_) {
        relay->job->cancel();
        return false;
      }
      std::string out;
      if (relay->anthropic) {
        if (relay->req.stream) out += relay->anthropic->start();
      } else if (relay->req.stream && !relay->sent_role && relay->req.endpoint == Endpoint::Chat) {
        out += sse(chat_chunk(*relay, json{{"role", "assistant"}, {"content", ""}}, nullptr, nullptr));
        relay->sent_role = true;
      }
      JobUpdate u;
      if (relay->job->poll(u, kPoll)) {
        observe(*relay, u);
        if (relay->anthropic)
          out += messages_update(*relay, u);
        else
          out += relay->req.stream ? stream_update(*relay, u) : collect(*relay, u);
      }
      if (!out.empty() && !sink.write(out.data(), out.size())) {
        relay->job->cancel();
        return false;
      }
      if (out.empty() && !sink.is_writable()) {
        relay->job->cancel();
        return false;
      }
      if (relay->finished) sink.done();
      return true;
    };
    auto releaser = [relay](bool success) {
      if (!success || !relay->finished) relay->job->cancel();
    };
    if (stream) res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(stream ? "text/event-stream" : "application/json", provider, releaser);
  }

  // Per-request figures for /metrics: time to first token (from the request read to the first generated
  // token handed to the connection) and, when it ends, the time its grammar's masks took.
  void observe(Relay& r, const JobUpdate& u) {
    if (!r.first_token && (!u.tokens.empty() || u.done)) {
      r.first_token = true;
      if (!u.tokens.empty())
        ttft_.observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - r.received).count());
    }
    if (u.done && r.grammar) {
      std::lock_guard lk(mu_);
      ++constrained_requests_;
      const runtime::GrammarConstraintStats st = r.grammar->stats();
      constrained_masks_ += st.masks;
      constrained_s_ += st.mask_seconds;
      constrained_overlap_s_ += st.prepare_seconds;
    }
  }

  // The vocabulary's token-mask engine, built at the first structured-output request (it walks every
  // token's bytes once).
  std::shared_ptr<const grammar::TokenVocabulary> token_vocabulary() {
    std::call_once(vocab_once_, [this] { vocab_ = runtime::make_token_vocabulary(*bundle_.tokenizer); });
    return vocab_;
  }

  static std::string sse(const json& j) { return "data: " + dump(j) + "\n\n"; }

  json chat_chunk(const Relay& r, const json& delta, const json* logprobs, const char* finish) const {
    json choice = {{"index", 0},
                   {"delta", delta},
                   {"logprobs", logprobs ? *logprobs : json(nullptr)},
                   {"finish_reason", finish ? json(finish) : json(nullptr)}};
    return json{{"id", r.meta.id},       {"object", "chat.completion.chunk"}, {"created", r.meta.created},
                {"model", r.meta.model}, {"system_fingerprint", "dsv3"},      {"choices", json::array({choice})}};
  }

  json completion_chunk(const Relay& r, const std::string& text, const json* logprobs, const char* finish) const {
    json choice = {{"index", 0},
                   {"text", text},
                   {"logprobs", logprobs ? *logprobs : json(nullptr)},
                   {"finish_reason", finish ? json(finish) : json(nullptr)}};
    return json{{"id", r.meta.id},       {"object", "text_completion"},  {"created", r.meta.created},
                {"model", r.meta.model}, {"system_fingerprint", "dsv3"}, {"choices", json::array({choice})}};
  }

  json logprobs_of(Relay& r, const std::vector<runtime::TokenLogprobs>& lps, const std::string& text) {
    const io::Tokenizer* tok = bundle_.tokenizer ? &*bundle_.tokenizer : nullptr;
    if (r.req.endpoint == Endpoint::Chat) return chat_logprobs_json(tok, lps);
    json j = completion_logprobs_json(tok, lps, r.text_offset);
    r.text_offset += int64_t(text.size());
    return j;
  }

  // A parsed piece with the calls past the first dropped when the request allows one call only.
  static OutputDelta keep_calls(const Relay& r, OutputDelta d) {
    if (r.single_call) std::erase_if(d.tool_calls, [](const ToolCallDelta& c) { return c.index > 0; });
    return d;
  }

  // /v1/messages: Anthropic's events, or its one response body at the end.
  // The parsed pieces of one update: what its text adds, then (at the end) what finish() releases — kept
  // apart, so that text released after a call is not sent before it.
  std::vector<OutputDelta> parse_update(Relay& r, const JobUpdate& u) {
    std::vector<OutputDelta> ds = {keep_calls(r, r.parser->feed(u.text))};
    if (u.done) ds.push_back(keep_calls(r, r.parser->finish()));
    return ds;
  }

  std::string messages_update(Relay& r, const JobUpdate& u) {
    std::string out;
    for (const OutputDelta& d : parse_update(r, u))
      if (r.req.stream) out += r.anthropic->feed(d);
    if (!u.done) return out;
    r.finished = true;
    if (!u.error.empty()) {
      const ApiError e(500, "generation failed: " + u.error, "server_error");
      return r.req.stream ? out + r.anthropic->error(e) : dump(anthropic_error_json(e));
    }
    const MessagesEnd end{.finish = u.finish,
                          .matched_stop = u.matched_stop,
                          .input_tokens = r.job->prompt_tokens(),
                          .output_tokens = u.stats.generated,
                          .cached_tokens = u.stats.reused + u.stats.cached};
    if (r.req.stream) return out + r.anthropic->finish(end);
    std::vector<ToolCallOut> calls = r.parser->tool_calls();
    if (r.single_call && calls.size() > 1) calls.resize(1);
    return dump_ordered(messages_response(r.anthropic_meta, r.parser->reasoning(), r.parser->content(), calls, end));
  }

  std::string stream_update(Relay& r, const JobUpdate& u) {
    std::string out;
    const bool chat = r.req.endpoint == Endpoint::Chat;
    std::vector<json> deltas = {json{{"content", u.text}}};
    if (r.parser) {
      deltas.clear();
      for (const OutputDelta& d : parse_update(r, u))
        if (!d.empty()) deltas.push_back(chat_delta_json(d));
    } else if (u.text.empty()) {
      deltas.clear();
    }
    if (deltas.empty() && r.req.logprobs && !u.logprobs.empty())
      deltas.push_back(r.parser ? json::object() : json{{"content", ""}});
    for (size_t i = 0; i < deltas.size(); ++i) {
      json lp;
      const bool with_lp = r.req.logprobs && i == 0;  // the update's logprobs ride on its first chunk
      if (with_lp) lp = logprobs_of(r, u.logprobs, u.text);
      const json* lpp = with_lp ? &lp : nullptr;
      out += sse(chat ? chat_chunk(r, deltas[i], lpp, nullptr) : completion_chunk(r, u.text, lpp, nullptr));
    }
    if (!u.done) return out;
    r.finished = true;
    if (!u.error.empty()) {
      out += sse(ApiError(500, "generation failed: " + u.error, "server_error").to_json());
    } else {
      const char* fr = finish_reason(r, u);
      out += sse(chat ? chat_chunk(r, json::object(), nullptr, fr) : completion_chunk(r, "", nullptr, fr));
      if (r.req.include_usage) {
        json j = {{"id", r.meta.id},
                  {"object", chat ? "chat.completion.chunk" : "text_completion"},
                  {"created", r.meta.created},
                  {"model", r.meta.model},
                  {"system_fingerprint", "dsv3"},
                  {"choices", json::array()},
                  {"usage", usage_json(r.job->prompt_tokens(), u.stats.generated, u.stats.reused + u.stats.cached)}};
        out += sse(j);
      }
    }
    out += "data: [DONE]\n\n";
    return out;
  }

  std::string collect(Relay& r, const JobUpdate& u) {
    r.text += u.text;
    r.logprobs.insert(r.logprobs.end(), u.logprobs.begin(), u.logprobs.end());
    if (!u.done) return {};
    r.finished = true;
    if (!u.error.empty()) return dump(ApiError(500, "generation failed: " + u.error, "server_error").to_json());
    const bool chat = r.req.endpoint == Endpoint::Chat;
    json lp = nullptr;
    if (r.req.logprobs) lp = logprobs_of(r, r.logprobs, r.text);
    json message = {{"role", "assistant"}, {"content", r.text}};
    if (chat && r.parser) {
      r.parser->feed(r.text);
      r.parser->finish();
      std::vector<ToolCallOut> calls = r.parser->tool_calls();
      if (r.single_call && calls.size() > 1) calls.resize(1);
      message = chat_message_json(r.parser->reasoning(), r.parser->content(), calls);
    }
    json choice =
        chat ? json{{"index", 0}, {"message", message}, {"logprobs", lp}, {"finish_reason", finish_reason(r, u)}}
             : json{{"index", 0}, {"text", r.text}, {"logprobs", lp}, {"finish_reason", finish_reason_json(u.finish)}};
    json body = {{"id", r.meta.id},
                 {"object", chat ? "chat.completion" : "text_completion"},
                 {"created", r.meta.created},
                 {"model", r.meta.model},
                 {"system_fingerprint", "dsv3"},
                 {"choices", json::array({choice})},
                 {"usage", usage_json(r.job->prompt_tokens(), u.stats.generated, u.stats.reused + u.stats.cached)}};
    return dump(body);
  }

  // GET /props (llama.cpp's server has one): what this server runs, for clients and people.
  json props_json() const {
    const ModelConfig& c = bundle_.model->config();
    return json{{"model", name_},
                {"model_path", opt_.model_dir},
                {"model_type", c.model_type},
                {"n_ctx", engine_->max_context()},
                {"total_slots", opt_.parallel},
                {"vocab_size", c.vocab_size},
                {"chat_template", prompt_.template_source()},
                {"chat_template_tool_use", prompt_.template_source(true)},
                {"chat_template_renderer", io::prompt_renderer_name(prompt_.renderer())},
                {"chat_template_origin", prompt_.origin()},
                {"chat_template_kwargs", json(api_ctx_.default_kwargs)},
                {"tool_call_format", tool_call_format_name(family_.tools)},
                {"reasoning", family_.reasoning},
                {"bos_token", prompt_.bos_token()},
                {"eos_token", prompt_.eos_token()},
                {"eos_token_ids", bundle_.eos_ids},
                {"speculative", {{"mode", opt_.spec}, {"draft", opt_.draft}}},
                {"build_info", "dsv3"}};
  }

  // POST /tokenize: {"content": TEXT, "add_special": bool (BOS; default false), "with_pieces": bool} or
  // {"messages": [...], "tools", "chat_template_kwargs"} (rendered with the chat
  // template first, as vLLM's /tokenize does) → {"tokens": [ids] or [{"id", "piece"}], "count", "max_model_len"}
  // and, for messages, "prompt" (the rendered text, generation prompt included).
  void tokenize(const httplib::Request&, httplib::Response& res, const httplib::ContentReader& read) {
    try {
      const std::string text = read_body(read, res);
      if (!bundle_.tokenizer) throw ApiError(400, "this model has no tokenizer.json", "invalid_request_error");
      const json body = parse_json_body(text);
      if (!body.is_object()) throw ApiError(400, "The request body must be a JSON object.");
      auto flag = [&](const char* k) {
        if (!body.contains(k) || body[k].is_null()) return false;
        if (!body[k].is_boolean())
          throw ApiError(400, fmt::format("'{}' must be a boolean", k), "invalid_request_error", k);
        return body[k].get<bool>();
      };
      const io::Tokenizer& tok = *bundle_.tokenizer;
      std::vector<int32_t> ids;
      json out = json::object();
      if (body.contains("messages")) {
        // The chat path's own validation and rendering (as a chat request, generation prompt included).
        ApiRequest r = parse_request(Endpoint::Chat, text, api_ctx_);
        ids = std::move(r.prompt);
        out["prompt"] = r.prompt_text;
      } else {
        if (!body.contains("content") || !body["content"].is_string())
          throw ApiError(400, "'content' (a string) or 'messages' is required", "invalid_request_error", "content");
        const std::string content = body["content"].get<std::string>();
        if (int64_t(content.size()) > opt_.max_body_bytes)
          throw ApiError(413, "content too large", "invalid_request_error", "content");
        if (flag("add_special") && tok.bos_id()) ids.push_back(*tok.bos_id());
        tok.encode_into(content, ids, /*allow_special=*/true);
      }
      json tokens = json::array();
      const bool pieces = flag("with_pieces");
      for (int32_t id : ids) tokens.push_back(pieces ? json{{"id", id}, {"piece", tok.decode({id})}} : json(id));
      out["tokens"] = std::move(tokens);
      out["count"] = ids.size();
      out["max_model_len"] = engine_->max_context();
      res.set_content(dump(out), "application/json");
    } catch (const ApiError& e) {
      send_error(res, e);
    }
  }

  // POST /detokenize: {"tokens": [ids]} → {"content": TEXT} (special tokens kept as their text).
  void detokenize(const httplib::Request&, httplib::Response& res, const httplib::ContentReader& read) {
    try {
      const std::string text = read_body(read, res);
      if (!bundle_.tokenizer) throw ApiError(400, "this model has no tokenizer.json", "invalid_request_error");
      const json body = parse_json_body(text);
      if (!body.is_object() || !body.contains("tokens") || !body["tokens"].is_array())
        throw ApiError(400, "'tokens' (an array of token ids) is required", "invalid_request_error", "tokens");
      std::vector<int32_t> ids;
      for (const json& v : body["tokens"]) {
        if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= bundle_.tokenizer->vocab_size() ||
            !bundle_.tokenizer->is_valid_id(int32_t(v.get<int64_t>())))
          throw ApiError(400, fmt::format("'tokens' holds {}, which is not a token id of this model", v.dump()),
                         "invalid_request_error", "tokens");
        ids.push_back(int32_t(v.get<int64_t>()));
      }
      res.set_content(dump(json{{"content", bundle_.tokenizer->decode(ids)}}), "application/json");
    } catch (const ApiError& e) {
      send_error(res, e);
    }
  }

  // "tool_calls" when the output ended with calls, else "stop" | "length".
  static const char* finish_reason(const Relay& r, const JobUpdate& u) {
    if (r.parser && !r.parser->tool_calls().empty() && u.finish != runtime::FinishReason::Length) return "tool_calls";
    return finish_reason_json(u.finish);
  }

  std::string metrics_text() {
    const runtime::SchedulerMetrics m = scheduler_->metrics();
    const runtime::EngineStats& e = m.engine;
    std::string out;
    auto metric = [&](const char* name, const char* type, const char* help, const std::string& samples) {
      out += fmt::format("# HELP {} {}\n# TYPE {} {}\n{}", name, help, name, type, samples);
    };
    auto one = [](const char* name, double v) { return fmt::format("{} {}\n", name, v); };
    {
      std::string s;
      std::lock_guard lk(mu_);
      for (const auto& [k, v] : requests_)
        s += fmt::format("dsv3_http_requests_total{{path=\"{}\",status=\"{}\"}} {}\n", k.first, k.second, v);
      if (s.empty()) s = "dsv3_http_requests_total{path=\"/metrics\",status=\"200\"} 0\n";
      metric("dsv3_http_requests_total", "counter", "HTTP requests answered, by path and status.", s);
    }
    metric("dsv3_requests_submitted_total", "counter", "Generation requests accepted into the queue.",
           one("dsv3_requests_submitted_total", double(m.submitted)));
    metric("dsv3_requests_completed_total", "counter", "Generation requests finished normally.",
           one("dsv3_requests_completed_total", double(m.completed)));
    metric("dsv3_requests_cancelled_total", "counter", "Generation requests cancelled (client went away).",
           one("dsv3_requests_cancelled_total", double(m.cancelled)));
    metric("dsv3_requests_rejected_total", "counter", "Generation requests refused because the queue was full.",
           one("dsv3_requests_rejected_total", double(m.rejected)));
    metric("dsv3_requests_failed_total", "counter", "Generation requests failed by an engine error.",
           one("dsv3_requests_failed_total", double(m.failed)));
    metric("dsv3_queue_depth", "gauge", "Requests waiting for a slot.", one("dsv3_queue_depth", double(m.queued)));
    metric("dsv3_active_sequences", "gauge", "Sequences being generated.",
           one("dsv3_active_sequences", double(m.active)));
    metric("dsv3_prompt_tokens_total", "counter", "Prompt tokens of finished requests.",
           one("dsv3_prompt_tokens_total", double(m.prompt_tokens)));
    metric("dsv3_generation_tokens_total", "counter", "Generated tokens of finished requests.",
           one("dsv3_generation_tokens_total", double(m.generated_tokens)));
    metric("dsv3_prefill_tokens_per_second", "gauge", "Prompt tokens per second of prefill compute (lifetime).",
           one("dsv3_prefill_tokens_per_second", e.prefill_s > 0 ? double(e.prefill_tokens) / e.prefill_s : 0.0));
    metric("dsv3_decode_tokens_per_second", "gauge",
           "Generated tokens per second of decode compute, all sequences together (lifetime).",
           one("dsv3_decode_tokens_per_second", e.decode_s > 0 ? double(e.decode_tokens) / e.decode_s : 0.0));
    metric("dsv3_engine_steps_total", "counter", "Engine steps (batched forwards).",
           one("dsv3_engine_steps_total", double(e.steps)));
    metric("dsv3_spec_draft_tokens_total", "counter", "MTP draft tokens proposed.",
           one("dsv3_spec_draft_tokens_total", double(e.drafted)));
    metric("dsv3_spec_accepted_tokens_total", "counter", "MTP draft tokens accepted.",
           one("dsv3_spec_accepted_tokens_total", double(e.accepted)));
    metric("dsv3_spec_acceptance_rate", "gauge", "Accepted / proposed MTP drafts (lifetime).",
           one("dsv3_spec_acceptance_rate", e.drafted > 0 ? double(e.accepted) / double(e.drafted) : 0.0));
    metric("dsv3_time_to_first_token_seconds", "histogram",
           "Per request: seconds from the request read to its first generated token.",
           ttft_.samples("dsv3_time_to_first_token_seconds"));
    {
      std::lock_guard lk(mu_);
      metric("dsv3_constrained_requests_total", "counter", "Finished requests whose output followed a grammar.",
             one("dsv3_constrained_requests_total", double(constrained_requests_)));
      metric("dsv3_constrained_masks_total", "counter", "Token masks computed for structured output.",
             one("dsv3_constrained_masks_total", double(constrained_masks_)));
      metric("dsv3_constrained_decoding_seconds_total", "counter",
             "Seconds structured output's token masks took on the decode path (finished requests).",
             one("dsv3_constrained_decoding_seconds_total", constrained_s_));
      metric("dsv3_constrained_overlapped_seconds_total", "counter",
             "Seconds of token-mask computation overlapped with the forward on a worker thread (finished requests).",
             one("dsv3_constrained_overlapped_seconds_total", constrained_overlap_s_));
    }
    {
      const runtime::PrefixCacheStats& p = e.prefix;
      metric("dsv3_prefix_cache_lookups_total", "counter", "Prompts looked up in the prefix cache.",
             one("dsv3_prefix_cache_lookups_total", double(p.lookups)));
      metric("dsv3_prefix_cache_hits_total", "counter", "Lookups that found at least one cached block.",
             one("dsv3_prefix_cache_hits_total", double(p.hits)));
      metric("dsv3_prefix_cache_lookup_tokens_total", "counter", "Prompt tokens of the looked-up prompts.",
             one("dsv3_prefix_cache_lookup_tokens_total", double(p.lookup_tokens)));
      metric("dsv3_prefix_cache_hit_tokens_total", "counter", "Prompt tokens copied from the prefix cache.",
             one("dsv3_prefix_cache_hit_tokens_total", double(p.hit_tokens)));
      metric("dsv3_prefix_cache_hit_rate", "gauge", "Hit tokens / looked-up prompt tokens (lifetime).",
             one("dsv3_prefix_cache_hit_rate",
                 p.lookup_tokens > 0 ? double(p.hit_tokens) / double(p.lookup_tokens) : 0.0));
      metric("dsv3_prefix_cache_bytes", "gauge", "Bytes of cache rows the prefix cache holds.",
             one("dsv3_prefix_cache_bytes", double(p.bytes)));
      metric("dsv3_prefix_cache_max_bytes", "gauge", "The prefix cache's limit (--cache-mem; 0: off).",
             one("dsv3_prefix_cache_max_bytes", double(p.max_bytes)));
      metric("dsv3_prefix_cache_blocks", "gauge", "Blocks the prefix cache holds.",
             one("dsv3_prefix_cache_blocks", double(p.blocks)));
      metric("dsv3_prefix_cache_evictions_total", "counter", "Blocks evicted from the prefix cache (LRU).",
             one("dsv3_prefix_cache_evictions_total", double(p.evicted_blocks)));
    }
    metric("dsv3_uptime_seconds", "gauge", "Seconds since the server started.",
           one("dsv3_uptime_seconds", double(unix_now() - started_)));
    return out;
  }

  ServerOptions opt_;
  runtime::ModelBundle bundle_;  // model, tokenizer, eos ids
  io::ChatPrompt prompt_;        // the bundle's, else the built-in DeepSeek-V3 renderer
  ChatFamily family_;            // how chat output is split (reasoning, tool-call format)
  struct ScriptedText {
    std::vector<int32_t> tokens;
    bool prefix_only = false;  // {"prefix": TEXT}: the reply begins so, then the model (and a grammar) go on
  };
  std::vector<ScriptedText> script_;  // --script-replies, tokenized
  std::atomic<size_t> script_next_{0};
  std::unique_ptr<runtime::Engine> engine_;
  std::unique_ptr<runtime::Scheduler> scheduler_;
  std::string name_;
  ApiContext api_ctx_;
  int64_t started_ = 0;
  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  std::map<std::pair<std::string, int>, int64_t> requests_;
  int64_t constrained_requests_ = 0, constrained_masks_ = 0;  // under mu_
  double constrained_s_ = 0;                                  // under mu_
  double constrained_overlap_s_ = 0;                          // under mu_
  Histogram ttft_{{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}};
  std::once_flag vocab_once_;
  std::shared_ptr<const grammar::TokenVocabulary> vocab_;
};

}  // namespace

int run_server(const ServerOptions& o) {
  if (o.port < 0 || o.port > 65535) fail("--port must be in 0..65535, got {}", o.port);
  if (o.parallel < 1) fail("--parallel must be >= 1, got {}", o.parallel);
  if (o.max_connections < 1) fail("--max-connections must be >= 1, got {}", o.max_connections);
  if (o.backlog < 1) fail("--backlog must be >= 1, got {}", o.backlog);
  if (o.read_timeout_s < 1) fail("--read-timeout must be >= 1 s, got {}", o.read_timeout_s);
  if (o.max_body_bytes < 1) fail("--max-body-bytes must be >= 1, got {}", o.max_body_bytes);
  // Signals are taken by a dedicated thread (sigwait); no thread started from here on receives them.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  struct sigaction pass {};
  pass.sa_handler = pass_signal_on;
  sigemptyset(&pass.sa_mask);
  sigaction(SIGINT, &pass, nullptr);
  sigaction(SIGTERM, &pass, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  Server server(o);
  Listener svr;
  const size_t threads = o.http_threads > 0 ? size_t(o.http_threads) : size_t(o.parallel + o.max_queue + 4);
  const size_t max_conn = size_t(o.max_connections);
  svr.new_task_queue = [threads, max_conn] { return new AdmissionQueue(threads, max_conn); };
  svr.set_payload_max_length(size_t(o.max_body_bytes));
  svr.set_keep_alive_max_count(1000);
  svr.set_keep_alive_timeout(time_t(o.keep_alive_timeout_s));
  svr.set_read_timeout(time_t(o.read_timeout_s), 0);
  svr.set_write_timeout(30, 0);
  server.install(svr);

  int port = o.port;
  if (port == 0) {
    port = svr.bind_to_any_port(o.host);
    if (port < 0) fail("cannot bind {}: no free port", o.host);
  } else if (!svr.bind_to_port(o.host, port)) {
    fail("cannot bind {}:{} (in use, or not a local address)", o.host, port);
  }
  svr.set_backlog(int(o.backlog));
  std::thread sig([&svr, &server, set] {
    int s = 0;
    sigwait(&set, &s);
    server.begin_stop();
    svr.stop();
  });
  g_sigwaiter = sig.native_handle();
  g_have_sigwaiter = true;
  std::fprintf(stderr, "dsv3 serve: listening on http://%s:%d\n", o.host.c_str(), port);
  std::fflush(stderr);
  const bool ok = svr.listen_after_bind();
  // Wake the signal thread if the server ended for another reason.
  pthread_kill(sig.native_handle(), SIGTERM);
  sig.join();
  g_have_sigwaiter = false;
  std::fprintf(stderr, "dsv3 serve: stopped\n");
  return ok ? 0 : 1;
}

}  // namespace dsv3::server
