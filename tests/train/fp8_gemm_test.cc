// The emulated FP8 GEMM (train/fp8_gemm.h) against independent references: a float64 quantize → dequantize
// → matmul reference, a float64 emulation of the limited accumulator written here from the definition
// (frexp/ldexp truncation), hand-computed truncation cases, and the report's promotion experiment at K = 4096.
#include "train/fp8_gemm.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "kernels/matmul.h"
#include "train/fp8_quant.h"

namespace dsv3::train {
namespace {

std::vector<float> randn(int64_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, scale);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = nd(rng);
  return v;
}

// Σ_k value_a(i,k) · value_b(j,k) in float64 from the codes and scales.
std::vector<double> reference_f64(const Fp8Matrix& a, const Fp8Matrix& b) {
  std::vector<double> c(size_t(a.rows * b.rows));
  for (int64_t i = 0; i < a.rows; ++i)
    for (int64_t j = 0; j < b.rows; ++j) {
      double s = 0;
      for (int64_t k = 0; k < a.cols; ++k)
        s += double(e4m3_to_f32(a.codes[size_t(i * a.cols + k)])) * double(a.scale(i, k)) *
             double(e4m3_to_f32(b.codes[size_t(j * b.cols + k)])) * double(b.scale(j, k));
      c[size_t(i * b.rows + j)] = s;
    }
  return c;
}

// The limited accumulator from its definition, in float64 arithmetic: each sum rounded to float32, then its
// significand cut to 1 + bits bits toward zero (frexp/ldexp instead of the kernel's bit mask).
float truncate_to(double v, int bits) {
  const float f = float(v);
  if (f == 0.0f || !std::isfinite(f)) return f;
  int e;
  const double fr = std::frexp(double(f), &e);  // f = fr · 2^e, |fr| ∈ [0.5, 1)
  return float(std::ldexp(std::trunc(std::ldexp(fr, bits + 1)), e - bits - 1));
}
std::vector<float> limited_reference(const Fp8Matrix& a, const Fp8Matrix& b, int bits, int64_t P) {
  const int64_t K = a.cols;
  if (P == 0) P = K;
  std::vector<float> c(size_t(a.rows * b.rows));
  for (int64_t i = 0; i < a.rows; ++i)
    for (int64_t j = 0; j < b.rows; ++j) {
      float acc = 0.0f;
      for (int64_t k0 = 0; k0 < K; k0 += P) {
        float lim = 0.0f;
        for (int64_t k = k0; k < std::min(K, k0 + P); ++k)
          lim = truncate_to(double(lim) + double(e4m3_to_f32(a.codes[size_t(i * K + k)])) *
                                              double(e4m3_to_f32(b.codes[size_t(j * K + k)])),
                            bits);
        const float s = float(double(a.scale(i, k0)) * double(b.scale(j, k0)));
        acc = float(double(acc) + double(float(double(lim) * double(s))));
      }
      c[size_t(i * b.rows + j)] = acc;
    }
  return c;
}

double normalised_error(const std::vector<float>& got, const std::vector<double>& want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    num = std::max(num, std::fabs(double(got[i]) - want[i]));
    den = std::max(den, std::fabs(want[i]));
  }
  return den > 0 ? num / den : num;
}

struct Case {
  int64_t m, n, k;
};
const Case kAwkward[] = {{1, 1, 1}, {7, 5, 63}, {13, 33, 130}, {65, 17, 257}, {6, 40, 576}, {2, 70, 128}};

TEST(Fp8Gemm, Float32AccumulationMatchesTheFloat64Reference) {
  for (const Case& cs : kAwkward)
    for (int64_t tr : {int64_t(1), int64_t(128)})
      for (Fp8ScaleFormat f : {Fp8ScaleFormat::F32, Fp8ScaleFormat::UE8M0}) {
        const auto x = randn(cs.m * cs.k, 1), w = randn(cs.n * cs.k, 2, 0.05f);
        Fp8Matrix a, b;
        fp8_quantize(x.data(), cs.m, cs.k, cs.k, {.tile_rows = 1, .scale = f}, a);
        fp8_quantize(w.data(), cs.n, cs.k, cs.k, {.tile_rows = tr, .scale = f}, b);
        std::vector<float> c(size_t(cs.m * cs.n), NAN);
        fp8_gemm(a, b, c.data(), cs.n, {.accum_bits = 23});
        EXPECT_LT(normalised_error(c, reference_f64(a, b)), 2e-6) << cs.m << "x" << cs.n << "x" << cs.k;
        // Accumulating adds onto C.
        std::vector<float> c2(size_t(cs.m * cs.n), 1.0f);
        fp8_gemm(a, b, c2.data(), cs.n, {.accum_bits = 23, .accumulate = true});
        for (size_t i = 0; i < c2.size(); ++i) EXPECT_NEAR(c2[i], c[i] + 1.0f, 1e-5f * (1 + std::fabs(c[i])));
      }
}

