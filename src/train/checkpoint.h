// Trainer checkpoints: RUNDIR/checkpoint is a Hugging Face model directory (config.json, float32 tensors,
// tokenizer.json / tokenizer_config.json) that `dsv3 generate` and HF transformers load as is, plus what
// resuming needs:
//   optimizer moments       "<name>.exp_avg" / "<name>.exp_avg_sq" float32; metadata "step"
//   trainer_state.json      step, total steps, tokens seen, data-loader position, seed, elapsed time, layout
//   train_config.json       the resolved TRAIN.json the run uses
// The expert biases travel with the weights (they are weights: mlp.gate.e_score_correction_bias).
//
// One process writes model.safetensors and optimizer.safetensors. A job of N ranks (CheckpointRanks) writes
// a sharded directory: rank r writes model-{r+1}-of-N.safetensors with the tensors it owns (its ZeRO-1
// tensors, train/data_parallel.h: routed experts by a rank holding them, replicated tensors partitioned
// over all ranks) and optimizer-{r+1}-of-N.safetensors with the moments it holds; after every rank is done
// (a collective), rank 0 writes model.safetensors.index.json (HF's sharded format), optimizer.safetensors.
// index.json, config.json, the tokenizer files, train_config.json and trainer_state.json — the last file,
// which marks a checkpoint complete — and swaps the directory in. A rank dying mid-save never reaches the
// collective, so the job ends before the swap and the previous checkpoint stays.
// Loading is by tensor name, so a checkpoint of any layout loads into any other: every rank reads the
// tensors its Params hold (params.scope()) and the moments its optimizer holds.
// Writing is atomic at the directory level: everything goes to RUNDIR/checkpoint.tmp, then the old
// checkpoint is renamed to checkpoint.old, the new one into place, and the old one removed; a crash in
// between leaves checkpoint.old, which load_checkpoint falls back to. A distributed save needs RUNDIR on a
// file system every rank sees (one machine, or a shared mount).
//
// Test hook: DSV3_TEST_KILL_IN_SAVE=R[:K] makes world rank R SIGKILL itself in its K-th save (default the
// first) after writing its model shard and half of its optimizer shard.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "dist/comm.h"
#include "io/dataset.h"
#include "model/config.h"
#include "train/adamw.h"
#include "train/params.h"

namespace dsv3::train {

struct TrainerState {
  int64_t step = 0;         // optimizer steps completed
  int64_t total_steps = 0;  // the schedule's length (fixed at the start of the run)
  int64_t tokens_seen = 0;  // training tokens consumed (drives the batch ramp)
  io::LoaderPosition data;  // next training window
  uint64_t seed = 0;
  double elapsed_s = 0;  // training wall time over all invocations
  std::string tokenizer_sha256;
  int64_t train_tokens = 0;    // of the dataset the run started on (checked on resume)
  int dp = 1, ep = 1, pp = 1;  // the layout that wrote the checkpoint (informational: any layout resumes it)

  nlohmann::json to_json() const;
  static TrainerState from_json(const nlohmann::json& j, const std::string& label);
};

struct CheckpointFiles {
  std::vector<std::pair<std::string, std::string>> extra;  // (file name, content): tokenizer files
};

// This rank's part in a distributed save (world null or of size 1: the single-process format).
struct CheckpointRanks {
  dist::Comm* world = nullptr;
  // Per tensor of params: this rank writes it and its moments (which opt must hold for a trainable tensor);
  // every tensor of the model is written by exactly one rank.
  std::vector<char> writes;
};

// Collective over ranks.world when it has several ranks (every rank calls it with its own share).
void save_checkpoint(const std::string& run_dir, const ModelConfig& c, const nlohmann::json& train_config,
                     const Params& params, const AdamW& opt, const TrainerState& st, const CheckpointFiles& files,
                     const CheckpointRanks& ranks = {});

// The checkpoint directory to resume from: RUNDIR/checkpoint, or RUNDIR/checkpoint.old after an interrupted
// swap. Throws when there is none.
std::string checkpoint_dir(const std::string& run_dir);
nlohmann::json read_checkpoint_train_config(const std::string& ckpt_dir);
// Restores params (exactly, float32: the tensors params holds) and the moments opt holds, from a
// checkpoint of any layout; returns the trainer state.
TrainerState load_checkpoint(const std::string& ckpt_dir, const ModelConfig& c, Params& params, AdamW& opt);

}  // namespace dsv3::train
