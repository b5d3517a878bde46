// AVX-512 linear kernels (single thread; linear.cc splits the work).
//
// Weight decode in registers (16 elements → one zmm of fp32):
//   F32   plain load
//   BF16  zero-extend 16→32 bits, shift left 16
//   F16   vcvtph2ps
//   E4M3  sign-extend the byte to 16 bits, shift left 7 and clear bit 14: that is an IEEE half whose value
//         is the E4M3 value × 2⁻⁸ (subnormals included, exactly), then vcvtph2ps. The 2⁸ goes into the
//         block scale (exact: a power of two). NaN bytes (0x7F/0xFF) read as ±480, not NaN.
//
// GEMV (m <= 4): R = 4 weight rows are streamed at once, one 64-byte line each per step, with software
// prefetch one block ahead; every decoded weight vector meets the M input rows. Weights decode in a
// permuted "line order" (see Line<D>) with x copied into the same order once per call; for E4M3 that
// copy also carries the per-block scale (one copy per 128-row block of W, ~1% of the weight bytes).
//
// GEMM: for a column block of W (≤ 256 output features) and a KC-wide slice of k, each 32-row panel of
// W is decoded and transposed once into fp32 panel[kc][32] (per-thread scratch, L2-resident; fp8 block
// scales applied here, exactly as linear_ref applies them), then an MR × 32 register-blocked kernel
// (MR = 8 rows of x broadcast, 2 zmm of weights, 16 accumulators) runs over every row block of x.
// GCC 12's avx512fintrin.h initialises _mm512_undefined_* from itself, which -Wall reports once inlined.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "kernels/internal.h"
#include "kernels/vmath.h"

namespace dsv3::kernels::detail {

namespace {

// ---------------------------------------------------------------- decode
template <DType D>
struct Dec;

template <>
struct Dec<DType::F32> {
  using T = float;
  static DSV3_INLINE_AVX512 __m512 load(const T* p) { return _mm512_loadu_ps(p); }
  static DSV3_INLINE_AVX512 __m512 load(const T* p, __mmask16 m) { return _mm512_maskz_loadu_ps(m, p); }
  static constexpr float kScale = 1.0f;
};

template <>
struct Dec<DType::BF16> {
  using T = uint16_t;
  static DSV3_INLINE_AVX512 __m512 cvt(__m256i v) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(v), 16));
  }
  static DSV3_INLINE_AVX512 __m512 load(const T* p) { return cvt(_mm256_loadu_si256((const __m256i*)p)); }
  static DSV3_INLINE_AVX512 __m512 load(const T* p, __mmask16 m) { return cvt(_mm256_maskz_loadu_epi16(m, p)); }
  static constexpr float kScale = 1.0f;
};

template <>
struct Dec<DType::F16> {
  using T = uint16_t;
  static DSV3_INLINE_AVX512 __m512 load(const T* p) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)p)); }
  static DSV3_INLINE_AVX512 __m512 load(const T* p, __mmask16 m) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
  }
  static constexpr float kScale = 1.0f;
};

template <>
struct Dec<DType::F8_E4M3> {
  using T = uint8_t;
  static DSV3_INLINE_AVX512 __m512 cvt(__m128i b) {
    __m256i h = _mm256_cvtepi8_epi16(b);
    h = _mm256_and_si256(_mm256_slli_epi16(h, 7), _mm256_set1_epi16(int16_t(0xBFFF)));
    return _mm512_cvtph_ps(h);
  }
  static DSV3_INLINE_AVX512 __m512 load(const T* p) { return cvt(_mm_loadu_si128((const __m128i*)p)); }
  static DSV3_INLINE_AVX512 __m512 load(const T* p, __mmask16 m) { return cvt(_mm_maskz_loadu_epi8(m, p)); }
  static constexpr float kScale = 256.0f;  // the half above is value × 2⁻⁸
};

DSV3_INLINE_AVX512 __mmask16 tail_mask(int64_t n) { return __mmask16((1u << n) - 1u); }

// ---------------------------------------------------------------- GEMV
// One 64-byte line of a weight row decodes into V vectors of 16 floats in "line order", chosen so that no
// cross-lane widening (vpmovzx/vpmovsx, slow on Zen 4/5) is needed; x is copied once per call into the
// same order (xp, perm() below), so the products pair up as in natural order.
//   F32   V = 1, natural order
//   F16   V = 2, natural order (two vcvtph2ps)
//   BF16  V = 2: the 32 values as 16 dwords; v << 16 gives the even elements, v & 0xffff0000 the odd ones
//   E4M3  V = 4: vpunpck{l,h}bw with zero puts each byte in the high half of a word (in-lane), then
//         sra 1 and clear bit 14 makes the half described above, and four vcvtph2ps convert the ymm halves
template <DType D>
struct Line;

template <>
struct Line<DType::F32> {
  static constexpr int V = 1;
  static DSV3_INLINE_AVX512 void load(const float* p, __m512 out[V]) { out[0] = _mm512_loadu_ps(p); }
};