TEST(Fp8Gemm, LimitedAccumulatorMatchesItsDefinitionBitForBit) {
  for (const Case& cs : kAwkward)
    for (int bits : {13, 7, 22})
      for (int64_t P : {int64_t(128), int64_t(32), int64_t(1)}) {
        const auto x = randn(cs.m * cs.k, 3), w = randn(cs.n * cs.k, 4, 0.05f);
        Fp8Matrix a, b;
        fp8_quantize(x.data(), cs.m, cs.k, cs.k, {.tile_rows = 1}, a);
        fp8_quantize(w.data(), cs.n, cs.k, cs.k, {.tile_rows = 128}, b);
        const std::vector<float> want = limited_reference(a, b, bits, P);
        std::vector<float> fast(size_t(cs.m * cs.n), NAN), scalar(size_t(cs.m * cs.n), NAN);
        fp8_gemm(a, b, fast.data(), cs.n, {.accum_bits = bits, .promote_every = P});
        fp8_gemm_scalar(a, b, scalar.data(), cs.n, {.accum_bits = bits, .promote_every = P});
        for (size_t i = 0; i < want.size(); ++i) {
          ASSERT_EQ(fast[i], want[i]) << cs.m << "x" << cs.n << "x" << cs.k << " bits " << bits << " P " << P << " @"
                                      << i;
          ASSERT_EQ(scalar[i], want[i]) << cs.m << "x" << cs.n << "x" << cs.k << " bits " << bits << " P " << P;
        }
      }
}

// A hand-made case: one 1.0 product, then 32 products of 2^−9 · 2^−9 = 2^−18 (codes 0x38 = 1.0, 0x01 = 2^−9),
// one scale for everything. Exact sum 1 + 32·2^−18 = 1 + 2^−13. A 13-bit accumulator holding 1.0 has a
// quantum of 2^−13, so each 2^−18 is truncated away: 1.0 without promotion; promoted after every product the
// float32 accumulator keeps them all; float32 throughout gives the exact sum.
TEST(Fp8Gemm, HandComputedTruncationAndPromotion) {
  const int64_t K = 33;
  Fp8Matrix a;
  a.rows = 1, a.cols = K, a.tile_rows = 1, a.tile_cols = K;
  a.codes.assign(size_t(K), 0x01);
  a.codes[0] = 0x38;
  a.scales = {1.0f};
  const Fp8Matrix b = a;
  float c = NAN;
  fp8_gemm(a, b, &c, 1, {.accum_bits = 13, .promote_every = 0});
  EXPECT_EQ(c, 1.0f);
  fp8_gemm(a, b, &c, 1, {.accum_bits = 13, .promote_every = 1});
  EXPECT_EQ(c, 1.0f + std::ldexp(1.0f, -13));
  fp8_gemm(a, b, &c, 1, {.accum_bits = 23});
  EXPECT_EQ(c, 1.0f + std::ldexp(1.0f, -13));
  // 14 bits: quantum 2^−14 at 1.0, still larger than 2^−18 → truncated.
  fp8_gemm(a, b, &c, 1, {.accum_bits = 14, .promote_every = 0});
  EXPECT_EQ(c, 1.0f);
  // 18 bits: the quantum is 2^−18, every product lands.
  fp8_gemm(a, b, &c, 1, {.accum_bits = 18, .promote_every = 0});
  EXPECT_EQ(c, 1.0f + std::ldexp(1.0f, -13));
}

TEST(Fp8Gemm, RejectsBadShapesAndPromotionAcrossScaleTiles) {
  const auto x = randn(4 * 256, 5);
  Fp8Matrix a, b, c3;
  fp8_quantize(x.data(), 4, 256, 256, {}, a);
  fp8_quantize(x.data(), 4, 256, 256, {}, b);
  fp8_quantize(x.data(), 8, 128, 128, {}, c3);
  std::vector<float> c(64);
  EXPECT_THROW(fp8_gemm(a, c3, c.data(), 8, {}), Error);                     // K differs
  EXPECT_THROW(fp8_gemm(a, b, c.data(), 2, {}), Error);                      // ldc < n
  EXPECT_THROW(fp8_gemm(a, b, c.data(), 4, {.promote_every = 0}), Error);    // scales change inside K
  EXPECT_THROW(fp8_gemm(a, b, c.data(), 4, {.promote_every = 256}), Error);  // crosses a 128 tile
  EXPECT_THROW(fp8_gemm(a, b, c.data(), 4, {.accum_bits = 0}), Error);
  EXPECT_NO_THROW(fp8_gemm(a, b, c.data(), 4, {.promote_every = 64}));
}

