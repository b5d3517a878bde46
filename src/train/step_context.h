// What every module of one training step shares (train/step.h builds it once per call and passes it down):
// the model's config, the rope table, the batch shape, the balance-loss mode and weight, and the precision
// of the linear layers. Each module keeps its own data explicit — weights, gradients, inputs, saved
// activations, outputs — and reads everything else here.
//
// Rows: the B sequences of T tokens are stacked sequence by sequence, m = B·T rows of [hidden] each; row r
// is position r % T of sequence r / T. MTP module k runs its decoder layer over T_k = T − 1 − k rows per
// sequence (with_seq_len(T_k)).
#pragma once

#include <cstdint>

#include "model/config.h"
#include "model/rope.h"
#include "train/balance.h"
#include "train/fp8_recipe.h"

namespace dsv3::train {

struct ExpertParallel;  // train/expert_parallel.h
class WeightGradStore;  // train/weight_grad_store.h
struct CommTimes;       // train/expert_parallel.h
struct Turn;            // train/micro_batch_turns.h

// DeepSeek-V3.2's two training stages of the lightning indexer (train/indexer_grad.h): the dense warm-up
// (MLA attends to every key, only the indexer learns) and sparse training (MLA attends to S_t).
enum class DsaStage { DenseWarmup, Sparse };

struct StepContext {
  const ModelConfig& config;
  const RopeTable& rope;  // covers positions [0, seq_len)
  int64_t batch = 1;      // B sequences
  int64_t seq_len = 1;    // T tokens per sequence
  // The segments of the MoE balance loss (train/balance.h; None: no balance loss).
  BalanceMode balance = BalanceMode::None;
  // Multiplies the balance loss's gradient in the MoE backward: α times the step's gradient scale (0 skips).
  float balance_weight = 0.0f;
  // The precision of the MLA projections, the dense MLPs, the experts (routed and shared) and the MTP
  // projection (train/fp8_recipe.h). The router, norms, attention core, embedding and head stay float32.
  LinearPrecision linear{};
  // Expert parallelism (train/expert_parallel.h): the MoE layers run their routed experts on the owners
  // through all-to-all exchanges. nullptr: every expert here (single process).
  const ExpertParallel* ep = nullptr;
  // Two-micro-batch overlap (train/micro_batch_turns.h): this micro-batch's turn; the EP exchanges are
  // non-blocking and hand the turn to the other micro-batch while in flight. nullptr: they block.
  const Turn* turn = nullptr;
  // Where the EP exchanges add their post / wait times (nullptr: not recorded).
  CommTimes* comm_times = nullptr;

  // Zero-bubble B/W split (train/weight_grad_store.h): the big linear layers push their weight gradients here
  // for a later W instead of computing them. nullptr: computed at once.
  WeightGradStore* wgrad = nullptr;

  // V3.2 (config.has_indexer()): the stage, and the multiplier of the indexer loss's gradient — kl_weight times
  // the step's gradient scale (0: the indexer gets no gradient).
  DsaStage dsa = DsaStage::Sparse;
  float kl_scale = 0.0f;

  int64_t rows() const { return batch * seq_len; }  // m = B·T
  // The same step over sequences of t tokens (an MTP module's decoder layer).
  StepContext with_seq_len(int64_t t) const {
    StepContext s = *this;
    s.seq_len = t;
    return s;
  }
};

}  // namespace dsv3::train
