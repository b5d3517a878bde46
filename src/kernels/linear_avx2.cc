// AVX2 + FMA + F16C linear kernels: the same algorithms as linear_avx512.cc (read that file's header) at
// 8 lanes and 16 registers: GEMV with R = 4 / 3 / 2 weight rows for M = 1-2 / 3 / 4 input rows, GEMM
// with 16-wide panels and a 6 × 16 micro-kernel (12 accumulators).
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/internal.h"

namespace dsv3::kernels::detail {

namespace {

// Copies n < 8 elements into a zero-padded block of 8 (tails: AVX2 has no masked 8/16-bit loads).
template <typename T>
struct Tail8 {
  alignas(32) T v[8];
  Tail8(const T* p, int64_t n) {
    std::memset(v, 0, sizeof v);
    std::memcpy(v, p, size_t(n) * sizeof(T));
  }
};

template <DType D>
struct Dec;

template <>
struct Dec<DType::F32> {
  using T = float;
  static DSV3_INLINE_AVX2 __m256 load(const T* p) { return _mm256_loadu_ps(p); }
};

template <>
struct Dec<DType::BF16> {
  using T = uint16_t;
  static DSV3_INLINE_AVX2 __m256 load(const T* p) {
    const __m128i v = _mm_loadu_si128((const __m128i*)p);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(v), 16));
  }
};

template <>
struct Dec<DType::F16> {
  using T = uint16_t;
  static DSV3_INLINE_AVX2 __m256 load(const T* p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)p)); }
};

template <>
struct Dec<DType::F8_E4M3> {
  using T = uint8_t;
  // Byte → half with value × 2⁻⁸ (see linear_avx512.cc).
  static DSV3_INLINE_AVX2 __m256 load(const T* p) {
    __m128i h = _mm_cvtepi8_epi16(_mm_loadl_epi64((const __m128i*)p));
    h = _mm_and_si128(_mm_slli_epi16(h, 7), _mm_set1_epi16(int16_t(0xBFFF)));
    return _mm256_cvtph_ps(h);
  }
};

template <DType D>
DSV3_INLINE_AVX2 __m256 load_n(const typename Dec<D>::T* p, int64_t n) {
  if (n >= 8) return Dec<D>::load(p);
  Tail8<typename Dec<D>::T> t(p, n);
  return Dec<D>::load(t.v);
}

DSV3_INLINE_AVX2 float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// ---------------------------------------------------------------- GEMV
template <DType D, int M, int R>
DSV3_TARGET_AVX2 void gemv_rows(const float* xs, int64_t k, const typename Dec<D>::T* w, float* y, int64_t ldy) {
  __m256 acc[R][M];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int i = 0; i < M; ++i) acc[r][i] = _mm256_setzero_ps();
  int64_t j = 0;
  for (; j + 8 <= k; j += 8) {
    __m256 xv[M];
#pragma GCC unroll 4
    for (int i = 0; i < M; ++i) xv[i] = _mm256_loadu_ps(xs + i * k + j);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const __m256 wv = Dec<D>::load(w + r * k + j);
#pragma GCC unroll 4
      for (int i = 0; i < M; ++i) acc[r][i] = _mm256_fmadd_ps(wv, xv[i], acc[r][i]);
    }
  }
  if (j < k) {
    __m256 xv[M];
#pragma GCC unroll 4
    for (int i = 0; i < M; ++i) xv[i] = load_n<DType::F32>(xs + i * k + j, k - j);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const __m256 wv = load_n<D>(w + r * k + j, k - j);
#pragma GCC unroll 4
      for (int i = 0; i < M; ++i) acc[r][i] = _mm256_fmadd_ps(wv, xv[i], acc[r][i]);
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int i = 0; i < M; ++i) y[i * ldy + r] = hsum(acc[r][i]);
}

template <DType D, int M>
DSV3_TARGET_AVX2 void gemv_range(const float* xs, const WeightRef& w, float* y, int64_t n0, int64_t n1) {
  using T = typename Dec<D>::T;
  constexpr int R = M <= 2 ? 4 : M == 3 ? 3 : 2;
  const T* wd = static_cast<const T*>(w.data);
  const int64_t k = w.k;
  int64_t o = n0;
  for (; o + R <= n1; o += R) gemv_rows<D, M, R>(xs, k, wd + o * k, y + o, w.n);
  for (; o < n1; ++o) gemv_rows<D, M, 1>(xs, k, wd + o * k, y + o, w.n);
}

