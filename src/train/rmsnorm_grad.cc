#include "train/rmsnorm_grad.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace dsv3::train {

void rmsnorm_forward(const float* x, const float* w, int64_t m, int64_t n, float eps, float* y, float* rstd) {
#pragma omp parallel for schedule(static) if (m * n > 32768)
  for (int64_t i = 0; i < m; ++i) {
    const float* xi = x + i * n;
    float* yi = y + i * n;
    float ss = 0.0f;
    for (int64_t j = 0; j < n; ++j) ss += xi[j] * xi[j];
    const float r = 1.0f / std::sqrt(ss / float(n) + eps);
    rstd[i] = r;
    for (int64_t j = 0; j < n; ++j) yi[j] = xi[j] * r * w[j];
  }
}

void rmsnorm_backward(const float* dy, const float* x, const float* w, const float* rstd, int64_t m, int64_t n,
                      float* dx, float* dw) {
  // Rows are split into fixed chunks (independent of the thread count); each chunk sums its own dw partial,
  // and the partials are added in chunk order, so the result is deterministic.
  const int64_t chunk = 256, nchunks = (m + chunk - 1) / chunk;
  std::vector<float> partial(dw ? size_t(nchunks * n) : 0, 0.0f);
#pragma omp parallel for schedule(static) if (m * n > 32768)
  for (int64_t cidx = 0; cidx < nchunks; ++cidx) {
    float* pw = dw ? partial.data() + cidx * n : nullptr;
    for (int64_t i = cidx * chunk; i < std::min(m, (cidx + 1) * chunk); ++i) {
      const float* xi = x + i * n;
      const float* dyi = dy + i * n;
      float* dxi = dx + i * n;
      const float r = rstd[i];
      float dot = 0.0f;
      for (int64_t j = 0; j < n; ++j) dot += dyi[j] * w[j] * xi[j];
      const float c = r * r * dot / float(n);
      for (int64_t j = 0; j < n; ++j) dxi[j] += r * (dyi[j] * w[j] - xi[j] * c);
      if (pw)
        for (int64_t j = 0; j < n; ++j) pw[j] += dyi[j] * xi[j] * r;
    }
  }
  if (dw)
    for (int64_t cidx = 0; cidx < nchunks; ++cidx)
      for (int64_t j = 0; j < n; ++j) dw[j] += partial[size_t(cidx * n + j)];
}

}  // namespace dsv3::train
