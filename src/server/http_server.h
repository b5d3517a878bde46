// `dsv3 serve`: an OpenAI-compatible HTTP server (cpp-httplib) over the continuous-batching scheduler.
//
//   POST /v1/chat/completions, /v1/completions   (stream: true → server-sent events, "data: [DONE]" last)
//   GET  /v1/models, /health, /metrics (Prometheus text format)
//
// Threads: one per connection (started on demand up to --max-connections, see AdmissionQueue); each submits a Job to
// the scheduler and relays its updates (polling every 50 ms, which is also when a vanished client is noticed and its
// job cancelled). The engine thread (scheduler.h) is the only one touching the model. Overload (the scheduler's queue
// is full) answers 503 with Retry-After; errors use OpenAI's {"error": {...}} shape. docs/serving.md lists every flag
// and field.
#pragma once

#include <cstdint>
#include <string>

#include "model/options.h"

namespace dsv3::server {

struct ServerOptions {
  std::string model_dir;
  std::string host = "127.0.0.1";
  int port = 8080;           // 0: any free port (the chosen one is printed)
  std::string api_key;       // empty: no authentication (cmd_serve: --api-key, --api-key-file, DSV3_API_KEY)
  std::string model_name;    // the id /v1/models reports; default: the directory's name
  int64_t parallel = 4;      // sequences decoded together
  int64_t ctx = 4096;        // context per sequence (prompt + completion)
  int64_t max_queue = 64;    // requests waiting for a slot before 503
  int64_t http_threads = 0;  // connection threads started up front (0: parallel + max_queue + 4)
  // Limits on what one client can take (docs/security.md): connections served at once (one thread each;
  // beyond it a connection is answered 503 + Retry-After), the listen backlog, seconds a connection may
  // stay silent while sending a request (and idle between keep-alive requests), body bytes (chunked bodies
  // counted as they arrive), header count and total header bytes.
  int64_t max_connections = 512;
  int64_t backlog = 1024;
  int64_t read_timeout_s = 10;
  int64_t keep_alive_timeout_s = 5;
  int64_t max_body_bytes = 16 << 20;
  int64_t max_headers = 100;
  int64_t max_header_bytes = 64 << 10;
  bool parse_special_in_user_text = false;  // true: HF's behaviour (specials typed by a user are parsed)
  std::string spec = "none";                // none | mtp
  int64_t draft = 1;
  int64_t prefill_chunk = 512;
  int64_t cache_mem = int64_t(2) << 30;  // prefix cache bytes (runtime/prefix_cache.h); 0: off
  int64_t cache_block = 16;              // prefix cache block, tokens
  ModelOptions model_options;            // --bf16-activations, --no-mmap
  // Chat (docs/serving.md): a Jinja file replacing the checkpoint's template; kwargs (a JSON object) every
  // request's chat_template_kwargs add to; the tool-call format (auto: from the template) and reasoning
  // split (auto | on | off); replies forced by a sampling constraint (testing aid).
  std::string chat_template_file;
  std::string chat_template_kwargs;
  std::string tool_call_format = "auto";
  std::string reasoning = "auto";
  std::string script_replies_file;
  bool web_ui = true;  // the chat page at / (server/web_ui.h); --no-web-ui turns it off
};

// Loads the model, binds, prints "dsv3 serve: listening on http://HOST:PORT" to stderr and serves until
// SIGINT or SIGTERM. Returns the process exit status.
int run_server(const ServerOptions& options);

}  // namespace dsv3::server
