// The fp32 GEMM (kernels/matmul.h) against its triple-loop reference on awkward sizes, every transpose
// combination, alpha/beta, row strides wider than the matrix and misaligned starts, on every ISA path this
// CPU has; and bitwise independence from the thread count.
#include "kernels/matmul.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "kernels/isa.h"

namespace dsv3::kernels {
namespace {

double rel_err(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    den += double(b[i]) * b[i];
  }
  return std::sqrt(num / (den > 0 ? den : 1));
}

std::vector<float> random_vec(size_t n, uint32_t seed) {
  std::mt19937 g(seed);
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

struct Case {
  int64_t m, n, k;
  bool ta, tb;
  float alpha, beta;
};

// Runs one case with row strides padded by `pad` and storage starting `off` floats in (misaligned).
void check_case(const Case& cs, int64_t pad, int64_t off, uint32_t seed) {
  const int64_t arows = cs.ta ? cs.k : cs.m, acols = cs.ta ? cs.m : cs.k;
  const int64_t brows = cs.tb ? cs.n : cs.k, bcols = cs.tb ? cs.k : cs.n;
  const int64_t lda = acols + pad, ldb = bcols + pad, ldc = cs.n + pad;
  auto a = random_vec(size_t(off + arows * lda), seed);
  auto b = random_vec(size_t(off + brows * ldb), seed + 1);
  auto c0 = random_vec(size_t(off + cs.m * ldc), seed + 2);
  auto c_ref = c0, c_got = c0;
  if (cs.beta == 0.0f)  // beta = 0 must not read C
    for (auto& x : c_got) x = std::numeric_limits<float>::quiet_NaN();
  const MatArg A{a.data() + off, lda, cs.ta}, B{b.data() + off, ldb, cs.tb};
  gemm_ref(cs.m, cs.n, cs.k, cs.alpha, A, B, cs.beta, c_ref.data() + off, ldc);
  gemm(cs.m, cs.n, cs.k, cs.alpha, A, B, cs.beta, c_got.data() + off, ldc);
  // Compare the m×n window; padding must be untouched.
  std::vector<float> got, want;
  for (int64_t i = 0; i < cs.m; ++i)
    for (int64_t j = 0; j < ldc; ++j) {
      const size_t idx = size_t(off + i * ldc + j);
      if (j < cs.n) {
        got.push_back(c_got[idx]);
        want.push_back(c_ref[idx]);
      } else if (cs.beta != 0.0f) {
        ASSERT_EQ(c_got[idx], c0[idx]) << "padding written";
      }
    }
  EXPECT_LE(rel_err(got, want), 2e-6) << "m=" << cs.m << " n=" << cs.n << " k=" << cs.k << " ta=" << cs.ta
                                      << " tb=" << cs.tb << " pad=" << pad << " off=" << off
                                      << " isa=" << isa_name(active_isa());
}

class MatmulIsa : public ::testing::TestWithParam<Isa> {
 protected:
  void SetUp() override {
    if (uint8_t(GetParam()) > uint8_t(best_isa())) GTEST_SKIP() << isa_name(GetParam()) << " not available";
    set_isa(GetParam());
  }
  void TearDown() override { set_isa(best_isa()); }
};

TEST_P(MatmulIsa, MatchesReferenceOnAwkwardSizes) {
  const int64_t sizes[][3] = {{1, 1, 1},     {1, 7, 3},      {7, 1, 63},     {13, 33, 65}, {65, 63, 7},
                              {12, 32, 256}, {97, 257, 300}, {200, 65, 513}, {3, 576, 17}};
  uint32_t seed = 1;
  for (const auto& s : sizes)
    for (int t = 0; t < 4; ++t) {
      const Case cs{s[0], s[1], s[2], bool(t & 1), bool(t & 2), 1.0f, 0.0f};
      check_case(cs, 0, 0, seed++);
      check_case({cs.m, cs.n, cs.k, cs.ta, cs.tb, 0.5f, 1.0f}, 3, 1, seed++);
      check_case({cs.m, cs.n, cs.k, cs.ta, cs.tb, -1.5f, 0.25f}, 1, 3, seed++);
    }
}

TEST_P(MatmulIsa, ZeroDepthScalesC) {
  std::vector<float> c(6, 2.0f);
  gemm(2, 3, 0, 1.0f, {nullptr, 0}, {nullptr, 0}, 0.5f, c.data(), 3);
  for (float v : c) EXPECT_EQ(v, 1.0f);
}

TEST_P(MatmulIsa, ResultDoesNotDependOnThreadCount) {
  const int64_t m = 301, n = 190, k = 700;
  auto a = random_vec(size_t(m * k), 7), b = random_vec(size_t(k * n), 8);
  std::vector<float> c1(size_t(m * n)), c2(size_t(m * n));
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  matmul_nn(a.data(), b.data(), m, n, k, c1.data());
  omp_set_num_threads(std::max(2, saved));
  matmul_nn(a.data(), b.data(), m, n, k, c2.data());
  omp_set_num_threads(saved);
  EXPECT_EQ(c1, c2);
}

INSTANTIATE_TEST_SUITE_P(AllPaths, MatmulIsa, ::testing::Values(Isa::Scalar, Isa::Avx2, Isa::Avx512),
                         [](const auto& info) { return std::string(isa_name(info.param)); });

TEST(Matmul, HelpersHaveTheDocumentedShapes) {
  // x [2, 3], W [4, 3]: y = x Wᵀ [2, 4]; dx = y W [2, 3]; dW = yᵀ x [4, 3].
  const std::vector<float> x{1, 2, 3, 4, 5, 6}, w{1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1};
  std::vector<float> y(8), dx(6), dw(12);
  matmul_nt(x.data(), w.data(), 2, 4, 3, y.data());
  EXPECT_EQ(y, (std::vector<float>{1, 2, 3, 6, 4, 5, 6, 15}));
  matmul_nn(y.data(), w.data(), 2, 3, 4, dx.data());
  EXPECT_EQ(dx, (std::vector<float>{7, 8, 9, 19, 20, 21}));
  matmul_tn(y.data(), x.data(), 4, 3, 2, dw.data());
  EXPECT_EQ(dw[0], 1 * 1 + 4 * 4);
  EXPECT_EQ(dw[11], 6 * 3 + 15 * 6);
}

}  // namespace
}  // namespace dsv3::kernels
