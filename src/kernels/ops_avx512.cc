// AVX-512 element-wise and row-wise kernels (see ops.h for the contracts; single thread).
// GCC 12's avx512fintrin.h initialises _mm512_undefined_* from itself, which -Wall reports once inlined.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cmath>

#include "kernels/internal.h"
#include "kernels/vmath.h"

namespace dsv3::kernels::detail {

namespace {
DSV3_INLINE_AVX512 __mmask16 tail_mask(int64_t n) { return __mmask16((1u << n) - 1u); }
}  // namespace

DSV3_TARGET_AVX512 void rmsnorm_avx512(const float* x, const float* w, int64_t m, int64_t n, float eps, float* y) {
  for (int64_t i = 0; i < m; ++i) {
    const float* xi = x + i * n;
    float* yi = y + i * n;
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps(), s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
    int64_t j = 0;
    for (; j + 64 <= n; j += 64) {
      const __m512 a = _mm512_loadu_ps(xi + j), b = _mm512_loadu_ps(xi + j + 16);
      const __m512 c = _mm512_loadu_ps(xi + j + 32), d = _mm512_loadu_ps(xi + j + 48);
      s0 = _mm512_fmadd_ps(a, a, s0);
      s1 = _mm512_fmadd_ps(b, b, s1);
      s2 = _mm512_fmadd_ps(c, c, s2);
      s3 = _mm512_fmadd_ps(d, d, s3);
    }
    for (; j + 16 <= n; j += 16) {
      const __m512 a = _mm512_loadu_ps(xi + j);
      s0 = _mm512_fmadd_ps(a, a, s0);
    }
    if (j < n) {
      const __m512 a = _mm512_maskz_loadu_ps(tail_mask(n - j), xi + j);
      s1 = _mm512_fmadd_ps(a, a, s1);
    }
    const float ss = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
    const __m512 inv = _mm512_set1_ps(1.0f / std::sqrt(ss / float(n) + eps));
    for (j = 0; j + 16 <= n; j += 16)
      _mm512_storeu_ps(yi + j, _mm512_mul_ps(_mm512_mul_ps(_mm512_loadu_ps(xi + j), inv), _mm512_loadu_ps(w + j)));
    if (j < n) {
      const __mmask16 mk = tail_mask(n - j);
      _mm512_mask_storeu_ps(
          yi + j, mk,
          _mm512_mul_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(mk, xi + j), inv), _mm512_maskz_loadu_ps(mk, w + j)));
    }
  }
}

namespace {
DSV3_INLINE_AVX512 __m512 silu_mul16(__m512 g, __m512 u) {
  const __m512 e = exp512(_mm512_sub_ps(_mm512_setzero_ps(), g));
  return _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(_mm512_set1_ps(1.0f), e)), u);
}
}  // namespace

DSV3_TARGET_AVX512 void silu_mul_avx512(const float* gate, const float* up, int64_t n, float* out) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(out + i, silu_mul16(_mm512_loadu_ps(gate + i), _mm512_loadu_ps(up + i)));
  if (i < n) {
    const __mmask16 mk = tail_mask(n - i);
    _mm512_mask_storeu_ps(out + i, mk,
                          silu_mul16(_mm512_maskz_loadu_ps(mk, gate + i), _mm512_maskz_loadu_ps(mk, up + i)));
  }
}

DSV3_TARGET_AVX512 void exp_avx512(const float* x, int64_t n, float* y) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, exp512(_mm512_loadu_ps(x + i)));
  if (i < n) {
    const __mmask16 mk = tail_mask(n - i);
    _mm512_mask_storeu_ps(y + i, mk, exp512(_mm512_maskz_loadu_ps(mk, x + i)));
  }
}

DSV3_TARGET_AVX512 void softmax_avx512(float* x, int64_t n) {
  const __m512 ninf = _mm512_set1_ps(-INFINITY);
  __m512 mv0 = ninf, mv1 = ninf;
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    mv0 = _mm512_max_ps(mv0, _mm512_loadu_ps(x + i));
    mv1 = _mm512_max_ps(mv1, _mm512_loadu_ps(x + i + 16));
  }
  for (; i + 16 <= n; i += 16) mv0 = _mm512_max_ps(mv0, _mm512_loadu_ps(x + i));
  if (i < n) mv1 = _mm512_max_ps(mv1, _mm512_mask_loadu_ps(ninf, tail_mask(n - i), x + i));
  const __m512 mx = _mm512_set1_ps(_mm512_reduce_max_ps(_mm512_max_ps(mv0, mv1)));
  __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
  for (i = 0; i + 32 <= n; i += 32) {
    const __m512 e0 = exp512(_mm512_sub_ps(_mm512_loadu_ps(x + i), mx));
    const __m512 e1 = exp512(_mm512_sub_ps(_mm512_loadu_ps(x + i + 16), mx));
    _mm512_storeu_ps(x + i, e0);
    _mm512_storeu_ps(x + i + 16, e1);
    s0 = _mm512_add_ps(s0, e0);
    s1 = _mm512_add_ps(s1, e1);
  }
  for (; i + 16 <= n; i += 16) {
    const __m512 e = exp512(_mm512_sub_ps(_mm512_loadu_ps(x + i), mx));
    _mm512_storeu_ps(x + i, e);
    s0 = _mm512_add_ps(s0, e);
  }
  if (i < n) {
    const __mmask16 mk = tail_mask(n - i);
    const __m512 e = _mm512_maskz_mov_ps(mk, exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(mk, x + i), mx)));
    _mm512_mask_storeu_ps(x + i, mk, e);
    s1 = _mm512_add_ps(s1, e);
  }
  const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(_mm512_add_ps(s0, s1)));
  for (i = 0; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, _mm512_mul_ps(_mm512_loadu_ps(x + i), inv));
  if (i < n) {
    const __mmask16 mk = tail_mask(n - i);
    _mm512_mask_storeu_ps(x + i, mk, _mm512_mul_ps(_mm512_maskz_loadu_ps(mk, x + i), inv));
  }
}

// Pairs (a, b) with (c, s): even lanes a·c − b·s, odd lanes b·c + a·s, as one fmaddsub.
DSV3_TARGET_AVX512 void rope_pairs_avx512(float* x, int64_t d, const float* cos_sin) {
  int64_t i = 0;
  for (; i < d; i += 16) {
    const __mmask16 mk = d - i >= 16 ? __mmask16(0xffff) : tail_mask(d - i);
    const __m512 v = _mm512_maskz_loadu_ps(mk, x + i), cs = _mm512_maskz_loadu_ps(mk, cos_sin + i);
    const __m512 c = _mm512_moveldup_ps(cs), s = _mm512_movehdup_ps(cs);
    const __m512 swapped = _mm512_permute_ps(v, 0xB1);
    _mm512_mask_storeu_ps(x + i, mk, _mm512_fmaddsub_ps(v, c, _mm512_mul_ps(swapped, s)));
  }
}

}  // namespace dsv3::kernels::detail
