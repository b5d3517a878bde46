// The SwiGLU feed-forward block used by dense layers, routed experts and shared experts
// (reference: MLP / Expert in inference/model.py): y = w2(silu(w1 x) ⊙ w3 x).
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/swiglu.h"
#include "model/weights.h"

namespace dsv3 {

// Scratch reused across calls (grown on demand).
struct FfnScratch {
  std::vector<float> gate, up;
  kernels::SwigluScratch fused;  // the decode regime (kernels/swiglu.h)
};

// x: [m, hidden] → y: [m, hidden]. Few rows (decode): one fused pass, kernels::swiglu_experts. `lin`: the
// options of the three projections (the model's, model/options.h; {} = exact).
void ffn_forward(const FfnWeights& w, const float* x, int64_t m, float* y, FfnScratch& s,
                 const kernels::LinearOptions& lin = {});

}  // namespace dsv3
