// AVX-512 kernels for Int8 / Int4 block-quantized weights (kernels/quant.h), single thread (linear.cc
// splits the work).
//
// GEMV (VNNI). vpdpbusd multiplies unsigned bytes by signed bytes, four per dword lane. The weight is the
// unsigned side: an Int8 code q becomes q + 128 by flipping its sign bit (one vpxor per line), an Int4
// nibble already is c = q + 8. x, quantized per block of 32 to int8 (prepare_qacts_avx512), is the signed
// side. The zero point's contribution, zp · Σ qx over the block, is removed by starting each lane's
// integer sum at −zp · Σqx / (lanes per block), precomputed per line with x. One 64-byte line of a row:
//   Int8  64 codes = blocks 2l, 2l+1; dword lanes 0-7 → first block, 8-15 → second
//   Int4  128 codes = blocks 4l .. 4l+3; the low nibbles give the first 16 elements of each block, the high
//         nibbles the last 16, so both halves put block b in lanes 4b .. 4b+3 and meet x stored as
//         [low halves of the 4 blocks | high halves]
// then the lanes' exact int32 sums are converted and accumulated in fp32 times s_w · d_x of their block.
// R = 4 rows of W × up to M = 4 rows of x per pass, next rows prefetched one block ahead (as in
// linear_avx512.cc).
//
// GEMM decode: codes → fp32 times the block scale into the staging rows linear_avx512.cc transposes into
// its panel (x stays exact there).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/internal.h"
#include "kernels/quant.h"
#include "kernels/vmath.h"

#define DSV3_TARGET_VNNI \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx512bf16,fma,f16c,bmi,bmi2")))
#define DSV3_INLINE_VNNI                                                                                   \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx512bf16,fma,f16c,bmi,bmi2"), \
                 always_inline)) inline

namespace dsv3::kernels::detail {

namespace {

DSV3_INLINE_AVX512 __mmask16 mask16(int64_t n) { return n >= 16 ? __mmask16(0xffff) : __mmask16((1u << n) - 1u); }
DSV3_INLINE_AVX512 __mmask64 mask64(int64_t n) { return n >= 64 ? ~__mmask64(0) : (__mmask64(1) << n) - 1; }

// Codes per 64-byte weight line, blocks per line, dword lanes per block, and the codes' zero point.
struct QLine {
  int64_t codes, blocks, lanes, zp;
};
constexpr QLine qline(Quant q) { return q == Quant::Int4 ? QLine{128, 4, 4, 8} : QLine{64, 2, 8, 128}; }

}  // namespace

DSV3_TARGET_AVX512 void prepare_qacts_avx512(const float* x, int64_t m, int64_t k, Quant quant, void* buf,
                                             QActs* out) {
  const QLine L = qline(quant);
  const int64_t lines = (k + L.codes - 1) / L.codes, kl = lines * L.codes, ld = lines * 16;
  auto* q = static_cast<int8_t*>(buf);
  auto* d = reinterpret_cast<float*>(q + ((m * kl + 63) & ~int64_t(63)));
  auto* c = reinterpret_cast<int32_t*>(d + m * ld);
  const __m512i lo = _mm512_set1_epi32(-127), hi = _mm512_set1_epi32(127);
  for (int64_t i = 0; i < m; ++i) {
    const float* xi = x + i * k;
    int8_t* qi = q + i * kl;
    for (int64_t b = 0; b < lines * L.blocks; ++b) {
      const int64_t j0 = b * kQBlock, n = std::clamp<int64_t>(k - j0, 0, kQBlock);
      __m128i b0 = _mm_setzero_si128(), b1 = _mm_setzero_si128();
      float amax = 0.0f;
      int32_t sum = 0;
      if (n > 0) {
        const __m512 v0 = _mm512_maskz_loadu_ps(mask16(n), xi + j0);
        const __m512 v1 = _mm512_maskz_loadu_ps(mask16(std::max<int64_t>(0, n - 16)), xi + j0 + 16);
        amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
        const __m512 id = _mm512_set1_ps(amax > 0.0f ? 127.0f / amax : 0.0f);
        const __m512i q0 = _mm512_min_epi32(_mm512_max_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(v0, id)), lo), hi);
        const __m512i q1 = _mm512_min_epi32(_mm512_max_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(v1, id)), lo), hi);
        sum = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
        b0 = _mm512_cvtepi32_epi8(q0);
        b1 = _mm512_cvtepi32_epi8(q1);
      }
      const int64_t line = b / L.blocks, pos = b % L.blocks;
      if (quant == Quant::Int4) {
        _mm_storeu_si128((__m128i*)(qi + line * 128 + pos * 16), b0);
        _mm_storeu_si128((__m128i*)(qi + line * 128 + 64 + pos * 16), b1);
      } else {
        _mm_storeu_si128((__m128i*)(qi + j0), b0);
        _mm_storeu_si128((__m128i*)(qi + j0 + 16), b1);
      }
      const float dx = amax / 127.0f;
      const int32_t corr = int32_t(-sum * (L.zp / L.lanes));
      for (int64_t l = 0; l < L.lanes; ++l) {
        d[i * ld + line * 16 + pos * L.lanes + l] = dx;
        c[i * ld + line * 16 + pos * L.lanes + l] = corr;
      }
    }
  }
  *out = QActs{.q = q, .d = d, .c = c, .kl = kl, .ld = ld};
}

