// `--ep N` (and the redundant-expert flags) of the commands that run the model — logits, generate, bench,
// serve — and the shape every such command takes under mpirun (docs/scale-out-inference.md):
//
//   auto job = o.dist.start(model_dir, options);            // null: a plain single-process run
//   if (job && !job->leads()) return follow(*job, model_dir, options);
//   JobStopper stopper{job};                                // rank 0: the others stop when it is done
//   ... the command as without --ep, its model loaded with `options` ...
//
// Without mpirun and without --ep nothing changes. Under mpirun --ep must equal the number of ranks.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <memory>
#include <string>

#include "dist/ep_inference.h"
#include "model/options.h"

namespace dsv3::cli {

struct DistFlags {
  int ep = 0;  // 0: not given
  int64_t redundant_experts = 0, redundant_warmup = 8;
  std::string overlap = "auto";  // auto | on | off

  void add_to(CLI::App& app);
  // Checks --ep against the job (dist::world()) and the model's config.json (errors name the flag), builds
  // the job, prints this rank's layout line on stderr and sets options.parallel. nullptr when the run is a
  // single process without --ep (or --ep 1).
  std::shared_ptr<dist::EpInference> start(const std::string& model_dir, ModelOptions& options) const;
};

// --stats under --ep: the sequences each rank held ("ep: sequences per rank: 2 1").
void print_placement(const dist::EpInference& job);

// A rank ≠ 0: loads the model (its own experts) and runs rank 0's steps until rank 0 stops the job.
int follow(dist::EpInference& job, const std::string& model_dir, const ModelOptions& options);

// Rank 0: stops the job's other ranks when the command is done (also when it fails before a step: an error
// inside a step aborts the whole job instead).
struct JobStopper {
  std::shared_ptr<dist::EpInference> job;
  ~JobStopper() {
    if (job) job->stop();
  }
};

}  // namespace dsv3::cli
