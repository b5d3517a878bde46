// One decoder layer for training (reference: Block in inference/model.py; Model::run_block):
//   h_mid = h + mla(attn_norm(h));   h_out = h_mid + ffn_or_moe(ffn_norm(h_mid))
// forward with saved activations, backward in reverse.
#pragma once

#include <cstdint>
#include <vector>

#include "train/ffn_grad.h"
#include "train/layout.h"
#include "train/mla_grad.h"
#include "train/moe_grad.h"
#include "train/step_context.h"

namespace dsv3::train {

struct BlockActs {
  std::vector<float> x_in;  // [m, hidden] residual stream entering the layer
  std::vector<float> rs1;   // [m] attn_norm rstd
  std::vector<float> xn1;   // [m, hidden] attn_norm(x_in)
  MlaActs attn;
  std::vector<float> h_mid;  // [m, hidden] x_in + attention
  std::vector<float> rs2;    // [m] ffn_norm rstd
  std::vector<float> xn2;    // [m, hidden] ffn_norm(h_mid)
  FfnActs mlp;               // dense layers
  MoeActs moe;               // MoE layers
};

// h [B·T, hidden]: the residual stream, updated in place (h_in → h_out); B, T = ctx.batch, ctx.seq_len.
void block_forward(const StepContext& ctx, const LayerP& w, float* h, BlockActs& a);

// dh [B·T, hidden]: ∂L/∂h_out on entry, ∂L/∂h_in on return. Weight gradients accumulate into g.
void block_backward(const StepContext& ctx, const LayerP& w, const LayerG& g, const BlockActs& a, float* dh);

}  // namespace dsv3::train
