// SwiGLU feed-forward (reference: MLP / Expert; model/ffn.h), forward with saved activations and backward:
//   g = x·w1ᵀ,  u = x·w3ᵀ,  a = silu(g) ⊙ u,  y = a·w2ᵀ
//   da = dy·w2,  dg = da ⊙ u ⊙ σ(g)(1 + g(1 − σ(g))),  du = da ⊙ silu(g),  dx += dg·w1 + du·w3
//   dw2 += dyᵀ·a,  dw1 += dgᵀ·x,  dw3 += duᵀ·x
#pragma once

#include <cstdint>
#include <vector>

#include "train/layout.h"
#include "train/step_context.h"

namespace dsv3::train {

struct FfnActs {
  std::vector<float> gate;  // [m, inter] g = x·w1ᵀ
  std::vector<float> up;    // [m, inter] u = x·w3ᵀ
  std::vector<float> sig;   // [m, inter] σ(g)
  std::vector<float> act;   // [m, inter] a = silu(g) ⊙ u
};

// x [m, hidden] → y [m, hidden] (overwritten). m is explicit, not ctx.rows(): an expert runs over the rows
// routed to it. The three linear layers run in ctx.linear (train/fp8_recipe.h).
void ffn_forward(const StepContext& ctx, const FfnP& w, const float* x, int64_t m, float* y, FfnActs& a);

// dy [m, hidden]; dx [m, hidden] += ∂L/∂x (skipped when null); weight gradients accumulate into g.
void ffn_backward(const StepContext& ctx, const FfnP& w, const FfnG& g, const float* x, int64_t m, const FfnActs& a,
                  const float* dy, float* dx);

}  // namespace dsv3::train
