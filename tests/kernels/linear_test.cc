// linear(): every path (scalar, AVX2, AVX-512; GEMV and GEMM regimes; 1 or 2 threads) against linear_ref
// on awkward shapes, for F32 / BF16 / F16 / F8_E4M3 (ragged 128×128 scale blocks and odd block sizes),
// with misaligned x and weight pointers.
#include "kernels/linear.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "core/dtype.h"
#include "test_util.h"
#include "test_weights.h"

namespace dsv3::kernels {
namespace {

using testing::available_isas;
using testing::ForceIsa;
using testing::random_floats;
using testing::rel_err;
using testing::TestWeight;

// x with a misaligned start (one float into its buffer).
struct TestInput {
  std::vector<float> buf;
  float* x;
  TestInput(int64_t m, int64_t k, uint32_t seed) {
    buf = random_floats(static_cast<size_t>(m * k + 1), seed);
    x = buf.data() + 1;
  }
};

const int64_t kMs[] = {1, 2, 3, 7, 23, 65};  // 23: the GEMM dot-product form (17..64 rows)
const int64_t kSizes[] = {1, 7, 63, 65, 127, 129, 320, 576};
const DType kDtypes[] = {DType::F32, DType::BF16, DType::F16, DType::F8_E4M3};

std::string describe(Isa isa, DType dt, int64_t m, int64_t n, int64_t k) {
  return std::string(isa_name(isa)) + " " + std::string(dtype_name(dt)) + " m=" + std::to_string(m) +
         " n=" + std::to_string(n) + " k=" + std::to_string(k);
}

// y = x · Wᵀ in double over the same decoded weights (WeightRef::at), and |x| · |W|ᵀ.
struct Truth {
  std::vector<double> y, mag;
};
Truth truth(const WeightRef& w, const float* x, int64_t m) {
  Truth t{std::vector<double>(static_cast<size_t>(m * w.n)), std::vector<double>(static_cast<size_t>(m * w.n))};
  std::vector<float> row(static_cast<size_t>(w.k));
  for (int64_t o = 0; o < w.n; ++o) {
    weight_row(w, o, row.data());
    for (int64_t i = 0; i < m; ++i) {
      double acc = 0, mag = 0;
      for (int64_t j = 0; j < w.k; ++j) {
        const double p = double(x[i * w.k + j]) * double(row[static_cast<size_t>(j)]);
        acc += p;
        mag += std::fabs(p);
      }
      t.y[static_cast<size_t>(i * w.n + o)] = acc;
      t.mag[static_cast<size_t>(i * w.n + o)] = mag;
    }
  }
  return t;
}

double norm(const std::vector<double>& v) {
  double s = 0;
  for (double d : v) s += d * d;
  return std::sqrt(s);
}

// ‖a − b‖ / max(‖b‖, ‖|x|·|W|ᵀ‖ / √k). The floor is the size a random product's outputs have anyway; it
// only matters for a handful of outputs with heavy cancellation (n = 1), where ‖b‖ alone would measure
// fp32's own rounding rather than the kernel.
template <typename B>
double err(const std::vector<float>& a, const B* b, const Truth& t, int64_t k) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = double(a[i]) - double(b[i]);
    num += d * d;
    den += double(b[i]) * double(b[i]);
  }
  const double floor = norm(t.mag) / std::sqrt(double(std::max<int64_t>(k, 1)));
  const double scale = std::max(std::sqrt(den), floor);
  return scale == 0 ? std::sqrt(num) : std::sqrt(num) / scale;
}

// Each path against linear_ref and against the double truth, by normalised error (above) ≤ 1e-6; where
// linear_ref's own sequential fp32 sum is farther than that from the truth (long k), a path may differ
// from it by up to twice linear_ref's own error.
void check_all_isas(const TestWeight& w, const float* x, int64_t m, double tol = 1e-6) {
  const int64_t size = m * w.ref.n, k = w.ref.k;
  std::vector<float> want(static_cast<size_t>(size));
  linear_ref(x, m, w.ref, want.data());
  const Truth t = truth(w.ref, x, m);
  const double ref_err = err(want, t.y.data(), t, k);
  for (Isa isa : available_isas()) {
    ForceIsa force(isa);
    std::vector<float> got(static_cast<size_t>(size), NAN);
    linear(x, m, w.ref, got.data());
    EXPECT_LE(err(got, want.data(), t, k), std::max(tol, 2 * ref_err)) << describe(isa, w.ref.dtype, m, w.ref.n, k);
    EXPECT_LE(err(got, t.y.data(), t, k), std::max(tol, ref_err))
        << "vs double: " << describe(isa, w.ref.dtype, m, w.ref.n, k);
  }
}

TEST(Linear, AllDtypesShapesAndPaths) {
  uint32_t seed = 1;
  for (DType dt : kDtypes)
    for (int64_t n : kSizes)
      for (int64_t k : kSizes) {
        const TestWeight w(dt, n, k, seed++);
        for (int64_t m : kMs) {
          const TestInput in(m, k, seed++);
          check_all_isas(w, in.x, m);
        }
      }
}

