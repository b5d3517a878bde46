// Multi-token prediction module k for training (V3 §2.2; DESIGN.md; Model::mtp_forward), forward with saved
// activations and backward. Per sequence, module k has rows i = 0 .. T−2−k (T = the main sequence length):
//   x_i = eh_proj(concat[enorm(embed(t[i+k+1])), hnorm(prev_i)])      prev = main model's hidden after
//   x   = decoder_layer(x)  (own causal attention, rope position i)         model.norm (k = 0), else module
//   hn  = shared_head.norm(x);  logits = head(hn);  row i predicts t[i+k+2]     k−1's output before its norm
// The embedding and head are the main model's (shared, as in the paper), so their gradients land there.
#pragma once

#include <cstdint>
#include <vector>

#include "train/block_grad.h"
#include "train/layout.h"
#include "train/step_context.h"

namespace dsv3::train {

struct MtpActs {
  int64_t rows_per_seq = 0;   // T_k = T − 1 − k
  std::vector<int32_t> next;  // [B·T_k] embedded tokens t[b, i + k + 1]
  std::vector<float> e;       // [B·T_k, hidden] embed(next)
  std::vector<float> e_rstd;  // [B·T_k]
  std::vector<float> hin;     // [B·T_k, hidden] previous stage's rows
  std::vector<float> h_rstd;  // [B·T_k]
  std::vector<float> cat;     // [B·T_k, 2·hidden] [enorm(e), hnorm(hin)]
  BlockActs block;
  std::vector<float> out;       // [B·T_k, hidden] module output before shared_head.norm (next module's input)
  std::vector<float> out_rstd;  // [B·T_k]
  std::vector<float> hn;        // [B·T_k, hidden] shared_head.norm(out): the head's input
};

// ctx: the main step's (B = ctx.batch, T = ctx.seq_len); the module's decoder layer runs over
// ctx.with_seq_len(T_k). tokens [B, T]; prev [B·(T_k + 1), hidden]: the previous stage's rows. Needs
// T_k = T − 1 − k >= 1.
void mtp_forward(const StepContext& ctx, const MtpP& w, const float* embed, const int32_t* tokens, int64_t k,
                 const float* prev, MtpActs& a);

// dhn [B·T_k, hidden]: ∂L/∂hn from the head. dout [B·T_k, hidden]: ∂L/∂out from module k+1 on entry (zeros
// for the last module); used as scratch. Accumulates into dprev [B·(T_k + 1), hidden], dembed and g.
void mtp_backward(const StepContext& ctx, const MtpP& w, const MtpG& g, const MtpActs& a, const float* dhn, float* dout,
                  float* dprev, float* dembed);

}  // namespace dsv3::train
