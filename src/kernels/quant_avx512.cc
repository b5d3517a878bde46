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
// GEMM (VNNI): weight panels repacked into dword lanes, x quantized (below, before gemm_q).
// GEMM decode (no VNNI): codes → fp32 times the block scale into the staging rows linear_avx512.cc
// transposes into its panel (x stays exact there).
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
#define DSV3_INLINE_VNNI                                                                               \
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

DSV3_TARGET_AVX512 void prepare_qacts_avx512(const float* x, int64_t m, int64_t k, Quant quant, void* buf, QActs* out) {
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
    const __m128i h =
        have >= 4 ? _mm_loadl_epi64((const __m128i*)s) : _mm_maskz_loadu_epi16(__mmask8((1u << have) - 1), s);
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

constexpr int64_t kPrefetchBytes = 16384;

// One 64-byte line l of R weight rows against M rows of x; `have` of its blocks are real.
template <Quant Q, int M, int R>
DSV3_INLINE_VNNI void q_line(const QActs& xa, int64_t i0, const uint8_t* w, int64_t ldw, const uint16_t* s, int64_t kb,
                             const uint8_t* pf, int64_t l, int64_t have, __m512 (&acc)[R][M]) {
  constexpr QLine L = qline(Q);
  constexpr int V = Q == Quant::Int4 ? 2 : 1;
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

// y[i * ldy + r] for R rows of W (codes w, row stride ldw bytes; scales s, row stride kb) and M rows of
// prepared x starting at row i0.
template <Quant Q, int M, int R>
DSV3_TARGET_VNNI void q_rows(const QActs& xa, int64_t i0, const uint8_t* w, int64_t ldw, const uint16_t* s, int64_t kb,
                             float* y, int64_t ldy) {
  constexpr QLine L = qline(Q);
  __m512 acc[R][M];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int i = 0; i < M; ++i) acc[r][i] = _mm512_setzero_ps();
  const int64_t lines = (kb + L.blocks - 1) / L.blocks;
  // Prefetch the same line of the rows at least kPrefetchBytes ahead (the next block of R rows, or further
  // when rows are short: an int4 row of k = 2048 is 1 KiB, too close to hide DRAM latency).
  const uint8_t* pf = w + std::max<int64_t>(R * ldw, (kPrefetchBytes + ldw - 1) / ldw * ldw);
  // The scales of the rows that far ahead too (a separate, shorter stream: 2 bytes per 32 codes).
  const uint16_t* spf = s + (pf - w) / ldw * kb;
  for (int64_t b = 0; b < R * kb; b += 32) _mm_prefetch((const char*)(spf + b), _MM_HINT_T0);
  // Whole lines first (the compiler drops the masks and the partial-scale branch), then the ragged one.
  const int64_t full = kb / L.blocks;
  for (int64_t l = 0; l < full; ++l) q_line<Q, M, R>(xa, i0, w, ldw, s, kb, pf, l, L.blocks, acc);
  if (full < lines) q_line<Q, M, R>(xa, i0, w, ldw, s, kb, pf, full, kb - full * L.blocks, acc);
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
    case 1:
      q_rows<Q, 1, R>(xa, i, wd, ldw, s, kb, y + i * n + o, n);
      break;
    case 2:
      q_rows<Q, 2, R>(xa, i, wd, ldw, s, kb, y + i * n + o, n);
      break;
    case 3:
      q_rows<Q, 3, R>(xa, i, wd, ldw, s, kb, y + i * n + o, n);
      break;
    default:
      break;
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

// ---------------------------------------------------------------- GEMM (VNNI, quantized x)
// For a column block of W and a k slice of kQKc / 32 blocks, each 32-row panel of W is repacked once into
// dwords panel[b][p][32 rows] = the 4 unsigned codes k = 32·b + 4p .. +3 of each row (a 16 × 16 dword
// transpose, vmath.h's transpose16 applied to integer lanes), with its scales sc[b][32] as
// fp32; then an MR × 32 micro-kernel broadcasts 4 codes of a row of x per step and accumulates
// vpdpbusd(panel, x) exactly in int32 per block, scaled into fp32 once per block. x is the compact layout.
namespace {

constexpr int kQNr = 32;     // panel width (output features)
constexpr int kQMr = 6;      // rows of x per micro-kernel
constexpr int64_t kQKb = 8;  // blocks per k slice (256 codes)

DSV3_INLINE_AVX512 void transpose16_epi32(__m512i r[16]) {
  __m512 v[16];
#pragma GCC unroll 16
  for (int i = 0; i < 16; ++i) v[i] = _mm512_castsi512_ps(r[i]);
  transpose16(v);
#pragma GCC unroll 16
  for (int i = 0; i < 16; ++i) r[i] = _mm512_castps_si512(v[i]);
}

// panel[(b·8 + p)·32 + r] (dwords) and sc[b·32 + r] for blocks [b0, b0 + nb) of rows row0 .. row0 + 31.
template <Quant Q>
DSV3_TARGET_VNNI void repack_panel(const WeightRef& w, int64_t row0, int64_t nrows, int64_t b0, int64_t nb,
                                   uint32_t* panel, float* sc) {
  const int64_t rb = qrow_bytes(Q, w.k), kb = qblocks(w.k);
  const auto* codes = static_cast<const uint8_t*>(w.data);
  constexpr int64_t bpc = Q == Quant::Int4 ? 4 : 2;  // blocks per 64-byte chunk of a row
  const __m512i flip = _mm512_set1_epi8(int8_t(0x80)), lo4 = _mm512_set1_epi8(0x0f);
  for (int half = 0; half < 2; ++half) {
    for (int64_t c = 0; c < nb; c += bpc) {
      const int64_t have = std::min(bpc, nb - c);
      const int64_t bytes = have * (Q == Quant::Int4 ? 16 : 32);
      __m512i v[16], h[16];
#pragma GCC unroll 16
      for (int r = 0; r < 16; ++r) {
        const int64_t row = half * 16 + r;
        const __m512i raw = row < nrows
                                ? _mm512_maskz_loadu_epi8(mask64(bytes), codes + (row0 + row) * rb +
                                                                             (b0 + c) * (Q == Quant::Int4 ? 16 : 32))
                                : _mm512_setzero_si512();
        if constexpr (Q == Quant::Int8) {
          v[r] = _mm512_xor_si512(raw, flip);
        } else {
          v[r] = _mm512_and_si512(raw, lo4);
          h[r] = _mm512_and_si512(_mm512_srli_epi16(raw, 4), lo4);
        }
      }
      transpose16_epi32(v);
      if constexpr (Q == Quant::Int4) transpose16_epi32(h);
        // v[q]: dword q of the chunk for 16 rows. Int8: block c + q / 8, p = q % 8. Int4 (low nibbles): block
        // c + q / 4, p = q % 4; high nibbles: the same blocks, p = 4 + q % 4.
#pragma GCC unroll 16
      for (int q = 0; q < 16; ++q) {
        const int64_t b = Q == Quant::Int4 ? c + q / 4 : c + q / 8, p = Q == Quant::Int4 ? q % 4 : q % 8;
        if (b - c >= have) continue;
        _mm512_store_si512(panel + (b * 8 + p) * kQNr + half * 16, v[q]);
        if constexpr (Q == Quant::Int4) _mm512_store_si512(panel + (b * 8 + 4 + p) * kQNr + half * 16, h[q]);
      }
    }
  }
  for (int64_t b = 0; b < nb; ++b)
    for (int64_t r = 0; r < kQNr; ++r)
      sc[b * kQNr + r] = r < nrows ? _cvtsh_ss(w.qscale[(row0 + r) * kb + b0 + b]) : 0.0f;
}

// y[i, 0..nr) (+)= Σ_b d_x[i, b] · sc[b, :] · Σ_p vpdpbusd(panel[b][p], x[i, 32b + 4p .. +3]) for i < MR.
template <int MR>
DSV3_TARGET_VNNI void q_ukernel(int64_t nb, const int8_t* xq, const float* xd, const int32_t* xs, int64_t kl,
                                int64_t ld, int32_t zp, const uint32_t* panel, const float* sc, float* y, int64_t ldy,
                                int nr, bool accumulate) {
  __m512 f0[MR], f1[MR];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) f0[i] = f1[i] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    __m512i a0[MR], a1[MR];
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) a0[i] = a1[i] = _mm512_set1_epi32(-zp * xs[i * ld + b]);
    const uint32_t* pb = panel + b * 8 * kQNr;
#pragma GCC unroll 8
    for (int p = 0; p < 8; ++p) {
      const __m512i w0 = _mm512_load_si512(pb + p * kQNr), w1 = _mm512_load_si512(pb + p * kQNr + 16);
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) {
        int32_t four;
        std::memcpy(&four, xq + i * kl + b * kQBlock + 4 * p, 4);
        const __m512i xb = _mm512_set1_epi32(four);
        a0[i] = _mm512_dpbusd_epi32(a0[i], w0, xb);
        a1[i] = _mm512_dpbusd_epi32(a1[i], w1, xb);
      }
    }
    const __m512 s0 = _mm512_load_ps(sc + b * kQNr), s1 = _mm512_load_ps(sc + b * kQNr + 16);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m512 dd = _mm512_set1_ps(xd[i * ld + b]);
      f0[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a0[i]), _mm512_mul_ps(s0, dd), f0[i]);
      f1[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a1[i]), _mm512_mul_ps(s1, dd), f1[i]);
    }
  }
  store_tile32<MR>(f0, f1, y, ldy, nr, accumulate);
}

