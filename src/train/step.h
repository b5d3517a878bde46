// One training step's forward + backward over a batch of token sequences (llm.c style: explicit backward
// per module, each module saving what its backward needs). Implemented in src/train/*.cc by module:
// embedding, rmsnorm, mla, ffn, moe (gate + experts + shared), mtp, head + cross-entropy; the step hands
// them what they share in one train::StepContext (train/step_context.h). BalanceMode and LayerRouting live
// beside the MoE balancing code (train/balance.h).
#pragma once

#include <cstdint>
#include <vector>

#include "model/config.h"
#include "train/balance.h"
#include "train/fp8_recipe.h"
#include "train/params.h"

namespace dsv3::train {

struct LossOptions {
  double mtp_lambda = 0.3;     // weight of the mean MTP cross-entropy (0 disables MTP)
  double balance_alpha = 0.0;  // sequence-wise balance loss weight (V3 eqs. 17–20; paper: 1e-4)
  BalanceMode mode = BalanceMode::AuxFree;
  // Precision of the linear layers of experts, shared experts, dense MLPs, MLA projections and the MTP
  // projection (train/fp8_recipe.h); float32 by default.
  LinearPrecision linear{};
};

struct StepResult {
  double loss = 0.0;     // total objective: main CE + λ·MTP CE + α·Σ balance
  double main_ce = 0.0;  // mean next-token cross-entropy over valid rows
  double mtp_ce = 0.0;   // mean MTP cross-entropy (row i predicts token i+2), 0 without MTP
  int64_t tokens = 0;    // rows contributing to main_ce
  std::vector<LayerRouting> routing;
};

// tokens: [batch, seq_len] row-major. Loss rows: position i of each sequence predicts token i+1
// (i ≤ seq_len−2); MTP row i predicts token i+2 (i ≤ seq_len−3). Means are over all valid rows of the batch.
// grads (same layout as params) are ACCUMULATED into (callers zero them; gradient accumulation works by
// calling again), scaled by `grad_scale` (e.g. 1/micro_batches).
// The MTP module's embedding and head are the main model's (shared, as in the paper): their gradients
// land on model.embed_tokens / lm_head. e_score_correction_bias gets no gradient.
StepResult forward_backward(const ModelConfig& c, const Params& params, const int32_t* tokens, int64_t batch,
                            int64_t seq_len, const LossOptions& opt, Params& grads, float grad_scale = 1.0f);

// Forward only (validation): same losses, no gradients.
StepResult evaluate(const ModelConfig& c, const Params& params, const int32_t* tokens, int64_t batch, int64_t seq_len,
                    const LossOptions& opt);

}  // namespace dsv3::train