template <>
struct Line<DType::F16> {
  static constexpr int V = 2;
  static DSV3_INLINE_AVX512 void load(const uint16_t* p, __m512 out[V]) {
    out[0] = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)p));
    out[1] = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)(p + 16)));
  }
};

template <>
struct Line<DType::BF16> {
  static constexpr int V = 2;
  static DSV3_INLINE_AVX512 void load(const uint16_t* p, __m512 out[V]) {
    const __m512i v = _mm512_loadu_si512(p);
    out[0] = _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
    out[1] = _mm512_castsi512_ps(_mm512_and_si512(v, _mm512_set1_epi32(int(0xffff0000u))));
  }
  // x in the same order: out[0] = x[0, 2, .., 30], out[1] = x[1, 3, .., 31].
  static DSV3_INLINE_AVX512 void permute(const float* x, float* out) {
    const __m512 a = _mm512_loadu_ps(x), b = _mm512_loadu_ps(x + 16);
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    _mm512_storeu_ps(out, _mm512_permutex2var_ps(a, even, b));
    _mm512_storeu_ps(out + 16, _mm512_permutex2var_ps(a, odd, b));
  }
};

template <>
struct Line<DType::F8_E4M3> {
  static constexpr int V = 4;
  static DSV3_INLINE_AVX512 void load(const uint8_t* p, __m512 out[V]) {
    const __m512i v = _mm512_loadu_si512(p), z = _mm512_setzero_si512(), m = _mm512_set1_epi16(int16_t(0xBFFF));
    const __m512i lo = _mm512_and_si512(_mm512_srai_epi16(_mm512_unpacklo_epi8(z, v), 1), m);
    const __m512i hi = _mm512_and_si512(_mm512_srai_epi16(_mm512_unpackhi_epi8(z, v), 1), m);
    out[0] = _mm512_cvtph_ps(_mm512_castsi512_si256(lo));
    out[1] = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(lo, 1));
    out[2] = _mm512_cvtph_ps(_mm512_castsi512_si256(hi));
    out[3] = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(hi, 1));
  }
  // x in the same order: vector v, lane l holds x[(l / 8) * 16 + l % 8 + (v & 1) * 32 + (v & 2) * 4],
  // i.e. out[0] = x[0-7, 16-23], out[1] = x[32-39, 48-55], out[2] = x[8-15, 24-31], out[3] = x[40-47, 56-63].
  static DSV3_INLINE_AVX512 void permute(const float* x, float* out) {
    const __m512 a = _mm512_loadu_ps(x), b = _mm512_loadu_ps(x + 16), c = _mm512_loadu_ps(x + 32),
                 d = _mm512_loadu_ps(x + 48);
    const __m512i lo = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
    const __m512i hi = _mm512_add_epi32(lo, _mm512_set1_epi32(8));
    _mm512_storeu_ps(out, _mm512_permutex2var_ps(a, lo, b));
    _mm512_storeu_ps(out + 16, _mm512_permutex2var_ps(c, lo, d));
    _mm512_storeu_ps(out + 32, _mm512_permutex2var_ps(a, hi, b));
    _mm512_storeu_ps(out + 48, _mm512_permutex2var_ps(c, hi, d));
  }
};

template <DType D>
constexpr int64_t kLine = 16 * Line<D>::V;  // elements per 64-byte line

// xp[i, :] = x[i, :] with every full line of k in line order (Line<D>::permute), the tail as it is.
template <DType D>
DSV3_TARGET_AVX512 void permute_x(const float* x, int64_t m, int64_t k, float* xp) {
  constexpr int64_t L = kLine<D>;
  for (int64_t i = 0; i < m; ++i) {
    int64_t j = 0;
    for (; j + L <= k; j += L) Line<D>::permute(x + i * k + j, xp + i * k + j);
    for (; j < k; ++j) xp[i * k + j] = x[i * k + j];
  }
}

// xs[i, j] = x[i, j] · scale_inv[rb, j / block_k] · 2⁸ for the rows of W in scale block rb.
DSV3_TARGET_AVX512 void prescale_e4m3(const float* x, int64_t m, const WeightRef& w, int64_t rb, float* xs) {
  const int64_t k = w.k, bk = w.block_k, kb = (k + bk - 1) / bk;
  const float* s = w.scale_inv + rb * kb;
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t b = 0; b < kb; ++b) {
      const __m512 sv = _mm512_set1_ps(s[b] * 256.0f);
      const int64_t j1 = std::min(k, (b + 1) * bk);
      int64_t j = b * bk;
      for (; j + 16 <= j1; j += 16) _mm512_storeu_ps(xs + i * k + j, _mm512_mul_ps(_mm512_loadu_ps(x + i * k + j), sv));
      if (j < j1) {
        const __mmask16 mk = tail_mask(j1 - j);
        _mm512_mask_storeu_ps(xs + i * k + j, mk, _mm512_mul_ps(_mm512_maskz_loadu_ps(mk, x + i * k + j), sv));
      }
    }
  }
}