DSV3_TARGET_AVX2 void prescale_e4m3(const float* x, int64_t m, const WeightRef& w, int64_t rb, float* xs) {
  const int64_t k = w.k, bk = w.block_k, kb = (k + bk - 1) / bk;
  const float* s = w.scale_inv + rb * kb;
  for (int64_t i = 0; i < m; ++i)
    for (int64_t b = 0; b < kb; ++b) {
      const float sv = s[b] * 256.0f;
      const __m256 v = _mm256_set1_ps(sv);
      const int64_t j1 = std::min(k, (b + 1) * bk);
      int64_t j = b * bk;
      for (; j + 8 <= j1; j += 8) _mm256_storeu_ps(xs + i * k + j, _mm256_mul_ps(_mm256_loadu_ps(x + i * k + j), v));
      for (; j < j1; ++j) xs[i * k + j] = x[i * k + j] * sv;
    }
}

template <int M>
DSV3_TARGET_AVX2 void gemv_m(const float* x, const WeightRef& w, float* y, int64_t n0, int64_t n1) {
  switch (w.dtype) {
    case DType::F32:
      return gemv_range<DType::F32, M>(x, w, y, n0, n1);
    case DType::BF16:
      return gemv_range<DType::BF16, M>(x, w, y, n0, n1);
    case DType::F16:
      return gemv_range<DType::F16, M>(x, w, y, n0, n1);
    case DType::F8_E4M3: {
      float* xs = thread_scratch(1, size_t(M * w.k));
      for (int64_t o = n0; o < n1;) {
        const int64_t rb = o / w.block_n, o1 = std::min(n1, (rb + 1) * w.block_n);
        prescale_e4m3(x, M, w, rb, xs);
        gemv_range<DType::F8_E4M3, M>(xs, w, y, o, o1);
        o = o1;
      }
      return;
    }
    default:
      return;
  }
}

// ---------------------------------------------------------------- GEMM
constexpr int kNr = 16;
constexpr int kMr = 6;
constexpr int64_t kKc = 256;

DSV3_INLINE_AVX2 void transpose8(__m256 r[8]) {
  __m256 t[8], s[8];
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
#pragma GCC unroll 2
  for (int i = 0; i < 2; ++i) {
    s[4 * i + 0] = _mm256_shuffle_ps(t[4 * i + 0], t[4 * i + 2], 0x44);
    s[4 * i + 1] = _mm256_shuffle_ps(t[4 * i + 0], t[4 * i + 2], 0xEE);
    s[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
    s[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
  }
#pragma GCC unroll 4
  for (int c = 0; c < 4; ++c) {
    r[c] = _mm256_permute2f128_ps(s[c], s[4 + c], 0x20);
    r[4 + c] = _mm256_permute2f128_ps(s[c], s[4 + c], 0x31);
  }
}

DSV3_INLINE_AVX2 __m256 e4m3_scale(const WeightRef& w, int64_t row, int64_t j, int64_t kb) {
  const float* s = w.scale_inv + (row / w.block_n) * kb;
  const int64_t b0 = j / w.block_k, b1 = std::min(kb - 1, (j + 7) / w.block_k);
  if (b0 == b1) return _mm256_set1_ps(s[b0] * 256.0f);
  alignas(32) float lanes[8];
  for (int l = 0; l < 8; ++l) lanes[l] = s[std::min(kb - 1, (j + l) / w.block_k)] * 256.0f;
  return _mm256_load_ps(lanes);
}

template <DType D>
DSV3_TARGET_AVX2 void decode_panel(const WeightRef& w, int64_t row0, int64_t nrows, int64_t col0, int64_t kc,
                                   float* panel) {
  using T = typename Dec<D>::T;
  const T* wd = static_cast<const T*>(w.data);
  const int64_t k = w.k, kb = (k + w.block_k - 1) / w.block_k;
  for (int part = 0; part < 2; ++part) {
    const int64_t r0 = part * 8;
    for (int64_t p = 0; p < kc; p += 8) {
      const int64_t cnt = std::min<int64_t>(8, kc - p);
      __m256 v[8];
#pragma GCC unroll 8
      for (int r = 0; r < 8; ++r) {
        if (r0 + r < nrows) {
          v[r] = load_n<D>(wd + (row0 + r0 + r) * k + col0 + p, cnt);
          if constexpr (D == DType::F8_E4M3) v[r] = _mm256_mul_ps(v[r], e4m3_scale(w, row0 + r0 + r, col0 + p, kb));
        } else {
          v[r] = _mm256_setzero_ps();
        }
      }
      transpose8(v);
      float* dst = panel + p * kNr + r0;
#pragma GCC unroll 8
      for (int q = 0; q < 8; ++q)
        if (q < cnt) _mm256_store_ps(dst + q * kNr, v[q]);
    }
  }
}

DSV3_INLINE_AVX2 __m256i lane_mask(int n) {  // first n of 8 lanes
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

template <int MR>
DSV3_TARGET_AVX2 void ukernel(int64_t kc, const float* a, int64_t lda, const float* panel, float* c, int64_t ldc,
                              int nr, bool accumulate) {
  __m256 c0[MR], c1[MR];
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) c0[i] = c1[i] = _mm256_setzero_ps();
  const float* b = panel;
  for (int64_t p = 0; p < kc; ++p, b += kNr) {
    const __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      const __m256 av = _mm256_broadcast_ss(a + i * lda + p);
      c0[i] = _mm256_fmadd_ps(av, b0, c0[i]);
      c1[i] = _mm256_fmadd_ps(av, b1, c1[i]);
    }
  }
  if (nr == kNr) {
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      float* ci = c + i * ldc;
      if (accumulate) {
        c0[i] = _mm256_add_ps(c0[i], _mm256_loadu_ps(ci));
        c1[i] = _mm256_add_ps(c1[i], _mm256_loadu_ps(ci + 8));
      }
      _mm256_storeu_ps(ci, c0[i]);
      _mm256_storeu_ps(ci + 8, c1[i]);
    }
    return;
  }
  const __m256i m0 = lane_mask(std::min(nr, 8)), m1 = lane_mask(std::max(nr - 8, 0));
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) {
    float* ci = c + i * ldc;
    if (accumulate) {
      c0[i] = _mm256_add_ps(c0[i], _mm256_maskload_ps(ci, m0));
      c1[i] = _mm256_add_ps(c1[i], _mm256_maskload_ps(ci + 8, m1));
    }
    _mm256_maskstore_ps(ci, m0, c0[i]);
    _mm256_maskstore_ps(ci + 8, m1, c1[i]);
  }
}

