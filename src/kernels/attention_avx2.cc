// Absorbed MLA decode (ops.h latent_attention) with AVX2: the algorithm of attention_avx512.cc (read its
// header) at 8 lanes and 16 registers: head blocks of 4 / 2 / 1, 8 score accumulators, 16-column chunks.
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "kernels/internal.h"
#include "kernels/vmath.h"

namespace dsv3::kernels::detail {

namespace {

constexpr int kTile = 32;

DSV3_INLINE_AVX2 __m256i lane_mask(int64_t n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(int(std::min<int64_t>(n, 8))), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

template <int HB>
DSV3_TARGET_AVX2 void tile_scores(const float* q, int64_t d, const float* tile, int64_t ld, int64_t ts, float scale,
                                  float* S) {
  constexpr int RB = 8 / HB;
  for (int64_t s = 0; s < ts; s += RB) {
    const float* rows[RB];
#pragma GCC unroll 8
    for (int rr = 0; rr < RB; ++rr) rows[rr] = tile + std::min<int64_t>(s + rr, ts - 1) * ld;
    __m256 acc[8];
#pragma GCC unroll 8
    for (int a = 0; a < 8; ++a) acc[a] = _mm256_setzero_ps();
    int64_t j = 0;
    for (; j + 8 <= d; j += 8) {
#pragma GCC unroll 4
      for (int hh = 0; hh < HB; ++hh) {
        const __m256 qv = _mm256_loadu_ps(q + hh * d + j);
#pragma GCC unroll 8
        for (int rr = 0; rr < RB; ++rr)
          acc[hh * RB + rr] = _mm256_fmadd_ps(qv, _mm256_loadu_ps(rows[rr] + j), acc[hh * RB + rr]);
      }
    }
    if (j < d) {
      const __m256i mk = lane_mask(d - j);
#pragma GCC unroll 4
      for (int hh = 0; hh < HB; ++hh) {
        const __m256 qv = _mm256_maskload_ps(q + hh * d + j, mk);
#pragma GCC unroll 8
        for (int rr = 0; rr < RB; ++rr)
          acc[hh * RB + rr] = _mm256_fmadd_ps(qv, _mm256_maskload_ps(rows[rr] + j, mk), acc[hh * RB + rr]);
      }
    }
    for (int hh = 0; hh < HB; ++hh)
      for (int rr = 0; rr < RB && s + rr < ts; ++rr) S[hh * kTile + s + rr] = hsum256(acc[hh * RB + rr]) * scale;
  }
}

template <int HB>
DSV3_TARGET_AVX2 void tile_block(const float* q, int64_t d, const float* tile, int64_t ld, int64_t ts, int64_t c,
                                 float scale, float* o, float* m_state, float* l_state) {
  alignas(32) float S[HB * kTile];
  tile_scores<HB>(q, d, tile, ld, ts, scale, S);
  alignas(32) float alpha[HB];
  const __m256 ninf = _mm256_set1_ps(-INFINITY);
  for (int hh = 0; hh < HB; ++hh) {
    float* sh = S + hh * kTile;
    __m256 mv = ninf;
    for (int64_t s = 0; s < ts; s += 8) {
      const __m256i mk = lane_mask(ts - s);
      mv = _mm256_max_ps(mv, _mm256_blendv_ps(ninf, _mm256_maskload_ps(sh + s, mk), _mm256_castsi256_ps(mk)));
    }
    const float m_new = std::max(m_state[hh], hmax256(mv));
    const __m256 mb = _mm256_set1_ps(m_new);
    __m256 sum = _mm256_setzero_ps();
    for (int64_t s = 0; s < kTile; s += 8) {
      const __m256i mk = lane_mask(ts - s);
      const __m256 p = _mm256_and_ps(exp256(_mm256_sub_ps(_mm256_load_ps(sh + s), mb)), _mm256_castsi256_ps(mk));
      _mm256_store_ps(sh + s, p);
      sum = _mm256_add_ps(sum, p);
    }
    alpha[hh] = std::exp(m_state[hh] - m_new);
    l_state[hh] = l_state[hh] * alpha[hh] + hsum256(sum);
    m_state[hh] = m_new;
  }
  for (int64_t cc = 0; cc < c; cc += 16) {
    const __m256i m0 = lane_mask(c - cc), m1 = lane_mask(c - cc - 8);
    __m256 a0[HB], a1[HB];
#pragma GCC unroll 4
    for (int hh = 0; hh < HB; ++hh) {
      const __m256 al = _mm256_set1_ps(alpha[hh]);
      a0[hh] = _mm256_mul_ps(al, _mm256_maskload_ps(o + hh * c + cc, m0));
      a1[hh] = _mm256_mul_ps(al, _mm256_maskload_ps(o + hh * c + cc + 8, m1));
    }
    const float* row = tile + cc;
    for (int64_t s = 0; s < ts; ++s, row += ld) {
      const __m256 k0 = _mm256_maskload_ps(row, m0), k1 = _mm256_maskload_ps(row + 8, m1);
#pragma GCC unroll 4
      for (int hh = 0; hh < HB; ++hh) {
        const __m256 p = _mm256_broadcast_ss(S + hh * kTile + s);
        a0[hh] = _mm256_fmadd_ps(p, k0, a0[hh]);
        a1[hh] = _mm256_fmadd_ps(p, k1, a1[hh]);
      }
    }
#pragma GCC unroll 4
    for (int hh = 0; hh < HB; ++hh) {
      _mm256_maskstore_ps(o + hh * c + cc, m0, a0[hh]);
      _mm256_maskstore_ps(o + hh * c + cc + 8, m1, a1[hh]);
    }
  }
}

}  // namespace

DSV3_TARGET_AVX2 void latent_attention_avx2(const float* q, int64_t h0, int64_t h1, const float* kv, int64_t t,
                                            int64_t ld, int64_t c, int64_t r, float scale, float* o, float* state) {
  const int64_t d = c + r, nh = h1 - h0;
  float* m_state = state;
  float* l_state = state + nh;
  for (int64_t i = 0; i < nh; ++i) {
    m_state[i] = -INFINITY;
    l_state[i] = 0.0f;
  }
  std::fill(o + h0 * c, o + h1 * c, 0.0f);
  for (int64_t s0 = 0; s0 < t; s0 += kTile) {
    const int64_t ts = std::min<int64_t>(kTile, t - s0);
    const float* tile = kv + s0 * ld;
    int64_t hh = h0;
    while (hh < h1) {
      const int64_t left = h1 - hh, i = hh - h0;
      const float* qh = q + hh * d;
      float* oh = o + hh * c;
      if (left >= 4) {
        tile_block<4>(qh, d, tile, ld, ts, c, scale, oh, m_state + i, l_state + i);
        hh += 4;
      } else if (left >= 2) {
        tile_block<2>(qh, d, tile, ld, ts, c, scale, oh, m_state + i, l_state + i);
        hh += 2;
      } else {
        tile_block<1>(qh, d, tile, ld, ts, c, scale, oh, m_state + i, l_state + i);
        hh += 1;
      }
    }
  }
  for (int64_t i = 0; i < nh; ++i) {
    const __m256 inv = _mm256_set1_ps(1.0f / l_state[i]);
    float* oh = o + (h0 + i) * c;
    for (int64_t j = 0; j < c; j += 8) {
      const __m256i mk = lane_mask(c - j);
      _mm256_maskstore_ps(oh + j, mk, _mm256_mul_ps(_mm256_maskload_ps(oh + j, mk), inv));
    }
  }
}

}  // namespace dsv3::kernels::detail
