// Mixed-precision recipes for the training linear layers (DeepSeek-V3 §3.3, Fig. 6):
//
//   fp32  every GEMM on float32 values (the default, the exact-math path the gradient checks use).
//   bf16  the baseline the report compares against: the inputs of Fprop, Dgrad and Wgrad (activations,
//         weights, output gradients) rounded to bfloat16, products accumulated in float32.
//   fp8   the report's recipe: the same three GEMMs take E4M3 inputs with fine-grained scales — activations
//         and output gradients in 1×128 tiles (one token, 128 channels), weights in 128×128 blocks, scales
//         from the online max-abs — and the Wgrad inputs re-quantized transposed (128×1 tiles);
//         the accumulation is emulated with a limited-precision accumulator promoted to float32 every
//         promote_every products (train/fp8_gemm.h).
//
// Which layers: the linear layers of routed experts, shared experts, dense MLPs, MLA projections (wq_a, wq_b
// or wq, wkv_a, wkv_b, wo) and the MTP projection eh_proj. The embedding, the output head, the MoE router,
// the norms and attention itself (scores, softmax, P·V) stay float32 in every mode, as do master weights and
// weight gradients. With bf16 or fp8 the AdamW moments are kept in bfloat16 (train/adamw.h).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace dsv3::train {

enum class Precision : uint8_t { FP32, BF16, FP8 };

// How a tile's scale is represented: float32 amax/448 (DeepSeek-V3) or the power of two
// 2^ceil(log2(amax/448)) (UE8M0, DeepSeek-V3.1).
enum class Fp8ScaleFormat : uint8_t { F32, UE8M0 };

struct Fp8Recipe {
  Fp8ScaleFormat scale = Fp8ScaleFormat::F32;
  // Mantissa bits kept by the tensor-core accumulator between promotions: 13 emulates H800 (a 22-bit
  // accumulator: sign, 8 exponent, 13 mantissa bits, "around 14 bits" in the report); 23 = float32, which
  // also takes the fast path (dequantize, then an ordinary float32 GEMM).
  int accum_bits = 13;
  // N_C: products summed in the limited accumulator before the partial sum is scaled and added to the
  // float32 accumulator (the report: 128, i.e. 4 WGMMAs). Must divide 128 (the K tile of the scales).
  int64_t promote_every = 128;
  // The report's negative result: quantize the Dgrad input (the output gradient) in 128×128 blocks like the
  // weights instead of 1×128 tiles.
  bool dgrad_block_quant = false;
};

// The mode a linear layer runs in (fp8 details used only when mode == FP8).
struct LinearPrecision {
  Precision mode = Precision::FP32;
  Fp8Recipe fp8{};
};

const char* precision_name(Precision p);
// "fp32" | "bf16" | "fp8"; throws dsv3::Error naming `what` otherwise.
Precision parse_precision(std::string_view s, const std::string& what);
const char* fp8_scale_format_name(Fp8ScaleFormat f);

}  // namespace dsv3::train
