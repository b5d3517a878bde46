// AVX2 element-wise and row-wise kernels (see ops.h for the contracts; single thread).
#include <immintrin.h>

#include <cmath>
#include <cstring>

#include "kernels/internal.h"
#include "kernels/vmath.h"

namespace dsv3::kernels::detail {

namespace {
DSV3_INLINE_AVX2 __m256i lane_mask(int64_t n) {  // first n of 8 lanes
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(int(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
}  // namespace

DSV3_TARGET_AVX2 void rmsnorm_avx2(const float* x, const float* w, int64_t m, int64_t n, float eps, float* y) {
  for (int64_t i = 0; i < m; ++i) {
    const float* xi = x + i * n;
    float* yi = y + i * n;
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    int64_t j = 0;
    for (; j + 32 <= n; j += 32) {
      const __m256 a = _mm256_loadu_ps(xi + j), b = _mm256_loadu_ps(xi + j + 8);
      const __m256 c = _mm256_loadu_ps(xi + j + 16), d = _mm256_loadu_ps(xi + j + 24);
      s0 = _mm256_fmadd_ps(a, a, s0);
      s1 = _mm256_fmadd_ps(b, b, s1);
      s2 = _mm256_fmadd_ps(c, c, s2);
      s3 = _mm256_fmadd_ps(d, d, s3);
    }
    for (; j + 8 <= n; j += 8) {
      const __m256 a = _mm256_loadu_ps(xi + j);
      s0 = _mm256_fmadd_ps(a, a, s0);
    }
    if (j < n) {
      const __m256 a = _mm256_maskload_ps(xi + j, lane_mask(n - j));
      s1 = _mm256_fmadd_ps(a, a, s1);
    }
    const float ss = hsum256(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    const __m256 inv = _mm256_set1_ps(1.0f / std::sqrt(ss / float(n) + eps));
    for (j = 0; j + 8 <= n; j += 8)
      _mm256_storeu_ps(yi + j, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(xi + j), inv), _mm256_loadu_ps(w + j)));
    if (j < n) {
      const __m256i mk = lane_mask(n - j);
      _mm256_maskstore_ps(
          yi + j, mk, _mm256_mul_ps(_mm256_mul_ps(_mm256_maskload_ps(xi + j, mk), inv), _mm256_maskload_ps(w + j, mk)));
    }
  }
}

namespace {
DSV3_INLINE_AVX2 __m256 silu_mul8(__m256 g, __m256 u) {
  const __m256 e = exp256(_mm256_sub_ps(_mm256_setzero_ps(), g));
  return _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0f), e)), u);
}
}  // namespace

DSV3_TARGET_AVX2 void silu_mul_avx2(const float* gate, const float* up, int64_t n, float* out) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, silu_mul8(_mm256_loadu_ps(gate + i), _mm256_loadu_ps(up + i)));
  if (i < n) {
    const __m256i mk = lane_mask(n - i);
    _mm256_maskstore_ps(out + i, mk, silu_mul8(_mm256_maskload_ps(gate + i, mk), _mm256_maskload_ps(up + i, mk)));
  }
}

DSV3_TARGET_AVX2 void exp_avx2(const float* x, int64_t n, float* y) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, exp256(_mm256_loadu_ps(x + i)));
  if (i < n) {
    const __m256i mk = lane_mask(n - i);
    _mm256_maskstore_ps(y + i, mk, exp256(_mm256_maskload_ps(x + i, mk)));
  }
}

DSV3_TARGET_AVX2 void softmax_avx2(float* x, int64_t n) {
  const __m256 ninf = _mm256_set1_ps(-INFINITY);
  __m256 mv = ninf;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) mv = _mm256_max_ps(mv, _mm256_loadu_ps(x + i));
  if (i < n) {
    const __m256i mk = lane_mask(n - i);
    mv = _mm256_max_ps(mv, _mm256_blendv_ps(ninf, _mm256_maskload_ps(x + i, mk), _mm256_castsi256_ps(mk)));
  }
  const __m256 mx = _mm256_set1_ps(hmax256(mv));
  __m256 s = _mm256_setzero_ps();
  for (i = 0; i + 8 <= n; i += 8) {
    const __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(x + i), mx));
    _mm256_storeu_ps(x + i, e);
    s = _mm256_add_ps(s, e);
  }
  if (i < n) {
    const __m256i mk = lane_mask(n - i);
    const __m256 e = _mm256_and_ps(exp256(_mm256_sub_ps(_mm256_maskload_ps(x + i, mk), mx)), _mm256_castsi256_ps(mk));
    _mm256_maskstore_ps(x + i, mk, e);
    s = _mm256_add_ps(s, e);
  }
  const __m256 inv = _mm256_set1_ps(1.0f / hsum256(s));
  for (i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), inv));
  if (i < n) {
    const __m256i mk = lane_mask(n - i);
    _mm256_maskstore_ps(x + i, mk, _mm256_mul_ps(_mm256_maskload_ps(x + i, mk), inv));
  }
}

DSV3_TARGET_AVX2 void rope_pairs_avx2(float* x, int64_t d, const float* cos_sin) {
  for (int64_t i = 0; i < d; i += 8) {
    const __m256i mk = lane_mask(d - i);
    const __m256 v = _mm256_maskload_ps(x + i, mk), cs = _mm256_maskload_ps(cos_sin + i, mk);
    const __m256 c = _mm256_moveldup_ps(cs), s = _mm256_movehdup_ps(cs);
    const __m256 swapped = _mm256_permute_ps(v, 0xB1);
    _mm256_maskstore_ps(x + i, mk, _mm256_fmaddsub_ps(v, c, _mm256_mul_ps(swapped, s)));
  }
}

}  // namespace dsv3::kernels::detail