// y[i * ldy + r] = Σ_j x[i, j] · W[r, j] for R rows starting at w, M input rows (xp: x in line order).
// Each iteration reads one 64-byte line of every row and prefetches the same line of the next R rows:
// the rows are short streams (4 KiB at k = 2048 BF16) that the hardware prefetchers lose at every row
// start, and one block ahead (R · k elements) is far enough to cover DRAM latency.
template <DType D, int M, int R>
DSV3_TARGET_AVX512 void gemv_rows(const float* xp, int64_t k, const typename Dec<D>::T* w, float* y, int64_t ldy) {
  using T = typename Dec<D>::T;
  constexpr int V = Line<D>::V;
  constexpr int64_t L = kLine<D>;
  __m512 acc[R][M];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int i = 0; i < M; ++i) acc[r][i] = _mm512_setzero_ps();
  const T* pf = w + R * k;
  int64_t j = 0;
  for (; j + L <= k; j += L) {
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) _mm_prefetch((const char*)(pf + r * k + j), _MM_HINT_T0);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      __m512 wv[V];
      Line<D>::load(w + r * k + j, wv);
#pragma GCC unroll 4
      for (int v = 0; v < V; ++v)
#pragma GCC unroll 4
        for (int i = 0; i < M; ++i)
          acc[r][i] = _mm512_fmadd_ps(wv[v], _mm512_loadu_ps(xp + i * k + j + 16 * v), acc[r][i]);
    }
  }
  for (; j < k; j += 16) {
    const __mmask16 mk = k - j >= 16 ? __mmask16(0xffff) : tail_mask(k - j);
    __m512 xv[M];
#pragma GCC unroll 4
    for (int i = 0; i < M; ++i) xv[i] = _mm512_maskz_loadu_ps(mk, xp + i * k + j);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const __m512 wv = Dec<D>::load(w + r * k + j, mk);
#pragma GCC unroll 4
      for (int i = 0; i < M; ++i) acc[r][i] = _mm512_fmadd_ps(wv, xv[i], acc[r][i]);
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

// Rows [n0, n1) of W in blocks of 4; each block (4 rows, in L1 after the first group) meets every group of
// 4 input rows in turn, so W is read from memory once for any m.
template <DType D>
DSV3_TARGET_AVX512 void gemv_multi(const float* xp, int64_t m, const WeightRef& w, float* y, int64_t n0, int64_t n1) {
  using T = typename Dec<D>::T;
  const T* wd = static_cast<const T*>(w.data);
  const int64_t k = w.k, n = w.n;
  int64_t o = n0;
  for (; o + 4 <= n1; o += 4) {
    int64_t i = 0;
    for (; i + 4 <= m; i += 4) gemv_rows<D, 4, 4>(xp + i * k, k, wd + o * k, y + i * n + o, n);
    switch (m - i) {
      case 1:
        gemv_rows<D, 1, 4>(xp + i * k, k, wd + o * k, y + i * n + o, n);
        break;
      case 2:
        gemv_rows<D, 2, 4>(xp + i * k, k, wd + o * k, y + i * n + o, n);
        break;
      case 3:
        gemv_rows<D, 3, 4>(xp + i * k, k, wd + o * k, y + i * n + o, n);
        break;
      default:
        break;
    }
  }
  for (; o < n1; ++o) {
    int64_t i = 0;
    for (; i + 4 <= m; i += 4) gemv_rows<D, 4, 1>(xp + i * k, k, wd + o * k, y + i * n + o, n);
    switch (m - i) {
      case 1:
        gemv_rows<D, 1, 1>(xp + i * k, k, wd + o * k, y + i * n + o, n);
        break;
      case 2:
        gemv_rows<D, 2, 1>(xp + i * k, k, wd + o * k, y + i * n + o, n);
        break;
      case 3:
        gemv_rows<D, 3, 1>(xp + i * k, k, wd + o * k, y + i * n + o, n);
        break;
      default:
        break;
    }
  }
}

DSV3_TARGET_AVX512 void gemv_any(const float* x, int64_t m, const WeightRef& w, float* y, int64_t n0, int64_t n1) {
  const int64_t k = w.k;
  switch (w.dtype) {
    case DType::F32:
      return gemv_multi<DType::F32>(x, m, w, y, n0, n1);
    case DType::F16:
      return gemv_multi<DType::F16>(x, m, w, y, n0, n1);
    case DType::BF16: {
      float* xp = thread_scratch(1, size_t(m * k));
      permute_x<DType::BF16>(x, m, k, xp);
      return gemv_multi<DType::BF16>(xp, m, w, y, n0, n1);
    }
    case DType::F8_E4M3: {
      // The block scale goes into x: one scaled copy per 128-row block of W (~1% of its bytes at m = 1).
      float* xs = thread_scratch(1, size_t(2 * m * k));
      float* xp = xs + m * k;
      for (int64_t o = n0; o < n1;) {
        const int64_t rb = o / w.block_n, o1 = std::min(n1, (rb + 1) * w.block_n);
        prescale_e4m3(x, m, w, rb, xs);
        permute_x<DType::F8_E4M3>(xs, m, k, xp);
        gemv_multi<DType::F8_E4M3>(xp, m, w, y, o, o1);
        o = o1;
      }
      return;
    }
    default:
      return;
  }
}

// ---------------------------------------------------------------- GEMM
constexpr int kNr = 32;       // panel width (output features): 2 zmm
constexpr int kMr = 12;       // rows of x per micro-kernel
constexpr int64_t kKc = 256;  // k slice (a multiple of 128, so fp8 scale blocks never straddle a chunk)

// Whether the GEMM decodes W in line order (x then copied into line order, see permute_x): always, except
// for fp8 whose scale blocks are not whole lines (then natural order with per-lane scales).
template <DType D>
constexpr bool gemm_line_order(const WeightRef& w) {
  if constexpr (D == DType::F8_E4M3) return w.block_k % kLine<D> == 0;
  return true;
}

// staging[r][0, kc) = W[row0 + r, col0 .. col0 + kc) (fp8: times its block scale), in line order when
// kLineOrder (col0 is a multiple of the line, kKc being one), zero for r >= nrows and up to kc rounded to 16.
template <DType D, bool kLineOrder>
DSV3_TARGET_AVX512 void decode_rows(const WeightRef& w, int64_t row0, int64_t nrows, int64_t col0, int64_t kc,
                                    float* staging, int64_t lds) {
  using T = typename Dec<D>::T;
  constexpr int V = Line<D>::V;
  constexpr int64_t L = kLine<D>;
  const T* wd = static_cast<const T*>(w.data);
  const int64_t k = w.k, kcp = (kc + 15) & ~int64_t(15);
  const int64_t bk = w.block_k, kb = (k + bk - 1) / bk;
  for (int64_t r = 0; r < kNr; ++r) {
    float* dst = staging + r * lds;
    if (r >= nrows) {
      for (int64_t p = 0; p < kcp; p += 16) _mm512_store_ps(dst + p, _mm512_setzero_ps());
      continue;
    }
    const T* src = wd + (row0 + r) * k + col0;
    const float* srow = D == DType::F8_E4M3 ? w.scale_inv + ((row0 + r) / w.block_n) * kb : nullptr;
    int64_t p = 0;
    if constexpr (kLineOrder) {
      int64_t b = col0 / bk, next = (b + 1) * bk;  // scale block of the current line (fp8)
      for (; p + L <= kc; p += L) {
        __m512 v[V];
        Line<D>::load(src + p, v);
        if constexpr (D == DType::F8_E4M3) {
          while (col0 + p >= next) ++b, next += bk;
          const __m512 sv = _mm512_set1_ps(srow[b] * 256.0f);
#pragma GCC unroll 4
          for (int q = 0; q < V; ++q) v[q] = _mm512_mul_ps(v[q], sv);
        }
#pragma GCC unroll 4
        for (int q = 0; q < V; ++q) _mm512_store_ps(dst + p + 16 * q, v[q]);
      }
    }
    for (; p < kc; p += 16) {  // natural order (the tail of k, or everything)
      const int64_t cnt = std::min<int64_t>(16, kc - p);
      __m512 v = cnt == 16 ? Dec<D>::load(src + p) : Dec<D>::load(src + p, tail_mask(cnt));
      if constexpr (D == DType::F8_E4M3) {
        const int64_t j = col0 + p, b0 = j / bk, b1 = std::min(kb - 1, (j + 15) / bk);
        if (b0 == b1) {
          v = _mm512_mul_ps(v, _mm512_set1_ps(srow[b0] * 256.0f));
        } else {
          alignas(64) float lanes[16];
          for (int l = 0; l < 16; ++l) lanes[l] = srow[std::min(kb - 1, (j + l) / bk)] * 256.0f;
          v = _mm512_mul_ps(v, _mm512_load_ps(lanes));
        }
      }
      _mm512_store_ps(dst + p, v);
    }
  }
}

// panel[p][r] = staging[r][p] for r < 32, p < kc.
DSV3_TARGET_AVX512 void transpose_to_panel(const float* staging, int64_t lds, int64_t kc, float* panel) {
  for (int64_t p = 0; p < kc; p += 16) {
    const int64_t cnt = std::min<int64_t>(16, kc - p);
    for (int half = 0; half < 2; ++half) {
      __m512 v[16];
#pragma GCC unroll 16
      for (int r = 0; r < 16; ++r) v[r] = _mm512_load_ps(staging + (half * 16 + r) * lds + p);
      transpose16(v);
      float* dst = panel + p * kNr + half * 16;
#pragma GCC unroll 16
      for (int q = 0; q < 16; ++q)
        if (q < cnt) _mm512_store_ps(dst + q * kNr, v[q]);
    }
  }
}

// c[i, 0..nr) (+)= Σ_p a[i, p] · panel[p, 0..nr) for i < MR.
template <int MR>
DSV3_TARGET_AVX512 void ukernel(int64_t kc, const float* a, int64_t lda, const float* panel, float* c, int64_t ldc,
                                int nr, bool accumulate) {
  __m512 c0[MR], c1[MR];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) c0[i] = c1[i] = _mm512_setzero_ps();
  const float* b = panel;
  for (int64_t p = 0; p < kc; ++p, b += kNr) {
    const __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const __m512 av = _mm512_set1_ps(a[i * lda + p]);
      c0[i] = _mm512_fmadd_ps(av, b0, c0[i]);
      c1[i] = _mm512_fmadd_ps(av, b1, c1[i]);
    }
  }
  store_tile32<MR>(c0, c1, c, ldc, nr, accumulate);
}

