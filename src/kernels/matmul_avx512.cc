// AVX-512 GEMM micro-kernels: a 12×32 block of C in 24 zmm accumulators (two 16-lane vectors per row);
// per k step two loads of B and twelve broadcasts of A feed 24 FMAs. Edges use masked loads/stores. A comes
// packed, or (full 12-row blocks) straight from the matrix in either layout.
#include <immintrin.h>

#include "kernels/matmul_internal.h"

namespace dsv3::kernels::gemm_detail {

namespace {

#define DSV3_GEMM_AVX512 __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,fma"), always_inline)) inline
constexpr int MR = kMrAvx512;

// C[0:mr, 0:nr] = alpha · acc + beta · C
DSV3_GEMM_AVX512 void store_block(const __m512* c0, const __m512* c1, float* c, int64_t ldc, float alpha, float beta,
                                  int64_t mr, int64_t nr) {
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
  const __mmask16 m0 = nr >= 16 ? __mmask16(0xffff) : __mmask16((1u << nr) - 1);
  const __mmask16 m1 = nr >= 32 ? __mmask16(0xffff) : nr > 16 ? __mmask16((1u << (nr - 16)) - 1) : __mmask16(0);
#pragma GCC unroll 12
  for (int i = 0; i < MR; ++i) {
    if (i >= mr) break;
    float* ci = c + i * ldc;
    __m512 r0 = _mm512_mul_ps(va, c0[i]), r1 = _mm512_mul_ps(va, c1[i]);
    if (beta == 1.0f) {
      r0 = _mm512_add_ps(r0, _mm512_maskz_loadu_ps(m0, ci));
      r1 = _mm512_add_ps(r1, _mm512_maskz_loadu_ps(m1, ci + 16));
    } else if (beta != 0.0f) {
      r0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, ci), r0);
      r1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, ci + 16), r1);
    }
    _mm512_mask_storeu_ps(ci, m0, r0);
    _mm512_mask_storeu_ps(ci + 16, m1, r1);
  }
}

}  // namespace

__attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,fma"))) void micro_avx512(int64_t kc, const float* ap,
                                                                                    const float* bp, float* c,
                                                                                    int64_t ldc, float alpha,
                                                                                    float beta, int64_t mr,
                                                                                    int64_t nr) {
  __m512 c0[MR], c1[MR];
#pragma GCC unroll 12
  for (int i = 0; i < MR; ++i) c0[i] = c1[i] = _mm512_setzero_ps();
  for (int64_t p = 0; p < kc; ++p) {
    const __m512 b0 = _mm512_loadu_ps(bp), b1 = _mm512_loadu_ps(bp + 16);
#pragma GCC unroll 12
    for (int i = 0; i < MR; ++i) {
      const __m512 a = _mm512_set1_ps(ap[i]);
      c0[i] = _mm512_fmadd_ps(a, b0, c0[i]);
      c1[i] = _mm512_fmadd_ps(a, b1, c1[i]);
    }
    ap += MR;
    bp += 2 * 16;
  }
  store_block(c0, c1, c, ldc, alpha, beta, mr, nr);
}

__attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,fma"))) void micro_avx512_direct(int64_t kc, const float* a,
                                                                                           int64_t lda, bool trans,
                                                                                           const float* bp, float* c,
                                                                                           int64_t ldc, float alpha,
                                                                                           float beta, int64_t nr) {
  __m512 c0[MR], c1[MR];
#pragma GCC unroll 12
  for (int i = 0; i < MR; ++i) c0[i] = c1[i] = _mm512_setzero_ps();
  if (trans) {  // A(i, p) = a[p·lda + i]: MR contiguous values per step
    for (int64_t p = 0; p < kc; ++p) {
      const __m512 b0 = _mm512_loadu_ps(bp), b1 = _mm512_loadu_ps(bp + 16);
#pragma GCC unroll 12
      for (int i = 0; i < MR; ++i) {
        const __m512 av = _mm512_set1_ps(a[i]);
        c0[i] = _mm512_fmadd_ps(av, b0, c0[i]);
        c1[i] = _mm512_fmadd_ps(av, b1, c1[i]);
      }
      a += lda;
      bp += 2 * 16;
    }
  } else {  // A(i, p) = a[i·lda + p]: MR row streams
    const float* r0 = a;
    const float* r4 = a + 4 * lda;
    const float* r8 = a + 8 * lda;
    const int64_t l1 = lda, l2 = 2 * lda, l3 = 3 * lda;
    for (int64_t p = 0; p < kc; ++p) {
      const __m512 b0 = _mm512_loadu_ps(bp), b1 = _mm512_loadu_ps(bp + 16);
      const float* base[3] = {r0 + p, r4 + p, r8 + p};
#pragma GCC unroll 3
      for (int q = 0; q < 3; ++q) {
        const __m512 a0 = _mm512_set1_ps(base[q][0]), a1 = _mm512_set1_ps(base[q][l1]),
                     a2 = _mm512_set1_ps(base[q][l2]), a3 = _mm512_set1_ps(base[q][l3]);
        c0[4 * q] = _mm512_fmadd_ps(a0, b0, c0[4 * q]);
        c1[4 * q] = _mm512_fmadd_ps(a0, b1, c1[4 * q]);
        c0[4 * q + 1] = _mm512_fmadd_ps(a1, b0, c0[4 * q + 1]);
        c1[4 * q + 1] = _mm512_fmadd_ps(a1, b1, c1[4 * q + 1]);
        c0[4 * q + 2] = _mm512_fmadd_ps(a2, b0, c0[4 * q + 2]);
        c1[4 * q + 2] = _mm512_fmadd_ps(a2, b1, c1[4 * q + 2]);
        c0[4 * q + 3] = _mm512_fmadd_ps(a3, b0, c0[4 * q + 3]);
        c1[4 * q + 3] = _mm512_fmadd_ps(a3, b1, c1[4 * q + 3]);
      }
      bp += 2 * 16;
    }
  }
  store_block(c0, c1, c, ldc, alpha, beta, MR, nr);
}

}  // namespace dsv3::kernels::gemm_detail
