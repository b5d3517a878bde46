// dsv3 serve --model DIR [--host 127.0.0.1] [--port 8080] [--api-key KEY] [--parallel N] [--ctx N] [--ep N] ...
// An OpenAI-compatible HTTP server (src/server/http_server.h; flags in docs/serving.md). Under mpirun -np N
// with --ep N rank 0 serves HTTP and the others hold their share of the sequences and experts
// (cli/dist_flags.h); SIGTERM to rank 0 (its pid is on its start-up line) shuts the whole job down.
#include "cli/command.h"
#include "cli/dist_flags.h"
#include "cli/gen_flags.h"
#include "server/http_server.h"

namespace dsv3::cli {
namespace {

struct Options : server::ServerOptions {
  DistFlags dist;
};

int run(const Options& o) {
  server::ServerOptions so = o;
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
  o->dist.add_to(app);
  return [o] { return run(*o); };
});

}  // namespace
}  // namespace dsv3::cli