using UkernelFn = void (*)(int64_t, const float*, int64_t, const float*, float*, int64_t, int, bool);
constexpr UkernelFn kUkernels[kMr + 1] = {nullptr,    ukernel<1>, ukernel<2>, ukernel<3>,
                                          ukernel<4>, ukernel<5>, ukernel<6>};

// Int8 / Int4 weights: rows decoded by quant_decode_rows_avx2 into per-thread staging, then transposed.
DSV3_TARGET_AVX2 void decode_panel_quant(const WeightRef& w, int64_t row0, int64_t nrows, int64_t col0, int64_t kc,
                                         float* panel) {
  constexpr int64_t lds = kKc + 16;
  float* staging = thread_scratch(4, size_t(kNr * lds));
  quant_decode_rows_avx2(w, row0, nrows, kNr, col0, kc, staging, lds);
  for (int part = 0; part < 2; ++part) {
    const int64_t r0 = part * 8;
    for (int64_t p = 0; p < kc; p += 8) {
      const int64_t cnt = std::min<int64_t>(8, kc - p);
      __m256 v[8];
#pragma GCC unroll 8
      for (int r = 0; r < 8; ++r) v[r] = _mm256_load_ps(staging + (r0 + r) * lds + p);
      transpose8(v);
      float* dst = panel + p * kNr + r0;
#pragma GCC unroll 8
      for (int q = 0; q < 8; ++q)
        if (q < cnt) _mm256_store_ps(dst + q * kNr, v[q]);
    }
  }
}

template <DType D, bool kQuant = false>
DSV3_TARGET_AVX2 void gemm_typed(const float* x, int64_t m0, int64_t m1, const WeightRef& w, float* y, int64_t n0,
                                 int64_t n1) {
  const int64_t k = w.k, n = w.n;
  const int64_t panels = (n1 - n0 + kNr - 1) / kNr;
  float* buf = thread_scratch(0, size_t(panels * kKc * kNr));
  for (int64_t pc = 0; pc < k; pc += kKc) {
    const int64_t kc = std::min(kKc, k - pc);
    for (int64_t jp = 0; jp < panels; ++jp) {
      const int64_t r0 = n0 + jp * kNr;
      if constexpr (kQuant)
        decode_panel_quant(w, r0, std::min<int64_t>(kNr, n1 - r0), pc, kc, buf + jp * kKc * kNr);
      else
        decode_panel<D>(w, r0, std::min<int64_t>(kNr, n1 - r0), pc, kc, buf + jp * kKc * kNr);
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

}  // namespace

void gemv_avx2(const float* x, int64_t m, const WeightRef& w, float* y, int64_t n0, int64_t n1) {
  switch (m) {
    case 1:
      return gemv_m<1>(x, w, y, n0, n1);
    case 2:
      return gemv_m<2>(x, w, y, n0, n1);
    case 3:
      return gemv_m<3>(x, w, y, n0, n1);
    case 4:
      return gemv_m<4>(x, w, y, n0, n1);
    default:
      for (int64_t i = 0; i < m; i += 4) gemv_avx2(x + i * w.k, std::min<int64_t>(4, m - i), w, y + i * w.n, n0, n1);
  }
}

void gemm_avx2(const float* x, int64_t m0, int64_t m1, const WeightRef& w, float* y, int64_t n0, int64_t n1) {
  if (w.quant != Quant::None) return gemm_typed<DType::F32, true>(x, m0, m1, w, y, n0, n1);
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

}  // namespace dsv3::kernels::detail
