#include "core/dtype.h"

#include <cmath>
#include <limits>

#include "core/error.h"

namespace dsv3 {

namespace {
struct DTypeInfo {
  DType t;
  std::string_view name;
  size_t size;
};
constexpr DTypeInfo kInfo[] = {
    {DType::F32, "F32", 4},         {DType::F16, "F16", 2}, {DType::BF16, "BF16", 2}, {DType::F8_E4M3, "F8_E4M3", 1},
    {DType::F8_E5M2, "F8_E5M2", 1}, {DType::F64, "F64", 8}, {DType::I64, "I64", 8},   {DType::I32, "I32", 4},
    {DType::I16, "I16", 2},         {DType::I8, "I8", 1},   {DType::U8, "U8", 1},     {DType::BOOL, "BOOL", 1},
};

// Decodes a small float with `ebits` exponent bits and `mbits` mantissa bits (no inf/NaN handling).
float decode_minifloat(uint32_t sign, uint32_t exp, uint32_t man, int mbits, int bias) {
  float v;
  if (exp == 0)
    v = std::ldexp(float(man), 1 - bias - mbits);  // subnormal
  else
    v = std::ldexp(float((1u << mbits) | man), int(exp) - bias - mbits);
  return sign ? -v : v;
}

// Rounds |f| (finite, non-negative) to a minifloat with `mbits` mantissa bits, exponent bias `bias` and
// largest finite magnitude `maxv`, round-to-nearest-even; returns the 7-bit (or fewer) magnitude code.
// Saturates to maxv's code when `saturate`, else returns `inf_code`.
uint32_t encode_minifloat(float a, int mbits, int bias, float maxv, uint32_t max_code, bool saturate,
                          uint32_t inf_code) {
  if (a == 0.0f) return 0;
  // Quantum at a's binade, clamped to the subnormal quantum.
  int e;
  std::frexp(a, &e);  // a = f * 2^e, f in [0.5, 1)
  int exp_unbiased = e - 1;
  int min_normal_exp = 1 - bias;
  if (exp_unbiased < min_normal_exp) exp_unbiased = min_normal_exp;
  double quantum = std::ldexp(1.0, exp_unbiased - mbits);
  double q = std::nearbyint(double(a) / quantum);  // default rounding mode: nearest-even
  double r = q * quantum;
  if (r > maxv) {
    // Beyond the largest finite value: IEEE RNE rounds to inf only at >= max + half quantum of max.
    double max_quantum = std::ldexp(1.0, std::ilogb(maxv) - mbits);
    if (!saturate && double(a) >= double(maxv) + max_quantum / 2) return inf_code;
    return max_code;
  }
  // Re-encode r.
  if (r == 0.0) return 0;
  int re;
  std::frexp(r, &re);
  int ru = re - 1;
  if (ru < min_normal_exp) {  // subnormal
    return uint32_t(std::lround(r / std::ldexp(1.0, min_normal_exp - mbits)));
  }
  uint32_t man = uint32_t(std::lround(r / std::ldexp(1.0, ru - mbits))) - (1u << mbits);
  return (uint32_t(ru + bias) << mbits) | man;
}
}  // namespace

size_t dtype_size(DType t) { return kInfo[size_t(t)].size; }
std::string_view dtype_name(DType t) { return kInfo[size_t(t)].name; }
std::optional<DType> parse_dtype(std::string_view s) {
  for (const auto& i : kInfo)
    if (i.name == s) return i.t;
  return std::nullopt;
}

float f16_to_f32(uint16_t h) {
  uint32_t s = h >> 15, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e == 31) {
    if (m) return std::numeric_limits<float>::quiet_NaN();
    return s ? -std::numeric_limits<float>::infinity() : std::numeric_limits<float>::infinity();
  }
  return decode_minifloat(s, e, m, 10, 15);
}

uint16_t f32_to_f16(float f) {
  uint32_t s = std::signbit(f) ? 0x8000u : 0;
  if (std::isnan(f)) return uint16_t(s | 0x7e00);
  float a = std::fabs(f);
  if (std::isinf(a)) return uint16_t(s | 0x7c00);
  return uint16_t(s | encode_minifloat(a, 10, 15, 65504.0f, 0x7bff, false, 0x7c00));
}

uint8_t f32_to_e4m3(float f) {
  if (std::isnan(f)) return 0x7f;
  uint32_t s = std::signbit(f) ? 0x80u : 0;
  float a = std::fabs(f);
  if (std::isinf(a)) return uint8_t(s | 0x7e);
  return uint8_t(s | encode_minifloat(a, 3, 7, 448.0f, 0x7e, true, 0x7e));
}

float e5m2_to_f32(uint8_t b) {
  uint32_t s = b >> 7, e = (b >> 2) & 0x1f, m = b & 3;
  if (e == 31) {
    if (m) return std::numeric_limits<float>::quiet_NaN();
    return s ? -std::numeric_limits<float>::infinity() : std::numeric_limits<float>::infinity();
  }
  return decode_minifloat(s, e, m, 2, 15);
}

uint8_t f32_to_e5m2(float f, bool saturate) {
  if (std::isnan(f)) return 0x7f;
  uint32_t s = std::signbit(f) ? 0x80u : 0;
  float a = std::fabs(f);
  if (std::isinf(a)) return uint8_t(s | (saturate ? 0x7b : 0x7c));
  return uint8_t(s | encode_minifloat(a, 2, 15, 57344.0f, 0x7b, saturate, 0x7c));
}

uint8_t f32_to_ue8m0_ceil(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if (u == 0x80000000u) return 0x00;  // −0 is zero
  if (u >= 0x7f800000u) return 0xff;  // NaN, +inf, and every negative non-zero value (sign bit set)
  const uint32_t e = u >> 23, man = u & 0x7fffffu;
  // Zero and subnormals: 2^−127 is the subnormal with only mantissa bit 22 set; above it (still below the
  // smallest normal 2^−126) the next power of two up is 2^−126.
  if (e == 0) return man > 0x400000u ? 0x01 : 0x00;
  // Normal f = 2^(e−127) · (1 + man/2^23): exactly a power of two when man = 0, else the next one up.
  const uint32_t code = e + (man != 0 ? 1u : 0u);
  return uint8_t(code > 0xfe ? 0xfe : code);
}

void to_f32(DType t, const void* src, float* dst, size_t n) {
  switch (t) {
    case DType::F32:
      std::memcpy(dst, src, n * 4);
      return;
    case DType::BF16: {
      auto p = static_cast<const uint16_t*>(src);
      for (size_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(p[i]);
      return;
    }
    case DType::F16: {
      auto p = static_cast<const uint16_t*>(src);
      for (size_t i = 0; i < n; ++i) dst[i] = f16_to_f32(p[i]);
      return;
    }
    case DType::F8_E4M3: {
      auto p = static_cast<const uint8_t*>(src);
      for (size_t i = 0; i < n; ++i) dst[i] = e4m3_to_f32(p[i]);
      return;
    }
    case DType::F8_E5M2: {
      auto p = static_cast<const uint8_t*>(src);
      for (size_t i = 0; i < n; ++i) dst[i] = e5m2_to_f32(p[i]);
      return;
    }
    case DType::F64: {
      auto p = static_cast<const double*>(src);
      for (size_t i = 0; i < n; ++i) dst[i] = float(p[i]);
      return;
    }
    default:
      fail("cannot convert {} to float32", dtype_name(t));
  }
}

}  // namespace dsv3