using UkernelFn = void (*)(int64_t, const float*, int64_t, const float*, float*, int64_t, int, bool);
constexpr UkernelFn kUkernels[] = {nullptr,    ukernel<1>, ukernel<2>, ukernel<3>,  ukernel<4>,  ukernel<5>, ukernel<6>,
                                   ukernel<7>, ukernel<8>, ukernel<9>, ukernel<10>, ukernel<11>, ukernel<12>};
static_assert(sizeof(kUkernels) / sizeof(kUkernels[0]) == kMr + 1);

// x is in line order when gemm_line_order<D>(w) (linear.cc permutes it once per call). kQuant: Int8 / Int4
// weights (D unused), decoded by quant_decode_rows_avx512 in natural order.
template <DType D, bool kQuant = false>
DSV3_TARGET_AVX512 void gemm_typed(const float* x, int64_t m0, int64_t m1, const WeightRef& w, float* y, int64_t n0,
                                   int64_t n1) {
  const int64_t k = w.k, n = w.n;
  const int64_t panels = (n1 - n0 + kNr - 1) / kNr;
  constexpr int64_t lds = kKc + 16;  // staging row stride (+16: rows do not alias in L1 sets)
  float* buf = thread_scratch(0, size_t(panels * kKc * kNr + kNr * lds));
  float* staging = buf + panels * kKc * kNr;
  const bool line = !kQuant && gemm_line_order<D>(w);
  for (int64_t pc = 0; pc < k; pc += kKc) {
    const int64_t kc = std::min(kKc, k - pc);
    for (int64_t jp = 0; jp < panels; ++jp) {
      const int64_t r0 = n0 + jp * kNr, nr = std::min<int64_t>(kNr, n1 - r0);
      if constexpr (kQuant) {
        quant_decode_rows_avx512(w, r0, nr, kNr, pc, kc, staging, lds);
      } else {
        if (line)
          decode_rows<D, true>(w, r0, nr, pc, kc, staging, lds);
        else
          decode_rows<D, false>(w, r0, nr, pc, kc, staging, lds);
      }
      transpose_to_panel(staging, lds, kc, buf + jp * kKc * kNr);
    }
    for (int64_t i = m0; i < m1; i += kMr) {
      const int64_t mr = std::min<int64_t>(kMr, m1 - i);
      const UkernelFn fn = kUkernels[mr];
      for (int64_t jp = 0; jp < panels; ++jp) {
        const int64_t r0 = n0 + jp * kNr;
        fn(kc, x + i * k + pc, k, buf + jp * kKc * kNr, y + i * n + r0, n, int(std::min<int64_t>(kNr, n1 - r0)),
           pc > 0);
      }
    }
  }
}

