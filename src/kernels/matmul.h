// fp32 GEMM for training: C[m, n] = alpha · op(A)[m, k] · op(B)[k, n] + beta · C, all row-major, op = the
// matrix as stored or its transpose. The three shapes a linear layer y = x·Wᵀ needs:
//   forward      y  = x · Wᵀ      matmul_nt   x [m, k], W [n, k]
//   input grad   dx = dy · W      matmul_nn   dy [m, n], W [n, k]
//   weight grad  dW += dyᵀ · x    matmul_tn   dy [t, n], x [t, k]  (reduction over the t tokens)
//
// Layout follows BLIS (Van Zee & van de Geijn 2015): C is cut into (row range × NC-column) tiles that are
// independent OpenMP tasks (each element's summation order is fixed by the KC slicing alone, so results do
// not depend on the thread count); for every KC slice a task packs its B block once into NR-column panels
// and, for each MC-row block of its range, the A block into MR-row panels (transposes are absorbed by the
// packing); a register-blocked micro-kernel
// (AVX-512 12×32, AVX2 6×16 or portable 4×16, chosen at run time through kernels/isa.h) accumulates each
// MR×NR block of C in registers. Called inside an OpenMP parallel region, it runs on the calling thread.
// beta = 0 never reads C (C may hold garbage or NaN).
#pragma once

#include <cstdint>

namespace dsv3::kernels {

struct MatArg {
  const float* data = nullptr;
  int64_t ld = 0;      // row stride of the stored matrix
  bool trans = false;  // false: stored as op(M) [rows, cols]; true: stored as its transpose
};

void gemm(int64_t m, int64_t n, int64_t k, float alpha, MatArg a, MatArg b, float beta, float* c, int64_t ldc);
// The plain triple loop (double accumulation) the fast paths are tested against.
void gemm_ref(int64_t m, int64_t n, int64_t k, float alpha, MatArg a, MatArg b, float beta, float* c, int64_t ldc);

// c[m, n] = a[m, k] · b[n, k]ᵀ  (+ beta · c)
inline void matmul_nt(const float* a, const float* b, int64_t m, int64_t n, int64_t k, float* c, float beta = 0.0f) {
  gemm(m, n, k, 1.0f, {a, k, false}, {b, k, true}, beta, c, n);
}
// c[m, n] = a[m, k] · b[k, n]  (+ beta · c)
inline void matmul_nn(const float* a, const float* b, int64_t m, int64_t n, int64_t k, float* c, float beta = 0.0f) {
  gemm(m, n, k, 1.0f, {a, k, false}, {b, n, false}, beta, c, n);
}
// c[m, n] = a[k, m]ᵀ · b[k, n]  (+ beta · c)
inline void matmul_tn(const float* a, const float* b, int64_t m, int64_t n, int64_t k, float* c, float beta = 0.0f) {
  gemm(m, n, k, 1.0f, {a, m, true}, {b, n, false}, beta, c, n);
}

}  // namespace dsv3::kernels
