#include "kernels/linear.h"

#include <vector>

namespace dsv3::kernels {

float WeightRef::at(int64_t row, int64_t col) const {
  const size_t i = size_t(row) * size_t(k) + size_t(col);
  switch (dtype) {
    case DType::F32:
      return static_cast<const float*>(data)[i];
    case DType::BF16:
      return bf16_to_f32(static_cast<const uint16_t*>(data)[i]);
    case DType::F16:
      return f16_to_f32(static_cast<const uint16_t*>(data)[i]);
    case DType::F8_E4M3: {
      const int64_t kb = (k + block_k - 1) / block_k;
      return e4m3_to_f32(static_cast<const uint8_t*>(data)[i]) * scale_inv[(row / block_n) * kb + col / block_k];
    }
    default:
      return 0.0f;
  }
}

void weight_row(const WeightRef& w, int64_t row, float* out) {
  for (int64_t j = 0; j < w.k; ++j) out[j] = w.at(row, j);
}

void linear_ref(const float* x, int64_t m, const WeightRef& w, float* y) {
  std::vector<float> wr(size_t(w.k));
  for (int64_t o = 0; o < w.n; ++o) {
    weight_row(w, o, wr.data());
    for (int64_t i = 0; i < m; ++i) {
      const float* xi = x + i * w.k;
      float acc = 0.0f;
      for (int64_t j = 0; j < w.k; ++j) acc += xi[j] * wr[size_t(j)];
      y[i * w.n + o] = acc;
    }
  }
}

void linear(const float* x, int64_t m, const WeightRef& w, float* y) {
  // Rows of W are decoded once each into a thread-local buffer and applied to every input row.
#pragma omp parallel
  {
    std::vector<float> wr(size_t(w.k));
#pragma omp for schedule(static)
    for (int64_t o = 0; o < w.n; ++o) {
      weight_row(w, o, wr.data());
      for (int64_t i = 0; i < m; ++i) {
        const float* xi = x + i * w.k;
        float acc = 0.0f;
        for (int64_t j = 0; j < w.k; ++j) acc += xi[j] * wr[size_t(j)];
        y[i * w.n + o] = acc;
      }
    }
  }
}

}  // namespace dsv3::kernels