// ---------------------------------------------------------------- GEMM, opt-in bf16 activations
// panel[q][r] = the bf16 pair W[row0 + r, col0 + 2q .. +2) as one 32-bit word, q < kc / 2 (kc even, the
// last pair zero-padded when k is odd).
DSV3_TARGET_AVX512 void decode_panel_bf16_pairs(const WeightRef& w, int64_t row0, int64_t nrows, int64_t col0,
                                                int64_t kc, uint32_t* panel) {
  const uint16_t* wd = static_cast<const uint16_t*>(w.data);
  const int64_t k = w.k, kq = (kc + 1) / 2;
  for (int half = 0; half < 2; ++half) {
    const int64_t r0 = half * 16;
    for (int64_t q = 0; q < kq; q += 16) {
      const int64_t cnt = std::min<int64_t>(16, kq - q);        // pairs in this chunk
      const int64_t elems = std::min<int64_t>(32, kc - 2 * q);  // bf16 values in this chunk
      const __mmask32 mk = elems >= 32 ? __mmask32(0xffffffffu) : __mmask32((1u << elems) - 1u);
      __m512 v[16];
#pragma GCC unroll 16
      for (int r = 0; r < 16; ++r) {
        if (r0 + r < nrows)
          v[r] = _mm512_castsi512_ps(_mm512_maskz_loadu_epi16(mk, wd + (row0 + r0 + r) * k + col0 + 2 * q));
        else
          v[r] = _mm512_setzero_ps();
      }
      transpose16(v);
      uint32_t* dst = panel + q * kNr + r0;
#pragma GCC unroll 16
      for (int p = 0; p < 16; ++p)
        if (p < cnt) _mm512_store_ps(reinterpret_cast<float*>(dst + p * kNr), v[p]);
    }
  }
}

