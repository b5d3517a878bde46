// Int8 / Int4 block-quantized weights (kernels/quant.h): quantize_row's error bounds and layout, and every
// linear() path (scalar, AVX2, AVX-512 VNNI; GEMV and VNNI GEMM with quantized x, the other GEMMs with exact
// x; 1 or more threads)
// against its scalar reference on awkward shapes (n, k not multiples of the block; m = 1, 3, 17, 64).
#include "kernels/quant.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <string>

#include "core/dtype.h"
#include "kernels/linear.h"
#include "test_util.h"
#include "test_weights.h"

namespace dsv3::kernels {
namespace {

using testing::available_isas;
using testing::ForceIsa;
using testing::QWeight;
using testing::random_floats;
using testing::rel_err;

std::string describe(Isa isa, Quant q, int64_t m, int64_t n, int64_t k) {
  return std::string(isa_name(isa)) + (q == Quant::Int8 ? " int8" : " int4") + " m=" + std::to_string(m) +
         " n=" + std::to_string(n) + " k=" + std::to_string(k);
}

// ‖a − b‖ / max(‖b‖, ‖|x|·|W|ᵀ‖ / √k): as linear_test.cc, the floor only matters where outputs cancel.
double err(const std::vector<float>& a, const std::vector<float>& b, const WeightRef& w, const float* x, int64_t m) {
  double num = 0, den = 0, mag = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = double(a[i]) - double(b[i]);
    num += d * d;
    den += double(b[i]) * double(b[i]);
  }
  std::vector<float> row(size_t(w.k));
  for (int64_t o = 0; o < w.n; ++o) {
    weight_row(w, o, row.data());
    for (int64_t i = 0; i < m; ++i) {
      double s = 0;
      for (int64_t j = 0; j < w.k; ++j) s += std::fabs(double(x[i * w.k + j]) * row[size_t(j)]);
      mag += s * s;
    }
  }
  const double scale = std::max(std::sqrt(den), std::sqrt(mag) / std::sqrt(double(std::max<int64_t>(w.k, 1))));
  return scale == 0 ? std::sqrt(num) : std::sqrt(num) / scale;
}

// Every ISA against the scalar reference of the regime it takes: linear_qact_ref where x is quantized
// (the integer sums are exact, only the fp32 outer sum's order differs: ~1e-7), linear_ref where not.
void check_all_isas(const QWeight& w, const float* x, int64_t m, double qact_tol = 1e-2) {
  const int64_t size = m * w.ref.n;
  std::vector<float> exact(static_cast<size_t>(size)), qact(static_cast<size_t>(size));
  linear_ref(x, m, w.ref, exact.data());
  linear_qact_ref(x, m, w.ref, qact.data());
  for (Isa isa : available_isas()) {
    ForceIsa force(isa);
    std::vector<float> got(size_t(size), NAN);
    linear(x, m, w.ref, got.data());
    const bool q = linear_quantizes_x(m, w.ref);
    EXPECT_LE(err(got, q ? qact : exact, w.ref, x, m), 2e-6)
        << describe(isa, w.ref.quant, m, w.ref.n, w.ref.k) << (q ? " (quantized x)" : " (exact x)");
  }
  // The deviation itself: quantizing x per block of 32 to int8 costs at most d/2 = amax/254 per element,
  // ~0.2% RMS of uniform x; summed over k products with random signs the output error stays that size
  // relative to ‖|x|·|W|ᵀ‖/√k. 1% leaves room for small k; a broken activation path is off by O(1).
  EXPECT_LE(err(qact, exact, w.ref, x, m), qact_tol)
      << "qact vs exact " << describe(Isa::Scalar, w.ref.quant, m, w.ref.n, w.ref.k);
}

TEST(Quant, Int8RowErrorWithinHalfStep) {
  const int64_t k = 100;  // 3 full blocks and a ragged one
  const auto v = random_floats(size_t(k), 3, -2.0f, 2.0f);
  std::vector<uint8_t> codes(size_t(qrow_bytes(Quant::Int8, k)), 0xAA);
  std::vector<uint16_t> scales(size_t(qblocks(k)));
  ASSERT_TRUE(quantize_row(Quant::Int8, v.data(), k, codes.data(), scales.data()));
  WeightRef w{.dtype = DType::I8, .data = codes.data(), .n = 1, .k = k, .quant = Quant::Int8, .qscale = scales.data()};
  for (int64_t j = 0; j < k; ++j) {
    const float s = f16_to_f32(scales[size_t(j / kQBlock)]);
    EXPECT_GT(s, 0.0f);
    EXPECT_LE(std::fabs(w.at(0, j) - v[size_t(j)]), 0.5f * s * 1.0001f) << j;
  }
  for (int64_t j = k; j < qblocks(k) * kQBlock; ++j) EXPECT_EQ(codes[size_t(j)], 0) << "padding " << j;
}

TEST(Quant, Int4RowLayoutAndError) {
  const int64_t k = 70;
  auto v = random_floats(size_t(k), 4, -1.0f, 1.0f);
  v[5] = 3.0f;  // positive extreme: maps to code -8 with a negative scale
  std::vector<uint8_t> codes(size_t(qrow_bytes(Quant::Int4, k)));
  std::vector<uint16_t> scales(size_t(qblocks(k)));
  ASSERT_TRUE(quantize_row(Quant::Int4, v.data(), k, codes.data(), scales.data()));
  WeightRef w{.dtype = DType::U8, .data = codes.data(), .n = 1, .k = k, .quant = Quant::Int4, .qscale = scales.data()};
  double sse = 0, ss = 0;
  for (int64_t j = 0; j < k; ++j) {
    const int64_t b = j / kQBlock, i = j % kQBlock;
    const float s = f16_to_f32(scales[size_t(b)]);
    const uint8_t byte = codes[size_t(b * 16 + i % 16)];
    const int c = (i < 16 ? byte : byte >> 4) & 15;
    EXPECT_EQ(w.at(0, j), float(c - 8) * s) << j;  // the documented layout
    // Codes span [-8, 7] · s: at most one step |s| away (the clamped end), usually half a step.
    EXPECT_LE(std::fabs(w.at(0, j) - v[size_t(j)]), std::fabs(s) * 1.0001f) << j;
    if (j < kQBlock) continue;  // block 0 holds the outlier, whose step is 3× larger
    sse += double(w.at(0, j) - v[size_t(j)]) * (w.at(0, j) - v[size_t(j)]);
    ss += double(v[size_t(j)]) * v[size_t(j)];
  }
  // Uniform values: step ≈ amax / 7.5, RMS error ≈ step / √12 ≈ 0.04 · amax; relative to RMS amax/√3, ~7%.
  EXPECT_LT(std::sqrt(sse / ss), 0.09);
  EXPECT_EQ(w.at(0, 5), 3.0f);  // the extreme itself is exact up to the f16 scale
  for (int64_t j = k; j < qblocks(k) * kQBlock; ++j) EXPECT_EQ(w.at(0, j), 0.0f) << "padding " << j;
}

TEST(Quant, RejectsNonFiniteAndOverflow) {
  std::vector<uint8_t> codes(64);
  std::vector<uint16_t> scales(2);
  std::vector<float> v(40, 1.0f);
  v[33] = NAN;
  EXPECT_FALSE(quantize_row(Quant::Int8, v.data(), 40, codes.data(), scales.data()));
  v[33] = 1e30f;  // amax / 127 overflows f16
  EXPECT_FALSE(quantize_row(Quant::Int4, v.data(), 40, codes.data(), scales.data()));
  std::vector<float> z(40, 0.0f);
  ASSERT_TRUE(quantize_row(Quant::Int4, z.data(), 40, codes.data(), scales.data()));
  EXPECT_EQ(scales[0], 0);
  EXPECT_EQ(codes[0], 0x88);
}

TEST(Quant, WeightBytes) {
  const QWeight a(Quant::Int8, 3, 33, 1), b(Quant::Int4, 3, 33, 1);
  EXPECT_EQ(weight_bytes(a.ref), 3 * (64 + 4));
  EXPECT_EQ(weight_bytes(b.ref), 3 * (32 + 4));
}

const int64_t kNs[] = {1, 7, 33, 65, 129};
const int64_t kKs[] = {1, 31, 33, 64, 100, 129, 320};
const int64_t kMs[] = {1, 3, 17, 64};

TEST(Quant, LinearAllPathsShapes) {
  uint32_t seed = 1;
  for (Quant q : {Quant::Int8, Quant::Int4})
    for (int64_t n : kNs)
      for (int64_t k : kKs) {
        const QWeight w(q, n, k, seed++);
        for (int64_t m : kMs) {
          const auto x = random_floats(size_t(m * k + 1), seed++);
          check_all_isas(w, x.data() + 1, m);
        }
      }
}

// Every m up to past the GEMV / GEMM crossover, each row of x different in scale (per-row x scales).
TEST(Quant, LinearEveryRowCount) {
  for (Quant q : {Quant::Int8, Quant::Int4}) {
    const QWeight w(q, 37, 200, 5, 0);
    for (int64_t m = 1; m <= 18; ++m) {
      auto x = random_floats(size_t(m * 200), 6 + uint32_t(m));
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < 200; ++j) x[size_t(i * 200 + j)] *= float(i + 1) * (j % 64 == 7 ? 20.0f : 1.0f);
      // Every other block holds a 20× outlier: its step is 20× coarser for the other 31 values, so the
      // activation error of those blocks is ~20× the uniform case's over half the values (~1.5% here).
      check_all_isas(w, x.data(), m, 3e-2);
    }
  }
}

// Big enough to split across threads in both regimes, several GEMM k slices and column blocks.
TEST(Quant, ThreadedLargerShapes) {
  for (Quant q : {Quant::Int8, Quant::Int4}) {
    const QWeight w(q, 600, 1100, 11);
    for (int64_t m : {1, 4, 9, 40}) {
      const auto x = random_floats(size_t(m * 1100), 12);
      check_all_isas(w, x.data(), m);
    }
  }
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  const QWeight w(Quant::Int4, 300, 700, 13);
  const auto x = random_floats(size_t(3 * 700), 14);
  check_all_isas(w, x.data(), 3);
  omp_set_num_threads(saved);
}

}  // namespace
}  // namespace dsv3::kernels
