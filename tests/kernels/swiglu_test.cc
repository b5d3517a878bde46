// swiglu_experts (the fused decode-regime expert FFN) against swiglu_experts_ref (linear_qact_ref and
// silu_mul_ref per expert) on every ISA path, every weight format, 1 and 2 threads, awkward sizes, experts
// sharing output rows with gates, and the fallback when an expert has too many rows or mixed formats.
#include "kernels/swiglu.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <memory>
#include <string>

#include "kernels/isa.h"
#include "kernels/ops.h"
#include "test_util.h"
#include "test_weights.h"

namespace dsv3::kernels {
namespace {

using testing::available_isas;
using testing::ForceIsa;
using testing::QWeight;
using testing::random_floats;
using testing::rel_err;
using testing::TestWeight;

// One weight in any format: DType::I8 / U8 mean the Int8 / Int4 block formats.
struct AnyWeight {
  std::unique_ptr<TestWeight> f;
  std::unique_ptr<QWeight> q;
  AnyWeight(DType dt, int64_t n, int64_t k, uint32_t seed) {
    if (dt == DType::I8 || dt == DType::U8)
      q = std::make_unique<QWeight>(dt == DType::I8 ? Quant::Int8 : Quant::Int4, n, k, seed);
    else
      f = std::make_unique<TestWeight>(dt, n, k, seed);
  }
  WeightRef ref() const { return f ? f->ref : q->ref; }
};

struct ExpertData {
  AnyWeight w1, w3, w2;
  std::vector<float> x, gates;
  std::vector<int64_t> rows;
  ExpertData(DType dt, int64_t d, int64_t inter, int64_t m, int64_t out_rows, uint32_t seed)
      : w1(dt, inter, d, seed),
        w3(dt, inter, d, seed + 1),
        w2(dt, d, inter, seed + 2),
        x(random_floats(size_t(m * d), seed + 3)),
        gates(random_floats(size_t(m), seed + 4, 0.1f, 1.0f)) {
    for (int64_t i = 0; i < m; ++i) rows.push_back((i * 7 + seed) % out_rows);
  }
  SwigluExpert view(bool use_rows) const {
    return {.w1 = w1.ref(),
            .w3 = w3.ref(),
            .w2 = w2.ref(),
            .x = x.data(),
            .m = int64_t(gates.size()),
            .rows = use_rows ? rows.data() : nullptr,
            .gates = use_rows ? gates.data() : nullptr};
  }
};

const char* format_name(DType dt) {
  return dt == DType::I8 ? "int8" : dt == DType::U8 ? "int4" : dtype_name(dt).data();
}

// Runs the fused kernel and the reference on experts with the given row counts; out starts non-zero.
void check(DType dt, int64_t d, int64_t inter, const std::vector<int64_t>& ms, bool with_shared, double tol) {
  const int64_t out_rows = 5;
  std::vector<std::unique_ptr<ExpertData>> data;
  std::vector<SwigluExpert> experts;
  uint32_t seed = 11;
  for (int64_t m : ms) {
    data.push_back(std::make_unique<ExpertData>(dt, d, inter, m, out_rows, seed += 10));
    experts.push_back(data.back()->view(true));
  }
  if (with_shared) {  // an expert without rows / gates: out rows 0 .. m-1, gate 1
    data.push_back(std::make_unique<ExpertData>(dt, d, inter + 3, out_rows, out_rows, seed += 10));
    experts.push_back(data.back()->view(false));
  }
  const auto init = random_floats(size_t(out_rows * d), 99);
  for (Isa isa : available_isas()) {
    ForceIsa force(isa);
    for (int threads : {1, 2}) {
      omp_set_num_threads(threads);
      std::vector<float> got = init, want = init;
      SwigluScratch s;
      swiglu_experts(experts, d, got.data(), s);
      swiglu_experts_ref(experts, d, want.data());
      const double e = rel_err(got, want);
      EXPECT_LE(e, tol) << isa_name(isa) << " " << format_name(dt) << " threads=" << threads << " d=" << d
                        << " inter=" << inter << " experts=" << experts.size();
      // A second call on the same scratch gives the same numbers (nothing stale from the first).
      std::vector<float> again = init;
      swiglu_experts(experts, d, again.data(), s);
      EXPECT_EQ(again, got) << isa_name(isa) << " " << format_name(dt) << " threads=" << threads;
    }
  }
  omp_set_num_threads(omp_get_num_procs());
}

// Float weights: exact fp32 products, sums in another order (~1e-7). Int8 / Int4 (x quantized per block
// of 32 where linear() does so): the SwiGLU activations are quantized from sums that differ from the
// reference's in the last bit, which may round one code differently (~1e-4 each; seen: 4e-7 in all).
double tolerance(DType dt) { return dt == DType::I8 || dt == DType::U8 ? 2e-3 : 2e-6; }

const DType kFormats[] = {DType::F32, DType::BF16, DType::F16, DType::F8_E4M3, DType::I8, DType::U8};

TEST(Swiglu, MatchesReferenceSmallShapes) {
  for (DType dt : kFormats) {
    check(dt, 33, 17, {1}, false, tolerance(dt));
    check(dt, 64, 72, {1, 3, 2}, true, tolerance(dt));
    check(dt, 130, 100, {4, 1, 5, 16}, true, tolerance(dt));
  }
}

TEST(Swiglu, MatchesReferenceThreadedShapes) {
  // Large enough to run on two threads (>= 128 KiB of weights), several up-projection chunks per expert,
  // fp8 with ragged 128 × 128 scale blocks.
  for (DType dt : kFormats) check(dt, 320, 300, {1, 2, 1, 1, 1, 1}, true, tolerance(dt));
}

TEST(Swiglu, FallsBackBeyondDecodeRows) {
  // An expert with more rows than the GEMV regime takes: the unfused path, same results.
  const int64_t big = swiglu_max_rows() + 1;
  for (DType dt : {DType::F32, DType::BF16, DType::I8}) check(dt, 96, 80, {1, big, 2}, true, tolerance(dt));
}

TEST(Swiglu, BitIdenticalToUnfusedLinear) {
  // The header's promise: the same numbers as linear() per projection, silu_mul, and summing the experts
  // into out in the order given.
  for (DType dt : {DType::F32, DType::BF16, DType::F8_E4M3, DType::I8}) {
    const int64_t d = 256, inter = 200;
    std::vector<std::unique_ptr<ExpertData>> data;
    std::vector<SwigluExpert> experts;
    for (uint32_t e = 0; e < 4; ++e) {
      data.push_back(std::make_unique<ExpertData>(dt, d, inter, 1 + e % 2, 3, 100 + 10 * e));
      experts.push_back(data.back()->view(true));
    }
    for (Isa isa : available_isas()) {
      ForceIsa force(isa);
      std::vector<float> fused(size_t(3 * d), 0.5f), unfused(size_t(3 * d), 0.5f);
      SwigluScratch s;
      swiglu_experts(experts, d, fused.data(), s);
      for (const SwigluExpert& e : experts) {
        std::vector<float> g(size_t(e.m * inter)), u(g.size()), y(size_t(e.m * d));
        linear(e.x, e.m, e.w1, g.data());
        linear(e.x, e.m, e.w3, u.data());
        silu_mul(g.data(), u.data(), e.m * inter, g.data());
        linear(g.data(), e.m, e.w2, y.data());
        for (int64_t i = 0; i < e.m; ++i)
          for (int64_t j = 0; j < d; ++j) unfused[size_t(e.rows[i] * d + j)] += e.gates[i] * y[size_t(i * d + j)];
      }
      EXPECT_EQ(fused, unfused) << isa_name(isa) << " " << format_name(dt);
    }
  }
}

TEST(Swiglu, Bf16ActivationsOptIn) {
  // The opt-in (LinearOptions::bf16_activations, a model's option): BF16 experts multiply bf16-rounded x
  // and h. Near the exact reference, and not equal to it (the option took effect); without it, exact.
  if (!has_avx512_bf16()) GTEST_SKIP() << "no AVX-512 BF16 on this CPU";
  const int64_t d = 320, inter = 300;
  std::vector<std::unique_ptr<ExpertData>> data;
  std::vector<SwigluExpert> experts;
  for (uint32_t e = 0; e < 3; ++e) {
    data.push_back(std::make_unique<ExpertData>(DType::BF16, d, inter, 1 + e, 4, 200 + 10 * e));
    experts.push_back(data.back()->view(true));
  }
  std::vector<float> got(size_t(4 * d), 0.0f), exact(size_t(4 * d), 0.0f), want(size_t(4 * d), 0.0f);
  SwigluScratch s;
  swiglu_experts(experts, d, got.data(), s, {.bf16_activations = true});
  swiglu_experts(experts, d, exact.data(), s);  // the same scratch, default options: exact again
  swiglu_experts_ref(experts, d, want.data());
  const double e = rel_err(got, want);
  EXPECT_LE(e, 1e-2);
  EXPECT_GT(e, 1e-6);
  EXPECT_LE(rel_err(exact, want), 2e-6);
}

TEST(Swiglu, MixedFormatsTakeTheUnfusedPath) {
  // w1 BF16 and w3 F32 cannot share one prepared input: the kernel must still be right.
  const int64_t d = 64, inter = 40;
  TestWeight w1(DType::BF16, inter, d, 1), w3(DType::F32, inter, d, 2), w2(DType::BF16, d, inter, 3);
  const auto x = random_floats(size_t(d), 4);
  const SwigluExpert e{.w1 = w1.ref, .w3 = w3.ref, .w2 = w2.ref, .x = x.data(), .m = 1};
  std::vector<float> got(size_t(d), 0.0f), want(size_t(d), 0.0f);
  SwigluScratch s;
  swiglu_experts({&e, 1}, d, got.data(), s);
  swiglu_experts_ref({&e, 1}, d, want.data());
  EXPECT_LE(rel_err(got, want), 2e-6);
}

}  // namespace
}  // namespace dsv3::kernels
