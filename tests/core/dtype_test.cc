// Exhaustive checks of the storage formats against their bit-level definitions.
#include "core/dtype.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

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
  EXPECT_EQ(f32_to_e4m3(1e9f), 0x7e);  // saturates
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

// ---- UE8M0 power-of-two scales ----

TEST(DType, UE8M0DecodeAll256) {
  for (int b = 0; b < 255; ++b) EXPECT_EQ(double(ue8m0_to_f32(uint8_t(b))), std::ldexp(1.0, b - 127)) << b;
  EXPECT_TRUE(std::isnan(ue8m0_to_f32(0xff)));
  EXPECT_EQ(ue8m0_to_f32(127), 1.0f);
  EXPECT_EQ(ue8m0_to_f32(0), std::ldexp(1.0f, -127));  // a float32 subnormal
}

// Every one of the 2^32 float32 bit patterns: the code is the smallest power of two ≥ f (clamped to
// [2^−127, 2^127]); NaN, infinities and negative non-zero values give the NaN code 0xFF.
TEST(DType, UE8M0CeilEncodeExhaustive) {
  const double lo = std::ldexp(1.0, -127), hi = std::ldexp(1.0, 127);
  int64_t bad = 0;
  uint64_t first_bad = ~0ull;
#pragma omp parallel for schedule(static) reduction(+ : bad)
  for (int64_t i = 0; i < (int64_t(1) << 32); ++i) {
    const uint32_t u = uint32_t(i);
    float f;
    std::memcpy(&f, &u, 4);
    const uint8_t code = f32_to_ue8m0_ceil(f);
    bool ok;
    if (std::isnan(f) || std::isinf(f) || (f < 0.0f)) {
      ok = code == 0xff;
    } else if (double(f) <= lo) {  // zero, −0 and subnormals up to 2^−127
      ok = code == 0x00;
    } else if (double(f) > hi) {
      ok = code == 0xfe;
    } else {
      const double p = ue8m0_to_f32(code);  // a power of two ≥ f whose half is < f
      ok = code != 0xff && p >= double(f) && p / 2 < double(f);
    }
    if (!ok) {
      ++bad;
#pragma omp critical
      first_bad = std::min<uint64_t>(first_bad, u);
    }
  }
  EXPECT_EQ(bad, 0) << "first failing pattern 0x" << std::hex << first_bad;
}

TEST(DType, UE8M0ScaleHandComputed) {
  // 2^ceil(log2(amax / 448)): amax 448 → 1; just above 448 → 2; 300 → 1 (300/448 < 1); 224 → 0.5;
  // 224 + ulp → 1; 1 → 2^−8 (1/448 = 2^−8.81); 57344 = 448 · 128 → 128.
  EXPECT_EQ(ue8m0_to_f32(ue8m0_scale_for(448.0f, 448.0f)), 1.0f);
  EXPECT_EQ(ue8m0_to_f32(ue8m0_scale_for(std::nextafter(448.0f, 1e9f), 448.0f)), 2.0f);
  EXPECT_EQ(ue8m0_to_f32(ue8m0_scale_for(300.0f, 448.0f)), 1.0f);
  EXPECT_EQ(ue8m0_to_f32(ue8m0_scale_for(224.0f, 448.0f)), 0.5f);
  EXPECT_EQ(ue8m0_to_f32(ue8m0_scale_for(std::nextafter(224.0f, 1e9f), 448.0f)), 1.0f);
  EXPECT_EQ(ue8m0_to_f32(ue8m0_scale_for(1.0f, 448.0f)), std::ldexp(1.0f, -8));
  EXPECT_EQ(ue8m0_to_f32(ue8m0_scale_for(57344.0f, 448.0f)), 128.0f);
  EXPECT_EQ(ue8m0_scale_for(0.0f, 448.0f), 0x00);
  // Bit level: 1.0 is exactly 2^0 (code 127); 1 + 2^−23 rounds up to 2 (code 128); FLT_MAX saturates.
  EXPECT_EQ(f32_to_ue8m0_ceil(1.0f), 127);
  EXPECT_EQ(f32_to_ue8m0_ceil(std::nextafter(1.0f, 2.0f)), 128);
  EXPECT_EQ(f32_to_ue8m0_ceil(std::nextafter(1.0f, 0.0f)), 127);
  EXPECT_EQ(f32_to_ue8m0_ceil(std::numeric_limits<float>::max()), 0xfe);
  EXPECT_EQ(f32_to_ue8m0_ceil(-1.0f), 0xff);
  EXPECT_EQ(f32_to_ue8m0_ceil(-0.0f), 0x00);
  EXPECT_EQ(f32_to_ue8m0_ceil(NAN), 0xff);
  EXPECT_EQ(f32_to_ue8m0_ceil(INFINITY), 0xff);
}

// E4M3 encoding against the definition for every float32 whose top 24 bits vary (all signs, exponents and
// the 15 mantissa bits that can matter), each with low-byte patterns that probe ties and sticky bits: the
// result must be the nearest E4M3 value, ties to the even code, saturating at ±448.
TEST(DType, E4M3EncodeAgainstDefinitionDense) {
  std::vector<double> vals;
  for (int b = 0; b <= 0x7e; ++b) vals.push_back(e4m3_definition(b));
  int64_t bad = 0;
  uint32_t first_bad = 0;
#pragma omp parallel for schedule(static) reduction(+ : bad)
  for (int64_t hi = 0; hi < (int64_t(1) << 24); ++hi) {
    for (uint32_t lo : {0x00u, 0x01u, 0x7fu, 0x80u, 0xffu}) {
      const uint32_t u = (uint32_t(hi) << 8) | lo;
      float f;
      std::memcpy(&f, &u, 4);
      const uint8_t code = f32_to_e4m3(f);
      bool ok;
      if (std::isnan(f)) {
        ok = (code & 0x7f) == 0x7f;
      } else {
        const double a = std::fabs(double(f));
        // The two neighbours of a among the (increasing) magnitudes; the nearer wins, a tie goes to the
        // even code; beyond 448 the result saturates.
        int best = 0x7e;
        if (a < 448.0) {
          const int hi = int(std::lower_bound(vals.begin(), vals.end(), a) - vals.begin());
          best = hi;
          if (hi > 0 && vals[size_t(hi)] != a) {
            const double dl = a - vals[size_t(hi - 1)], dh = vals[size_t(hi)] - a;
            best = dl < dh ? hi - 1 : dh < dl ? hi : ((hi - 1) % 2 == 0 ? hi - 1 : hi);
          }
        }
        const int want = (std::signbit(f) ? 0x80 : 0) | best;
        ok = code == want;
      }
      if (!ok) {
        ++bad;
#pragma omp critical
        first_bad = u;
      }
    }
  }
  EXPECT_EQ(bad, 0) << "e.g. pattern 0x" << std::hex << first_bad;
}

TEST(DType, NamesParse) {
  EXPECT_EQ(parse_dtype("F8_E4M3"), DType::F8_E4M3);
  EXPECT_EQ(parse_dtype("BF16"), DType::BF16);
  EXPECT_FALSE(parse_dtype("Q4_K").has_value());
  EXPECT_EQ(dtype_size(DType::BF16), 2u);
}

}  // namespace
}  // namespace dsv3
