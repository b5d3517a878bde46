// One training step's forward + backward over a batch of token sequences (llm.c style: explicit backward
// per module, each module saving what its backward needs). Implemented in src/train/*.cc by module:
// embedding, rmsnorm, mla, ffn, moe (gate + experts + shared), mtp, head + cross-entropy; the step hands
// them what they share in one train::StepContext (train/step_context.h). BalanceMode and LayerRouting live
// beside the MoE balancing code (train/balance.h).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "model/config.h"
#include "train/balance.h"
#include "train/expert_parallel.h"
#include "train/fp8_recipe.h"
#include "train/params.h"

namespace dsv3::train {

// DeepSeek-V3.2's indexer training (train/indexer_grad.h), for models with an indexer (ignored otherwise).
//   Sparse       MLA attends to S_t; the LM loss trains the main model, kl_weight · Σ_layers KL the indexer.
//   DenseWarmup  MLA attends to every key; only the indexer loss is back-propagated (the main model is
//                frozen: its gradients stay zero, and the main model's backward is not run at all).
struct DsaOptions {
  DsaStage stage = DsaStage::Sparse;
  double kl_weight = 1.0;
};

struct LossOptions {
  double mtp_lambda = 0.3;     // weight of the mean MTP cross-entropy (0 disables MTP)
  double balance_alpha = 0.0;  // sequence-wise balance loss weight (V3 eqs. 17–20; paper: 1e-4)
  BalanceMode mode = BalanceMode::AuxFree;
  // Precision of the linear layers of experts, shared experts, dense MLPs, MLA projections and the MTP
  // projection (train/fp8_recipe.h); float32 by default.
  LinearPrecision linear{};
  DsaOptions dsa{};
};

// One layer's indexer in a step (V3.2): its KL loss (mean over the rows) and the recall of the dense attention
// mass by its selection, Σ_{s ∈ S_t} p_dense[t, s] averaged over the `recall_rows` rows with t + 1 > index_topk.
struct IndexerStats {
  int64_t layer = 0;  // HF layer index (the MTP modules' after the main layers)
  double kl = 0.0, recall = 0.0;
  int64_t recall_rows = 0;
};

// Callbacks during forward_backward's backward, for overlapping gradient communication (e.g. a layer's
// data-parallel all-reduce) with the rest of the backward. grads_ready(l) is called exactly once per HF layer
// index and once with −1, in this order: the MTP modules last to first (l = num_hidden_layers + k, k =
// num_nextn_predict_layers − 1 … 0), then the decoder layers last to first (l = num_hidden_layers − 1 … 0),
// then −1. When grads_ready(l) is called, this call's contribution to every gradient of layer l is in:
//   l ≥ 0: every tensor named model.layers.{l}.* that the grads hold — norms, MLA, dense MLP or router gate,
//          shared experts and the routed experts this rank holds (under expert parallelism these include every
//          EP rank's tokens: the layer's backward exchange has completed on all of them). An MTP module whose
//          loss did not run (mtp_lambda = 0, sequences too short) is reported too: its gradients are untouched.
//   −1:    model.embed_tokens, model.norm, lm_head (the tensors the MTP modules share with the main model).
// The callback runs on the calling thread, between modules; it must not modify gradients of layers not yet
// reported. evaluate() calls nothing.
struct StepHooks {
  std::function<void(int64_t layer)> grads_ready;
};

struct StepResult {
  double loss = 0.0;                  // total objective: main CE + λ·MTP CE + α·Σ balance (+ kl_weight·Σ KL)
  double main_ce = 0.0;               // mean next-token cross-entropy over valid rows
  double mtp_ce = 0.0;                // mean MTP cross-entropy (row i predicts token i+2), 0 without MTP
  int64_t tokens = 0;                 // rows contributing to main_ce
  std::vector<LayerRouting> routing;  // per MoE layer: load of this rank's tokens (and its balance loss)
  std::vector<IndexerStats> indexer;  // V3.2: per layer with an indexer, main layers then MTP modules
  double indexer_loss = 0.0;          // kl_weight · Σ_layers KL (part of loss)
  // Where the call's time went on this rank: `seconds` of wall time, of which comm.post_s posting and
  // comm.wait_s waiting in the EP exchanges (the up-front check's allgather included); the rest is compute.
  // Without expert parallelism comm is all zero.
  double seconds = 0.0;
  CommTimes comm;
  bool overlapped = false;  // ran as two overlapped micro-batches (ExpertParallel::overlap)
};

// tokens: [batch, seq_len] row-major. Loss rows: position i of each sequence predicts token i+1
// (i ≤ seq_len−2); MTP row i predicts token i+2 (i ≤ seq_len−3). Means are over all valid rows of the batch.
// grads (same layout as params) are ACCUMULATED into (callers zero them; gradient accumulation works by
// calling again), scaled by `grad_scale` (e.g. 1/micro_batches).
// The MTP module's embedding and head are the main model's (shared, as in the paper): their gradients
// land on model.embed_tokens / lm_head. e_score_correction_bias gets no gradient.
//
// Expert parallelism (ep non-null, train/expert_parallel.h): tokens are THIS rank's sequences; params and
// grads hold at least the routed experts of ep->scope (Params(c, ep->scope)); the MoE layers exchange rows
// with the other EP ranks, which must call forward_backward at the same time (collective over ep->ep).
// Losses and routing are this rank's; the owned experts' gradients cover every EP rank's rows, each scaled
// by its source rank's grad_scale. To get the gradient of the union of the ranks' batches, give each rank
// grad_scale = (its valid rows) / (all ranks' valid rows) and sum the gradients (allreduce_ep_grads).
// ep == nullptr is the single-process step. With ep->overlap (and every EP rank having >= 2 sequences) the
// call runs its sequences as two micro-batches, the first B/2 and the rest, whose exchanges overlap each
// other's compute (train/micro_batch_turns.h); results are the same up to the order of gradient sums, and
// hooks.grads_ready(l) is called once both micro-batches are done with layer l.
StepResult forward_backward(const ModelConfig& c, const Params& params, const int32_t* tokens, int64_t batch,
                            int64_t seq_len, const LossOptions& opt, Params& grads, float grad_scale = 1.0f,
                            const ExpertParallel* ep = nullptr, const StepHooks& hooks = {});

// Forward only (validation): same losses, no gradients. With ep, collective over the EP group as above.
StepResult evaluate(const ModelConfig& c, const Params& params, const int32_t* tokens, int64_t batch, int64_t seq_len,
                    const LossOptions& opt, const ExpertParallel* ep = nullptr);

}  // namespace dsv3::train