template <int MR>
DSV3_TARGET_AVX512 void ukernel_bf16(int64_t kq, const uint16_t* a, int64_t lda, const uint32_t* panel, float* c,
                                     int64_t ldc, int nr, bool accumulate) {
  __m512 c0[MR], c1[MR];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) c0[i] = c1[i] = _mm512_setzero_ps();
  const uint32_t* b = panel;
  for (int64_t q = 0; q < kq; ++q, b += kNr) {
    const __m512bh b0 = (__m512bh)_mm512_load_si512(b), b1 = (__m512bh)_mm512_load_si512(b + 16);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      uint32_t pair;
      std::memcpy(&pair, a + i * lda + 2 * q, 4);
      const __m512bh av = (__m512bh)_mm512_set1_epi32(int(pair));
      c0[i] = _mm512_dpbf16_ps(c0[i], av, b0);
      c1[i] = _mm512_dpbf16_ps(c1[i], av, b1);
    }
  }
  store_tile32<MR>(c0, c1, c, ldc, nr, accumulate);
}

using UkernelBf16Fn = void (*)(int64_t, const uint16_t*, int64_t, const uint32_t*, float*, int64_t, int, bool);
constexpr UkernelBf16Fn kUkernelsBf16[] = {nullptr,         ukernel_bf16<1>, ukernel_bf16<2>,  ukernel_bf16<3>,
                                           ukernel_bf16<4>, ukernel_bf16<5>, ukernel_bf16<6>,  ukernel_bf16<7>,
                                           ukernel_bf16<8>, ukernel_bf16<9>, ukernel_bf16<10>, ukernel_bf16<11>,
                                           ukernel_bf16<12>};
static_assert(sizeof(kUkernelsBf16) / sizeof(kUkernelsBf16[0]) == kMr + 1);

// The dot-product form for few rows of x (a routed expert's share of a prefill batch): no panel. MR rows
// of x against NR rows of BF16 W, W read straight from its row-major storage one 64-byte line at a time;
// each (x row, W row) pair's partial sums stay in 16 lanes, reduced once at the end. W's NR rows (16 KiB
// at k = 2048, NR = 4) stay in L1 while every MR-row block of x (in L2) passes them. Two kinds of x:
//   kBf16x  x rounded to bf16 (opt-in), products by vdpbf16ps on W's raw bf16 pairs
//   else    x exact fp32 in W's line order (permute_x), W decoded in registers (Line<BF16>), fp32 FMAs
template <int MR, int NR, bool kBf16x, bool kPf>
DSV3_TARGET_AVX512 void dot_tile(const void* xv, int64_t ldx, const uint16_t* w, int64_t k, float* y, int64_t ldy) {
  __m512 acc[MR * NR];
#pragma GCC unroll 32
  for (int t = 0; t < MR * NR; ++t) acc[t] = _mm512_setzero_ps();
  int64_t j = 0;
  if constexpr (kBf16x) {
    const auto* xb = static_cast<const uint16_t*>(xv);
    for (; j < k; j += 32) {
      const __mmask32 mk = k - j >= 32 ? ~__mmask32(0) : __mmask32((uint64_t(1) << (k - j)) - 1);
      __m512bh wr[NR];
#pragma GCC unroll 4
      for (int r = 0; r < NR && kPf; ++r) _mm_prefetch((const char*)(w + (NR + r) * k + j), _MM_HINT_T0);
#pragma GCC unroll 4
      for (int r = 0; r < NR; ++r) wr[r] = (__m512bh)_mm512_maskz_loadu_epi16(mk, w + r * k + j);
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) {
        const __m512bh xi = (__m512bh)_mm512_maskz_loadu_epi16(mk, xb + i * ldx + j);
#pragma GCC unroll 4
        for (int r = 0; r < NR; ++r) acc[i * NR + r] = _mm512_dpbf16_ps(acc[i * NR + r], xi, wr[r]);
      }
    }
  } else {
    const auto* xp = static_cast<const float*>(xv);
    constexpr int64_t L = kLine<DType::BF16>;
    for (; j + L <= k; j += L) {
      __m512 wr[NR][2];
#pragma GCC unroll 4
      for (int r = 0; r < NR && kPf; ++r) _mm_prefetch((const char*)(w + (NR + r) * k + j), _MM_HINT_T0);
#pragma GCC unroll 4
      for (int r = 0; r < NR; ++r) Line<DType::BF16>::load(w + r * k + j, wr[r]);
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) {
        const __m512 x0 = _mm512_loadu_ps(xp + i * ldx + j), x1 = _mm512_loadu_ps(xp + i * ldx + j + 16);
#pragma GCC unroll 4
        for (int r = 0; r < NR; ++r)
          acc[i * NR + r] = _mm512_fmadd_ps(wr[r][1], x1, _mm512_fmadd_ps(wr[r][0], x0, acc[i * NR + r]));
      }
    }
    for (; j < k; j += 16) {  // the tail, in natural order in both
      const __mmask16 mk = k - j >= 16 ? __mmask16(0xffff) : tail_mask(k - j);
      __m512 wr[NR];
#pragma GCC unroll 4
      for (int r = 0; r < NR; ++r) wr[r] = Dec<DType::BF16>::load(w + r * k + j, mk);
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) {
        const __m512 xi = _mm512_maskz_loadu_ps(mk, xp + i * ldx + j);
#pragma GCC unroll 4
        for (int r = 0; r < NR; ++r) acc[i * NR + r] = _mm512_fmadd_ps(wr[r], xi, acc[i * NR + r]);
      }
    }
  }
  // Horizontal sums, 16 accumulators at a time.
  alignas(64) float sums[((MR * NR + 15) / 16) * 16];
