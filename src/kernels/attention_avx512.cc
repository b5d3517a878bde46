// Absorbed MLA decode (ops.h latent_attention) with AVX-512, flash-decoding style.
//
// Layout (as ops.h): q [h, c + r] (latent query ++ rotated rope query per head), kv [t, ld] (per cached
// token c latent values ++ r rope-key values), o [h, c].
//
// One pass over the cache: the rows are taken in tiles of kTile; a tile (kTile × (c + r) floats, 72 KiB
// at V3's 576) is read from memory once and then used from L1/L2 by every head of this thread's range,
// in blocks of HB heads (4, then 2 / 1 for the rest; 8 measured slower — GCC spills its accumulators):
//   scores  S[HB, tile] = scale · Q_hb · KVᵀ     16 accumulators = HB heads × 16/HB rows, one 16-way reduce
//   softmax online per head: m' = max(m, max S), α = e^{m − m'}, P = e^{S − m'}, l = α·l + ΣP
//   values  O_hb = α ⊙ O_hb + P · KV[:, 0:c]     chunks of 32 latent columns, HB × 2 accumulators
// o itself holds the unnormalised accumulator; the last step divides by l. Running (m, l) per head live
// in `state` (2 floats per head).
// GCC 12's avx512fintrin.h initialises _mm512_undefined_* from itself, which -Wall reports once inlined.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "kernels/internal.h"
#include "kernels/vmath.h"

