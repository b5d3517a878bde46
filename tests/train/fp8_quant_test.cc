// Fine-grained FP8 quantization (train/fp8_quant.h): the fast E4M3 rounding against core/dtype's exact
// encoder, hand-computed tiles (scales, ties, saturation, subnormals, UE8M0), tile independence, partial
// edge tiles, exact block transposes and the 1×128 → 128×1 re-quantization, and a float64 error bound.
#include "train/fp8_quant.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"

namespace dsv3::train {
namespace {

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// round_e4m3 / e4m3_code_of / e4m3_encode_scaled agree bit for bit with f32_to_e4m3 / e4m3_to_f32 for every
// float32 whose top 24
// bits vary (sign, exponent, 15 mantissa bits), each with low bytes that probe ties and sticky bits.
TEST(Fp8Quant, FastE4M3RoundingMatchesTheExactEncoder) {
  int64_t bad = 0;
  uint32_t example = 0;
#pragma omp parallel for schedule(static) reduction(+ : bad)
  for (int64_t hi = 0; hi < (int64_t(1) << 24); ++hi) {
    for (uint32_t lo : {0x00u, 0x01u, 0x7fu, 0x80u, 0x81u, 0xffu}) {
      const uint32_t u = (uint32_t(hi) << 8) | lo;
      float x;
      std::memcpy(&x, &u, 4);
      const uint8_t want = f32_to_e4m3(x);
      const float r = round_e4m3(x);
      uint8_t batch = 0;
      e4m3_encode_scaled(&x, 1, 1.0f, &batch);
      const bool ok = std::isnan(x) ? (std::isnan(r) && e4m3_code_of(r) == 0x7f && batch == 0x7f)
                                    : (bits(r) == bits(e4m3_to_f32(want)) && e4m3_code_of(r) == want && batch == want);
      if (!ok) {
        ++bad;
#pragma omp critical
        example = u;
      }
    }
  }
  EXPECT_EQ(bad, 0) << "e.g. pattern 0x" << std::hex << example;
}

TEST(Fp8Quant, HandComputedTileFloat32Scale) {
  // One 1×128 tile, amax 896 → scale 896/448 = 2 exactly; x/2 is then rounded to E4M3.
  std::vector<float> x(128, 0.0f);
  x[0] = 896.0f;                        // → 448, the largest code 0x7E
  x[1] = 2.125f;                        // 1.0625: halfway 1 and 1.125 → even (1.0)  → 2.0
  x[2] = 2.375f;                        // 1.1875: halfway 1.125 and 1.25 → even (1.25) → 2.5
  x[3] = -3.0f * std::ldexp(1.0f, -9);  // −1.5·2^−9: subnormal halfway 1 and 2 quanta → even (2) → −2^−7
  x[4] = std::ldexp(1.0f, -11);         // 2^−12 after scaling: below half a quantum → 0
  x[5] = 300.0f;                        // 150 = 1.171875·2^7 → nearest 1.125·2^7 = 144 → 288
  Fp8Matrix q;
  fp8_quantize(x.data(), 1, 128, 128, {.tile_rows = 1, .tile_cols = 128}, q);
  ASSERT_EQ(q.scales.size(), 1u);
  EXPECT_EQ(q.scales[0], 2.0f);
  EXPECT_EQ(q.codes[0], 0x7e);
  EXPECT_EQ(q.value(0, 0), 896.0f);
  EXPECT_EQ(q.value(0, 1), 2.0f);
  EXPECT_EQ(q.value(0, 2), 2.5f);
  EXPECT_EQ(q.value(0, 3), -std::ldexp(1.0f, -7));
  EXPECT_EQ(q.codes[3], 0x82);
  EXPECT_EQ(q.value(0, 4), 0.0f);
  EXPECT_EQ(q.value(0, 5), 288.0f);
  EXPECT_EQ(q.value(0, 6), 0.0f);
}

TEST(Fp8Quant, SaturatesWhenTheScaledMaxRoundsPast448) {
  // amax/s must be 448, but 1/s is rounded: whatever x·(1/s) gives, the code of the max is 0x7E, never NaN.
  for (float amax : {449.0f * 3.0f, 1e-3f * 7.0f, 123.456f, 3.0e38f, 1.17e-30f}) {
    std::vector<float> x = {amax, -amax, amax * 0.5f};
    Fp8Matrix q;
    fp8_quantize(x.data(), 1, 3, 3, {}, q);
    EXPECT_EQ(q.codes[0], 0x7e) << amax;
    EXPECT_EQ(q.codes[1], 0xfe) << amax;
    EXPECT_NEAR(q.value(0, 0), amax, amax * 1e-6) << amax;
  }
}

TEST(Fp8Quant, UE8M0ScalesArePowersOfTwoRoundedUp) {
  std::vector<float> x = {449.0f, 1.0f};  // amax 449 → scale 2 (449/448 > 1): 449/2 = 224.5 → 224 → 448
  Fp8Matrix q;
  fp8_quantize(x.data(), 1, 2, 2, {.scale = Fp8ScaleFormat::UE8M0}, q);
  EXPECT_EQ(q.scales[0], 2.0f);
  EXPECT_EQ(q.value(0, 0), 448.0f);
  EXPECT_EQ(q.value(0, 1), 1.0f);           // 0.5 is exact in E4M3
  std::vector<float> y = {448.0f, -0.75f};  // amax 448 → scale 1
  fp8_quantize(y.data(), 1, 2, 2, {.scale = Fp8ScaleFormat::UE8M0}, q);
  EXPECT_EQ(q.scales[0], 1.0f);
  EXPECT_EQ(q.value(0, 1), -0.75f);
  std::vector<float> z = {0.0f, -0.0f};  // all zero → scale 1, codes 0
  fp8_quantize(z.data(), 1, 2, 2, {.scale = Fp8ScaleFormat::UE8M0}, q);
  EXPECT_EQ(q.scales[0], 1.0f);
  EXPECT_EQ(q.value(0, 0), 0.0f);
}

TEST(Fp8Quant, TilesAreIndependentAndEdgesPartial) {
  // 3 rows × 130 columns, 1×128 tiles: 2 column tiles per row, the second 2 wide. An outlier in one tile must
  // not cost the others precision.
  const int64_t R = 3, C = 130;
  std::vector<float> x(size_t(R * C));
  for (int64_t i = 0; i < R * C; ++i) x[size_t(i)] = 1e-3f * float(1 + (i * 37) % 101) / 101.0f;
  x[size_t(1 * C + 129)] = 1000.0f;  // row 1, second tile
  Fp8Matrix q;
  fp8_quantize(x.data(), R, C, C, {.tile_rows = 1, .tile_cols = 128}, q);
  ASSERT_EQ(q.row_tiles(), 3);
  ASSERT_EQ(q.col_tiles(), 2);
  for (int64_t r = 0; r < R; ++r)
    for (int64_t c = 0; c < C; ++c) {
      const double v = x[size_t(r * C + c)], got = q.value(r, c);
      if (r == 1 && c == 128) continue;  // shares its tile with the outlier
      EXPECT_LE(std::fabs(got - v), v * 0.0625 + 1e-12) << r << "," << c;
    }
  // 128×128 blocks over the same matrix: the outlier's block is rows 0..2 × cols 128..129.
  fp8_quantize(x.data(), R, C, C, {.tile_rows = 128, .tile_cols = 128}, q);
  ASSERT_EQ(q.scales.size(), 2u);
  EXPECT_EQ(q.scales[1], 1000.0f / 448.0f);
  EXPECT_EQ(q.value(0, 128), 0.0f);  // flushed by the outlier's scale: the block-quantization hazard
}

TEST(Fp8Quant, ErrorBoundAgainstFloat64) {
  // Per element: normal E4M3 codes carry 3 mantissa bits (relative error ≤ 2^−4); below 2^−6·s the absolute
  // error is at most half a subnormal quantum, 2^−10·s.
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const int64_t R = 65, C = 300;
  std::vector<float> x(size_t(R * C));
  for (float& v : x) v = nd(rng) * std::exp(2.0f * nd(rng));
  for (Fp8ScaleFormat f : {Fp8ScaleFormat::F32, Fp8ScaleFormat::UE8M0})
    for (int64_t tr : {int64_t(1), int64_t(128)}) {
      Fp8Matrix q;
      fp8_quantize(x.data(), R, C, C, {.tile_rows = tr, .tile_cols = 128, .scale = f}, q);
      std::vector<float> d(size_t(R * C));
      fp8_dequantize(q, d.data());
      for (int64_t r = 0; r < R; ++r)
        for (int64_t c = 0; c < C; ++c) {
          const double v = x[size_t(r * C + c)], s = q.scale(r, c);
          EXPECT_EQ(d[size_t(r * C + c)], q.value(r, c));
          EXPECT_LE(std::fabs(d[size_t(r * C + c)] - v), std::max(std::fabs(v) * 0.0625, std::ldexp(s, -10)) * 1.000001)
              << r << "," << c;
        }
    }
}

TEST(Fp8Quant, BlockTransposeIsExactAndTransposedQuantizationMatchesTheExplicitTranspose) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> ud(-2.0f, 2.0f);
  const int64_t R = 200, C = 131;
  std::vector<float> x(size_t(R * C)), xt(size_t(R * C));
  for (float& v : x) v = ud(rng);
  for (int64_t r = 0; r < R; ++r)
    for (int64_t c = 0; c < C; ++c) xt[size_t(c * R + r)] = x[size_t(r * C + c)];
  Fp8Matrix b, bt;
  fp8_quantize(x.data(), R, C, C, {.tile_rows = 128, .tile_cols = 128}, b);
  fp8_transpose_blocks(b, bt);
  ASSERT_EQ(bt.rows, C);
  for (int64_t r = 0; r < R; ++r)
    for (int64_t c = 0; c < C; ++c) ASSERT_EQ(bits(b.value(r, c)), bits(bt.value(c, r)));
  Fp8Matrix direct, via;
  fp8_quantize(xt.data(), C, R, R, {}, direct);
  fp8_quantize_transposed(x.data(), R, C, C, {}, via);
  EXPECT_EQ(direct.codes, via.codes);
  EXPECT_EQ(direct.scales, via.scales);
  Fp8Matrix tiles1x128;
  EXPECT_THROW(fp8_transpose_blocks(direct, tiles1x128), Error);
}

TEST(Fp8Quant, RequantizeTransposedUses128x1TilesOfTheDequantizedValues) {
  // x [T = 256 tokens, 3 channels] in 1×128 tiles → xᵀ [3, 256] in 1×128 tiles: per channel, one scale per
  // 128 tokens, from the max-abs of the FP8 values (double quantization, as the report's backward does).
  const int64_t T = 256, Ch = 3;
  std::vector<float> x(size_t(T * Ch));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t c = 0; c < Ch; ++c) x[size_t(t * Ch + c)] = float((t * 7 + c * 13) % 97 - 48) * (c + 1) * 0.01f;
  x[size_t(200 * Ch + 1)] = 50.0f;  // an outlier: token 200, channel 1 (second 128-token block)
  Fp8Matrix q, qt;
  fp8_quantize(x.data(), T, Ch, Ch, {}, q);
  fp8_requantize_transposed(q, qt);
  ASSERT_EQ(qt.rows, Ch);
  ASSERT_EQ(qt.cols, T);
  ASSERT_EQ(qt.col_tiles(), 2);
  for (int64_t c = 0; c < Ch; ++c)
    for (int64_t blk = 0; blk < 2; ++blk) {
      float amax = 0.0f;
      for (int64_t t = blk * 128; t < blk * 128 + 128; ++t) amax = std::max(amax, std::fabs(q.value(t, c)));
      EXPECT_EQ(qt.scale(c, blk * 128), amax / 448.0f) << c << "," << blk;
    }
  // The outlier only widens its own (channel, 128-token) tile.
  EXPECT_GT(qt.scale(1, 128), 10 * qt.scale(1, 0));
  EXPECT_LT(qt.scale(0, 128), 2 * qt.scale(0, 0));
}

}  // namespace
}  // namespace dsv3::train
