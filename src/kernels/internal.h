// Internal to src/kernels: the per-ISA entry points behind the public kernels, and per-thread scratch.
// The ISA files (*_avx512.cc, *_avx2.cc) are compiled with the portable baseline flags; each of their
// functions opts into its instruction set with a target attribute, and the public functions in
// linear.cc / ops.cc choose one at run time (kernels/isa.h). OpenMP regions live only in the generic
// files, so no outlined parallel body ever needs a target attribute.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/linear.h"

#define DSV3_TARGET_AVX512 \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma,f16c,bmi,bmi2")))
#define DSV3_TARGET_AVX2 __attribute__((target("avx2,fma,f16c,bmi,bmi2")))
#define DSV3_INLINE_AVX512 \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma,f16c,bmi,bmi2"), always_inline)) inline
#define DSV3_INLINE_AVX2 __attribute__((target("avx2,fma,f16c,bmi,bmi2"), always_inline)) inline

namespace dsv3::kernels::detail {

// 64-byte aligned, per-thread, grow-only buffer (slot 0..3 are independent). Allocates only when a call
// needs more than any earlier call on this thread did.
float* thread_scratch(int slot, size_t floats);

// ---- linear ----
// GEMV (m <= 4): output columns [n0, n1) of y[m, n] for all m input rows.
void gemv_avx512(const float* x, int64_t m, const WeightRef& w, float* y, int64_t n0, int64_t n1);
void gemv_avx2(const float* x, int64_t m, const WeightRef& w, float* y, int64_t n0, int64_t n1);
// GEMM: rows [m0, m1) × columns [n0, n1) of y. xb16 (opt-in bf16 mode, AVX-512 BF16 and BF16 weights
// only): x rounded to bf16, [m, kp] with kp = k rounded up to even (zero-padded), else nullptr.
void gemm_avx512(const float* x, int64_t m0, int64_t m1, const WeightRef& w, float* y, int64_t n0, int64_t n1,
                 const uint16_t* xb16);
void gemm_avx2(const float* x, int64_t m0, int64_t m1, const WeightRef& w, float* y, int64_t n0, int64_t n1);
// Whether gemm_avx512 expects x in the weights' line order (linear_avx512.cc), and that copy of x.
bool gemm_permutes_x_avx512(const WeightRef& w);
void permute_rows_avx512(const WeightRef& w, const float* x, int64_t m, float* xp);
// x[m, k] -> bf16 [m, kp] (round to nearest even, zero pad to even kp).
void round_bf16_avx512(const float* x, int64_t m, int64_t k, uint16_t* out);

// ---- ops ----
void rmsnorm_avx512(const float* x, const float* w, int64_t m, int64_t n, float eps, float* y);
void rmsnorm_avx2(const float* x, const float* w, int64_t m, int64_t n, float eps, float* y);
void silu_mul_avx512(const float* gate, const float* up, int64_t n, float* out);
void silu_mul_avx2(const float* gate, const float* up, int64_t n, float* out);
void softmax_avx512(float* x, int64_t n);
void softmax_avx2(float* x, int64_t n);
void rope_pairs_avx512(float* x, int64_t d, const float* cos_sin);
void rope_pairs_avx2(float* x, int64_t d, const float* cos_sin);
void exp_avx512(const float* x, int64_t n, float* y);
void exp_avx2(const float* x, int64_t n, float* y);
// Absorbed MLA decode for heads [h0, h1) (see ops.h); state: 2 * (h1 - h0) floats of scratch.
void latent_attention_avx512(const float* q, int64_t h0, int64_t h1, const float* kv, int64_t t, int64_t ld,
                             int64_t c, int64_t r, float scale, float* o, float* state);
void latent_attention_avx2(const float* q, int64_t h0, int64_t h1, const float* kv, int64_t t, int64_t ld,
                           int64_t c, int64_t r, float scale, float* o, float* state);

}  // namespace dsv3::kernels::detail
