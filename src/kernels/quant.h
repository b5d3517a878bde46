// Block-quantized weights: int8 and int4 with one f16 scale per block of 32 consecutive elements along k
// (the input dimension), rows zero-padded to whole blocks. Our own format, in the spirit of llama.cpp's
// Q8_0 / Q4_0, but codes and scales live in two separate row-major tensors (docs/formats.md):
//
//   Int8  codes  int8  [n, kp]       q in [-127, 127]                 w[r, j] = q[r, j] · s[r, j / 32]
//   Int4  codes  uint8 [n, kp / 2]   byte 16·b + i of a row holds element 32·b + i in its low nibble and
//                                    32·b + 16 + i in its high nibble (i < 16); code c in [0, 15],
//                                    w = (c − 8) · s[r, b]
//   scale        f16   [n, kp / 32]  (kp = k rounded up to a multiple of 32; padding codes are 0 / 8)
//
// Why 32 and f16: 32-element blocks keep int4's error small (one scale per 32 values, as Q4_0) and a
// 64-byte cache line holds exactly 2 int8 or 4 int4 blocks, so the SIMD kernels never split a block; an f16
// scale costs 0.5 bit per weight (8.5 / 4.5 bits per weight in all, the same as Q8_0 / Q4_0), and its
// rounding (2⁻¹¹ relative) is far below the codes' own.
//
// The GEMV kernels (decode), and the GEMM kernel on AVX-512 VNNI (prefill), also quantize x per block of
// 32: d = amax / 127, codes round(x · 127 / amax), and compute Σ_b d_x · d_w · Σ_j qx · qw with exact
// integer dot products (vpdpbusd / vpmaddubsw). That is a deviation from exact fp32 activations (relative
// error ~0.3% per product sum, like llama.cpp); linear_qact_ref is its scalar reference. The GEMM without
// VNNI decodes weight tiles into the fp32 panel and keeps x exact (reference linear_ref).
#pragma once

#include <cstdint>

#include "kernels/linear.h"

namespace dsv3::kernels {

constexpr int64_t kQBlock = 32;

// Blocks per row and codes bytes per row for k input features.
inline int64_t qblocks(int64_t k) { return (k + kQBlock - 1) / kQBlock; }
inline int64_t qrow_bytes(Quant q, int64_t k) { return q == Quant::Int4 ? qblocks(k) * 16 : qblocks(k) * kQBlock; }

// Quantizes one row w[0, k) into codes[qrow_bytes] and scales[qblocks] (f16 bits), padding included.
// Int8: s = amax / 127 rounded to f16, q = round(w / s). Int4: the scale with the smallest squared error
// among amax-based candidates (the signed extreme mapped to −8, as Q4_0 does, and to −7.5, −7.25, −7;
// amax / 7 with codes ±7), then c = clamp(round(w / s), −8, 7) + 8.
// Returns false (outputs unspecified) when a value is not finite or a scale overflows f16.
bool quantize_row(Quant q, const float* w, int64_t k, uint8_t* codes, uint16_t* scales);

// The GEMV regime's activation quantization for one row x[0, k): codes qx[qblocks(k) · 32] (zero padded),
// per-block scales d[qblocks] (amax / 127, 0 for an all-zero block) and code sums sum[qblocks].
void quantize_acts_ref(const float* x, int64_t k, int8_t* qx, float* d, int32_t* sum);

// Scalar reference of the GEMV regime for Int8 / Int4 weights: y[i, o] = Σ_b d_x[i, b] · s[o, b] ·
// Σ_{j in b} qx[i, j] · qw[o, j] (integer inner sums, fp32 outer). Same as linear_ref for other weights.
void linear_qact_ref(const float* x, int64_t m, const WeightRef& w, float* y);

// Whether linear(x, m, w, ...) quantizes x: Int8 / Int4 weights, and m in the GEMV regime of the active ISA
// or the active ISA AVX-512 with VNNI.
bool linear_quantizes_x(int64_t m, const WeightRef& w);

}  // namespace dsv3::kernels
