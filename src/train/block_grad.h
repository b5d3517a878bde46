// One decoder layer for training (reference: Block in inference/model.py; Model::run_block):
//   h_mid = h + mla(attn_norm(h));   h_out = h_mid + ffn_or_moe(ffn_norm(h_mid))
// forward with saved activations, backward in reverse.
#pragma once

#include <cstdint>
#include <vector>

#include "model/config.h"
#include "model/rope.h"
#include "train/ffn_grad.h"
#include "train/layout.h"
#include "train/mla_grad.h"
#include "train/moe_grad.h"

namespace dsv3::train {

struct BlockActs {
  std::vector<float> x_in;   // [m, hidden] residual stream entering the layer
  std::vector<float> rs1;    // [m] attn_norm rstd
  std::vector<float> xn1;    // [m, hidden] attn_norm(x_in)
  MlaActs attn;
  std::vector<float> h_mid;  // [m, hidden] x_in + attention
  std::vector<float> rs2;    // [m] ffn_norm rstd
  std::vector<float> xn2;    // [m, hidden] ffn_norm(h_mid)
  FfnActs mlp;               // dense layers
  MoeActs moe;               // MoE layers
};

// h [B·T, hidden]: the residual stream, updated in place (h_in → h_out). `prec`: the precision of the
// layer's MLA projections and MLP / expert linear layers (train/fp8_recipe.h).
void block_forward(const ModelConfig& c, const RopeTable& rope, const LayerP& w, int64_t B, int64_t T,
                   BalanceMode balance, float* h, BlockActs& a, const LinearPrecision& prec = {});

// dh [B·T, hidden]: ∂L/∂h_out on entry, ∂L/∂h_in on return. Weight gradients accumulate into g.
void block_backward(const ModelConfig& c, const RopeTable& rope, const LayerP& w, const LayerG& g, int64_t B,
                    int64_t T, const BlockActs& a, float balance_weight, float* dh,
                    const LinearPrecision& prec = {});

}  // namespace dsv3::train