// DeepSeek-V3 §3.3.2: "for an FP8 GEMM with K = 4096 ... limited accumulation precision in Tensor Cores results in
// a maximum relative error of nearly 2%"; promotion to FP32 every N_C = 128 fixes it. Operands with per-tensor
// scales (what a tensor core without promotion can use), values |N(0,1)| (positive, so no cancellation makes
// the relative error ill-defined); the error is measured against the exact float64 sum of the same FP8 values,
// so it is the accumulation's alone.
TEST(Fp8Gemm, PromotionFixesTheLimitedAccumulationErrorAtK4096) {
  const int64_t M = 16, N = 16, K = 4096;
  auto x = randn(M * K, 11), w = randn(N * K, 12);
  for (float& v : x) v = std::fabs(v);
  for (float& v : w) v = std::fabs(v);
  Fp8Matrix a, b;
  fp8_quantize(x.data(), M, K, K, {.tile_rows = M, .tile_cols = 0}, a);
  fp8_quantize(w.data(), N, K, K, {.tile_rows = N, .tile_cols = 0}, b);
  const std::vector<double> ref = reference_f64(a, b);
  auto max_rel = [&](const Fp8GemmOptions& o) {
    std::vector<float> c(size_t(M * N));
    fp8_gemm(a, b, c.data(), N, o);
    double e = 0;
    for (size_t i = 0; i < c.size(); ++i) e = std::max(e, std::fabs(double(c[i]) - ref[i]) / std::fabs(ref[i]));
    return e;
  };
  const double none = max_rel({.accum_bits = 13, .promote_every = 0});
  const double n_c = max_rel({.accum_bits = 13, .promote_every = 128});
  const double f32 = max_rel({.accum_bits = 23});
  std::printf(
      "K=4096 max relative error: 13-bit accumulator without promotion %.4f%%, promoted every 128 %.5f%%, "
      "float32 %.7f%%\n",
      100 * none, 100 * n_c, 100 * f32);
  EXPECT_GT(none, 1e-2);  // the limited accumulator alone: percent-level error
  EXPECT_LT(n_c, 2e-3);   // promotion: a small fraction of it
  EXPECT_GT(none, 20 * n_c);
  EXPECT_LT(f32, 1e-5);
}

// Cost of the emulation (not a correctness test; disabled by default). Run with
//   train_tests --gtest_also_run_disabled_tests --gtest_filter='Fp8Gemm.DISABLED_Throughput'
TEST(Fp8Gemm, DISABLED_Throughput) {
  const int64_t M = 1024, N = 512, K = 512, reps = 5;
  const auto x = randn(M * K, 21), w = randn(N * K, 22, 0.02f);
  std::vector<float> c(size_t(M * N));
  auto time = [&](const char* what, const std::function<void()>& f) {
    f();
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t r = 0; r < reps; ++r) f();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / double(reps);
    std::printf("%-58s %8.2f ms  %7.1f GFLOP/s\n", what, s * 1e3, 2.0 * double(M * N * K) / s / 1e9);
  };
  Fp8Matrix a, b;
  time("float32 GEMM (kernels::gemm)", [&] {
    kernels::gemm(M, N, K, 1.0f, {x.data(), K, false}, {w.data(), K, true}, 0.0f, c.data(), N);
  });
  time("quantize x 1x128 + W 128x128", [&] {
    fp8_quantize(x.data(), M, K, K, {}, a);
    fp8_quantize(w.data(), N, K, K, {.tile_rows = 128}, b);
  });
  time("fp8_gemm, float32 accumulation (dequantize + GEMM)", [&] { fp8_gemm(a, b, c.data(), N, {.accum_bits = 23}); });
  time("fp8_gemm, 13-bit accumulator promoted every 128", [&] { fp8_gemm(a, b, c.data(), N, {}); });
  Fp8Matrix at;
  time("transposed re-quantization of x (1x128 -> 128x1)", [&] { fp8_requantize_transposed(a, at); });
}

}  // namespace
}  // namespace dsv3::train