using QUkernelFn = void (*)(int64_t, const int8_t*, const float*, const int32_t*, int64_t, int64_t, int32_t,
                            const uint32_t*, const float*, float*, int64_t, int, bool);
constexpr QUkernelFn kQUkernels[] = {nullptr,      q_ukernel<1>, q_ukernel<2>, q_ukernel<3>,
                                     q_ukernel<4>, q_ukernel<5>, q_ukernel<6>};
static_assert(sizeof(kQUkernels) / sizeof(kQUkernels[0]) == kQMr + 1);

template <Quant Q>
DSV3_TARGET_VNNI void gemm_q(const QActs& xa, int64_t m0, int64_t m1, const WeightRef& w, float* y, int64_t n0,
                             int64_t n1) {
  const int64_t kb = qblocks(w.k), n = w.n;
  const int64_t panels = (n1 - n0 + kQNr - 1) / kQNr;
  constexpr int64_t kPanelWords = kQKb * 8 * kQNr, kScaleFloats = kQKb * kQNr;
  auto* buf = reinterpret_cast<uint32_t*>(thread_scratch(0, size_t(panels * (kPanelWords + kScaleFloats))));
  const int32_t zp = Q == Quant::Int4 ? 8 : 128;
  for (int64_t b0 = 0; b0 < kb; b0 += kQKb) {
    const int64_t nb = std::min(kQKb, kb - b0);
    for (int64_t jp = 0; jp < panels; ++jp) {
      const int64_t r0 = n0 + jp * kQNr;
      uint32_t* pw = buf + jp * (kPanelWords + kScaleFloats);
      repack_panel<Q>(w, r0, std::min<int64_t>(kQNr, n1 - r0), b0, nb, pw, reinterpret_cast<float*>(pw + kPanelWords));
    }
    for (int64_t i = m0; i < m1; i += kQMr) {
      const QUkernelFn fn = kQUkernels[std::min<int64_t>(kQMr, m1 - i)];
      for (int64_t jp = 0; jp < panels; ++jp) {
        const int64_t r0 = n0 + jp * kQNr;
        const uint32_t* pw = buf + jp * (kPanelWords + kScaleFloats);
        fn(nb, xa.q + i * xa.kl + b0 * kQBlock, xa.d + i * xa.ld + b0, xa.c + i * xa.ld + b0, xa.kl, xa.ld, zp, pw,
           reinterpret_cast<const float*>(pw + kPanelWords), y + i * n + r0, n, int(std::min<int64_t>(kQNr, n1 - r0)),
           b0 > 0);
      }
    }
  }
}

}  // namespace

void gemm_q_avx512(const QActs& xa, int64_t m0, int64_t m1, const WeightRef& w, float* y, int64_t n0, int64_t n1) {
  if (w.quant == Quant::Int4)
    gemm_q<Quant::Int4>(xa, m0, m1, w, y, n0, n1);
  else
    gemm_q<Quant::Int8>(xa, m0, m1, w, y, n0, n1);
}

}  // namespace dsv3::kernels::detail
