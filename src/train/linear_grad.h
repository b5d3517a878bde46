// A linear layer without bias, y = x·Wᵀ (reference: Linear in inference/model.py), over float32 master
// weights, and its backward:  dx += dy·W,  dW += dyᵀ·x.  GEMMs: kernels/matmul.h.
#pragma once

#include <cstdint>

namespace dsv3::train {

// x [m, k], w [n, k] → y [m, n] (overwritten).
void linear_forward(const float* x, const float* w, int64_t m, int64_t n, int64_t k, float* y);

// dy [m, n]; dx [m, k] += dy·w (skipped when null); dw [n, k] += dyᵀ·x (skipped when null).
void linear_backward(const float* dy, const float* x, const float* w, int64_t m, int64_t n, int64_t k, float* dx,
                     float* dw);

}  // namespace dsv3::train
