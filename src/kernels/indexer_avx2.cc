// index_scores (kernels/indexer.h) with AVX2: the AVX-512 scheme (indexer_avx512.cc) on 8 lanes — heads in
// lanes, the query transposed once, each key decoded from E4M3 and broadcast against up to 8 head vectors
// (64 heads) per chunk, one key at a time (8 accumulators of the 16 registers).
#include <immintrin.h>

#include <algorithm>

#include "core/dtype.h"
#include "kernels/internal.h"

namespace dsv3::kernels::detail {

namespace {

DSV3_INLINE_AVX2 __m256 decode8(const uint8_t* p) {
  const __m256i b = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
  const __m256i em = _mm256_and_si256(b, _mm256_set1_epi32(0x7f));
  const __m256i sign = _mm256_slli_epi32(_mm256_and_si256(b, _mm256_set1_epi32(0x80)), 24);
  const __m256 normal = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(em, _mm256_set1_epi32(120 << 3)), 20));
  const __m256 sub = _mm256_mul_ps(_mm256_cvtepi32_ps(em), _mm256_set1_ps(1.0f / 512.0f));
  const __m256 is_sub = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(8), em));
  const __m256 mag = _mm256_blendv_ps(normal, sub, is_sub);
  return _mm256_castsi256_ps(_mm256_or_si256(_mm256_castps_si256(mag), sign));
}

DSV3_INLINE_AVX2 float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

template <int HV>
DSV3_TARGET_AVX2 void chunk_scores(const float* qT, int64_t ldq, const float* w, const uint8_t* k, int64_t t, int64_t d,
                                   float* out, float* kf) {
  for (int64_t s = 0; s < t; ++s) {
    const uint8_t* row = k + s * d;
    int64_t j = 0;
    for (; j + 8 <= d; j += 8) _mm256_storeu_ps(kf + j, decode8(row + j));
    for (; j < d; ++j) kf[j] = e4m3_to_f32(row[j]);
    __m256 a[HV];
#pragma GCC unroll 8
    for (int v = 0; v < HV; ++v) a[v] = _mm256_setzero_ps();
    for (j = 0; j < d; ++j) {
      const __m256 b = _mm256_set1_ps(kf[j]);
#pragma GCC unroll 8
      for (int v = 0; v < HV; ++v) a[v] = _mm256_fmadd_ps(_mm256_loadu_ps(qT + j * ldq + 8 * v), b, a[v]);
    }
    const __m256 zero = _mm256_setzero_ps();
    __m256 tot = zero;
#pragma GCC unroll 8
    for (int v = 0; v < HV; ++v) tot = _mm256_fmadd_ps(_mm256_loadu_ps(w + 8 * v), _mm256_max_ps(a[v], zero), tot);
    out[s] += hsum8(tot);
  }
}

template <int HV>
void run_chunk(const float* qc, int64_t hp, const float* w, const uint8_t* k, int64_t t, int64_t d, float* out,
               float* kf) {
  chunk_scores<HV>(qc, hp, w, k, t, d, out, kf);
}

}  // namespace

DSV3_TARGET_AVX2 void index_scores_avx2(const float* q, const float* w, int64_t h, const uint8_t* k, const float* ks,
                                        int64_t t, int64_t d, float* out) {
  const int64_t hp = (h + 7) / 8 * 8;
  float* qT = thread_scratch(5, size_t(d * hp + hp + d));  // [d, hp] ++ w [hp] ++ one decoded key [d]
  float* wp = qT + d * hp;
  float* kf = wp + hp;
  for (int64_t j = 0; j < d; ++j)
    for (int64_t hh = 0; hh < hp; ++hh) qT[j * hp + hh] = hh < h ? q[hh * d + j] : 0.0f;
  for (int64_t hh = 0; hh < hp; ++hh) wp[hh] = hh < h ? w[hh] : 0.0f;
  std::fill(out, out + t, 0.0f);
  for (int64_t h0 = 0; h0 < hp; h0 += 64) {
    const int hv = int(std::min<int64_t>(8, (hp - h0) / 8));
    const float* qc = qT + h0;
    switch (hv) {
      case 8:
        run_chunk<8>(qc, hp, wp + h0, k, t, d, out, kf);
        break;
      case 7:
        run_chunk<7>(qc, hp, wp + h0, k, t, d, out, kf);
        break;
      case 6:
        run_chunk<6>(qc, hp, wp + h0, k, t, d, out, kf);
        break;
      case 5:
        run_chunk<5>(qc, hp, wp + h0, k, t, d, out, kf);
        break;
      case 4:
        run_chunk<4>(qc, hp, wp + h0, k, t, d, out, kf);
        break;
      case 3:
        run_chunk<3>(qc, hp, wp + h0, k, t, d, out, kf);
        break;
      case 2:
        run_chunk<2>(qc, hp, wp + h0, k, t, d, out, kf);
        break;
      default:
        run_chunk<1>(qc, hp, wp + h0, k, t, d, out, kf);
    }
  }
  for (int64_t s = 0; s < t; ++s) out[s] *= ks[s];
}

}  // namespace dsv3::kernels::detail
