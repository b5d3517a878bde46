// The training loop (DESIGN.md "training"): packed batches → forward_backward (per micro-batch, gradients
// accumulated) → global-norm clip → AdamW → expert-bias update → metrics / validation / checkpoint.
//
// Determinism: everything a step uses is a function of (config, seed, step, tokens seen, loader position,
// float32 params + moments), all of which the checkpoint stores exactly, so `--resume` reproduces the
// uninterrupted run's losses bit for bit (same build, same thread count).
//
// Files under RUNDIR: train_config.json (resolved TRAIN.json), metrics.jsonl (one JSON object per line:
// "type": "train" | "val"; docs/training.md), checkpoint/ (train/checkpoint.h), summary.json.
//
// Under mpirun (docs/scale-out-training-dp.md) the job's N = dp × ep ranks (dist/layout.h) train one model
// (with pipeline parallelism pp × dp × ep, RunOptions::pp and docs/scale-out.md "Pipeline parallelism"):
// every rank reads the single-process data order and runs its contiguous share of each step's sequences
// (batch_seqs must be a multiple of N); routed experts run expert-parallel within each EP group
// (train/expert_parallel.h); gradients are summed in buckets overlapped with the backward, the AdamW moments
// are sharded ZeRO-1 (train/data_parallel.h), and checkpoints are written by all ranks (train/checkpoint.h).
// Losses, norms and loads are the whole batch's, so the loss curve is the single-process one up to float
// summation order. Rank 0 alone writes metrics.jsonl, summary.json, train_config.json and progress.
#pragma once

#include <cstdint>
#include <string>

namespace dsv3::train {

struct RunOptions {
  std::string config{};  // TRAIN.json (optional with resume: the checkpoint's copy is used)
  std::string data{};    // dataset directory (dsv3 data prepare)
  std::string out{};     // RUNDIR
  bool resume = false;
  double max_minutes = -1;  // ≥ 0 overrides training.time_budget_minutes
  int64_t steps = -1;       // ≥ 0 overrides training.steps (0 = fit to the time budget)
  int64_t stop_at = -1;     // > 0: stop after this step (checkpoint written), the schedule unchanged
  bool progress = true;     // progress line on stderr
  std::string precision{};  // "fp32" | "bf16" | "fp8": overrides training.precision (empty: the config's)
  std::string init_from{};  // a model directory whose tensors start a new run (train/init_from.h)
  int dp = 0;               // data-parallel replicas (0: the job's ranks / ep)
  int ep = 1;               // expert-parallel ranks per replica
  double bucket_mb = 4;     // gradient all-reduce bucket size (MiB)
  // Two-micro-batch overlap of the EP all-to-alls (ExpertParallel::overlap): a runtime choice like the bucket
  // size — it changes no result beyond the order of gradient sums, so it is not part of TRAIN.json and a
  // resumed run may change it. Off by default: at CPU batch sizes (a few hundred tokens per rank) halving
  // every GEMM costs more than the all-to-all time it hides (docs/scale-out-training-ep.md, measured).
  bool overlap = false;
  // Pipeline parallelism (train/pipeline.h): pp > 1 runs every step pipelined over pp ranks, combined with
  // dp and ep (world size = pp · dp · ep, dist/layout.h): each of the dp · ep lanes runs its share of the batch
  // through the pipeline, split into `micro` micro-batches (0: the fewest the schedule allows, P for 1F1B, 2P
  // for DualPipe / DualPipeV). A rank holds only its stages' tensors (train::pipeline_scope) and its EP rank's
  // experts — weights, gradients and moments; gradients are summed over its stage's dp × ep ranks, then over
  // the pipeline ranks holding the same tensor; ZeRO-1 shards the moments over the stage's ranks; checkpoints
  // are ordinary sharded ones (any layout resumes them). trace: lane 0's last-step timeline (Chrome trace).
  int pp = 1;
  std::string schedule = "1f1b";
  std::string split = "flops";  // the layer split: "flops" (estimate) or "measured" (train/stage_cost.h)
  int micro = 0;
  std::string trace{};
};

struct TrainSummary {
  int64_t step = 0, total_steps = 0;
  double train_loss = 0;    // mean total loss of the last (up to) 20 steps
  double val_loss = -1;     // last validation main-head CE (-1: none)
  double tokens_per_s = 0;  // training tokens / training seconds of this invocation
  double seconds = 0;       // wall time of this invocation
  bool finished = false;    // reached total_steps
};

TrainSummary run_training(const RunOptions& o);

}  // namespace dsv3::train
