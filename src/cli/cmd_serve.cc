// dsv3 serve --model DIR [--host 127.0.0.1] [--port 8080] [--api-key KEY] [--parallel N] [--ctx N] ...
// An OpenAI-compatible HTTP server (src/server/http_server.h; flags in docs/serving.md).
#include "cli/command.h"
#include "cli/gen_flags.h"
#include "server/http_server.h"

namespace dsv3::cli {
namespace {

using Options = server::ServerOptions;
int run(const Options& o) { return server::run_server(o); }

Registrar reg("serve", "OpenAI-compatible HTTP server (chat/completions, SSE streaming)", [](CLI::App& app) {
  auto o = std::make_shared<Options>();
  app.add_option("--model", o->model_dir, "Model directory (config.json, safetensors, tokenizer.json)")->required();
  app.add_option("--host", o->host, "Address to listen on (default 127.0.0.1)");
  app.add_option("--port", o->port, "Port; 0 picks a free one (default 8080)");
  app.add_option("--api-key", o->api_key, "Require 'Authorization: Bearer KEY' on /v1/ (default: none)");
  app.add_option("--model-name", o->model_name, "Model id reported by /v1/models (default: directory name)");
  app.add_option("--parallel", o->parallel, "Sequences decoded together (default 4)")->check(CLI::PositiveNumber);
  app.add_option("--ctx", o->ctx, "Context per sequence, prompt + completion (default 4096)")
      ->check(CLI::PositiveNumber);
  app.add_option("--max-queue", o->max_queue, "Requests waiting for a slot before 503 (default 64)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--http-threads", o->http_threads, "HTTP worker threads (default parallel + max-queue + 4)");
  app.add_option("--spec", o->spec, "Speculative decoding: none | mtp (default none)")
      ->check(CLI::IsMember({"none", "mtp"}));
  app.add_option("--draft", o->draft, "MTP draft depth (default 1)")->check(CLI::PositiveNumber);
  add_engine_flags(app, o->model_options);
  app.add_option("--prefill-chunk", o->prefill_chunk, "Prompt tokens per engine step (default 512)")
      ->check(CLI::PositiveNumber);
  return [o] { return run(*o); };
});

}  // namespace
}  // namespace dsv3::cli
