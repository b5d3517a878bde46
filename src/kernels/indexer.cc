// The scalar paths of kernels/indexer.h and the run-time choice of index_scores (indexer_avx512.cc,
// indexer_avx2.cc).
#include "kernels/indexer.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/dtype.h"
#include "kernels/internal.h"
#include "kernels/isa.h"

namespace dsv3::kernels {

namespace {

// The block's scale, as act_quant computes it (one float32 multiplication by the rounded 1/448).
float block_scale(const float* x, int64_t n, bool ue8m0) {
  float amax = 1e-4f;
  for (int64_t i = 0; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
  const float t = amax * (1.0f / 448.0f);
  return ue8m0 ? ue8m0_to_f32(f32_to_ue8m0_ceil(t)) : t;
}

uint8_t to_code(float v, float s) { return f32_to_e4m3(std::clamp(v / s, -448.0f, 448.0f)); }

}  // namespace

void fp8_quantize(const float* x, int64_t n, bool ue8m0, uint8_t* codes, float* scales) {
  for (int64_t b = 0; b * kFp8Block < n; ++b) {
    const int64_t j0 = b * kFp8Block, len = std::min(kFp8Block, n - j0);
    const float s = block_scale(x + j0, len, ue8m0);
    scales[b] = s;
    for (int64_t j = j0; j < j0 + len; ++j) codes[j] = to_code(x[j], s);
  }
}

void fp8_roundtrip(const float* x, int64_t n, bool ue8m0, float* y) {
  for (int64_t j0 = 0; j0 < n; j0 += kFp8Block) {
    const int64_t len = std::min(kFp8Block, n - j0);
    const float s = block_scale(x + j0, len, ue8m0);
    for (int64_t j = j0; j < j0 + len; ++j) y[j] = e4m3_to_f32(to_code(x[j], s)) * s;
  }
}

void hadamard(float* x, int64_t n) {
  for (int64_t len = 1; len < n; len *= 2)
    for (int64_t i = 0; i < n; i += 2 * len)
      for (int64_t j = i; j < i + len; ++j) {
        const float a = x[j], b = x[j + len];
        x[j] = a + b;
        x[j + len] = a - b;
      }
  const float scale = float(1.0 / std::sqrt(double(n)));
  for (int64_t i = 0; i < n; ++i) x[i] *= scale;
}

void hadamard_ref(float* x, int64_t n) {
  std::vector<float> y(static_cast<size_t>(n), 0.0f);
  for (int64_t j = 0; j < n; ++j) {
    double acc = 0.0;
    for (int64_t i = 0; i < n; ++i) acc += (__builtin_popcountll(uint64_t(i & j)) & 1) ? -x[i] : x[i];
    y[size_t(j)] = float(acc / std::sqrt(double(n)));
  }
  std::copy(y.begin(), y.end(), x);
}

void rope_half(float* x, int64_t d, const float* cos_sin) {
  const int64_t half = d / 2;
  for (int64_t i = 0; i < half; ++i) {
    const float c = cos_sin[2 * i], s = cos_sin[2 * i + 1];
    const float a = x[i], b = x[i + half];
    x[i] = a * c - b * s;
    x[i + half] = a * s + b * c;
  }
}

void index_scores_ref(const float* q, const float* w, int64_t h, const uint8_t* k, const float* ks, int64_t t,
                      int64_t d, float* out) {
  for (int64_t s = 0; s < t; ++s) {
    const uint8_t* ks8 = k + s * d;
    float total = 0.0f;
    for (int64_t head = 0; head < h; ++head) {
      float dot = 0.0f;
      for (int64_t j = 0; j < d; ++j) dot += q[head * d + j] * e4m3_to_f32(ks8[j]);
      total += w[head] * std::max(dot, 0.0f);
    }
    out[s] = ks[s] * total;
  }
}

void index_scores(const float* q, const float* w, int64_t h, const uint8_t* k, const float* ks, int64_t t, int64_t d,
                  float* out) {
  switch (active_isa()) {
    case Isa::Avx512:
      return detail::index_scores_avx512(q, w, h, k, ks, t, d, out);
    case Isa::Avx2:
      return detail::index_scores_avx2(q, w, h, k, ks, t, d, out);
    default:
      return index_scores_ref(q, w, h, k, ks, t, d, out);
  }
}

}  // namespace dsv3::kernels