namespace dsv3::kernels::detail {

namespace {

constexpr int kTile = 32;  // two vectors of scores per head (the softmax step below assumes it)

DSV3_INLINE_AVX512 __mmask16 tail_mask(int64_t n) { return __mmask16((1u << n) - 1u); }

// Scores of HB heads against rows [0, ts) of the tile: S[hh * kTile + s].
template <int HB>
DSV3_TARGET_AVX512 void tile_scores(const float* q, int64_t d, const float* tile, int64_t ld, int64_t ts, float scale,
                                    float* S) {
  constexpr int RB = 16 / HB;
  for (int64_t s = 0; s < ts; s += RB) {
    const float* rows[RB];
#pragma GCC unroll 16
    for (int rr = 0; rr < RB; ++rr) rows[rr] = tile + std::min<int64_t>(s + rr, ts - 1) * ld;
    __m512 acc[16];
#pragma GCC unroll 16
    for (int a = 0; a < 16; ++a) acc[a] = _mm512_setzero_ps();
    int64_t j = 0;
    for (; j + 16 <= d; j += 16) {
      __m512 kv[RB];
#pragma GCC unroll 16
      for (int rr = 0; rr < RB; ++rr) kv[rr] = _mm512_loadu_ps(rows[rr] + j);
#pragma GCC unroll 8
      for (int hh = 0; hh < HB; ++hh) {
        const __m512 qv = _mm512_loadu_ps(q + hh * d + j);
#pragma GCC unroll 16
        for (int rr = 0; rr < RB; ++rr) acc[hh * RB + rr] = _mm512_fmadd_ps(qv, kv[rr], acc[hh * RB + rr]);
      }
    }
    if (j < d) {
      const __mmask16 mk = tail_mask(d - j);
      __m512 kv[RB];
#pragma GCC unroll 16
      for (int rr = 0; rr < RB; ++rr) kv[rr] = _mm512_maskz_loadu_ps(mk, rows[rr] + j);
#pragma GCC unroll 8
      for (int hh = 0; hh < HB; ++hh) {
        const __m512 qv = _mm512_maskz_loadu_ps(mk, q + hh * d + j);
#pragma GCC unroll 16
        for (int rr = 0; rr < RB; ++rr) acc[hh * RB + rr] = _mm512_fmadd_ps(qv, kv[rr], acc[hh * RB + rr]);
      }
    }
    alignas(64) float sums[16];
    _mm512_store_ps(sums, _mm512_mul_ps(hsum16x16(acc), _mm512_set1_ps(scale)));
    for (int hh = 0; hh < HB; ++hh)
      for (int rr = 0; rr < RB && s + rr < ts; ++rr) S[hh * kTile + s + rr] = sums[hh * RB + rr];
  }
}

template <int HB>
DSV3_TARGET_AVX512 void tile_block(const float* q, int64_t d, const float* tile, int64_t ld, int64_t ts, int64_t c,
                                   float scale, float* o, float* m_state, float* l_state) {
  alignas(64) float S[HB * kTile];
  tile_scores<HB>(q, d, tile, ld, ts, scale, S);

  // Online softmax: S becomes P, alpha rescales what o holds so far.
  alignas(64) float alpha[HB];
  const __mmask16 mk0 = ts >= 16 ? __mmask16(0xffff) : tail_mask(ts);
  const __mmask16 mk1 = ts >= 32 ? __mmask16(0xffff) : ts > 16 ? tail_mask(ts - 16) : __mmask16(0);
  const __m512 ninf = _mm512_set1_ps(-INFINITY);
  for (int hh = 0; hh < HB; ++hh) {
    float* sh = S + hh * kTile;
    const __m512 a = _mm512_mask_loadu_ps(ninf, mk0, sh), b = _mm512_mask_loadu_ps(ninf, mk1, sh + 16);
    const float m_new = std::max(m_state[hh], _mm512_reduce_max_ps(_mm512_max_ps(a, b)));
    const __m512 mv = _mm512_set1_ps(m_new);
    const __m512 pa = _mm512_maskz_mov_ps(mk0, exp512(_mm512_sub_ps(a, mv)));
    const __m512 pb = _mm512_maskz_mov_ps(mk1, exp512(_mm512_sub_ps(b, mv)));
    _mm512_store_ps(sh, pa);
    _mm512_store_ps(sh + 16, pb);
    alpha[hh] = std::exp(m_state[hh] - m_new);
    l_state[hh] = l_state[hh] * alpha[hh] + _mm512_reduce_add_ps(_mm512_add_ps(pa, pb));
    m_state[hh] = m_new;
  }

  // o[hh, cc .. cc+32) = alpha · o + Σ_s P[hh, s] · kv_s[cc .. cc+32).
  for (int64_t cc = 0; cc < c; cc += 32) {
    const __mmask16 m0 = c - cc >= 16 ? __mmask16(0xffff) : tail_mask(c - cc);
    const __mmask16 m1 = c - cc >= 32 ? __mmask16(0xffff) : c - cc > 16 ? tail_mask(c - cc - 16) : __mmask16(0);
    __m512 a0[HB], a1[HB];
#pragma GCC unroll 8
    for (int hh = 0; hh < HB; ++hh) {
      const __m512 al = _mm512_set1_ps(alpha[hh]);
      a0[hh] = _mm512_mul_ps(al, _mm512_maskz_loadu_ps(m0, o + hh * c + cc));
      a1[hh] = _mm512_mul_ps(al, _mm512_maskz_loadu_ps(m1, o + hh * c + cc + 16));
    }
    const float* row = tile + cc;
    for (int64_t s = 0; s < ts; ++s, row += ld) {
      const __m512 k0 = _mm512_maskz_loadu_ps(m0, row), k1 = _mm512_maskz_loadu_ps(m1, row + 16);
#pragma GCC unroll 8
      for (int hh = 0; hh < HB; ++hh) {
        const __m512 p = _mm512_set1_ps(S[hh * kTile + s]);
        a0[hh] = _mm512_fmadd_ps(p, k0, a0[hh]);
        a1[hh] = _mm512_fmadd_ps(p, k1, a1[hh]);
      }
    }
#pragma GCC unroll 8
    for (int hh = 0; hh < HB; ++hh) {
      _mm512_mask_storeu_ps(o + hh * c + cc, m0, a0[hh]);
      _mm512_mask_storeu_ps(o + hh * c + cc + 16, m1, a1[hh]);
    }
  }
}

}  // namespace

DSV3_TARGET_AVX512 void latent_attention_avx512(const float* q, int64_t h0, int64_t h1, const float* kv, int64_t t,
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
    const __m512 inv = _mm512_set1_ps(1.0f / l_state[i]);
    float* oh = o + (h0 + i) * c;
    int64_t j = 0;
    for (; j + 16 <= c; j += 16) _mm512_storeu_ps(oh + j, _mm512_mul_ps(_mm512_loadu_ps(oh + j), inv));
    if (j < c) {
      const __mmask16 mk = tail_mask(c - j);
      _mm512_mask_storeu_ps(oh + j, mk, _mm512_mul_ps(_mm512_maskz_loadu_ps(mk, oh + j), inv));
    }
  }
}

}  // namespace dsv3::kernels::detail
