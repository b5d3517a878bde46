// AVX2 kernels for Int8 / Int4 block-quantized weights (kernels/quant.h); also the GEMV path of AVX-512
// CPUs without VNNI. Single thread (linear.cc splits the work).
//
// GEMV: one 32-code block is one ymm of x (int8, compact layout of prepare_qacts_compact). vpmaddubsw
// multiplies unsigned by signed bytes into saturating int16 pairs, so
//   Int8  uses the sign trick: |qx| (unsigned) times qw · sign(qx); pairs are at most 2 · 127 · 127 = 32258
//         and never saturate;
//   Int4  multiplies the unsigned nibble c = q + 8 by qx (pairs at most 2 · 15 · 127) and removes 8 · Σqx
//         by subtracting Σqx from each of the 8 dword lanes;
// vpmaddwd with ones widens to int32, which is converted and accumulated in fp32 times s_w · d_x.
// GEMM decode: codes → fp32 times the block scale into staging rows (linear_avx2.cc transposes them).
#include <immintrin.h>

#include <algorithm>

#include "core/dtype.h"
#include "kernels/internal.h"
#include "kernels/quant.h"

namespace dsv3::kernels::detail {

namespace {

DSV3_INLINE_AVX2 float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Σ over the block as 8 int32 lanes: Int8 codes at p (32 bytes), Int4 codes at p (16 bytes).
template <Quant Q>
DSV3_INLINE_AVX2 __m256i block_dot(const uint8_t* p, __m256i xq, __m256i ax, __m256i xsum) {
  const __m256i ones = _mm256_set1_epi16(1);
  if constexpr (Q == Quant::Int8) {
    const __m256i sw = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i*)p), xq);
    return _mm256_madd_epi16(_mm256_maddubs_epi16(ax, sw), ones);
  } else {
    const __m128i v = _mm_loadu_si128((const __m128i*)p), m = _mm_set1_epi8(0x0f);
    const __m256i u = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(v, 4), m), _mm_and_si128(v, m));
    return _mm256_sub_epi32(_mm256_madd_epi16(_mm256_maddubs_epi16(u, xq), ones), xsum);
  }
}

// y[i * ldy + r] for R rows of W and M rows of prepared x starting at i0.
template <Quant Q, int M, int R>
DSV3_TARGET_AVX2 void q_rows(const QActs& xa, int64_t i0, const uint8_t* w, int64_t ldw, const uint16_t* s, int64_t kb,
                             float* y, int64_t ldy) {
  constexpr int64_t bb = Q == Quant::Int4 ? 16 : 32;  // code bytes per block
  __m256 acc[R][M];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int i = 0; i < M; ++i) acc[r][i] = _mm256_setzero_ps();
  for (int64_t b = 0; b < kb; ++b) {
    __m256i xq[M], ax[M], xs[M];
    float dx[M];
#pragma GCC unroll 4
    for (int i = 0; i < M; ++i) {
      xq[i] = _mm256_loadu_si256((const __m256i*)(xa.q + (i0 + i) * xa.kl + b * kQBlock));
      ax[i] = _mm256_abs_epi8(xq[i]);
      xs[i] = _mm256_set1_epi32(xa.c[(i0 + i) * xa.ld + b]);
      dx[i] = xa.d[(i0 + i) * xa.ld + b];
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const float sw = _cvtsh_ss(s[r * kb + b]);
#pragma GCC unroll 4
      for (int i = 0; i < M; ++i) {
        const __m256i t = block_dot<Q>(w + r * ldw + b * bb, xq[i], ax[i], xs[i]);
        acc[r][i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(t), _mm256_set1_ps(sw * dx[i]), acc[r][i]);
      }
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int i = 0; i < M; ++i) y[i * ldy + r] = hsum8(acc[r][i]);
}

