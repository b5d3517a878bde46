#include "cli/dist_flags.h"

#include <cstdio>

#include "core/error.h"
#include "dist/world.h"
#include "model/config.h"
#include "model/transformer.h"

namespace dsv3::cli {

void DistFlags::add_to(CLI::App& app) {
  app.add_option("--ep", ep,
                 "Expert-parallel ranks: under mpirun -np N, N (attention data-parallel over the ranks, each "
                 "holding its block of routed experts)");
  app.add_option("--redundant-experts", redundant_experts,
                 "With --ep: duplicate each MoE layer's K most loaded experts (load observed over the first "
                 "--redundant-warmup forwards), each copy on the least loaded rank (default 0)");
  app.add_option("--redundant-warmup", redundant_warmup,
                 "Forwards per MoE layer whose routed load decides the redundant experts (default 8)");
  app.add_option("--overlap", overlap,
                 "With --ep: run a step's rows as two micro-batches whose expert all-to-alls travel while the "
                 "other computes (DeepSeek's two-micro-batch overlap): auto (when a rank has >= 32 rows: "
                 "prefill), on, off (default auto)")
      ->check(CLI::IsMember({"auto", "on", "off"}));
}

std::shared_ptr<dist::EpInference> DistFlags::start(const std::string& model_dir, ModelOptions& options) const {
  dist::Comm& w = dist::world();
  if (ep < 0) fail("--ep {}: must be at least 1", ep);
  if (ep == 0 && w.size() > 1)
    fail("--ep: this job has {} ranks (mpirun); give --ep {} to run the model expert-parallel over them", w.size(),
         w.size());
  if (ep <= 1 && w.size() == 1) {
    if (redundant_experts != 0) fail("--redundant-experts {}: needs --ep 2 or more", redundant_experts);
    if (overlap != "auto") fail("--overlap {}: needs --ep 2 or more", overlap);
    return nullptr;
  }
  const ModelConfig c = load_config(model_dir);
  auto job = std::make_shared<dist::EpInference>(
      w, c,
      dist::EpOptions{.ep = ep,
                      .redundancy = {.experts = redundant_experts, .warmup = redundant_warmup},
                      .overlap = overlap == "on"    ? dist::Overlap::On
                                 : overlap == "off" ? dist::Overlap::Off
                                                    : dist::Overlap::Auto});
  const std::string line = job->describe(c, model_dir);
  std::fprintf(stderr, "dsv3: %s\n", line.c_str());
  std::fflush(stderr);
  options.parallel = job;
  return job;
}

void print_placement(const dist::EpInference& job) {
  std::string line;
  for (int64_t n : job.placed()) line += " " + std::to_string(n);
  std::fprintf(stderr, "ep: sequences per rank:%s\n", line.c_str());
}

int follow(dist::EpInference& job, const std::string& model_dir, const ModelOptions& options) {
  auto model = Model::load(model_dir, options);
  job.follow(*model);
  return 0;
}

}  // namespace dsv3::cli