#pragma GCC unroll 2
  for (int t0 = 0; t0 < MR * NR; t0 += 16) {
    __m512 v[16];
#pragma GCC unroll 16
    for (int t = 0; t < 16; ++t) v[t] = t0 + t < MR * NR ? acc[t0 + t] : _mm512_setzero_ps();
    _mm512_store_ps(sums + t0, hsum16x16(v));
  }
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int r = 0; r < NR; ++r) y[i * ldy + r] = sums[i * NR + r];
}

// The last m < MR rows of x (none: nothing).
template <int NR, bool kBf16x, bool kPf, typename Elem>
DSV3_TARGET_AVX512 void dot_tail(const Elem* x, int64_t ldx, int64_t m, const uint16_t* w, int64_t k, float* y,
                                 int64_t ldy) {
  switch (m) {
    case 1:
      return dot_tile<1, NR, kBf16x, kPf>(x, ldx, w, k, y, ldy);
    case 2:
      return dot_tile<2, NR, kBf16x, kPf>(x, ldx, w, k, y, ldy);
    case 3:
      return dot_tile<3, NR, kBf16x, kPf>(x, ldx, w, k, y, ldy);
    case 4:
      return dot_tile<4, NR, kBf16x, kPf>(x, ldx, w, k, y, ldy);
    case 5:
      return dot_tile<5, NR, kBf16x, kPf>(x, ldx, w, k, y, ldy);
    default:
      return;
  }
}

// All m rows of x against NR rows of W, MR rows at a time (6 for bf16 x, 4 for fp32 x: registers).
template <int NR, bool kBf16x>
DSV3_TARGET_AVX512 void dot_rows(const void* x, int64_t ldx, int64_t m, const uint16_t* w, int64_t k, float* y,
                                 int64_t ldy) {
  using Elem = std::conditional_t<kBf16x, uint16_t, float>;
  constexpr int kM = kBf16x ? 6 : 4;
  const Elem* xe = static_cast<const Elem*>(x);
  if (m < kM) return dot_tail<NR, kBf16x, true>(xe, ldx, m, w, k, y, ldy);
  dot_tile<kM, NR, kBf16x, true>(xe, ldx, w, k, y, ldy);
  int64_t i = kM;
  for (; i + kM <= m; i += kM) dot_tile<kM, NR, kBf16x, false>(xe + i * ldx, ldx, w, k, y + i * ldy, ldy);
  dot_tail<NR, kBf16x, false>(xe + i * ldx, ldx, m - i, w, k, y + i * ldy, ldy);
}

// Rows [m0, m1) × columns [n0, n1) of y over BF16 W in the dot-product form; x: bf16 [m, kp] (kBf16x) or
// fp32 in line order [m, k].
template <bool kBf16x>
DSV3_TARGET_AVX512 void gemm_dot(const void* x, int64_t m0, int64_t m1, const WeightRef& w, float* y, int64_t n0,
                                 int64_t n1) {
  const int64_t k = w.k, n = w.n, ldx = kBf16x ? (k + 1) & ~int64_t(1) : k;
  const uint16_t* wd = static_cast<const uint16_t*>(w.data);
  const void* x0 = kBf16x ? static_cast<const void*>(static_cast<const uint16_t*>(x) + m0 * ldx)
                          : static_cast<const void*>(static_cast<const float*>(x) + m0 * ldx);
  float* y0 = y + m0 * n;
  int64_t o = n0;
  for (; o + 4 <= n1; o += 4) dot_rows<4, kBf16x>(x0, ldx, m1 - m0, wd + o * k, k, y0 + o, n);
  for (; o < n1; ++o) dot_rows<1, kBf16x>(x0, ldx, m1 - m0, wd + o * k, k, y0 + o, n);
}

// Rows of x up to which GEMMs over BF16 W take the dot-product form (x then fits in L2 next to W's rows).
constexpr int64_t kDotMaxRows = 64;

