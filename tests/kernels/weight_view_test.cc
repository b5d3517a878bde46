// row_slice and transposed_rows against WeightRef::at of the original matrix, element by element and
// exactly, in every storage format (FP8 with its scale blocks aligned and not).
#include "kernels/weight_view.h"

#include <gtest/gtest.h>

#include <string>

#include "test_weights.h"

namespace dsv3::kernels {
namespace {

using testing::QWeight;
using testing::TestWeight;

void expect_slice(const WeightRef& w, int64_t r0, int64_t n, const std::string& what) {
  WeightRef s;
  ASSERT_TRUE(row_slice(w, r0, n, &s)) << what;
  ASSERT_EQ(s.n, n);
  ASSERT_EQ(s.k, w.k);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < w.k; ++j) ASSERT_EQ(s.at(i, j), w.at(r0 + i, j)) << what << " (" << i << ", " << j << ")";
}

void expect_transposed(const WeightRef& w, int64_t r0, int64_t n, DType want_dtype, const std::string& what) {
  std::vector<uint8_t> data;
  std::vector<float> scales;
  const WeightRef t = transposed_rows(w, r0, n, data, scales);
  EXPECT_EQ(t.dtype, want_dtype) << what;
  ASSERT_EQ(t.n, w.k);
  ASSERT_EQ(t.k, n);
  for (int64_t j = 0; j < w.k; ++j)
    for (int64_t d = 0; d < n; ++d) ASSERT_EQ(t.at(j, d), w.at(r0 + d, j)) << what << " (" << j << ", " << d << ")";
  // And what the model does with it: linear() over the transposed copy equals the reference over it.
  std::vector<float> x(static_cast<size_t>(n), 0.25f), y(static_cast<size_t>(w.k)), ref(static_cast<size_t>(w.k));
  for (int64_t d = 0; d < n; ++d) x[size_t(d)] = float(d % 7) - 3.0f;
  linear(x.data(), 1, t, y.data());
  linear_ref(x.data(), 1, t, ref.data());
  EXPECT_LE(testing::rel_err(y, ref), 1e-6) << what;
}

TEST(WeightView, FloatFormats) {
  for (DType dt : {DType::F32, DType::BF16, DType::F16}) {
    TestWeight w(dt, 96, 70, 3);
    const std::string name(dtype_name(dt));
    expect_slice(w.ref, 0, 96, name);
    expect_slice(w.ref, 37, 20, name);
    expect_transposed(w.ref, 32, 40, dt, name);
    expect_transposed(w.ref, 5, 17, dt, name);
  }
}

TEST(WeightView, Fp8KeepsItsFormatOnScaleBlocks) {
  // 16 × 16 blocks (as DeepSeek's 128 × 128, smaller), ragged in both directions.
  TestWeight w(DType::F8_E4M3, 100, 70, 5, 1, 16, 16);
  expect_slice(w.ref, 32, 40, "fp8 aligned");
  expect_slice(w.ref, 96, 4, "fp8 ragged tail");
  WeightRef s;
  EXPECT_FALSE(row_slice(w.ref, 8, 16, &s)) << "a slice off the scale blocks cannot share them";
  expect_transposed(w.ref, 32, 40, DType::F8_E4M3, "fp8 aligned");
  expect_transposed(w.ref, 64, 36, DType::F8_E4M3, "fp8 aligned, ragged");
  expect_transposed(w.ref, 8, 20, DType::F32, "fp8 unaligned");
  // rows_or_copy: the view where there is one, else float32 rows with the same values.
  for (auto [r0, n] : {std::pair<int64_t, int64_t>{32, 40}, {8, 20}}) {
    std::vector<float> copy;
    const WeightRef r = rows_or_copy(w.ref, r0, n, copy);
    EXPECT_EQ(r.dtype, r0 % 16 == 0 ? DType::F8_E4M3 : DType::F32) << r0;
    EXPECT_EQ(copy.empty(), r0 % 16 == 0) << r0;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < w.ref.k; ++j)
        ASSERT_EQ(r.at(i, j), w.ref.at(r0 + i, j)) << r0 << " (" << i << ", " << j << ")";
  }
}

TEST(WeightView, BlockQuantized) {
  for (Quant q : {Quant::Int8, Quant::Int4}) {
    QWeight w(q, 50, 70, 7);
    const std::string name = q == Quant::Int8 ? "int8" : "int4";
    expect_slice(w.ref, 13, 30, name);
    expect_transposed(w.ref, 10, 33, DType::F32, name);
  }
}

}  // namespace
}  // namespace dsv3::kernels
