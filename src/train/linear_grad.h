// A linear layer without bias, y = x·Wᵀ (reference: Linear in inference/model.py), over float32 master
// weights, and its backward:  dx += dy·W,  dW += dyᵀ·x.  GEMMs: kernels/matmul.h.
#pragma once

#include <cstdint>

#include "train/fp8_recipe.h"

namespace dsv3::train {

// x [m, k], w [n, k] → y [m, n] (overwritten).
void linear_forward(const float* x, const float* w, int64_t m, int64_t n, int64_t k, float* y);

// dy [m, n]; dx [m, k] += dy·w (skipped when null); dw [n, k] += dyᵀ·x (skipped when null).
void linear_backward(const float* dy, const float* x, const float* w, int64_t m, int64_t n, int64_t k, float* dx,
                     float* dw);

// The same under a precision recipe (train/fp8_recipe.h): fp32 is the two functions above; bf16 and fp8 run
// the three GEMMs on rounded / quantized inputs (train/fp8_linear.h).
void linear_forward(const float* x, const float* w, int64_t m, int64_t n, int64_t k, float* y,
                    const LinearPrecision& p);
void linear_backward(const float* dy, const float* x, const float* w, int64_t m, int64_t n, int64_t k, float* dx,
                     float* dw, const LinearPrecision& p);

// The same with the weight gradient deferred (train/weight_grad_store.h): dx now, dW pushed to `store` (null:
// the call above, unchanged).
class WeightGradStore;
void linear_backward(const float* dy, const float* x, const float* w, int64_t m, int64_t n, int64_t k, float* dx,
                     float* dw, const LinearPrecision& p, WeightGradStore* store);

}  // namespace dsv3::train
