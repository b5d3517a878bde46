// The FP8 GEMM of the training recipe, emulated on the CPU: C[m, n] (+)= A[m, K] · B[n, K]ᵀ with A and B
// quantized (train/fp8_quant.h), both K-contiguous — the operand layout of Hopper FP8 tensor cores — so a
// CUDA kernel (e.g. DeepGEMM's) can replace this one function later without touching the callers.
//
// Accumulation (DeepSeek-V3 §3.3.2 "Increasing accumulation precision"): H800 tensor cores add FP8 products
// in an accumulator that keeps about 14 significant bits (a 22-bit format: sign, 8 exponent and 13 mantissa
// bits), so long reductions lose precision (the report: ~2% max relative error at K = 4096). V3 promotes:
// every N_C = 128 products the partial sum is multiplied by the two tiles' scales and added to a float32
// accumulator on the CUDA cores. The emulation does exactly that per output element:
//   for each chunk of promote_every products (inside one 128-wide scale tile along K):
//     acc_lim = 0;  for k in chunk: acc_lim = trunc_b(fp32(acc_lim + qa[i,k]·qb[j,k]))
//     acc32   = fp32(acc32 + fp32(acc_lim · fp32(sa(i,k) · sb(j,k))))
//   C[i,j]  = acc32 (+ C[i,j] when accumulating)
// where qa, qb are the E4M3 values of the codes (their products are exact in float32) and trunc_b clears all
// but the top b mantissa bits (round toward zero). promote_every = 0 means never: one chunk spanning all of
// K, which needs scales that are constant along K (tile_cols ≥ K; per-tensor or per-row scaling), since the
// tensor core itself cannot apply scales. With accum_bits ≥ 23 the accumulator is plain float32 and the
// operands are dequantized into an ordinary float32 GEMM (kernels/matmul.h), the fast path.
#pragma once

#include <cstdint>

#include "train/fp8_quant.h"

namespace dsv3::train {

struct Fp8GemmOptions {
  int accum_bits = 13;          // mantissa bits of the limited accumulator, 1..23 (23 = float32)
  int64_t promote_every = 128;  // N_C; 0 = never promote
  bool accumulate = false;      // C += A·Bᵀ instead of C = A·Bᵀ
};

// a [m, K], b [n, K] → c [m, n] with row stride ldc. Throws dsv3::Error on mismatched shapes or options.
void fp8_gemm(const Fp8Matrix& a, const Fp8Matrix& b, float* c, int64_t ldc, const Fp8GemmOptions& o);

// The same numerics one element at a time in plain scalar code (the fast path is tested against it).
void fp8_gemm_scalar(const Fp8Matrix& a, const Fp8Matrix& b, float* c, int64_t ldc, const Fp8GemmOptions& o);

}  // namespace dsv3::train
