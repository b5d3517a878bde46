// index_scores (kernels/indexer.h) with AVX-512: heads in lanes. The query is transposed once into
// qT [d, hp] (hp = heads rounded up to 16, zero padded), then each key row is decoded from E4M3 in
// registers and every key value is broadcast against the head vectors, two keys at a time:
//   acc[v] += qT[j, 16v .. 16v + 16) · k[s, j]      j < d, v < HV  (per lane: the reference's order over j)
// then Σ over lanes of w ⊙ max(acc, 0) is the key's score (times its scale). Heads are taken in chunks of
// 64 (4 vectors × 2 keys = 8 accumulators).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>

#include "core/dtype.h"
#include "kernels/internal.h"

namespace dsv3::kernels::detail {

namespace {

// 16 E4M3 bytes → float32, exactly (normals by exponent rebias, subnormals m · 2^−9; the NaN byte reads 480).
DSV3_INLINE_AVX512 __m512 decode16(const uint8_t* p) {
  const __m512i b = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  const __m512i em = _mm512_and_si512(b, _mm512_set1_epi32(0x7f));
  const __m512i sign = _mm512_slli_epi32(_mm512_and_si512(b, _mm512_set1_epi32(0x80)), 24);
  const __m512 normal = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(em, _mm512_set1_epi32(120 << 3)), 20));
  const __m512 sub = _mm512_mul_ps(_mm512_cvtepi32_ps(em), _mm512_set1_ps(1.0f / 512.0f));
  const __mmask16 is_sub = _mm512_cmplt_epi32_mask(em, _mm512_set1_epi32(8));
  const __m512 mag = _mm512_mask_blend_ps(is_sub, normal, sub);
  return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(mag), sign));
}

DSV3_INLINE_AVX512 void decode_row(const uint8_t* k, int64_t d, float* out) {
  int64_t j = 0;
  for (; j + 16 <= d; j += 16) _mm512_storeu_ps(out + j, decode16(k + j));
  for (; j < d; ++j) out[j] = e4m3_to_f32(k[j]);
}

template <int HV>
DSV3_TARGET_AVX512 void chunk_scores(const float* qT, int64_t ldq, const float* w, const uint8_t* k, int64_t t,
                                     int64_t d, float* out, float* kf) {
  for (int64_t s = 0; s < t; s += 2) {
    const bool two = s + 1 < t;
    decode_row(k + s * d, d, kf);
    decode_row(k + (two ? s + 1 : s) * d, d, kf + d);
    __m512 a0[HV], a1[HV];
#pragma GCC unroll 4
    for (int v = 0; v < HV; ++v) a0[v] = a1[v] = _mm512_setzero_ps();
    for (int64_t j = 0; j < d; ++j) {
      const __m512 b0 = _mm512_set1_ps(kf[j]), b1 = _mm512_set1_ps(kf[d + j]);
#pragma GCC unroll 4
      for (int v = 0; v < HV; ++v) {
        const __m512 qv = _mm512_loadu_ps(qT + j * ldq + 16 * v);
        a0[v] = _mm512_fmadd_ps(qv, b0, a0[v]);
        a1[v] = _mm512_fmadd_ps(qv, b1, a1[v]);
      }
    }
    const __m512 zero = _mm512_setzero_ps();
    __m512 t0 = zero, t1 = zero;
#pragma GCC unroll 4
    for (int v = 0; v < HV; ++v) {
      const __m512 wv = _mm512_loadu_ps(w + 16 * v);
      t0 = _mm512_fmadd_ps(wv, _mm512_max_ps(a0[v], zero), t0);
      t1 = _mm512_fmadd_ps(wv, _mm512_max_ps(a1[v], zero), t1);
    }
    out[s] += _mm512_reduce_add_ps(t0);
    if (two) out[s + 1] += _mm512_reduce_add_ps(t1);
  }
}

}  // namespace

DSV3_TARGET_AVX512 void index_scores_avx512(const float* q, const float* w, int64_t h, const uint8_t* k,
                                            const float* ks, int64_t t, int64_t d, float* out) {
  const int64_t hp = (h + 15) / 16 * 16;
  float* qT = thread_scratch(5, size_t(d * hp + hp + 2 * d));  // [d, hp] ++ w [hp] ++ two decoded keys [2, d]
  float* wp = qT + d * hp;
  float* kf = wp + hp;
  for (int64_t j = 0; j < d; ++j)
    for (int64_t hh = 0; hh < hp; ++hh) qT[j * hp + hh] = hh < h ? q[hh * d + j] : 0.0f;
  for (int64_t hh = 0; hh < hp; ++hh) wp[hh] = hh < h ? w[hh] : 0.0f;
  std::fill(out, out + t, 0.0f);
  for (int64_t h0 = 0; h0 < hp; h0 += 64) {
    const int hv = int(std::min<int64_t>(4, (hp - h0) / 16));
    const float* qc = qT + h0;
    switch (hv) {
      case 4:
        chunk_scores<4>(qc, hp, wp + h0, k, t, d, out, kf);
        break;
      case 3:
        chunk_scores<3>(qc, hp, wp + h0, k, t, d, out, kf);
        break;
      case 2:
        chunk_scores<2>(qc, hp, wp + h0, k, t, d, out, kf);
        break;
      default:
        chunk_scores<1>(qc, hp, wp + h0, k, t, d, out, kf);
    }
  }
  for (int64_t s = 0; s < t; ++s) out[s] *= ks[s];
}

}  // namespace dsv3::kernels::detail
