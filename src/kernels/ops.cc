#include "kernels/ops.h"

#include <algorithm>
#include <cmath>

namespace dsv3::kernels {

void rmsnorm(const float* x, const float* w, int64_t m, int64_t n, float eps, float* y) {
  for (int64_t i = 0; i < m; ++i) {
    const float* xi = x + i * n;
    float* yi = y + i * n;
    float ss = 0.0f;
    for (int64_t j = 0; j < n; ++j) ss += xi[j] * xi[j];
    const float inv = 1.0f / std::sqrt(ss / float(n) + eps);
    for (int64_t j = 0; j < n; ++j) yi[j] = xi[j] * inv * w[j];
  }
}

void silu_mul(const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

void softmax(float* x, int64_t n) {
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

void rope_pairs(float* x, int64_t d, const float* cos_sin) {
  for (int64_t i = 0; i < d / 2; ++i) {
    const float c = cos_sin[2 * i], s = cos_sin[2 * i + 1];
    const float a = x[2 * i], b = x[2 * i + 1];
    x[2 * i] = a * c - b * s;
    x[2 * i + 1] = a * s + b * c;
  }
}

void latent_attention(const float* q, int64_t h, const float* kv, int64_t t, int64_t ld, int64_t c,
                      int64_t r, float scale, float* o, float* scratch) {
  for (int64_t head = 0; head < h; ++head) {
    const float* qh = q + head * (c + r);
    for (int64_t s = 0; s < t; ++s) {
      const float* row = kv + s * ld;
      float acc = 0.0f;
      for (int64_t j = 0; j < c + r; ++j) acc += qh[j] * row[j];
      scratch[s] = acc * scale;
    }
    softmax(scratch, t);
    float* oh = o + head * c;
    std::fill(oh, oh + c, 0.0f);
    for (int64_t s = 0; s < t; ++s) {
      const float p = scratch[s];
      const float* row = kv + s * ld;
      for (int64_t j = 0; j < c; ++j) oh[j] += p * row[j];
    }
  }
}

}  // namespace dsv3::kernels