template <Quant Q, int M>
DSV3_TARGET_AVX2 void q_group(const QActs& xa, int64_t i0, const WeightRef& w, float* y, int64_t n0, int64_t n1) {
  constexpr int R = M <= 2 ? 4 : 2;
  const int64_t ldw = qrow_bytes(Q, w.k), kb = qblocks(w.k), n = w.n;
  const uint8_t* wd = static_cast<const uint8_t*>(w.data);
  int64_t o = n0;
  for (; o + R <= n1; o += R) q_rows<Q, M, R>(xa, i0, wd + o * ldw, ldw, w.qscale + o * kb, kb, y + i0 * n + o, n);
  for (; o < n1; ++o) q_rows<Q, M, 1>(xa, i0, wd + o * ldw, ldw, w.qscale + o * kb, kb, y + i0 * n + o, n);
}

template <Quant Q>
DSV3_TARGET_AVX2 void q_all(const QActs& xa, int64_t m, const WeightRef& w, float* y, int64_t n0, int64_t n1) {
  // Column slices of 64 rows of W so that each slice stays in cache across the groups of x rows.
  for (int64_t c0 = n0; c0 < n1; c0 += 64) {
    const int64_t c1 = std::min(n1, c0 + 64);
    for (int64_t i = 0; i < m; i += 4) {
      switch (std::min<int64_t>(4, m - i)) {
        case 1:
          q_group<Q, 1>(xa, i, w, y, c0, c1);
          break;
        case 2:
          q_group<Q, 2>(xa, i, w, y, c0, c1);
          break;
        case 3:
          q_group<Q, 3>(xa, i, w, y, c0, c1);
          break;
        default:
          q_group<Q, 4>(xa, i, w, y, c0, c1);
          break;
      }
    }
  }
}

}  // namespace

void gemv_q_avx2(const QActs& xa, int64_t m, const WeightRef& w, float* y, int64_t n0, int64_t n1) {
  if (w.quant == Quant::Int4)
    q_all<Quant::Int4>(xa, m, w, y, n0, n1);
  else
    q_all<Quant::Int8>(xa, m, w, y, n0, n1);
}

DSV3_TARGET_AVX2 void quant_decode_rows_avx2(const WeightRef& w, int64_t row0, int64_t nrows, int rows, int64_t col0,
                                             int64_t kc, float* staging, int64_t lds) {
  const int64_t rb = qrow_bytes(w.quant, w.k), kb = qblocks(w.k);
  const auto* codes = static_cast<const uint8_t*>(w.data);
  const int64_t kcp = (kc + 15) & ~int64_t(15);
  for (int64_t r = 0; r < rows; ++r) {
    float* dst = staging + r * lds;
    if (r >= nrows) {
      for (int64_t p = 0; p < kcp; p += 8) _mm256_store_ps(dst + p, _mm256_setzero_ps());
      continue;
    }
    const uint8_t* row = codes + (row0 + r) * rb;
    const uint16_t* srow = w.qscale + (row0 + r) * kb;
    int64_t p = 0;
    for (; p + 8 <= kc; p += 8) {
      const int64_t j = col0 + p, b = j / kQBlock, o = j % kQBlock;
      const __m256 sv = _mm256_set1_ps(_cvtsh_ss(srow[b]));
      __m256 v;
      if (w.quant == Quant::Int8) {
        v = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i*)(row + j))));
      } else {
        __m128i bytes = _mm_loadl_epi64((const __m128i*)(row + b * 16 + o % 16));
        if (o >= 16) bytes = _mm_srli_epi16(bytes, 4);
        bytes = _mm_and_si128(bytes, _mm_set1_epi8(0x0f));
        v = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_cvtepu8_epi32(bytes), _mm256_set1_epi32(8)));
      }
      _mm256_store_ps(dst + p, _mm256_mul_ps(v, sv));
    }
    for (; p < kcp; ++p) dst[p] = p < kc ? w.at(row0 + r, col0 + p) : 0.0f;
  }
}

}  // namespace dsv3::kernels::detail
