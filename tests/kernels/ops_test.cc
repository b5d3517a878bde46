// ops.h kernels: every SIMD path against its scalar reference on awkward sizes; exp against double;
// latent_attention against a double-precision naive computation; top_k against a stable sort.
#include "kernels/ops.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <string>

#include "test_util.h"

namespace dsv3::kernels {
namespace {

using testing::available_isas;
using testing::ForceIsa;
using testing::random_floats;
using testing::rel_err;

const int64_t kSizes[] = {1, 2, 7, 15, 16, 17, 31, 33, 63, 65, 127, 129, 320, 576, 7168};

TEST(Ops, RmsnormMatchesReference) {
  for (int64_t m : {1, 3, 7})
    for (int64_t n : kSizes) {
      const auto x0 = random_floats(static_cast<size_t>(m * n + 1), uint32_t(n), -3.0f, 3.0f);
      const auto w = random_floats(static_cast<size_t>(n), uint32_t(n + 1), 0.5f, 1.5f);
      const float* x = x0.data() + 1;  // misaligned
      std::vector<float> want(static_cast<size_t>(m * n));
      rmsnorm_ref(x, w.data(), m, n, 1e-6f, want.data());
      for (Isa isa : available_isas()) {
        ForceIsa force(isa);
        std::vector<float> got(static_cast<size_t>(m * n));
        rmsnorm(x, w.data(), m, n, 1e-6f, got.data());
        EXPECT_LE(rel_err(got, want), 1e-6) << isa_name(isa) << " m=" << m << " n=" << n;
        std::vector<float> inplace(x, x + m * n);  // y aliases x
        rmsnorm(inplace.data(), w.data(), m, n, 1e-6f, inplace.data());
        EXPECT_LE(rel_err(inplace, want), 1e-6) << isa_name(isa) << " in place, n=" << n;
      }
    }
}

TEST(Ops, SiluMulMatchesReference) {
  for (int64_t n : kSizes) {
    auto g = random_floats(static_cast<size_t>(n + 1), uint32_t(n), -30.0f, 30.0f);
    if (n > 4) {
      g[1] = -200.0f;  // exp(200) overflows: silu → -0
      g[2] = 200.0f;
      g[3] = 0.0f;
    }
    const auto u = random_floats(static_cast<size_t>(n), uint32_t(n + 2), -2.0f, 2.0f);
    std::vector<float> want(static_cast<size_t>(n));
    silu_mul_ref(g.data() + 1, u.data(), n, want.data());
    for (Isa isa : available_isas()) {
      ForceIsa force(isa);
      std::vector<float> got(static_cast<size_t>(n));
      silu_mul(g.data() + 1, u.data(), n, got.data());
      EXPECT_LE(rel_err(got, want), 1e-6) << isa_name(isa) << " n=" << n;
      std::vector<float> alias(g.begin() + 1, g.end());  // out aliases gate
      silu_mul(alias.data(), u.data(), n, alias.data());
      EXPECT_LE(rel_err(alias, want), 1e-6) << isa_name(isa) << " aliased n=" << n;
    }
  }
}

// Units in the last place between a float and the exact value.
double ulps(float got, double want) {
  if (want == 0) return got == 0 ? 0 : INFINITY;
  const float wf = float(want);
  const double ulp = std::max(double(std::nextafter(std::fabs(wf), INFINITY) - std::fabs(wf)),
                              double(std::numeric_limits<float>::denorm_min()));
  return std::fabs(double(got) - want) / ulp;
}

TEST(Ops, ExpAccuracyAndSpecialValues) {
  std::vector<float> x;
  for (float v = -104.0f; v <= 89.0f; v += 0.0037f) x.push_back(v);
  for (float v : {0.0f, -0.0f, 1e-30f, -1e-30f, 88.72f, 88.7228f, -87.33f, -103.9f}) x.push_back(v);
  const std::vector<float> special = {-INFINITY, INFINITY, NAN, 89.0f, 100.0f, 1e30f, -1e30f, -104.0f, -200.0f};
  for (Isa isa : available_isas()) {
    ForceIsa force(isa);
    std::vector<float> y(x.size());
    exp_vec(x.data(), int64_t(x.size()), y.data());
    double worst = 0, worst_x = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      const double want = std::exp(double(x[i]));
      if (want < double(std::numeric_limits<float>::min())) {  // subnormal results: absolute 1 quantum
        EXPECT_LE(std::fabs(double(y[i]) - want), 1.5 * std::numeric_limits<float>::denorm_min()) << x[i];
        continue;
      }
      if (want > double(std::numeric_limits<float>::max())) {
        EXPECT_EQ(y[i], INFINITY) << x[i];
        continue;
      }
      const double u = ulps(y[i], want);
      if (u > worst) worst = u, worst_x = x[i];
    }
    EXPECT_LE(worst, 2.0) << isa_name(isa) << " worst at x=" << worst_x;
    std::vector<float> s(special.size());
    exp_vec(special.data(), int64_t(special.size()), s.data());
    EXPECT_EQ(s[0], 0.0f) << isa_name(isa);
    EXPECT_EQ(s[1], INFINITY) << isa_name(isa);
    EXPECT_TRUE(std::isnan(s[2])) << isa_name(isa);
    EXPECT_EQ(s[3], std::exp(89.0f)) << isa_name(isa);
    EXPECT_EQ(s[4], INFINITY);
    EXPECT_EQ(s[5], INFINITY);
    EXPECT_EQ(s[6], 0.0f);
    EXPECT_LE(s[7], 1.5 * std::numeric_limits<float>::denorm_min());
    EXPECT_EQ(s[8], 0.0f);
  }
}

TEST(Ops, SoftmaxMatchesReference) {
  for (int64_t n : kSizes) {
    for (int variant = 0; variant < 4; ++variant) {
      auto x = random_floats(static_cast<size_t>(n), uint32_t(n * 4 + variant), -20.0f, 20.0f);
      if (variant == 1)  // masked entries
        for (int64_t i = 0; i < n; i += 3) x[static_cast<size_t>(i)] = -INFINITY;
      if (variant == 2) {  // large values: only the top few survive
        for (auto& v : x) v *= 1e4f;
      }
      if (variant == 3) x[static_cast<size_t>(n / 2)] = 1e30f;  // one entry far above the rest
      if (variant == 1 && n == 1) continue;                     // all -inf: NaN by definition
      std::vector<float> want = x;
      softmax_ref(want.data(), n);
      // The double truth: the reference's own sequential fp32 sum is ~1e-6 off at n = 7168.
      std::vector<double> exact(static_cast<size_t>(n));
      const double mx = *std::max_element(x.begin(), x.end());
      double sum = 0;
      for (int64_t i = 0; i < n; ++i)
        sum += (exact[static_cast<size_t>(i)] = std::exp(double(x[static_cast<size_t>(i)]) - mx));
      for (auto& v : exact) v /= sum;
      const double ref_err = rel_err(want.data(), exact.data(), n);
      for (Isa isa : available_isas()) {
        ForceIsa force(isa);
        std::vector<float> got = x;
        softmax(got.data(), n);
        EXPECT_LE(rel_err(got, want), std::max(1e-6, 2 * ref_err))
            << isa_name(isa) << " n=" << n << " variant " << variant;
        if (isa != Isa::Scalar) {  // the scalar path is the reference itself
          EXPECT_LE(rel_err(got.data(), exact.data(), n), 1e-6)
              << isa_name(isa) << " n=" << n << " variant " << variant;
        }
        double total = 0;
        for (float v : got) total += v;
        EXPECT_NEAR(total, 1.0, 1e-5) << isa_name(isa) << " n=" << n << " variant " << variant;
        if (variant == 1) {
          for (int64_t i = 0; i < n; i += 3) EXPECT_EQ(got[static_cast<size_t>(i)], 0.0f);
        }
      }
    }
  }
}

TEST(Ops, RopePairsMatchesReference) {
  for (int64_t d : {2, 4, 6, 14, 16, 18, 30, 32, 34, 64, 126, 128}) {
    const auto x0 = random_floats(static_cast<size_t>(d + 1), uint32_t(d), -2.0f, 2.0f);
    std::vector<float> cs(static_cast<size_t>(d));
    for (int64_t i = 0; i < d / 2; ++i) {
      const double th = 0.37 * double(i + 1) * 1000.0;
      cs[static_cast<size_t>(2 * i)] = float(std::cos(th));
      cs[static_cast<size_t>(2 * i + 1)] = float(std::sin(th));
    }
    std::vector<float> want(x0.begin() + 1, x0.end());
    rope_pairs_ref(want.data(), d, cs.data());
    for (Isa isa : available_isas()) {
      ForceIsa force(isa);
      std::vector<float> buf = x0;  // misaligned start
      rope_pairs(buf.data() + 1, d, cs.data());
      EXPECT_LE(rel_err(buf.data() + 1, want.data(), d), 1e-6) << isa_name(isa) << " d=" << d;
      EXPECT_EQ(buf[0], x0[0]);
    }
  }
}

// o[h, c] in double, the definition straight from ops.h.
std::vector<double> naive_attention(const float* q, int64_t h, const float* kv, int64_t t, int64_t ld, int64_t c,
                                    int64_t r, float scale) {
  std::vector<double> o(static_cast<size_t>(h * c), 0.0), s(static_cast<size_t>(t));
  for (int64_t hh = 0; hh < h; ++hh) {
    double mx = -INFINITY;
    for (int64_t i = 0; i < t; ++i) {
      double acc = 0;
      for (int64_t j = 0; j < c + r; ++j) acc += double(q[hh * (c + r) + j]) * double(kv[i * ld + j]);
      s[static_cast<size_t>(i)] = acc * double(scale);
      mx = std::max(mx, s[static_cast<size_t>(i)]);
    }
    double sum = 0;
    for (auto& v : s) sum += (v = std::exp(v - mx));
    for (int64_t i = 0; i < t; ++i)
      for (int64_t j = 0; j < c; ++j)
        o[static_cast<size_t>(hh * c + j)] += s[static_cast<size_t>(i)] / sum * double(kv[i * ld + j]);
  }
  return o;
}

TEST(Ops, LatentAttentionMatchesDoubleAndReference) {
  struct Case {
    int64_t h, t, c, r, pad;
  };
  const Case cases[] = {{1, 1, 7, 0, 0},       {3, 5, 7, 3, 1},   {8, 31, 64, 32, 0},   {13, 33, 63, 5, 3},
                        {16, 100, 512, 64, 0}, {2, 64, 17, 1, 7}, {9, 200, 256, 32, 0}, {16, 32, 512, 64, 4},
                        {128, 70, 512, 64, 0}, {5, 1, 33, 31, 0}};
  for (const Case& cs : cases) {
    const int64_t d = cs.c + cs.r, ld = d + cs.pad;
    const auto q = random_floats(static_cast<size_t>(cs.h * d), uint32_t(cs.h * 7 + cs.t), -1.0f, 1.0f);
    const auto kv = random_floats(static_cast<size_t>(cs.t * ld), uint32_t(cs.t * 3 + cs.c), -1.0f, 1.0f);
    const float scale = 3.0f / std::sqrt(float(d));  // peaked enough that the softmax matters
    const auto want = naive_attention(q.data(), cs.h, kv.data(), cs.t, ld, cs.c, cs.r, scale);
    std::vector<float> scratch(static_cast<size_t>(cs.t)), ref(static_cast<size_t>(cs.h * cs.c));
    latent_attention_ref(q.data(), cs.h, kv.data(), cs.t, ld, cs.c, cs.r, scale, ref.data(), scratch.data());
    const std::string what = "h=" + std::to_string(cs.h) + " t=" + std::to_string(cs.t) + " c=" + std::to_string(cs.c) +
                             " r=" + std::to_string(cs.r) + " ld=" + std::to_string(ld);
    EXPECT_LE(rel_err(ref.data(), want.data(), cs.h * cs.c), 2e-6) << "reference vs double, " << what;
    for (Isa isa : available_isas()) {
      ForceIsa force(isa);
      std::vector<float> o(static_cast<size_t>(cs.h * cs.c), NAN);
      latent_attention(q.data(), cs.h, kv.data(), cs.t, ld, cs.c, cs.r, scale, o.data(), scratch.data());
      EXPECT_LE(rel_err(o.data(), want.data(), cs.h * cs.c), 2e-6) << isa_name(isa) << " vs double, " << what;
      EXPECT_LE(rel_err(o, ref), 2e-6) << isa_name(isa) << " vs reference, " << what;
    }
  }
}

TEST(Ops, LatentAttentionSingleThread) {
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  const int64_t h = 16, t = 77, c = 512, r = 64, d = c + r;
  const auto q = random_floats(static_cast<size_t>(h * d), 1);
  const auto kv = random_floats(static_cast<size_t>(t * d), 2);
  const auto want = naive_attention(q.data(), h, kv.data(), t, d, c, r, 0.1f);
  std::vector<float> o(static_cast<size_t>(h * c)), scratch(static_cast<size_t>(t));
  latent_attention(q.data(), h, kv.data(), t, d, c, r, 0.1f, o.data(), scratch.data());
  EXPECT_LE(rel_err(o.data(), want.data(), h * c), 2e-6);
  omp_set_num_threads(saved);
}

TEST(Ops, TopK) {
  for (int64_t n : {1, 5, 64, 256, 1000, 20000})
    for (int64_t k : {0, 1, 2, 6, 8, 64, 65, 300}) {
      if (k > n) continue;
      auto x = random_floats(static_cast<size_t>(n), uint32_t(n + k), -1.0f, 1.0f);
      for (int64_t i = 0; i < n; i += 7) x[static_cast<size_t>(i)] = 0.5f;  // ties
      std::vector<int32_t> want(static_cast<size_t>(n));
      std::iota(want.begin(), want.end(), 0);
      std::stable_sort(want.begin(), want.end(),
                       [&](int32_t a, int32_t b) { return x[static_cast<size_t>(a)] > x[static_cast<size_t>(b)]; });
      std::vector<int32_t> got(static_cast<size_t>(k) + 1, -1);
      top_k(x.data(), n, k, got.data());
      for (int64_t i = 0; i < k; ++i)
        EXPECT_EQ(got[static_cast<size_t>(i)], want[static_cast<size_t>(i)]) << "n=" << n << " k=" << k << " i=" << i;
      EXPECT_EQ(got[static_cast<size_t>(k)], -1);
    }
}

}  // namespace
}  // namespace dsv3::kernels
