// AVX2 GEMM micro-kernel: a 6×16 block of C in 12 ymm accumulators; per k step two loads of B and six
// broadcasts of A feed 12 FMAs. Partial blocks go through a small buffer.
#include <immintrin.h>

#include "kernels/matmul_internal.h"

namespace dsv3::kernels::gemm_detail {

__attribute__((target("avx2,fma"))) void micro_avx2(int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc,
                                                    float alpha, float beta, int64_t mr, int64_t nr) {
  constexpr int MR = kMrAvx2, NR = kNrAvx2;
  __m256 c0[MR], c1[MR];
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) c0[i] = c1[i] = _mm256_setzero_ps();
  for (int64_t p = 0; p < kc; ++p) {
    const __m256 b0 = _mm256_loadu_ps(bp), b1 = _mm256_loadu_ps(bp + 8);
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      const __m256 a = _mm256_broadcast_ss(ap + i);
      c0[i] = _mm256_fmadd_ps(a, b0, c0[i]);
      c1[i] = _mm256_fmadd_ps(a, b1, c1[i]);
    }
    ap += MR;
    bp += NR;
  }
  const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
  if (mr == MR && nr == NR) {
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      float* ci = c + i * ldc;
      __m256 r0 = _mm256_mul_ps(va, c0[i]), r1 = _mm256_mul_ps(va, c1[i]);
      if (beta == 1.0f) {
        r0 = _mm256_add_ps(r0, _mm256_loadu_ps(ci));
        r1 = _mm256_add_ps(r1, _mm256_loadu_ps(ci + 8));
      } else if (beta != 0.0f) {
        r0 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(ci), r0);
        r1 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(ci + 8), r1);
      }
      _mm256_storeu_ps(ci, r0);
      _mm256_storeu_ps(ci + 8, r1);
    }
    return;
  }
  alignas(32) float tmp[MR * NR];
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) {
    _mm256_store_ps(tmp + i * NR, _mm256_mul_ps(va, c0[i]));
    _mm256_store_ps(tmp + i * NR + 8, _mm256_mul_ps(va, c1[i]));
  }
  for (int64_t i = 0; i < mr; ++i) {
    float* ci = c + i * ldc;
    for (int64_t j = 0; j < nr; ++j) ci[j] = beta == 0.0f ? tmp[i * NR + j] : tmp[i * NR + j] + beta * ci[j];
  }
}

}  // namespace dsv3::kernels::gemm_detail
