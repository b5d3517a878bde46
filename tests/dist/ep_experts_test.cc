// The expert-parallel executor (dist/expert_parallel.h) over the world (1 rank, or 2 / 4 under mpirun):
// each rank holds only its block of experts and its own rows (a different number per rank, none on some),
// and its out equals LocalExperts over all experts — run over this rank's rows, and as its slice of
// LocalExperts over the rows of every rank together — in the decode regime (fused kernel) and the prefill
// regime (one FFN per expert), with and without redundant copies of the hot experts, and with two
// micro-batches in flight (the staged begin / compute / combine / end).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "core/error.h"
#include "core/splitmix.h"
#include "dist/expert_parallel.h"
#include "dist/layout.h"
#include "dist/world.h"
#include "model/expert_executor.h"

namespace dsv3::dist {
namespace {

constexpr int64_t kHidden = 24, kInter = 12, kExperts = 8, kTopK = 2;

ModelConfig config() {
  ModelConfig c;
  c.hidden_size = kHidden;
  c.moe_intermediate_size = kInter;
  c.n_routed_experts = kExperts;
  c.num_experts_per_tok = kTopK;
  c.n_shared_experts = 1;
  return c;
}

// The same random float32 weights on every rank (seeded).
struct Weights {
  std::vector<std::vector<float>> store;
  MoeWeights all;

  Weights() {
    SplitMix64 rng{2024};
    auto mat = [&](int64_t n, int64_t k) {
      auto& v = store.emplace_back(size_t(n * k));
      for (float& x : v) x = float(rng.uniform() - 0.5) * 0.4f;
      return kernels::WeightRef{.dtype = ::dsv3::DType::F32, .data = v.data(), .n = n, .k = k};
    };
    auto ffn = [&](int64_t inter) {
      FfnWeights f;
      f.w1 = mat(inter, kHidden);
      f.w3 = mat(inter, kHidden);
      f.w2 = mat(kHidden, inter);
      f.inter = inter;
      return f;
    };
    for (int64_t e = 0; e < kExperts; ++e) all.experts.push_back(ffn(kInter));
    all.has_shared = true;
    all.shared = ffn(kInter);
  }
  // This rank's view: only its block of experts bound.
  LayerWeights layer(int ep, int rank) const {
    LayerWeights lw;
    lw.index = 3;
    lw.is_moe = true;
    lw.moe = all;
    const SchemaScope s = expert_scope(kExperts, ep, rank);
    for (int64_t e = 0; e < kExperts; ++e)
      if (!s.has(e)) lw.moe.experts[size_t(e)] = FfnWeights{};
    return lw;
  }
};

// Rows of one rank and their routing, grouped into tasks as Moe::forward groups them.
struct Batch {
  int64_t m = 0;
  std::vector<float> x;                  // [m, hidden]
  std::vector<int64_t> choice;           // [m, top_k]
  std::vector<float> gate;               // [m, top_k]
  std::vector<float> xin, gates_sorted;  // gathered per task
  std::vector<int64_t> rows;
  std::vector<ExpertTask> tasks;

