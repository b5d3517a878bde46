// Linear layers over weights in their stored dtype: y[M, N] = x[M, K] · W[N, K]ᵀ, accumulated in fp32.
// Weights are never dequantized into a second copy: bf16 / f16 / fp8-E4M3 (with 128×128 block
// multipliers, ragged last blocks allowed) and the int8 / int4 block formats (kernels/quant.h) are
// converted in registers as they are read.
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace dsv3::kernels {

// Block-quantized weights (`dsv3 quantize`; layout in kernels/quant.h and docs/formats.md): blocks of 32
// consecutive elements along k, one f16 scale each, every row zero-padded to whole blocks.
enum class Quant : uint8_t {
  None,  // dtype says it all
  Int8,  // dtype I8, data [n, kp] codes q in [-127, 127]; w = q · scale
  Int4,  // dtype U8, data [n, kp / 2] two 4-bit codes c per byte; w = (c − 8) · scale
};

struct WeightRef {
  DType dtype = DType::F32;    // F32, BF16, F16 or F8_E4M3 (I8 / U8 with quant)
  const void* data = nullptr;  // [n, k] row-major
  int64_t n = 0, k = 0;        // out_features, in_features
  // F8_E4M3 only: scale_inv[ceil(n / block_n), ceil(k / block_k)], element (i, j) multiplies block
  // rows [i*block_n, ...) × cols [j*block_k, ...) — DeepSeek's weight_scale_inv.
  const float* scale_inv = nullptr;
  int64_t block_n = 128, block_k = 128;
  // Int8 / Int4 only: qscale[n, kp / 32] f16 bits, one per block of 32 along k (kp = k rounded up to 32).
  Quant quant = Quant::None;
  const uint16_t* qscale = nullptr;

  // Element (row, col) as float32 (slow; for references and tests).
  float at(int64_t row, int64_t col) const;
};

// y[M, N] = x[M, K] · Wᵀ. Multi-threaded (OpenMP, both regimes); fast path chosen at run time
// (kernels/isa.h). Small m (<= 16 with AVX-512) streams each weight row once, decoding it in registers
// and applying it to every input row (GEMV, memory-bound for decode); larger m decodes each weight tile
// once into a cache-resident fp32 panel and reuses it for all rows (register-blocked GEMM). Exact: every product is the
// fp32 product of x and the decoded weight (fp8: times its block scale), summed in fp32 in a different order than
// linear_ref (relative difference ~1e-7). Deviation: an F8_E4M3 NaN byte (0x7F / 0xFF) reads as ±480 instead of NaN in
// the SIMD paths. Deviation (Int8 / Int4 weights): x is quantized to int8 per block of 32 on the fly and multiplied in
// integers, as llama.cpp does for Q8_0 / Q4_0 — in the GEMV regime always, in the GEMM regime with AVX-512
// VNNI (vpdpbusd); elsewhere the GEMM keeps x exact (fp32 times the decoded weight). See kernels/quant.h,
// linear_qact_ref and linear_quantizes_x.
// The 4-argument form is the exact one (LinearOptions{}); a model passes its own options (model/options.h)
// to the 5-argument form — there is no process-wide setting.
void linear(const float* x, int64_t m, const WeightRef& w, float* y);

struct LinearOptions {
  // Opt-in, never the default: for BF16 weights on CPUs with AVX-512 BF16, in both regimes, round x to
  // bf16 (nearest even) and multiply with vdpbf16ps (fp32 accumulation), as llama.cpp computes BF16
  // models: a lighter GEMV inner loop (one instruction per 64-byte line) and twice the GEMM throughput.
  // Each product then carries x's bf16 rounding (~4e-3 relative); results no longer match the fp32
  // references to 1e-4. Ignored (exact path) where it does not apply.
  bool bf16_activations = false;
  // F8_E4M3 weights only: x is first quantized to E4M3 per row and per block of 128 along k
  // (kernels/indexer.h fp8_roundtrip: DeepSeek's act_quant, float32 scales or with Ue8m0 power-of-two ones)
  // and its dequantized values multiply the weights: the blockwise FP8 GEMM of DeepSeek's V3.2 code, which
  // the V3.2 reference computes. Exact (the default): x as given, the V3 references' numerics.
  enum class Fp8Input : uint8_t { Exact, Quantized, QuantizedUe8m0 };
  Fp8Input fp8_input = Fp8Input::Exact;
};
void linear(const float* x, int64_t m, const WeightRef& w, float* y, const LinearOptions& opt);
// The plain scalar reference the fast paths are tested against.
void linear_ref(const float* x, int64_t m, const WeightRef& w, float* y);

// Bytes W occupies in storage, scales included (what one pass over it reads).
int64_t weight_bytes(const WeightRef& w);

// Copies row `row` of W into out[0, k) as float32 (embedding lookup, tests).
void weight_row(const WeightRef& w, int64_t row, float* out);

}  // namespace dsv3::kernels
