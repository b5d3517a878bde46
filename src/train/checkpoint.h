// Trainer checkpoints: RUNDIR/checkpoint is a Hugging Face model directory (config.json, model.safetensors in
// float32, tokenizer.json / tokenizer_config.json) that `dsv3 generate` and HF transformers load as is, plus
// what resuming needs:
//   optimizer.safetensors   "<name>.exp_avg" / "<name>.exp_avg_sq" float32 moments; metadata "step"
//   trainer_state.json      step, total steps, tokens seen, data-loader position, seed, elapsed time
//   train_config.json       the resolved TRAIN.json the run uses
// The expert biases travel in model.safetensors (they are weights: mlp.gate.e_score_correction_bias).
// Writing is atomic at the directory level: everything goes to RUNDIR/checkpoint.tmp, then the old
// checkpoint is renamed to checkpoint.old, the new one into place, and the old one removed; a crash in
// between leaves checkpoint.old, which load_checkpoint falls back to.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

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
  int64_t train_tokens = 0;  // of the dataset the run started on (checked on resume)

  nlohmann::json to_json() const;
  static TrainerState from_json(const nlohmann::json& j, const std::string& label);
};

struct CheckpointFiles {
  std::vector<std::pair<std::string, std::string>> extra;  // (file name, content): tokenizer files
};

void save_checkpoint(const std::string& run_dir, const ModelConfig& c, const nlohmann::json& train_config,
                     const Params& params, const AdamW& opt, const TrainerState& st, const CheckpointFiles& files);

// The checkpoint directory to resume from: RUNDIR/checkpoint, or RUNDIR/checkpoint.old after an interrupted
// swap. Throws when there is none.
std::string checkpoint_dir(const std::string& run_dir);
nlohmann::json read_checkpoint_train_config(const std::string& ckpt_dir);
// Restores params (exactly, float32) and optimizer moments; returns the trainer state.
TrainerState load_checkpoint(const std::string& ckpt_dir, const ModelConfig& c, Params& params, AdamW& opt);

}  // namespace dsv3::train