DSV3_TARGET_AVX512 void gemm_bf16_pairs(const uint16_t* xb, int64_t m0, int64_t m1, const WeightRef& w, float* y,
                                        int64_t n0, int64_t n1) {
  const int64_t k = w.k, n = w.n, kp = (k + 1) & ~int64_t(1);
  if (m1 - m0 <= kDotMaxRows) return gemm_dot<true>(xb, m0, m1, w, y, n0, n1);
  const int64_t panels = (n1 - n0 + kNr - 1) / kNr;
  constexpr int64_t kKc2 = 2 * kKc;  // bf16 values per k slice
  auto* buf = reinterpret_cast<uint32_t*>(thread_scratch(0, size_t(panels * (kKc2 / 2) * kNr)));
  for (int64_t pc = 0; pc < k; pc += kKc2) {
    const int64_t kc = std::min(kKc2, k - pc), kq = (kc + 1) / 2;
    for (int64_t jp = 0; jp < panels; ++jp) {
      const int64_t r0 = n0 + jp * kNr;
      decode_panel_bf16_pairs(w, r0, std::min<int64_t>(kNr, n1 - r0), pc, kc, buf + jp * (kKc2 / 2) * kNr);
    }
    for (int64_t i = m0; i < m1; i += kMr) {
      const int64_t mr = std::min<int64_t>(kMr, m1 - i);
      const UkernelBf16Fn fn = kUkernelsBf16[mr];
      for (int64_t jp = 0; jp < panels; ++jp) {
        const int64_t r0 = n0 + jp * kNr;
        fn(kq, xb + i * kp + pc, kp, buf + jp * (kKc2 / 2) * kNr, y + i * n + r0, n,
           int(std::min<int64_t>(kNr, n1 - r0)), pc > 0);
      }
    }
  }
}

}  // namespace

void gemv_avx512(const float* x, int64_t m, const WeightRef& w, float* y, int64_t n0, int64_t n1) {
  gemv_any(x, m, w, y, n0, n1);
}

void gemv_permuted_avx512(const float* xp, int64_t m, const WeightRef& w, float* y, int64_t n0, int64_t n1) {
  gemv_multi<DType::BF16>(xp, m, w, y, n0, n1);
}

void gemv_bf16x_avx512(const uint16_t* xb, int64_t m, const WeightRef& w, float* y, int64_t n0, int64_t n1) {
  gemm_dot<true>(xb, 0, m, w, y, n0, n1);
}

bool gemm_permutes_x_avx512(const WeightRef& w) {
  switch (w.dtype) {
    case DType::BF16:
      return gemm_line_order<DType::BF16>(w);
    case DType::F8_E4M3:
      return gemm_line_order<DType::F8_E4M3>(w);
    default:
      return false;  // F32 and F16 lines are in natural order
  }
}

void permute_rows_avx512(const WeightRef& w, const float* x, int64_t m, float* xp) {
  if (w.dtype == DType::BF16)
    permute_x<DType::BF16>(x, m, w.k, xp);
  else if (w.dtype == DType::F8_E4M3)
    permute_x<DType::F8_E4M3>(x, m, w.k, xp);
}

void gemm_avx512(const float* x, int64_t m0, int64_t m1, const WeightRef& w, float* y, int64_t n0, int64_t n1,
                 const uint16_t* xb16) {
  if (w.quant != Quant::None) return gemm_typed<DType::F32, true>(x, m0, m1, w, y, n0, n1);
  if (xb16 && w.dtype == DType::BF16) return gemm_bf16_pairs(xb16, m0, m1, w, y, n0, n1);
  if (w.dtype == DType::BF16 && m1 - m0 <= kDotMaxRows) return gemm_dot<false>(x, m0, m1, w, y, n0, n1);
  switch (w.dtype) {
    case DType::F32:
      return gemm_typed<DType::F32>(x, m0, m1, w, y, n0, n1);
    case DType::BF16:
      return gemm_typed<DType::BF16>(x, m0, m1, w, y, n0, n1);
    case DType::F16:
      return gemm_typed<DType::F16>(x, m0, m1, w, y, n0, n1);
    case DType::F8_E4M3:
      return gemm_typed<DType::F8_E4M3>(x, m0, m1, w, y, n0, n1);
    default:
      return;
  }
}

DSV3_TARGET_AVX512 void round_bf16_avx512(const float* x, int64_t m, int64_t k, uint16_t* out) {
  const int64_t kp = (k + 1) & ~int64_t(1);
  for (int64_t i = 0; i < m; ++i) {
    const float* xi = x + i * k;
    uint16_t* oi = out + i * kp;
    int64_t j = 0;
    for (; j + 16 <= k; j += 16)
      _mm256_storeu_si256((__m256i*)(oi + j), (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(xi + j)));
    if (j < k) {
      const __mmask16 mk = tail_mask(k - j);
      _mm256_mask_storeu_epi16(oi + j, mk, (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(mk, xi + j)));
    }
    if (kp > k) oi[k] = 0;
  }
}

}  // namespace dsv3::kernels::detail
