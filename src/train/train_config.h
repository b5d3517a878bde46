// TRAIN.json: a model's HF config.json fields plus a "training" object (docs/training.md lists every key):
//
//   { "model_type": "deepseek_v3", "hidden_size": 256, ...,           ← parsed by model/config.h
//     "training": { "seq_len": 128, "batch_seqs": 16, "lr": 3e-3, ..., "balance": {"mode": "aux_free"} } }
//
// vocab_size / bos_token_id / eos_token_id may be left out: they come from the dataset's tokenizer. Every
// training key is validated here, in one place; unknown keys are errors (a typo must not silently train
// with a default).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "model/config.h"
#include "train/fp8_recipe.h"
#include "train/schedule.h"
#include "train/step.h"

namespace dsv3::train {

struct TrainOptions {
  // Batches: sequences of seq_len tokens; batch_seqs per optimizer step, split into grad_accum micro-batches.
  int64_t seq_len = 128;
  int64_t batch_seqs = 8;
  int64_t batch_seqs_start = 0;   // > 0: batch-size ramp from this many sequences ...
  int64_t batch_ramp_tokens = 0;  // ... to batch_seqs over the first batch_ramp_tokens tokens
  int64_t grad_accum = 1;
  // Length: `steps` optimizer steps; 0 = fit to the time budget (measured before step 0).
  int64_t steps = 0;
  double time_budget_minutes = 0;  // 0 = none; otherwise also a hard stop
  // Optimizer + schedule (V3 §4.2 shape: warmup → constant → cosine → floor).
  LrScheduleSpec lr;
  double weight_decay = 0.1, beta1 = 0.9, beta2 = 0.95, eps = 1e-8;
  double clip = 1.0;
  uint64_t seed = 0;
  double init_std = 0.006;  // V3 §4.2: N(0, 0.006)
  // MTP weight λ: mtp_lambda for the first mtp_lambda_switch_frac of the steps, then mtp_lambda_final.
  StepFunction mtp_lambda{.before = 0.3, .after = 0.1, .switch_frac = 10.0 / 14.8};
  // Balancing: aux_free (bias updates with speed γ + sequence-wise loss α), aux_loss (classic expert-level
  // auxiliary loss α, no bias), none. γ is switched off for the last gamma_off_frac of the steps.
  BalanceMode balance = BalanceMode::AuxFree;
  double balance_alpha = 1e-4;
  double gamma = 1e-3;
  double gamma_off_frac = 0.5 / 14.8;
  // Evaluation / checkpoints / logging.
  int64_t eval_every = 100;  // steps; 0 = only at the end
  int64_t eval_batches = 8;  // validation batches of (batch_seqs / grad_accum) sequences
  int64_t ckpt_every = 0;    // steps; 0 = only at the end
  int64_t log_every = 1;     // metrics JSONL every N steps (always on eval/ckpt steps)
  // Mixed precision (train/fp8_recipe.h): "precision": "fp32" | "bf16" | "fp8", and for fp8 an optional
  // "fp8": {"scale": "fp32" | "ue8m0", "accum_bits": 13, "promote_every": 128, "dgrad_quant": "1x128" | "128x128"}.
  Precision precision = Precision::FP32;
  Fp8Recipe fp8{};
  // DeepSeek-V3.2's indexer training (train/indexer_grad.h), only for models with an indexer:
  // "dsa": {"stage": "dense_warmup" | "sparse", "indexer_lr": ..., "kl_weight": 1.0}. The indexer's learning
  // rate follows the run's schedule scaled by indexer_lr / lr (indexer_lr < 0: lr itself).
  DsaOptions dsa{};
  double indexer_lr = -1;
  bool indexer_model = false;  // the model has an indexer (parse_train_config sets it): "dsa" is written

  LinearPrecision linear_precision() const { return {.mode = precision, .fp8 = fp8}; }

  int64_t micro_batch() const { return (batch_seqs + grad_accum - 1) / grad_accum; }
  nlohmann::json to_json() const;  // the "training" object, written by the table that parses it
};

struct TrainSpec {
  ModelConfig model;
  nlohmann::json model_json;  // the HF part, with vocab/bos/eos filled in
  TrainOptions train;
  nlohmann::json raw;  // the whole TRAIN.json as resolved (model_json + "training": to_json())
};

struct TokenizerFacts {
  int64_t vocab_size = 0, bos_id = -1, eos_id = -1;
};

// Parses TRAIN.json text. `tok` fills vocab_size / bos / eos when absent and is checked against them when
// present. Throws dsv3::Error naming `label` and the key.
TrainSpec parse_train_config(const nlohmann::json& j, const std::optional<TokenizerFacts>& tok,
                             const std::string& label = "TRAIN.json");
TrainSpec load_train_config(const std::string& path, const std::optional<TokenizerFacts>& tok);

const char* balance_mode_name(BalanceMode m);
const char* dsa_stage_name(DsaStage s);

}  // namespace dsv3::train
