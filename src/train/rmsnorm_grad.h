// RMSNorm (reference: RMSNorm / F.rms_norm), per row of width n:
//   y = x · r · w,   r = 1 / sqrt(mean(x²) + eps)                       (as kernels::rmsnorm computes it)
// backward, with g = dy ⊙ w:
//   dx = r · (g − x · r² · mean(g ⊙ x)),   dw = Σ_rows dy ⊙ x · r
#pragma once

#include <cstdint>

namespace dsv3::train {

// x [m, n], w [n] → y [m, n] (may alias x), rstd [m] = r per row (saved for the backward).
void rmsnorm_forward(const float* x, const float* w, int64_t m, int64_t n, float eps, float* y, float* rstd);

// dy [m, n]; dx [m, n] += ∂L/∂x (must not alias dy); dw [n] += ∂L/∂w (skipped when null).
void rmsnorm_backward(const float* dy, const float* x, const float* w, const float* rstd, int64_t m, int64_t n,
                      float* dx, float* dw);

}  // namespace dsv3::train
