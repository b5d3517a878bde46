// Exhaustive checks of the storage formats against their bit-level definitions.
#include "core/dtype.h"

#include <gtest/gtest.h>

#include <cmath>

namespace dsv3 {
namespace {

// E4M3 value from the definition: (-1)^s * 2^(e-7) * (1 + m/8), subnormal 2^-6 * m/8; S.1111.111 = NaN.
double e4m3_definition(int b) {
  int s = b >> 7, e = (b >> 3) & 15, m = b & 7;
  if (e == 15 && m == 7) return NAN;
  double v = e == 0 ? std::ldexp(m / 8.0, -6) : std::ldexp(1.0 + m / 8.0, e - 7);
  return s ? -v : v;
}

TEST(DType, E4M3DecodeAll256) {
  for (int b = 0; b < 256; ++b) {
    double want = e4m3_definition(b);
    float got = e4m3_to_f32(uint8_t(b));
    if (std::isnan(want)) {
      EXPECT_TRUE(std::isnan(got)) << b;
    } else {
      EXPECT_EQ(double(got), want) << "byte " << b;
    }
  }
  EXPECT_EQ(e4m3_to_f32(0x7e), 448.0f);
  EXPECT_EQ(e4m3_to_f32(0x01), std::ldexp(1.0f, -9));
  EXPECT_TRUE(std::isnan(e4m3_to_f32(0x7f)));
  EXPECT_TRUE(std::isnan(e4m3_to_f32(0xff)));
}

TEST(DType, E4M3EncodeRoundTripsAndRoundsToNearestEven) {
  for (int b = 0; b < 256; ++b) {
    if ((b & 0x7f) == 0x7f) continue;
    float v = e4m3_to_f32(uint8_t(b));
    uint8_t back = f32_to_e4m3(v);
    if (v == 0.0f) {
      EXPECT_EQ(e4m3_to_f32(back), 0.0f);
    } else {
      EXPECT_EQ(back, b) << v;
    }
  }
  // Midpoints between neighbours go to the even mantissa.
  for (int b = 0; b < 0x7e; ++b) {
    double lo = e4m3_definition(b), hi = e4m3_definition(b + 1);
    float mid = float((lo + hi) / 2);
    int want = (b & 1) ? b + 1 : b;
    EXPECT_EQ(f32_to_e4m3(mid), want) << "between " << lo << " and " << hi;
  }
  EXPECT_EQ(f32_to_e4m3(1e9f), 0x7e);   // saturates
  EXPECT_EQ(f32_to_e4m3(-1e9f), 0xfe);
  EXPECT_EQ(f32_to_e4m3(NAN), 0x7f);
}

TEST(DType, BF16RoundTripAllPatterns) {
  for (uint32_t h = 0; h < 65536; ++h) {
    float f = bf16_to_f32(uint16_t(h));
    if (std::isnan(f)) continue;
    EXPECT_EQ(f32_to_bf16(f), h);
  }
  // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even (1.0).
  EXPECT_EQ(f32_to_bf16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);
  EXPECT_EQ(f32_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);
}

TEST(DType, F16AndE5M2RoundTripAllPatterns) {
  for (uint32_t h = 0; h < 65536; ++h) {
    float f = f16_to_f32(uint16_t(h));
    if (std::isnan(f)) continue;
    EXPECT_EQ(f32_to_f16(f), h) << f;
  }
  for (int b = 0; b < 256; ++b) {
    float f = e5m2_to_f32(uint8_t(b));
    if (std::isnan(f)) continue;
    EXPECT_EQ(f32_to_e5m2(f, false), b) << f;
  }
  EXPECT_EQ(e5m2_to_f32(0x7b), 57344.0f);
}

TEST(DType, NamesParse) {
  EXPECT_EQ(parse_dtype("F8_E4M3"), DType::F8_E4M3);
  EXPECT_EQ(parse_dtype("BF16"), DType::BF16);
  EXPECT_FALSE(parse_dtype("Q4_K").has_value());
  EXPECT_EQ(dtype_size(DType::BF16), 2u);
}

}  // namespace
}  // namespace dsv3
