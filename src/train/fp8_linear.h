// A training linear layer y = x·Wᵀ under the bf16 / fp8 recipes (train/fp8_recipe.h), its three GEMMs:
//   Fprop  y  = x · Wᵀ        fp8: x in 1×128 tiles, W in 128×128 blocks
//   Dgrad  dx += dy · W       fp8: dy in 1×128 tiles (128×128 blocks with dgrad_block_quant), Wᵀ = the same
//                                  blocks transposed (exact)
//   Wgrad  dW += dyᵀ · x      fp8: dyᵀ in 1×128 tiles (dy in 128×1: 128 tokens of one channel); xᵀ re-quantized
//                                  from x's 1×128 FP8 tiles into 128×1 tiles (the report's double quantization)
// bf16: x, W and dy rounded to bfloat16 (nearest-even), then float32 GEMMs. Outputs and weight gradients are
// float32 in both. The backward quantizes x again from the saved float32 activation instead of caching its FP8
// copy — the same values (quantization is a function of x), without the memory saving.
#pragma once

#include <cstdint>

#include "train/fp8_recipe.h"

namespace dsv3::train {

// x [m, k], w [n, k] → y [m, n] (overwritten). p.mode must be BF16 or FP8.
void lowp_linear_forward(const float* x, const float* w, int64_t m, int64_t n, int64_t k, float* y,
                         const LinearPrecision& p);

// dy [m, n]; dx [m, k] += dy·w (skipped when null); dw [n, k] += dyᵀ·x (skipped when null).
void lowp_linear_backward(const float* dy, const float* x, const float* w, int64_t m, int64_t n, int64_t k, float* dx,
                          float* dw, const LinearPrecision& p);

}  // namespace dsv3::train
