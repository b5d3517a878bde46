#include "train/loss.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/matmul.h"
#include "kernels/ops.h"
#include "train/weight_grad_store.h"

namespace dsv3::train {

double head_cross_entropy(const float* hn, const float* head, int64_t vocab, int64_t hidden,
                          const std::vector<CeTarget>& targets, float coef, float* dhn, float* dhead,
                          WeightGradStore* wgrad) {
  const int64_t n = int64_t(targets.size()), V = vocab, D = hidden;
  // Rows per chunk: up to 512, with the chunk's logits kept under 16M floats (64 MB) for large vocabularies.
  const int64_t chunk =
      std::max<int64_t>(1, std::min<int64_t>(n, std::clamp<int64_t>((int64_t(1) << 24) / V, 16, 512)));
  std::vector<float> x(size_t(chunk * D)), logits(size_t(chunk * V)), dx(size_t(chunk * D));
  std::vector<double> row_loss(static_cast<size_t>(chunk));
  double total = 0.0;
  for (int64_t r0 = 0; r0 < n; r0 += chunk) {
    const int64_t rows = std::min(chunk, n - r0);
    for (int64_t i = 0; i < rows; ++i)
      std::memcpy(x.data() + i * D, hn + targets[size_t(r0 + i)].row * D, size_t(D) * sizeof(float));
    kernels::matmul_nt(x.data(), head, rows, V, D, logits.data());
#pragma omp parallel for schedule(static) if (rows * V > 65536)
    for (int64_t i = 0; i < rows; ++i) {
      float* l = logits.data() + i * V;
      const int32_t t = targets[size_t(r0 + i)].target;
      const int64_t amax = std::max_element(l, l + V) - l;
      const double mx = l[amax], zt = l[t];
      kernels::softmax(l, V);
      // −log p_t = max − z_t + log Σ exp(z − max), and Σ exp(z − max) = 1 / p_argmax (never underflows).
      row_loss[size_t(i)] = mx - zt - std::log(double(l[amax]));
      if (dhn) {
        for (int64_t j = 0; j < V; ++j) l[j] *= coef;
        l[t] -= coef;
      }
    }
    for (int64_t i = 0; i < rows; ++i) total += row_loss[size_t(i)];  // fixed order: deterministic
    if (!dhn) continue;
    kernels::matmul_nn(logits.data(), head, rows, D, V, dx.data());
    for (int64_t i = 0; i < rows; ++i) {
      float* dst = dhn + targets[size_t(r0 + i)].row * D;
      const float* src = dx.data() + i * D;
      for (int64_t j = 0; j < D; ++j) dst[j] += src[j];
    }
    if (dhead && wgrad)  // linear_backward's float32 weight GEMM, later: matmul_tn(dlogits, x, V, D, rows)
      wgrad->push(logits.data(), x.data(), head, rows, V, D, dhead, LinearPrecision{});
    else if (dhead)
      kernels::matmul_tn(logits.data(), x.data(), V, D, rows, dhead, 1.0f);
  }
  return total;
}

}  // namespace dsv3::train
