// The scalar references of ops.h and the run-time choice between them and the SIMD paths
// (ops_avx512.cc, ops_avx2.cc, attention_avx512.cc, attention_avx2.cc). Threading lives here.
#include "kernels/ops.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/internal.h"
#include "kernels/isa.h"

namespace dsv3::kernels {

// ---------------------------------------------------------------- references
void rmsnorm_ref(const float* x, const float* w, int64_t m, int64_t n, float eps, float* y) {
  for (int64_t i = 0; i < m; ++i) {
    const float* xi = x + i * n;
    float* yi = y + i * n;
    float ss = 0.0f;
    for (int64_t j = 0; j < n; ++j) ss += xi[j] * xi[j];
    const float inv = 1.0f / std::sqrt(ss / float(n) + eps);
    for (int64_t j = 0; j < n; ++j) yi[j] = xi[j] * inv * w[j];
  }
}

void silu_mul_ref(const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

void softmax_ref(float* x, int64_t n) {
  float mx = -INFINITY;
  for (int64_t i = 0; i < n; ++i) mx = std::max(mx, x[i]);
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  const float inv = 1.0f / sum;
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

void rope_pairs_ref(float* x, int64_t d, const float* cos_sin) {
  for (int64_t i = 0; i < d / 2; ++i) {
    const float c = cos_sin[2 * i], s = cos_sin[2 * i + 1];
    const float a = x[2 * i], b = x[2 * i + 1];
    x[2 * i] = a * c - b * s;
    x[2 * i + 1] = a * s + b * c;
  }
}

void latent_attention_ref(const float* q, int64_t h, const float* kv, int64_t t, int64_t ld, int64_t c, int64_t r,
                          float scale, float* o, float* scratch) {
  for (int64_t head = 0; head < h; ++head) {
    const float* qh = q + head * (c + r);
    for (int64_t s = 0; s < t; ++s) {
      const float* row = kv + s * ld;
      float acc = 0.0f;
      for (int64_t j = 0; j < c + r; ++j) acc += qh[j] * row[j];
      scratch[s] = acc * scale;
    }
    softmax_ref(scratch, t);
    float* oh = o + head * c;
    std::fill(oh, oh + c, 0.0f);
    for (int64_t s = 0; s < t; ++s) {
      const float p = scratch[s];
      const float* row = kv + s * ld;
      for (int64_t j = 0; j < c; ++j) oh[j] += p * row[j];
    }
  }
}

// ---------------------------------------------------------------- dispatch
void rmsnorm(const float* x, const float* w, int64_t m, int64_t n, float eps, float* y) {
  switch (active_isa()) {
    case Isa::Avx512:
      return detail::rmsnorm_avx512(x, w, m, n, eps, y);
    case Isa::Avx2:
      return detail::rmsnorm_avx2(x, w, m, n, eps, y);
    default:
      return rmsnorm_ref(x, w, m, n, eps, y);
  }
}

void silu_mul(const float* gate, const float* up, int64_t n, float* out) {
  switch (active_isa()) {
    case Isa::Avx512:
      return detail::silu_mul_avx512(gate, up, n, out);
    case Isa::Avx2:
      return detail::silu_mul_avx2(gate, up, n, out);
    default:
      return silu_mul_ref(gate, up, n, out);
  }
}

void softmax(float* x, int64_t n) {
  if (n <= 0) return;
  switch (active_isa()) {
    case Isa::Avx512:
      return detail::softmax_avx512(x, n);
    case Isa::Avx2:
      return detail::softmax_avx2(x, n);
    default:
      return softmax_ref(x, n);
  }
}

void rope_pairs(float* x, int64_t d, const float* cos_sin) {
  d &= ~int64_t(1);
  switch (active_isa()) {
    case Isa::Avx512:
      return detail::rope_pairs_avx512(x, d, cos_sin);
    case Isa::Avx2:
      return detail::rope_pairs_avx2(x, d, cos_sin);
    default:
      return rope_pairs_ref(x, d, cos_sin);
  }
}

void exp_vec(const float* x, int64_t n, float* y) {
  switch (active_isa()) {
    case Isa::Avx512:
      return detail::exp_avx512(x, n, y);
    case Isa::Avx2:
      return detail::exp_avx2(x, n, y);
    default:
      for (int64_t i = 0; i < n; ++i) y[i] = std::exp(x[i]);
  }
}

namespace {
// Below this many multiply-adds one thread is faster than waking the other.
constexpr int64_t kAttentionParallelMacs = 1 << 16;
}  // namespace

void latent_attention(const float* q, int64_t h, const float* kv, int64_t t, int64_t ld, int64_t c, int64_t r,
                      float scale, float* o, float* scratch) {
  const Isa isa = active_isa();
  if (isa == Isa::Scalar || t <= 0 || h <= 0) return latent_attention_ref(q, h, kv, t, ld, c, r, scale, o, scratch);
  auto* fn = isa == Isa::Avx512 ? detail::latent_attention_avx512 : detail::latent_attention_avx2;
  const int64_t hb = 4;  // head block of the kernels: split on its multiples
  const int64_t blocks = (h + hb - 1) / hb;
  int nt = std::min<int64_t>(omp_get_max_threads(), blocks);
  if (h * t * (2 * c + r) < kAttentionParallelMacs || omp_in_parallel()) nt = 1;
  if (nt <= 1) {
    fn(q, 0, h, kv, t, ld, c, r, scale, o, detail::thread_scratch(3, size_t(2 * h)));
    return;
  }
#pragma omp parallel num_threads(nt)
  {
    const int i = omp_get_thread_num(), n = omp_get_num_threads();
    const int64_t h0 = std::min(h, blocks * i / n * hb), h1 = std::min(h, blocks * (i + 1) / n * hb);
    if (h0 < h1) fn(q, h0, h1, kv, t, ld, c, r, scale, o, detail::thread_scratch(3, size_t(2 * (h1 - h0))));
  }
}

// ---------------------------------------------------------------- top-k
void top_k(const float* x, int64_t n, int64_t k, int32_t* idx) {
  k = std::clamp<int64_t>(k, 0, n);
  if (k == 0) return;
  auto before = [x](int32_t a, int32_t b) { return x[a] > x[b] || (x[a] == x[b] && a < b); };
  if (k <= 64) {
    // One pass keeping the best k sorted in idx (insertions are rare after the first few hundred).
    int64_t have = 0;
    for (int64_t i = 0; i < n; ++i) {
      const int32_t c = int32_t(i);
      if (have == k && !before(c, idx[k - 1])) continue;
      int64_t j = have < k ? have++ : k - 1;
      while (j > 0 && before(c, idx[j - 1])) {
        idx[j] = idx[j - 1];
        --j;
      }
      idx[j] = c;
    }
    return;
  }
  std::vector<int32_t> all(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) all[size_t(i)] = int32_t(i);
  std::partial_sort(all.begin(), all.begin() + k, all.end(), before);
  std::copy(all.begin(), all.begin() + k, idx);
}

}  // namespace dsv3::kernels
