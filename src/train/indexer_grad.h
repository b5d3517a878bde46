// Training of DeepSeek Sparse Attention's lightning indexer (DeepSeek-V3.2-Exp report §2.1, "continued
// pre-training"; model/indexer.h is the inference side). Per layer, over the B sequences of T rows:
//   q        = rope(wq_b(qr))                  [m, H_I, D_I]   qr = MLA's q_norm(wq_a(x)), DETACHED
//   k        = rope(LayerNorm(wk(x)))          [m, D_I]        x = attn_norm(h), DETACHED
//   w[t, h]  = weights_proj(x)[t, h] · H_I^−½ · D_I^−½
//   I[t, s]  = Σ_h w[t, h] · max(0, q[t, h] · k[s])              s ≤ t, within the row's sequence
//   S_t      = the index_topk keys with the largest I[t, ·] (ties: the lower position); all of 0..t when
//              t + 1 ≤ index_topk
// The loss (report eqs. 3 and 4), per layer, with the target p detached from the main model:
//   dense warm-up  p[t, ·] = Σ_h P_h[t, ·] / H     P_h: MLA's causal softmax over 0..t
//                  L = mean_t KL(p[t, 0..t] ‖ softmax(I[t, 0..t]))
//   sparse         p[t, ·] = Σ_h P_h[t, ·] / H     P_h: MLA's softmax over S_t only (what the sparse layer attends)
//                  L = mean_t KL(p[t, S_t] ‖ softmax(I[t, S_t]))
// Σ_h P_h / H is the report's "summed over heads, L1-normalised" (each P_h row sums to one). The report
// writes Σ_t; a mean over the B·T rows differs by the constant B·T (kl_weight absorbs any scale) and keeps
// the loss comparable across batch shapes. ∂L/∂I[t, s] = (Σ_K p) softmax(I)_s − p_s over the key set K.
//
// Detaching: x and qr are the indexer's inputs but receive no gradient from L, and p receives none either,
// so L trains only wq_b, wk, k_norm (weight and bias) and weights_proj; the selection is a discrete choice,
// so the LM loss gives the indexer no gradient. The two losses train disjoint parameter sets.
//
// Precision (a deliberate deviation from inference): training computes the indexer in float32 without the
// Hadamard rotation and without the E4M3 rounding of q and k. The Hadamard rotation is orthogonal and applied
// to both q and k, so without the rounding it leaves every q·k — hence I — unchanged; the rounding is
// piecewise constant (zero derivative almost everywhere), so the only usable gradient is the straight-through
// one, which is the float32 gradient. At inference the rounding perturbs I by ~1 % of a row's largest score
// (tests/train/indexer_grad_test.cc measures it against v32_tiny), which moves only near-tied selections.
// Likewise the training MLA keeps its latent c in float32 (inference simulates the FP8 latent cache).
#pragma once

#include <cstdint>
#include <vector>

#include "train/layout.h"
#include "train/step_context.h"

namespace dsv3::train {

using IndexerP = IndexerW<FloatKit<const float>>;
using IndexerG = IndexerW<FloatKit<float>>;

struct IndexerActs {
  std::vector<float> q;           // [m, H_I, D_I] rope'd queries
  std::vector<float> kpre;        // [m, D_I] wk x (before the LayerNorm)
  std::vector<float> krstd;       // [m] 1 / √(var + eps) of the LayerNorm
  std::vector<float> k;           // [m, D_I] rope(LayerNorm(wk x))
  std::vector<float> wts;         // [m, H_I] weights_proj(x) · H_I^−½ · D_I^−½
  std::vector<float> scores;      // [B, T, T] I[t, s] for s ≤ t (zero above the diagonal)
  std::vector<uint8_t> selected;  // [B, T, T] 1 where s ∈ S_t
  std::vector<int64_t> count;     // [m] |S_t|
  std::vector<float> target;      // [B, T, T] p (the loss's target), set by the caller after attention
  double loss = 0.0;              // mean_t KL of this layer (set by indexer_loss)
  double recall = 0.0;            // mean over rows that drop keys of Σ_{s ∈ S_t} p_dense[t, s]
  int64_t recall_rows = 0;        // rows with t + 1 > index_topk
};

// Scores and selection. x [B·T, hidden] (attn_norm'ed), qr [B·T, q_lora_rank]; ctx.rope covers [0, T).
void indexer_forward(const StepContext& ctx, const IndexerP& w, const float* x, const float* qr, IndexerActs& a);

// After the caller has filled a.target (rows summing to one over the row's key set: 0..t in the dense
// warm-up, S_t in the sparse stage): the loss into a.loss, and the recall of `dense` ([B, T, T], MLA's
// head-averaged dense attention) by S_t into a.recall / a.recall_rows.
void indexer_loss(const StepContext& ctx, const float* dense, IndexerActs& a);

// ∂(ctx.kl_scale · L)/∂ of the indexer's weights, accumulated into g (x, qr as in the forward; they get no
// gradient). Nothing when ctx.kl_scale is 0.
void indexer_backward(const StepContext& ctx, const IndexerP& w, const IndexerG& g, const float* x, const float* qr,
                      const IndexerActs& a);

}  // namespace dsv3::train
