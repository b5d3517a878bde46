// kernels/indexer.h: FP8 quantization against a straightforward scalar formula (nearest E4M3 value found by
// search, ties to the even code), the Hadamard butterfly against the matrix product, rotate-half RoPE
// against its definition, and every SIMD path of index_scores against the reference on awkward sizes.
#include "kernels/indexer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "test_util.h"

namespace dsv3::kernels {
namespace {

using testing::available_isas;
using testing::ForceIsa;
using testing::random_floats;
using testing::rel_err;

// The E4M3 (fn) code nearest to y, ties to the even code, by trying every finite code.
uint8_t nearest_e4m3(float y) {
  int best = 0;
  double best_d = INFINITY;
  for (int b = 0; b < 256; ++b) {
    if ((b & 0x7f) == 0x7f) continue;  // NaN
    const double d = std::fabs(double(e4m3_to_f32(uint8_t(b))) - double(y));
    if (d < best_d || (d == best_d && (b & 1) == 0 && e4m3_to_f32(uint8_t(b)) != 0)) {
      best = b;
      best_d = d;
    }
  }
  return uint8_t(best);
}

// The testdata README's formula, spelled out in double where it is exact and float where the README says so.
void quantize_formula(const float* x, int64_t n, bool ue8m0, std::vector<float>& value, std::vector<float>& scales) {
  value.assign(size_t(n), 0.0f);
  scales.clear();
  for (int64_t b0 = 0; b0 < n; b0 += 128) {
    const int64_t len = std::min<int64_t>(128, n - b0);
    float amax = 1e-4f;
    for (int64_t i = 0; i < len; ++i) amax = std::max(amax, std::fabs(x[b0 + i]));
    float s = amax * float(1.0 / 448.0);
    if (ue8m0) s = float(std::exp2(std::ceil(std::log2(double(s)))));
    scales.push_back(s);
    for (int64_t i = 0; i < len; ++i) {
      const float y = std::clamp(x[b0 + i] / s, -448.0f, 448.0f);
      value[size_t(b0 + i)] = e4m3_to_f32(nearest_e4m3(y)) * s;
    }
  }
}

TEST(IndexerKernels, Fp8QuantizeMatchesTheFormula) {
  for (bool ue8m0 : {false, true})
    for (int64_t n : {1, 7, 127, 128, 129, 300, 512}) {
      auto x = random_floats(size_t(n), uint32_t(n + ue8m0), -3.0f, 3.0f);
      if (n > 5) {
        x[3] = 0.0f;      // zero
        x[4] = 1e-7f;     // far below the block's scale: a subnormal code or zero
        x[5] = -2.9999f;  // near the block maximum
      }
      std::vector<float> want, want_scales;
      quantize_formula(x.data(), n, ue8m0, want, want_scales);
      std::vector<uint8_t> codes(static_cast<size_t>(n));
      std::vector<float> scales(size_t((n + 127) / 128)), got(static_cast<size_t>(n));
      fp8_quantize(x.data(), n, ue8m0, codes.data(), scales.data());
      fp8_roundtrip(x.data(), n, ue8m0, got.data());
      for (size_t b = 0; b < scales.size(); ++b) EXPECT_EQ(scales[b], want_scales[b]) << "n=" << n << " block " << b;
      for (int64_t i = 0; i < n; ++i) {
        EXPECT_EQ(got[size_t(i)], want[size_t(i)]) << "n=" << n << " i=" << i << " ue8m0=" << ue8m0;
        EXPECT_EQ(e4m3_to_f32(codes[size_t(i)]) * scales[size_t(i / 128)], want[size_t(i)]) << "n=" << n << " i=" << i;
      }
      if (ue8m0)
        for (float s : scales) EXPECT_EQ(std::exp2(std::round(std::log2(s))), s) << "not a power of two";
    }
  // An all-zero block: amax is floored at 1e-4, every code 0.
  std::vector<float> z(128, 0.0f), s(1);
  std::vector<uint8_t> c(128, 0xff);
  fp8_quantize(z.data(), 128, false, c.data(), s.data());
  EXPECT_EQ(s[0], 1e-4f * (1.0f / 448.0f));
  for (uint8_t b : c) EXPECT_EQ(b, 0);
}

TEST(IndexerKernels, RoundtripMayAliasItsInput) {
  auto x = random_floats(256, 3, -2.0f, 2.0f);
  std::vector<float> want(256);
  fp8_roundtrip(x.data(), 256, true, want.data());
  fp8_roundtrip(x.data(), 256, true, x.data());
  EXPECT_EQ(x, want);
}

TEST(IndexerKernels, HadamardMatchesTheMatrixProduct) {
  for (int64_t n : {1, 2, 4, 16, 128, 256}) {
    auto x = random_floats(size_t(n), uint32_t(n), -1.0f, 1.0f);
    auto want = x;
    hadamard_ref(want.data(), n);
    hadamard(x.data(), n);
    EXPECT_LE(rel_err(x, want), 1e-6) << "n=" << n;
  }
  // H / √n is orthogonal and symmetric: applying it twice gives the input back.
  auto x = random_floats(128, 9);
  auto y = x;
  hadamard(y.data(), 128);
  hadamard(y.data(), 128);
  EXPECT_LE(rel_err(y, x), 1e-6);
}

TEST(IndexerKernels, RopeHalfRotatesTheTwoHalves) {
  const int64_t d = 16;
  auto x = random_floats(size_t(d), 5);
  std::vector<float> cs(static_cast<size_t>(d));
  for (int64_t i = 0; i < d / 2; ++i) {
    const double th = 0.37 * double(i + 1);
    cs[size_t(2 * i)] = float(std::cos(th));
    cs[size_t(2 * i + 1)] = float(std::sin(th));
  }
  auto y = x;
  rope_half(y.data(), d, cs.data());
  for (int64_t i = 0; i < d / 2; ++i) {
    const float c = cs[size_t(2 * i)], s = cs[size_t(2 * i + 1)];
    EXPECT_FLOAT_EQ(y[size_t(i)], x[size_t(i)] * c - x[size_t(i + d / 2)] * s);
    EXPECT_FLOAT_EQ(y[size_t(i + d / 2)], x[size_t(i)] * s + x[size_t(i + d / 2)] * c);
  }
}

TEST(IndexerKernels, IndexScoresMatchReferenceOnEveryPath) {
  std::mt19937 g(7);
  for (int64_t h : {1, 7, 16, 17, 64, 65})
    for (int64_t t : {1, 2, 7, 63, 65, 300})
      for (int64_t d : {int64_t(128), int64_t(40)}) {
        // Queries and keys as E4M3 values (what the indexer feeds), every byte but NaN, subnormals included.
        std::vector<float> q(size_t(h * d)), w(static_cast<size_t>(h)), ks(static_cast<size_t>(t));
        std::vector<uint8_t> k(size_t(t * d));
        std::uniform_int_distribution<int> byte(0, 255);
        auto code = [&] {
          int b;
          do b = byte(g);
          while ((b & 0x7f) == 0x7f);
          return uint8_t(b);
        };
        for (auto& v : q) v = e4m3_to_f32(code());
        for (auto& v : k) v = code();
        std::uniform_real_distribution<float> u(-1.0f, 1.0f), p(0.01f, 2.0f);
        for (auto& v : w) v = u(g);
        for (auto& v : ks) v = p(g);
        std::vector<float> want(static_cast<size_t>(t)), mag(static_cast<size_t>(t)), wabs(w);
        index_scores_ref(q.data(), w.data(), h, k.data(), ks.data(), t, d, want.data());
        // The size of each score's terms (|w| in place of w): the scale of its rounding, cancellation included.
        for (auto& v : wabs) v = std::fabs(v);
        index_scores_ref(q.data(), wabs.data(), h, k.data(), ks.data(), t, d, mag.data());
        for (Isa isa : available_isas()) {
          ForceIsa force(isa);
          std::vector<float> got(size_t(t), NAN);
          index_scores(q.data(), w.data(), h, k.data(), ks.data(), t, d, got.data());
          for (int64_t s = 0; s < t; ++s)
            ASSERT_LE(std::fabs(got[size_t(s)] - want[size_t(s)]), 1e-6 * mag[size_t(s)] + 1e-30)
                << isa_name(isa) << " h=" << h << " t=" << t << " d=" << d << " s=" << s;
        }
      }
}

}  // namespace
}  // namespace dsv3::kernels
