// Multi-head latent attention for training (DeepSeek-V2 §2.1, V3 §2.1.1), forward with saved activations
// and explicit backward. Computes exactly what model/mla.h computes, in the non-absorbed form (k_nope and v
// expanded through wkv_b; mathematically identical to the absorbed inference path):
//   q        = wq_b(q_norm(wq_a x))  or  wq x                         [m, H, dn + dr]
//   c, k_pe  = split(wkv_a x)                                         [m, C], [m, dr]
//   cn       = kv_norm(c);  k_pe ← rope(k_pe);  q_pe ← rope(q_pe)     (adjacent pairs, position = row in its sequence)
//   k_nope, v = split_h(wkv_b cn)                                     [m, H, dn], [m, H, dv]
//   P_h      = causal_softmax(scale · (q_nope_h k_nope_hᵀ + q_pe_h k_peᵀ))   per sequence, [T, T]
//   out      = wo(concat_h P_h v_h)
// The rows are B sequences of T tokens each, stacked; each attends causally within its own sequence.
//
// DeepSeek-V3.2 (config.has_indexer()): the layer's lightning indexer (train/indexer_grad.h) scores and selects
// S_t from x and the query latent qn before the attention; in the sparse stage (ctx.dsa) each row's softmax
// runs over S_t only (the other keys masked, so P_h is zero there and the backward needs nothing more), in
// the dense warm-up over every key. The indexer loss's target (Σ_h P_h / H) and the recall of the dense
// attention mass are taken from the same forward; mla_backward adds the indexer loss's gradient.
#pragma once

#include <cstdint>
#include <vector>

#include "train/indexer_grad.h"
#include "train/layout.h"
#include "train/step_context.h"

namespace dsv3::train {

struct MlaActs {
  std::vector<float> qa;       // [m, q_lora_rank] wq_a x            (q-LoRA only)
  std::vector<float> qa_rstd;  // [m]                                (q-LoRA only)
  std::vector<float> qn;       // [m, q_lora_rank] q_norm(qa)        (q-LoRA only)
  std::vector<float> q;        // [m, H, dn + dr] queries, the dr part rotated
  std::vector<float> c;        // [m, C] latent: rows [0, C) of wkv_a times x
  std::vector<float> c_rstd;   // [m]
  std::vector<float> cn;       // [m, C] kv_norm(c)
  std::vector<float> kpe;      // [m, dr] rope(k_pe), k_pe = rows [C, C + dr) of wkv_a times x
  std::vector<float> kvb;      // [m, H, dn + dv] wkv_b cn: k_nope ++ v per head
  std::vector<float> probs;    // [B, H, T, T] causal softmax, zero above the diagonal
  std::vector<float> o;        // [m, H * dv] attention output before wo
  IndexerActs ix;              // V3.2: the indexer's scores, selection, target and loss
};

// x [B·T, hidden] (already attn_norm'ed) → out [B·T, hidden]; B, T = ctx.batch, ctx.seq_len, and ctx.rope
// must cover positions [0, T). The projections wq_a, wq_b / wq, wkv_a, wkv_b, wo run in ctx.linear
// (attention itself stays float32).
void mla_forward(const StepContext& ctx, const MlaP& w, const float* x, float* out, MlaActs& a);

// dout [B·T, hidden]; dx [B·T, hidden] += ∂L/∂x; weight gradients accumulate into g.
void mla_backward(const StepContext& ctx, const MlaP& w, const MlaG& g, const float* x, const MlaActs& a,
                  const float* dout, float* dx);

}  // namespace dsv3::train