TEST(Linear, SingleThreadAndAlignedPointers) {
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  for (DType dt : kDtypes) {
    const TestWeight w(dt, 129, 320, 99, /*offset=*/0);
    for (int64_t m : {1, 4, 5, 65}) {
      std::vector<float> x = random_floats(static_cast<size_t>(m * 320), 5);
      check_all_isas(w, x.data(), m);
    }
  }
  omp_set_num_threads(saved);
}

// Big enough that both regimes split across threads (GEMV over 128 KiB of weights, GEMM over 2^18 MACs)
// and that GEMM crosses several k slices and column blocks.
TEST(Linear, ThreadedLargerShapes) {
  for (DType dt : kDtypes) {
    const TestWeight w(dt, 600, 1100, 11);
    for (int64_t m : {1, 4, 9, 40}) {
      const TestInput in(m, 1100, 12);
      check_all_isas(w, in.x, m);
    }
  }
}

// Scale blocks that are not multiples of the vector width, so one vector straddles two blocks.
TEST(Linear, Fp8OddScaleBlocks) {
  for (auto [bn, bk] : {std::pair<int64_t, int64_t>{32, 40}, {5, 24}, {128, 8}, {1, 1}, {64, 200}}) {
    const TestWeight w(DType::F8_E4M3, 77, 203, 21, 3, bn, bk);
    for (int64_t m : {1, 3, 8, 33}) {
      const TestInput in(m, 203, 22);
      check_all_isas(w, in.x, m);
    }
  }
}

TEST(Linear, Fp8AllBytesDecodeExactly) {
  // One row holding every non-NaN byte, identity-like inputs: y picks single weights out.
  std::vector<uint8_t> bytes;
  for (int b = 0; b < 256; ++b)
    if ((b & 0x7f) != 0x7f) bytes.push_back(uint8_t(b));
  const int64_t k = int64_t(bytes.size());
  std::vector<float> scale = {0.5f, 3.0f};  // two k blocks of 128
  WeightRef w{.dtype = DType::F8_E4M3, .data = bytes.data(), .n = 1, .k = k, .scale_inv = scale.data()};
  for (Isa isa : available_isas()) {
    ForceIsa force(isa);
    for (int64_t j = 0; j < k; ++j) {
      std::vector<float> x(static_cast<size_t>(k), 0.0f);
      x[static_cast<size_t>(j)] = 1.0f;
      float y = NAN;
      linear(x.data(), 1, w, &y);
      EXPECT_EQ(y, w.at(0, j)) << isa_name(isa) << " byte " << int(bytes[static_cast<size_t>(j)]);
    }
  }
}

TEST(Linear, EmptyShapes) {
  const TestWeight w(DType::BF16, 5, 0, 1);
  std::vector<float> y(10, NAN);
  float x = 0;
  linear(&x, 2, w.ref, y.data());
  for (float v : y) EXPECT_EQ(v, 0.0f);
  linear(&x, 0, w.ref, y.data());  // no rows: nothing to do
}

TEST(Linear, Bf16ActivationsOptIn) {
  if (!has_avx512_bf16()) GTEST_SKIP() << "no AVX-512 BF16 on this CPU";
  for (auto [m, n, k] : {std::tuple<int64_t, int64_t, int64_t>{5, 33, 17},
                         {65, 129, 576},
                         {40, 600, 1100},
                         {7, 320, 1},
                         {17, 64, 3},
                         {100, 70, 1},
                         {33, 31, 513}}) {
    const TestWeight w(DType::BF16, n, k, 3);
    const TestInput in(m, k, 4);
    // Reference on x rounded to bf16: the same products, summed in another order.
    std::vector<float> xr(in.x, in.x + m * k);
    for (float& v : xr) v = bf16_to_f32(f32_to_bf16(v));
    std::vector<float> want(static_cast<size_t>(m * n)), exact(static_cast<size_t>(m * n)),
        got(static_cast<size_t>(m * n));
    linear_ref(xr.data(), m, w.ref, want.data());
    linear_ref(in.x, m, w.ref, exact.data());
    linear(in.x, m, w.ref, got.data(), LinearOptions{.bf16_activations = true});
    // Both regimes (GEMV for m <= 16, GEMM above) multiply the bf16-rounded x.
    const double e_bf16 = rel_err(got, want), e_exact = rel_err(got, exact);
    EXPECT_LE(e_bf16, 1e-5) << m << " " << n << " " << k << ": " << e_bf16 << " " << e_exact;
    EXPECT_LE(e_exact, 2e-2) << m << " " << n << " " << k;
    // The default stays exact.
    linear(in.x, m, w.ref, got.data());
    EXPECT_LE(rel_err(got, exact), 1e-6);
  }
}

TEST(Isa, ForcingClampsToTheCpu) {
  EXPECT_EQ(set_isa(Isa::Scalar), Isa::Scalar);
  EXPECT_EQ(active_isa(), Isa::Scalar);
  EXPECT_EQ(set_isa(Isa::Avx512), best_isa());
  EXPECT_EQ(active_isa(), best_isa());
}

}  // namespace
}  // namespace dsv3::kernels
