// DeepSeekMoE for training (V3 §2.1.2, eqs. 12–16; model/moe.h), forward with saved activations and backward:
//   s = sigmoid(x·Gᵀ) | softmax(x·Gᵀ);  experts selected by model/router.h (on s + bias, group-limited);
//   y = shared(x) + Σ_{k} g_k · expert_{e_k}(x),   g_k = f · s_{e_k} / Z  (Z = Σ_k s_{e_k} when normalised)
// Gradients flow through the selected gates (gather of s, normalisation, routed scale) into gate.weight —
// not through the discrete selection; the bias gets none.
//
// Balance loss (optional, reported per layer and added to the objective by the caller with weight α):
// over segments — each sequence (BalanceMode::AuxFree: V3's complementary sequence-wise loss, eqs. 17–20)
// or the whole batch (BalanceMode::AuxLoss: V2's expert-level loss) — with N tokens each:
//   f_i = E / (K·N) · #{tokens of the segment selecting i},  P_i = (1/N) Σ_t s'_{t,i},  s' = s / Σ_j s_j
//   L_bal = mean over segments of Σ_i f_i P_i        (gradient through P only; f is a count)
// For softmax scores s' = s, so the AuxLoss form is V2's eq. (f_i P_i with the softmax affinities).
#pragma once

#include <cstdint>
#include <vector>

#include "train/balance.h"
#include "train/expert_parallel.h"
#include "train/ffn_grad.h"
#include "train/layout.h"
#include "train/step_context.h"

namespace dsv3::train {

struct MoeActs {
  std::vector<float> scores;                // [m, E] affinities s (unbiased)
  std::vector<int64_t> experts;             // [m, K] selected experts
  std::vector<float> gates;                 // [m, K] gate weights
  std::vector<std::vector<int64_t>> slots;  // per expert: its slots r·K + k, in row order
  std::vector<FfnActs> expert_acts;         // per expert, over its slots' rows (single process)
  EpActs ep;                                // with expert parallelism: the exchange and the owned experts' acts
  std::vector<float> yslot;                 // [m·K, hidden] expert outputs before gating
  bool has_shared = false;
  FfnActs shared;
  std::vector<int64_t> load;  // [E] tokens routed to each expert
  // Balance loss: value (before α) and ∂L_bal/∂s'_{t,i} for the tokens of each segment, [segments, E].
  double balance = 0.0;
  int64_t seg_len = 0;
  std::vector<float> bal_coef;
};

// x [B·T, hidden] (already ffn_norm'ed) → out [B·T, hidden]. ctx.balance chooses the balance-loss segments
// (None: no balance loss). The experts' and shared experts' linear layers run in ctx.linear; the router
// stays float32. With ctx.ep the routed experts run on their owners (train/expert_parallel.h; collective
// over the EP group, in forward and backward alike); routing, gates, shared experts and the balance loss
// stay local to this rank's rows.
void moe_forward(const StepContext& ctx, const MoeP& w, const float* x, float* out, MoeActs& a);

// dout [B·T, hidden]; dx [B·T, hidden] += ∂L/∂x; weight gradients accumulate into g. ctx.balance_weight
// multiplies the balance loss's gradient (α times the caller's gradient scale; 0 skips it).
void moe_backward(const StepContext& ctx, const MoeP& w, const MoeG& g, const float* x, const MoeActs& a,
                  const float* dout, float* dx);

}  // namespace dsv3::train
