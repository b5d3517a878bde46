// Internal to the GEMM (kernels/matmul.h): the per-ISA micro-kernels and their register-block shapes.
// A micro-kernel multiplies one packed MR-row panel of A by one packed NR-column panel of B over kc steps
// and writes C[0:mr, 0:nr] = alpha · acc + beta · C (beta = 0: C is not read), mr <= MR, nr <= NR.
//   ap: [kc][MR] (A(i, p) at ap[p * MR + i]),  bp: [kc][NR] (B(p, j) at bp[p * NR + j])
#pragma once

#include <cstdint>

namespace dsv3::kernels::gemm_detail {

using MicroKernel = void (*)(int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc, float alpha,
                             float beta, int64_t mr, int64_t nr);

constexpr int kMrAvx512 = 12, kNrAvx512 = 32;
constexpr int kMrAvx2 = 6, kNrAvx2 = 16;
constexpr int kMrScalar = 4, kNrScalar = 16;

void micro_avx512(int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc, float alpha, float beta,
                  int64_t mr, int64_t nr);
// The same AVX-512 kernel reading a full MR-row block of A in place: A(i, p) = a[i · lda + p] (trans = false)
// or a[p · lda + i] (trans = true), i < MR. Saves packing A, which would be repeated for every column tile.
void micro_avx512_direct(int64_t kc, const float* a, int64_t lda, bool trans, const float* bp, float* c, int64_t ldc,
                         float alpha, float beta, int64_t nr);
void micro_avx2(int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc, float alpha, float beta,
                int64_t mr, int64_t nr);

}  // namespace dsv3::kernels::gemm_detail
