// Expert parallelism in the training step (train/expert_parallel.h) against the single-process step: every
// rank computes the single-process gradient of the whole batch, then the EP step over its own sequences
// (holding only its experts), reduces (allreduce_ep_grads) and compares every tensor it holds — within 1e-5
// relative — plus the loss, the routed load and the hooks' order. Runs as 1 process (an EP group of one:
// the exchange path with itself) and under mpirun -np 2 / 4 (ep = ranks, and dp 2 × ep 2 on 4 ranks).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>  // before testdata.h, which uses std::memcpy
#include <string>
#include <vector>

#include "../model/testdata.h"
#include "core/error.h"
#include "dist/layout.h"
#include "dist/world.h"
#include "io/safetensors.h"
#include "model/config.h"
#include "train/expert_parallel.h"
#include "train/param_io.h"
#include "train/step.h"

namespace dsv3::train {
namespace {

using dsv3::testing::read_ids;
using dsv3::testing::rel_err;

constexpr double kTol = 1e-5;

std::string case_dir(const std::string& name) { return dsv3::testing::testdata_dir() + "/" + name; }

// B sequences of T tokens cut from the case's sequences (distinct per b).
std::vector<int32_t> batch_of(const std::string& dir, int64_t B, int64_t T) {
  auto seqs = read_ids(dir + "/ids.txt");
  std::vector<int32_t> out;
  for (int64_t b = 0; b < B; ++b) {
    const auto& s = seqs[size_t(b) % seqs.size()];
    for (int64_t t = 0; t < T; ++t) out.push_back(s[size_t((t + 3 * b) % int64_t(s.size()))]);
  }
  return out;
}

// The layouts a world of this size tests: dp 1 × ep N, and dp 2 × ep N/2 when N ≥ 4.
std::vector<dist::Layout> layouts(int n) {
  std::vector<dist::Layout> v{{.dp = 1, .ep = n}};
  if (n >= 4 && n % 2 == 0) v.push_back({.dp = 2, .ep = n / 2});
  return v;
}

class TrainEp : public ::testing::TestWithParam<std::string> {};

TEST_P(TrainEp, ReducedGradientsEqualTheSingleProcessStep) {
  DSV3_REQUIRE_CASE(GetParam());
  dist::Comm& world = dist::world();
  const int N = world.size();
  const std::string dir = case_dir(GetParam());
  const ModelConfig c = load_config(dir);
  const auto ckpt = io::Checkpoint::open(dir);
  const int64_t B = 2 * N, T = 12, Bl = B / N;
  const auto tokens = batch_of(dir, B, T);
  const LossOptions opt{.mtp_lambda = 0.3, .balance_alpha = 0.01, .mode = BalanceMode::AuxFree};

  const Params full = load_params(c, ckpt);
  Params gfull(c);
  const StepResult rf = forward_backward(c, full, tokens.data(), B, T, opt, gfull, 1.0f);

  for (const dist::Layout& layout : layouts(N))
    for (const bool overlap : {false, true}) {
      SCOPED_TRACE(::testing::Message() << GetParam() << " dp " << layout.dp << " x ep " << layout.ep << " overlap "
                                        << overlap);
      dist::Groups groups = dist::make_groups(world, layout);
      ExpertParallel ep = ExpertParallel::make(c, *groups.ep);
      ep.overlap = overlap;
      const Params p = load_params(c, ckpt, ep.scope);
      Params g(c, ep.scope);
      std::vector<int64_t> reported;
      const StepHooks hooks{.grads_ready = [&](int64_t l) { reported.push_back(l); }};
      const float scale = float(double(Bl) / double(B));
      const StepResult r =
          forward_backward(c, p, tokens.data() + world.rank() * Bl * T, Bl, T, opt, g, scale, &ep, hooks);
      allreduce_ep_grads(g, world, *groups.dp);
      EXPECT_EQ(r.overlapped, overlap);  // every rank has Bl = 2 sequences
      // Counts, dispatch, combine per MoE layer forward, dy and dx backward, plus the check's allgather.
      const int64_t moe_layers = int64_t(rf.routing.size());
      EXPECT_EQ(r.comm.exchanges, 1 + (overlap ? 2 : 1) * 5 * moe_layers);
      EXPECT_GE(r.seconds, r.comm.post_s + r.comm.wait_s);
      if (!overlap) EXPECT_EQ(r.comm.post_s, 0.0);

      // Every tensor this rank holds equals the single-process gradient of the whole batch.
      double worst = 0.0;
      for (size_t i = 0; i < g.size(); ++i) {
        const WeightSpec& s = g.specs()[i];
        if (s.role == WeightRole::Bias) continue;
        const std::vector<float>& want = gfull.value(gfull.index(s.name));
        const double e = rel_err(g.value(i).data(), want.data(), want.size());
        EXPECT_LE(e, kTol) << s.name;
        worst = std::max(worst, e);
      }
      worst = world.allreduce_one(worst, dist::ReduceOp::Max);
      if (world.rank() == 0)
        std::printf(
            "[ %s dp %d x ep %d, overlap %s ] worst gradient relative difference to the single-process step %.3g\n",
            GetParam().c_str(), layout.dp, layout.ep, overlap ? "on" : "off", worst);

      // Losses are this rank's means: weighted by its share they sum to the whole batch's.
      const double loss = world.allreduce_one(r.loss * double(Bl) / double(B));
      const double main_ce = world.allreduce_one(r.main_ce * double(Bl) / double(B));
      EXPECT_NEAR(loss, rf.loss, 1e-6 * std::fabs(rf.loss));
      EXPECT_NEAR(main_ce, rf.main_ce, 1e-6 * std::fabs(rf.main_ce));
      EXPECT_EQ(world.allreduce_one(r.tokens), rf.tokens);

      // The routed load is this rank's tokens'; summed over the ranks it is the batch's.
      ASSERT_EQ(r.routing.size(), rf.routing.size());
      for (size_t l = 0; l < r.routing.size(); ++l) {
        std::vector<int64_t> load = r.routing[l].load;
        world.allreduce(std::span<int64_t>(load));
        EXPECT_EQ(load, rf.routing[l].load) << "layer " << r.routing[l].layer;
      }

      // Hooks: MTP modules last to first, decoder layers last to first, then −1; each once.
      std::vector<int64_t> want_order;
      for (int64_t k = c.num_nextn_predict_layers - 1; k >= 0; --k) want_order.push_back(c.num_hidden_layers + k);
      for (int64_t l = c.num_hidden_layers - 1; l >= 0; --l) want_order.push_back(l);
      want_order.push_back(-1);
      EXPECT_EQ(reported, want_order);

      // evaluate() runs the same forward (exchanges included; with the same micro-batches).
      const StepResult e = evaluate(c, p, tokens.data() + world.rank() * Bl * T, Bl, T, opt, &ep);
      EXPECT_EQ(e.loss, r.loss);
      EXPECT_EQ(e.overlapped, overlap);

      // EP rank 0 of each replica assembles the full gradient.
      std::optional<Params> all = gather_experts(c, g, ep, 0);
      EXPECT_EQ(all.has_value(), groups.ep_rank == 0);
      if (all) {
        ASSERT_EQ(all->size(), gfull.size());
        for (size_t i = 0; i < gfull.size(); ++i) {
          if (gfull.specs()[i].role == WeightRole::Bias) continue;
          EXPECT_LE(rel_err(all->value(i).data(), gfull.value(i).data(), gfull.value(i).size()), kTol)
              << gfull.specs()[i].name;
        }
      }
    }
}

INSTANTIATE_TEST_SUITE_P(Cases, TrainEp, ::testing::Values("v3_tiny", "v2lite_tiny", "v3_mtp"));

// The overlap needs every EP rank to have >= 2 sequences and no batch-wise balance loss (AuxLoss), and the
// ranks agree: with one sequence on rank 0 and two on the others it is off on every rank. Either way the
// reduced gradient is the single-process one (AuxLoss: one process only — over ranks it is per rank).
TEST(TrainEp, OverlapIsAgreedByEveryRank) {
  DSV3_REQUIRE_CASE("v3_mtp");
  dist::Comm& world = dist::world();
  const int N = world.size(), rank = world.rank();
  const std::string dir = case_dir("v3_mtp");
  const ModelConfig c = load_config(dir);
  const auto ckpt = io::Checkpoint::open(dir);
  dist::Groups groups = dist::make_groups(world, {.dp = 1, .ep = N});
  ExpertParallel ep = ExpertParallel::make(c, *groups.ep);
  ep.overlap = true;
  const Params full = load_params(c, ckpt), p = load_params(c, ckpt, ep.scope);
  const int64_t T = 10;
  struct Case {
    BalanceMode mode;
    bool rank0_one;  // rank 0 has 1 sequence, the others 2 (else every rank 2)
    bool overlapped;
  };
  for (const Case& k : {Case{BalanceMode::AuxFree, true, false}, Case{BalanceMode::AuxLoss, false, false},
                        Case{BalanceMode::AuxFree, false, true}}) {
    SCOPED_TRACE(::testing::Message() << "balance " << int(k.mode) << ", rank 0 one sequence " << k.rank0_one);
    const int64_t B = k.rank0_one ? 2 * N - 1 : 2 * N;
    const int64_t first = k.rank0_one && rank > 0 ? 2 * rank - 1 : 2 * rank;
    const int64_t mine = k.rank0_one && rank == 0 ? 1 : 2;
    const auto tokens = batch_of(dir, B, T);
    const LossOptions opt{.mtp_lambda = 0.3, .balance_alpha = 0.01, .mode = k.mode};
    Params gfull(c), g(c, ep.scope);
    const StepResult rf = forward_backward(c, full, tokens.data(), B, T, opt, gfull, 1.0f);
    const StepResult r =
        forward_backward(c, p, tokens.data() + first * T, mine, T, opt, g, float(double(mine) / double(B)), &ep);
    EXPECT_EQ(r.overlapped, k.overlapped);
    allreduce_ep_grads(g, world, *groups.dp);
    if (k.mode == BalanceMode::AuxLoss && N > 1) continue;
    for (size_t i = 0; i < g.size(); ++i) {
      const WeightSpec& s = g.specs()[i];
      if (s.role == WeightRole::Bias) continue;
      const std::vector<float>& want = gfull.value(gfull.index(s.name));
      EXPECT_LE(rel_err(g.value(i).data(), want.data(), want.size()), kTol) << s.name;
    }
    EXPECT_NEAR(world.allreduce_one(r.loss * double(mine) / double(B)), rf.loss, 1e-6 * std::fabs(rf.loss));
  }
}

// Without expert parallelism the step is the single-process one, bit for bit (the seam adds nothing).
TEST(TrainEp, NullContextIsTheSingleProcessStep) {
  DSV3_REQUIRE_CASE("v3_mtp");
  const std::string dir = case_dir("v3_mtp");
  const ModelConfig c = load_config(dir);
  const Params p = load_params(c, io::Checkpoint::open(dir));
  const auto tokens = batch_of(dir, 2, 10);
  const LossOptions opt{.mtp_lambda = 0.3, .balance_alpha = 0.01, .mode = BalanceMode::AuxFree};
  Params a(c), b(c);
  const StepResult ra = forward_backward(c, p, tokens.data(), 2, 10, opt, a);
  const StepResult rb = forward_backward(c, p, tokens.data(), 2, 10, opt, b, 1.0f, nullptr, {});
  EXPECT_EQ(ra.loss, rb.loss);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a.value(i), b.value(i)) << a.specs()[i].name;
}

// EP ranks that would run different MoE layers (here: one rank's sequences too short for the MTP module)
// fail together, before any exchange, with a message naming the ranks.
TEST(TrainEp, RanksRunningDifferentLayersFailTogether) {
  DSV3_REQUIRE_CASE("v3_mtp");
  dist::Comm& world = dist::world();
  if (world.size() < 2) GTEST_SKIP() << "needs 2 ranks";
  const std::string dir = case_dir("v3_mtp");
  const ModelConfig c = load_config(dir);
  const ExpertParallel ep = ExpertParallel::make(c, world);
  const Params p = load_params(c, io::Checkpoint::open(dir), ep.scope);
  Params g(c, ep.scope);
  const int64_t T = world.rank() == 1 ? 2 : 8;  // T = 2: no MTP row
  const auto tokens = batch_of(dir, 1, T);
  const LossOptions opt{.mtp_lambda = 0.3};
  try {
    forward_backward(c, p, tokens.data(), 1, T, opt, g, 1.0f, &ep);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("EP ranks run different MoE layers"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("MTP"), std::string::npos) << e.what();
  }
}

// The context refuses a model without routed experts; the step refuses parameters lacking an owned expert,
// naming the rank and the expert. (One process: the errors are local, before any exchange.)
TEST(TrainEp, ContextAndParametersAreChecked) {
  DSV3_REQUIRE_CASE("v3_tiny");
  dist::Comm& world = dist::world();
  if (world.size() != 1) GTEST_SKIP() << "single-process errors";
  ModelConfig dense = load_config(case_dir("v3_tiny"));
  dense.n_routed_experts = 0;
  EXPECT_THROW(ExpertParallel::make(dense, world), Error);
  const ModelConfig c = load_config(case_dir("v3_tiny"));
  const ExpertParallel ep = ExpertParallel::make(c, world);
  const Params p(c, SchemaScope{.expert_begin = 1, .expert_end = c.n_routed_experts});
  Params g(c);
  const auto tokens = batch_of(case_dir("v3_tiny"), 1, 6);
  try {
    forward_backward(c, p, tokens.data(), 1, 6, {}, g, 1.0f, &ep);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("EP rank 0 owns expert 0"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace dsv3::train
