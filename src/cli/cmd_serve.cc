// dsv3 serve --model DIR [--host 127.0.0.1] [--port 8080] [--api-key-file F] [--parallel N] [--ctx N] [--ep N] ...
// An OpenAI-compatible HTTP server (src/server/http_server.h; flags in docs/serving.md). Under mpirun -np N
// with --ep N rank 0 serves HTTP and the others hold their share of the sequences and experts
// (cli/dist_flags.h); SIGTERM to rank 0 (its pid is on its start-up line) shuts the whole job down.
#include <cctype>
#include <cstdlib>
#include <fstream>

#include "cli/command.h"
#include "cli/dist_flags.h"
#include "cli/gen_flags.h"
#include "core/error.h"
#include "runtime/prefix_cache.h"
#include "server/http_server.h"

namespace dsv3::cli {
namespace {

struct Options : server::ServerOptions {
  DistFlags dist;
  std::string api_key_file;
  std::string cache_mem;  // --cache-mem as given (parsed in run)
  bool no_web_ui = false;
};

// The key from --api-key, --api-key-file (its first line; a file keeps it out of /proc/PID/cmdline) or the
// DSV3_API_KEY environment variable, in that order; two of the flags together are an error.
std::string api_key(const Options& o) {
  if (!o.api_key.empty() && !o.api_key_file.empty()) fail("give --api-key or --api-key-file, not both");
  if (!o.api_key_file.empty()) {
    std::ifstream f(o.api_key_file);
    if (!f) fail("--api-key-file {}: cannot open it", o.api_key_file);
    std::string key;
    std::getline(f, key);
    while (!key.empty() && std::isspace(static_cast<unsigned char>(key.back()))) key.pop_back();
    if (key.empty()) fail("--api-key-file {}: the first line is empty", o.api_key_file);
    return key;
  }
  if (!o.api_key.empty()) return o.api_key;
  const char* env = std::getenv("DSV3_API_KEY");
  return env ? std::string(env) : std::string();
}

int run(const Options& o) {
  server::ServerOptions so = o;
  so.api_key = api_key(o);
  if (!o.cache_mem.empty()) so.cache_mem = runtime::parse_byte_size(o.cache_mem, "--cache-mem");
  so.web_ui = !o.no_web_ui;
  auto job = o.dist.start(so.model_dir, so.model_options);
  if (job && !job->leads()) return follow(*job, so.model_dir, so.model_options);
  JobStopper stopper{job};
  return server::run_server(so);
}

Registrar reg("serve", "OpenAI-compatible HTTP server (chat/completions, SSE streaming)", [](CLI::App& app) {
  auto o = std::make_shared<Options>();
  app.add_option("--model", o->model_dir, "Model directory (config.json, safetensors, tokenizer.json)")->required();
  app.add_option("--host", o->host, "Address to listen on (default 127.0.0.1)");
  app.add_option("--port", o->port, "Port; 0 picks a free one (default 8080)");
  app.add_option("--api-key", o->api_key,
                 "Require 'Authorization: Bearer KEY' on /v1/ (default: none; visible in ps, prefer the next two)");
  app.add_option("--api-key-file", o->api_key_file, "Read the API key from the first line of this file");
  app.add_option("--max-connections", o->max_connections,
                 "Connections served at once, one thread each; more are answered 503 (default 512)")
      ->check(CLI::PositiveNumber);
  app.add_option("--backlog", o->backlog, "Listen backlog: connections the kernel holds before accept (default 1024)")
      ->check(CLI::PositiveNumber);
  app.add_option("--read-timeout", o->read_timeout_s,
                 "Seconds a client may stay silent while sending a request (default 10)")
      ->check(CLI::PositiveNumber);
  app.add_option("--keep-alive-timeout", o->keep_alive_timeout_s,
                 "Seconds an idle keep-alive connection is kept (default 5)")
      ->check(CLI::PositiveNumber);
  app.add_option("--max-body-bytes", o->max_body_bytes, "Largest request body, chunked or not (default 16 MiB)")
      ->check(CLI::PositiveNumber);
  app.add_option("--max-headers", o->max_headers, "Most request headers (default 100)")->check(CLI::PositiveNumber);
  app.add_option("--max-header-bytes", o->max_header_bytes, "Most request header bytes in all (default 64 KiB)")
      ->check(CLI::PositiveNumber);
  app.add_flag("--parse-special-in-user-text", o->parse_special_in_user_text,
               "Parse special tokens typed into user and tool messages (HF's behaviour; default: plain text)");
  app.add_option("--chat-template", o->chat_template_file, "Jinja chat template file replacing the model's");
  app.add_option("--chat-template-kwargs", o->chat_template_kwargs,
                 "Template variables every request gets, a JSON object (a request's chat_template_kwargs override)");
  app.add_option("--tool-call-format", o->tool_call_format,
                 "How tool calls in the output are parsed: auto (from the template) | deepseek_v3 | deepseek_v31 | "
                 "deepseek_v32 | kimi_k2 | none")
      ->check(CLI::IsMember({"auto", "deepseek_v3", "deepseek_v31", "deepseek_v32", "kimi_k2", "none"}));
  app.add_option("--reasoning", o->reasoning,
                 "Split <think> reasoning into reasoning_content: auto (when the template has it) | on | off")
      ->check(CLI::IsMember({"auto", "on", "off"}));
  app.add_option("--script-replies", o->script_replies_file,
                 "Testing aid: a JSON array of strings; the n-th chat request's reply is forced to string n (mod "
                 "the count) by a sampling constraint");
  app.add_flag("--no-web-ui", o->no_web_ui, "Do not serve the web chat page at / (and its files under /web/)");
  app.add_option("--model-name", o->model_name, "Model id reported by /v1/models (default: directory name)");
  app.add_option("--parallel", o->parallel, "Sequences decoded together (default 4)")->check(CLI::PositiveNumber);
  app.add_option("--ctx", o->ctx, "Context per sequence, prompt + completion (default 4096)")
      ->check(CLI::PositiveNumber);
  app.add_option("--max-queue", o->max_queue, "Requests waiting for a slot before 503 (default 64)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--http-threads", o->http_threads,
                 "Connection threads started up front; more start on demand (default parallel + max-queue + 4)");
  app.add_option("--spec", o->spec, "Speculative decoding: none | mtp (default none)")
      ->check(CLI::IsMember({"none", "mtp"}));
  app.add_option("--draft", o->draft, "MTP draft depth (default 1)")->check(CLI::PositiveNumber);
  add_engine_flags(app, o->model_options);
  app.add_option("--prefill-chunk", o->prefill_chunk, "Prompt tokens per engine step (default 512)")
      ->check(CLI::PositiveNumber);
  app.add_option("--cache-mem", o->cache_mem,
                 "Prefix cache across requests: most bytes of cached prompt rows, e.g. 2GiB, 512MiB; 0 disables "
                 "(default 2GiB)");
  app.add_option("--cache-block", o->cache_block, "Prefix cache block size in tokens (default 16)")
      ->check(CLI::PositiveNumber);
  o->dist.add_to(app);
  return [o] { return run(*o); };
});

}  // namespace
}  // namespace dsv3::cli