  // hot: most rows choose experts 0 and 1 (a skewed router).
  Batch(int64_t rows_, uint64_t seed, bool hot) : m(rows_) {
    SplitMix64 rng{seed};
    x.resize(size_t(m * kHidden));
    for (float& v : x) v = float(rng.uniform() - 0.5);
    for (int64_t r = 0; r < m; ++r) {
      int64_t a = int64_t(rng.below(kExperts)), b = int64_t(rng.below(kExperts - 1));
      if (b >= a) ++b;
      if (hot && rng.uniform() < 0.8) a = 0, b = 1;
      choice.insert(choice.end(), {a, b});
      gate.insert(gate.end(), {float(rng.uniform()), float(rng.uniform())});
    }
    group();
  }
  void group() {
    tasks.clear();
    std::vector<int64_t> slots(size_t(m * kTopK));
    std::iota(slots.begin(), slots.end(), 0);
    std::stable_sort(slots.begin(), slots.end(),
                     [&](int64_t p, int64_t q) { return choice[size_t(p)] < choice[size_t(q)]; });
    xin.resize(slots.size() * kHidden);
    rows.resize(slots.size());
    gates_sorted.resize(slots.size());
    for (size_t i = 0; i < slots.size(); ++i) {
      std::memcpy(xin.data() + i * kHidden, x.data() + (slots[i] / kTopK) * kHidden, kHidden * sizeof(float));
      rows[i] = slots[i] / kTopK;
      gates_sorted[i] = gate[size_t(slots[i])];
    }
    for (size_t b = 0; b < slots.size();) {
      size_t e = b;
      while (e < slots.size() && choice[size_t(slots[e])] == choice[size_t(slots[b])]) ++e;
      tasks.push_back({.expert = choice[size_t(slots[b])],
                       .x = xin.data() + b * kHidden,
                       .m = int64_t(e - b),
                       .rows = rows.data() + b,
                       .gates = gates_sorted.data() + b});
      b = e;
    }
  }
};

std::vector<float> run(ExpertExecutor& ex, const Batch& b) {
  std::vector<float> out(size_t(b.m * kHidden), 0.0f);
  ex.run(b.tasks, b.x.data(), b.m, out.data());
  return out;
}

// Rows per rank: rank 1 has none (when there is one), the others differ. `only0`: every row on rank 0.
int64_t rows_of(int rank, int64_t base, bool only0) {
  if (only0) return rank == 0 ? base : 0;
  return rank == 1 ? 0 : base + 3 * rank;
}

double rel_err(const float* a, const float* b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; ++i) {
    num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    den += double(b[i]) * b[i];
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

void expect_matches_local(int64_t base, bool hot, Redundancy red, int calls, bool only0 = false) {
  Comm& w = world();
  const ModelConfig c = config();
  const Weights wt;
  const LayerWeights mine = wt.layer(w.size(), w.rank());
  ExpertBinder bind = [&](int64_t, int64_t e, std::vector<std::vector<float>>&) { return wt.all.experts[size_t(e)]; };
  auto load = std::make_shared<ExpertLoad>();
  EpExperts ep(w, c, mine, {}, red, bind, load);
  LocalExperts local(wt.all, kHidden);
  for (int call = 0; call < calls; ++call) {
    SCOPED_TRACE("call " + std::to_string(call));
    const Batch b(rows_of(w.rank(), base, only0), 100 * uint64_t(call) + uint64_t(w.rank()), hot);
    const std::vector<float> got = run(ep, b);
    // LocalExperts over this rank's rows. When the experts see only this rank's rows (one rank, or every
    // row here) each expert output is the same kernel over the same rows, and the sums are in the same
    // order: the same bits. Rows from several ranks change the experts' batches (row blocking of the
    // kernels), so the sums differ in the last bits only.
    const std::vector<float> want = run(local, b);
    ASSERT_EQ(got.size(), want.size());
    EXPECT_LE(rel_err(got.data(), want.data(), got.size()), 1e-6);
    if ((w.size() == 1 || only0) && !got.empty())
      EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0) << "not bit-identical";

    // Every rank's rows in one LocalExperts batch: this rank's slice is the same.
    Batch all(0, 0, false);
    for (int r = 0; r < w.size(); ++r) {
      const Batch br(rows_of(r, base, only0), 100 * uint64_t(call) + uint64_t(r), hot);
      if (r == w.rank()) ASSERT_EQ(br.x, b.x);
      all.x.insert(all.x.end(), br.x.begin(), br.x.end());
      all.choice.insert(all.choice.end(), br.choice.begin(), br.choice.end());
      all.gate.insert(all.gate.end(), br.gate.begin(), br.gate.end());
      if (r < w.rank()) all.m += br.m;  // offset of this rank's rows, for now
    }
    const int64_t offset = all.m;
    all.m = int64_t(all.x.size()) / kHidden;
    all.group();
    const std::vector<float> whole = run(local, all);
    EXPECT_LE(rel_err(got.data(), whole.data() + offset * kHidden, got.size()), 1e-6);
  }
  // The load record: one entry per call; the group computed every routed slot exactly once.
  ASSERT_EQ(load->rows.size(), size_t(calls));
  int64_t total_rows = 0;
  for (int r = 0; r < w.size(); ++r) total_rows += rows_of(r, base, only0);
  const int64_t computed = w.allreduce_one<int64_t>(load->rows.back());
  EXPECT_EQ(computed, total_rows * kTopK);
  if (red.experts > 0 && w.size() > 1) {
    EXPECT_TRUE(ep.planned());
    int duplicated = 0;
    for (int64_t e = 0; e < kExperts; ++e) duplicated += ep.holders(e).size() > 1;
    EXPECT_EQ(duplicated, red.experts);
    if (hot) {
      EXPECT_EQ(ep.holders(0).size(), 2u);  // the hot experts got the copies
      EXPECT_EQ(ep.holders(1).size(), 2u);
    }
  }
}

TEST(EpExperts, DecodeRegimeEqualsLocalExperts) { expect_matches_local(2, false, {}, 3); }

TEST(EpExperts, PrefillRegimeEqualsLocalExperts) { expect_matches_local(40, false, {}, 2); }

TEST(EpExperts, SkewedRoutingEqualsLocalExperts) { expect_matches_local(30, true, {}, 2); }

TEST(EpExperts, EveryRowOnOneRankIsBitIdentical) {
  expect_matches_local(5, false, {}, 2, /*only0=*/true);
  expect_matches_local(40, false, {}, 2, /*only0=*/true);
}

TEST(EpExperts, RedundantCopiesOfTheHotExpertsGiveTheSameOut) {
  if (world().size() < 2) GTEST_SKIP() << "redundant experts need 2 or more ranks";
  expect_matches_local(30, true, {.experts = 2, .warmup = 1}, 3);
  expect_matches_local(3, true, {.experts = 3, .warmup = 0}, 2);
}

TEST(EpExperts, NoRowsAnywhere) {
  Comm& w = world();
  const Weights wt;
  const LayerWeights mine = wt.layer(w.size(), w.rank());
  const ModelConfig c = config();  // the executor keeps a reference: it must outlive it
  EpExperts ep(w, c, mine, {});
  std::vector<float> out;
  ep.run({}, nullptr, 0, out.data());  // every rank enters the exchange with nothing to send
  SUCCEED();
}

// Two micro-batches in flight, their stages interleaved as Model::run_overlapped does (A's dispatch
// travels while B is routed, B's while A computes, A's combine while B computes): each equals LocalExperts
// over its own rows, and the executor's times are accounted for.
TEST(EpExperts, TwoSlotsInFlightEqualLocalExperts) {
  Comm& w = world();
  const ModelConfig c = config();
  const Weights wt;
  const LayerWeights mine = wt.layer(w.size(), w.rank());
  auto load = std::make_shared<ExpertLoad>();
  EpExperts ep(w, c, mine, {}, {}, {}, load);
  LocalExperts local(wt.all, kHidden);
  for (int64_t base : {2, 40}) {
    SCOPED_TRACE("rows " + std::to_string(base));
    const Batch a(rows_of(w.rank(), base, false), 7 + uint64_t(w.rank()), false);
    const Batch b(rows_of(w.rank(), base + 5, false), 70 + uint64_t(w.rank()), true);
    std::vector<float> oa(size_t(a.m * kHidden), 0.0f), ob(size_t(b.m * kHidden), 0.0f);
    ep.begin(0, a.tasks, a.x.data(), a.m);
    ep.begin(1, b.tasks, b.x.data(), b.m);
    ep.compute(0);
    ep.combine(0);
    ep.compute(1);
    ep.combine(1);
    ep.end(0, oa.data());
    ep.end(1, ob.data());
    const std::vector<float> wa = run(local, a), wb = run(local, b);
    EXPECT_LE(rel_err(oa.data(), wa.data(), oa.size()), 1e-6);
    EXPECT_LE(rel_err(ob.data(), wb.data(), ob.size()), 1e-6);
  }
  EXPECT_EQ(load->time.calls, 4);
  EXPECT_EQ(load->rows.size(), 4u);
  EXPECT_GT(load->time.experts + load->time.comm + load->time.sync, 0.0);
}

TEST(EpExperts, StagesOutOfOrderAreRefused) {
  Comm& w = world();
  const ModelConfig c = config();
  const Weights wt;
  const LayerWeights mine = wt.layer(w.size(), w.rank());
  EpExperts ep(w, c, mine, {});
  std::vector<float> out;
  // Refused before any message, on every rank alike.
  EXPECT_THROW(ep.compute(0), Error);
  EXPECT_THROW(ep.combine(1), Error);
  EXPECT_THROW(ep.end(0, out.data()), Error);
  EXPECT_THROW(ep.begin(2, {}, nullptr, 0), Error);
  ep.begin(0, {}, nullptr, 0);
  EXPECT_THROW(ep.begin(0, {}, nullptr, 0), Error);  // slot 0 is in flight
  EXPECT_THROW(ep.combine(0), Error);
  ep.compute(0);
  ep.combine(0);
  ep.end(0, out.data());
}

TEST(EpExperts, RefusesBadRedundancy) {
  Comm& w = world();
  const Weights wt;
  const LayerWeights mine = wt.layer(w.size(), w.rank());
  EXPECT_THROW(EpExperts(w, config(), mine, {}, {.experts = kExperts + 1}), Error);
  EXPECT_THROW(EpExperts(w, config(), mine, {}, {.experts = 1}), Error);  // no binder (or one rank)
}

}  // namespace
}  // namespace dsv3::dist