namespace {

// The line's weight scales, each repeated over its block's lanes: `have` of the line's blocks are real.
template <Quant Q>
DSV3_INLINE_VNNI __m512 line_scales(const uint16_t* s, int64_t have) {
  if constexpr (Q == Quant::Int8) {
    uint32_t two = s[0];
    if (have > 1) std::memcpy(&two, s, 4);
    const __m512 f = _mm512_castps128_ps512(_mm_cvtph_ps(_mm_cvtsi32_si128(int(two))));
    return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1), f);
  } else {
    const __m128i h = have >= 4 ? _mm_loadl_epi64((const __m128i*)s) : _mm_maskz_loadu_epi16(__mmask8((1u << have) - 1), s);
    const __m512 f = _mm512_castps128_ps512(_mm_cvtph_ps(h));
    return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3), f);
  }
}

// The line's unsigned codes: Int8 one vector (q + 128), Int4 two (low nibbles, high nibbles). `bytes` of
// the 64 are real (the rest read as zero codes, which meet zero x).
template <Quant Q>
DSV3_INLINE_VNNI void line_codes(const uint8_t* p, int64_t bytes, __m512i out[2]) {
  const __m512i v = bytes >= 64 ? _mm512_loadu_si512(p) : _mm512_maskz_loadu_epi8(mask64(bytes), p);
  if constexpr (Q == Quant::Int8) {
    out[0] = _mm512_xor_si512(v, _mm512_set1_epi8(int8_t(0x80)));
  } else {
    const __m512i m = _mm512_set1_epi8(0x0f);
    out[0] = _mm512_and_si512(v, m);
    out[1] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m);
  }
}

// y[i * ldy + r] for R rows of W (codes w, row stride ldw bytes; scales s, row stride kb) and M rows of
// prepared x starting at row i0.
template <Quant Q, int M, int R>
DSV3_TARGET_VNNI void q_rows(const QActs& xa, int64_t i0, const uint8_t* w, int64_t ldw, const uint16_t* s,
                             int64_t kb, float* y, int64_t ldy) {
  constexpr QLine L = qline(Q);
  constexpr int V = Q == Quant::Int4 ? 2 : 1;
  __m512 acc[R][M];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int i = 0; i < M; ++i) acc[r][i] = _mm512_setzero_ps();
  const int64_t lines = (kb + L.blocks - 1) / L.blocks;
  const uint8_t* pf = w + R * ldw;
  for (int64_t l = 0; l < lines; ++l) {
    const int64_t have = std::min(L.blocks, kb - l * L.blocks);  // real blocks in this line
    const int64_t bytes = have * (Q == Quant::Int4 ? 16 : 32);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) _mm_prefetch((const char*)(pf + r * ldw + l * 64), _MM_HINT_T0);
    __m512i xq[M][V], cc[M];
    __m512 dv[M];
