// Storage dtypes as safetensors names them, and exact conversions between them and float32.
// Numerics (DESIGN.md): everything accumulates in fp32; bf16/f16/fp8 are storage or GEMM inputs only.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <string_view>

namespace dsv3 {

enum class DType : uint8_t { F32, F16, BF16, F8_E4M3, F8_E5M2, F64, I64, I32, I16, I8, U8, BOOL };

// Bytes per element.
size_t dtype_size(DType t);
// The safetensors spelling ("F32", "BF16", "F8_E4M3", ...).
std::string_view dtype_name(DType t);
// Parses a safetensors dtype string; nullopt when unknown.
std::optional<DType> parse_dtype(std::string_view s);

// ---- bf16: the top 16 bits of an IEEE float32 ----
inline float bf16_to_f32(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
// Round-to-nearest-even; NaN stays NaN (quiet).
inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

// ---- IEEE half ----
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);  // round-to-nearest-even, overflow to inf

// ---- FP8 E4M3 (OCP "fn" variant used by DeepSeek): bias 7, no infinities, S.1111.111 is NaN, max 448 ----
// Exact decode through a 256-entry table built at compile time.
namespace detail {
constexpr float pow2(int e) {
  float v = 1.0f;
  for (; e > 0; --e) v *= 2.0f;
  for (; e < 0; ++e) v *= 0.5f;
  return v;
}
constexpr std::array<float, 256> make_e4m3_table() {
  std::array<float, 256> t{};
  for (int b = 0; b < 256; ++b) {
    int e = (b >> 3) & 0xf, m = b & 7;
    float v = e == 0 ? float(m) * pow2(-9) : float(8 + m) * pow2(e - 10);
    if (e == 15 && m == 7) v = std::numeric_limits<float>::quiet_NaN();
    t[b] = (b & 0x80) ? -v : v;
  }
  return t;
}
}  // namespace detail
inline constexpr std::array<float, 256> kE4M3ToF32 = detail::make_e4m3_table();
inline float e4m3_to_f32(uint8_t b) { return kE4M3ToF32[b]; }
// Round-to-nearest-even with saturation to ±448; NaN maps to 0x7F.
uint8_t f32_to_e4m3(float f);

// ---- FP8 E5M2: bias 15, IEEE-like (has inf and NaN), max 57344 ----
float e5m2_to_f32(uint8_t b);
// Round-to-nearest-even; saturates to ±57344 when `saturate`, otherwise overflows to ±inf.
uint8_t f32_to_e5m2(float f, bool saturate = true);

// ---- UE8M0 (OCP MX "E8M0" scale format; DeepSeek-V3.1's power-of-two FP8 scales): unsigned, 8 exponent
// bits, bias 127, no sign and no mantissa. Byte b encodes 2^(b − 127) (0x00 = 2^−127, 0xFE = 2^127); 0xFF is
// NaN. ----
inline float ue8m0_to_f32(uint8_t b) {
  if (b == 0xff) return std::numeric_limits<float>::quiet_NaN();
  // 2^(b−127): a normal float for b ≥ 1; b = 0 is the float32 subnormal 2^−127 (mantissa bit 22).
  const uint32_t u = b == 0 ? 0x00400000u : uint32_t(b) << 23;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
// The smallest power of two ≥ f, 2^ceil(log2 f), as a UE8M0 byte: rounds UP, so that a block divided by the
// scale never exceeds the FP8 range the scale was computed for. f ≤ 2^−127 (zero and −0 included) → 0x00;
// f > 2^127 saturates to 0xFE (2^127); NaN, ±inf and negative non-zero f → 0xFF (NaN).
uint8_t f32_to_ue8m0_ceil(float f);
// The power-of-two quantization scale of a block whose max-abs is `amax` for a format whose largest finite
// value is `fmt_max` (448 for E4M3): 2^ceil(log2(amax / fmt_max)), as a UE8M0 byte (amax = 0 gives 0x00).
inline uint8_t ue8m0_scale_for(float amax, float fmt_max) { return f32_to_ue8m0_ceil(amax / fmt_max); }

// Converts n elements of any float storage dtype to float32.
void to_f32(DType t, const void* src, float* dst, size_t n);

}  // namespace dsv3
