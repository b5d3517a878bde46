#include "train/embedding_grad.h"

#include <algorithm>
#include <cstring>

namespace dsv3::train {

void embedding_forward(const float* table, const int32_t* tokens, int64_t n, int64_t d, float* out) {
  for (int64_t i = 0; i < n; ++i) std::memcpy(out + i * d, table + int64_t(tokens[i]) * d, size_t(d) * sizeof(float));
}

void embedding_backward(const float* dout, const int32_t* tokens, int64_t n, int64_t d, float* dtable) {
  // Parallel over column blocks: every thread visits all rows in order, so accumulation order is fixed.
  const int64_t block = 64, nblocks = (d + block - 1) / block;
#pragma omp parallel for schedule(static) if (n * d > 65536 && nblocks > 1)
  for (int64_t b = 0; b < nblocks; ++b) {
    const int64_t j0 = b * block, j1 = std::min(d, j0 + block);
    for (int64_t i = 0; i < n; ++i) {
      float* dst = dtable + int64_t(tokens[i]) * d;
      const float* src = dout + i * d;
      for (int64_t j = j0; j < j1; ++j) dst[j] += src[j];
    }
  }
}

}  // namespace dsv3::train