#pragma GCC unroll 4
    for (int i = 0; i < M; ++i) {
      const int8_t* qi = xa.q + (i0 + i) * xa.kl + l * L.codes;
#pragma GCC unroll 2
      for (int v = 0; v < V; ++v) xq[i][v] = _mm512_loadu_si512(qi + 64 * v);
      cc[i] = _mm512_loadu_si512(xa.c + (i0 + i) * xa.ld + l * 16);
      dv[i] = _mm512_loadu_ps(xa.d + (i0 + i) * xa.ld + l * 16);
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      __m512i wc[2];
      line_codes<Q>(w + r * ldw + l * 64, bytes, wc);
      const __m512 sv = line_scales<Q>(s + r * kb + l * L.blocks, have);
#pragma GCC unroll 4
      for (int i = 0; i < M; ++i) {
        __m512i t = _mm512_dpbusd_epi32(cc[i], wc[0], xq[i][0]);
        if constexpr (V == 2) t = _mm512_dpbusd_epi32(t, wc[1], xq[i][1]);
        acc[r][i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(t), _mm512_mul_ps(sv, dv[i]), acc[r][i]);
      }
    }
  }
  if constexpr (R * M == 16) {
    alignas(64) float sums[16];
    _mm512_store_ps(sums, hsum16x16(&acc[0][0]));
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
      for (int i = 0; i < M; ++i) y[i * ldy + r] = sums[r * M + i];
  } else {
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
      for (int i = 0; i < M; ++i) y[i * ldy + r] = _mm512_reduce_add_ps(acc[r][i]);
  }
}

// Rows [n0, n1) of W in blocks of 4, each block meeting every group of 4 rows of x (W read once for any m).
template <Quant Q, int R>
DSV3_TARGET_VNNI void q_block(const QActs& xa, int64_t m, const WeightRef& w, float* y, int64_t o) {
  const int64_t ldw = qrow_bytes(Q, w.k), kb = qblocks(w.k), n = w.n;
  const uint8_t* wd = static_cast<const uint8_t*>(w.data) + o * ldw;
  const uint16_t* s = w.qscale + o * kb;
  int64_t i = 0;
  for (; i + 4 <= m; i += 4) q_rows<Q, 4, R>(xa, i, wd, ldw, s, kb, y + i * n + o, n);
  switch (m - i) {
    case 1: q_rows<Q, 1, R>(xa, i, wd, ldw, s, kb, y + i * n + o, n); break;
    case 2: q_rows<Q, 2, R>(xa, i, wd, ldw, s, kb, y + i * n + o, n); break;
    case 3: q_rows<Q, 3, R>(xa, i, wd, ldw, s, kb, y + i * n + o, n); break;
    default: break;
  }
}

template <Quant Q>
DSV3_TARGET_VNNI void q_range(const QActs& xa, int64_t m, const WeightRef& w, float* y, int64_t n0, int64_t n1) {
  int64_t o = n0;
  for (; o + 4 <= n1; o += 4) q_block<Q, 4>(xa, m, w, y, o);
  for (; o < n1; ++o) q_block<Q, 1>(xa, m, w, y, o);
}

}  // namespace

void gemv_q_avx512(const QActs& xa, int64_t m, const WeightRef& w, float* y, int64_t n0, int64_t n1) {
  if (w.quant == Quant::Int4)
    q_range<Quant::Int4>(xa, m, w, y, n0, n1);
  else
    q_range<Quant::Int8>(xa, m, w, y, n0, n1);
}

DSV3_TARGET_AVX512 void quant_decode_rows_avx512(const WeightRef& w, int64_t row0, int64_t nrows, int rows,
                                                 int64_t col0, int64_t kc, float* staging, int64_t lds) {
  const int64_t rb = qrow_bytes(w.quant, w.k), kb = qblocks(w.k);
  const auto* codes = static_cast<const uint8_t*>(w.data);
  for (int64_t r = 0; r < rows; ++r) {
    float* dst = staging + r * lds;
    if (r >= nrows) {
      for (int64_t p = 0; p < kc; p += 16) _mm512_store_ps(dst + p, _mm512_setzero_ps());
      continue;
    }
    const uint8_t* row = codes + (row0 + r) * rb;
    const uint16_t* srow = w.qscale + (row0 + r) * kb;
    for (int64_t p = 0; p < kc; p += 16) {
      const __mmask16 mk = mask16(kc - p);
      const int64_t j = col0 + p, b = j / kQBlock;
      const __m512 sv = _mm512_set1_ps(_cvtsh_ss(srow[b]));
      __m512 v;
      if (w.quant == Quant::Int8) {
        v = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(mk, row + j)));
      } else {
        __m128i bytes = _mm_maskz_loadu_epi8(mk, row + b * 16);
        if ((j / 16) & 1) bytes = _mm_srli_epi16(bytes, 4);
        bytes = _mm_and_si128(bytes, _mm_set1_epi8(0x0f));
        v = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_cvtepu8_epi32(bytes), _mm512_set1_epi32(8)));
      }
      _mm512_store_ps(dst + p, _mm512_maskz_mul_ps(mk, v, sv));
    }
  }
}

}  // namespace dsv3::kernels::detail
