// The pipeline step's pieces in one process (train/pipeline_stage.h, train/weight_grad_store.h,
// train/pipeline.h): one stage holding every layer gives forward_backward's gradients bit for bit; B then W gives
// the combined backward's bit for bit (fp32 and fp8, dense + MoE + MTP); the cost split is balanced and refuses
// more stages than layers; every stage split of the model, run stage after stage, gives the one-stage gradients
// (the message passing between ranks is tested under mpirun: tests/train/pipeline_cli_test.cc).
#include "train/pipeline.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>  // before testdata.h, which uses std::memcpy
#include <numeric>
#include <random>
#include <set>
#include <vector>

#include "../model/testdata.h"
#include "core/error.h"
#include "dist/local_comm.h"
#include "model/config.h"
#include "train/param_io.h"
#include "train/weight_grad_store.h"

namespace dsv3::train {
namespace {

std::string case_dir(const std::string& name) { return dsv3::testing::testdata_dir() + "/" + name; }

struct Case {
  ModelConfig c;
  Params params;
  std::vector<int32_t> tokens;  // [B, T]
  int64_t B, T;
};

Case load_case(const std::string& name, int64_t B, int64_t T) {
  ModelConfig c = load_config(case_dir(name));
  Params p = load_params(case_dir(name));
  std::mt19937 rng(7);
  std::vector<int32_t> tok(size_t(B * T));
  for (auto& t : tok) t = int32_t(rng() % uint32_t(c.vocab_size));
  return Case{c, std::move(p), std::move(tok), B, T};
}

LossOptions loss_options(const ModelConfig& c) {
  LossOptions o;
  o.mtp_lambda = c.num_nextn_predict_layers > 0 ? 0.3 : 0.0;
  o.balance_alpha = c.n_routed_experts > 0 ? 0.01 : 0.0;
  o.mode = c.n_routed_experts > 0 ? BalanceMode::AuxFree : BalanceMode::None;
  return o;
}

bool same_bits(const Params& a, const Params& b) {
  for (size_t i = 0; i < a.size(); ++i)
    if (a.value(i).size() != b.value(i).size() ||
        (a.value(i).size() && std::memcmp(a.value(i).data(), b.value(i).data(), a.value(i).size() * 4) != 0)) {
      ADD_FAILURE() << a.specs()[i].name << " differs";
      return false;
    }
  return true;
}

double worst_rel(const Params& a, const Params& b) {
  double w = 0;
  for (size_t i = 0; i < a.size(); ++i)
    if (!a.value(i).empty())
      w = std::max(w, dsv3::testing::rel_err(a.value(i).data(), b.value(i).data(), a.value(i).size()));
  return w;
}

// Stages run one after the other in this process over micro-batches (forward all, backward all in reverse),
// with or without the B/W split (with it, the last stage's forward pushes the head's weight gradient into the
// store its B then uses).
void run_stages(const Case& k, const LossOptions& opt, const StageSplit& split, int micro, bool split_bw, Params& g,
                StageLosses* first_losses = nullptr) {
  const ModelP w = bind_params(k.c, k.params);
  const ModelG gg = bind_grads(k.c, g);
  RopeTable rope(k.c);
  rope.ensure(k.T);
  const int64_t Bm = k.B / micro;
  const StageStep s{.config = k.c,
                    .w = w,
                    .g = gg,
                    .rope = rope,
                    .opt = opt,
                    .batch = Bm,
                    .seq_len = k.T,
                    .grad_scale = 1.0f / float(micro)};
  for (int mb = 0; mb < micro; ++mb) {
    const int32_t* tok = k.tokens.data() + mb * Bm * k.T;
    std::vector<StageActs> acts(split.stages.size());
    std::vector<float> h;
    std::vector<WeightGradStore> stores(split.stages.size());
    for (size_t st = 0; st < split.stages.size(); ++st) {
      WeightGradStore* head_w = split_bw && split.stages[st].last ? &stores[st] : nullptr;
      StageLosses l = stage_forward(s, split.stages[st], tok, h, acts[st], nullptr, head_w);
      if (first_losses && mb == 0 && split.stages[st].last) *first_losses = l;
    }
    std::vector<float> dh;
    for (size_t st = split.stages.size(); st-- > 0;)
      stage_backward(s, split.stages[st], tok, acts[st], dh, split_bw ? &stores[st] : nullptr);
    for (auto& store : stores) store.run();
  }
}

StageSplit one_stage(const ModelConfig& c) {
  return StageSplit{.stages = {{.layer_begin = 0, .layer_end = c.num_hidden_layers, .first = true, .last = true}},
                    .cost = {0}};
}

TEST(Pipeline, OneStageIsTheStepBitForBit) {
  if (!dsv3::testing::have_case("v3_mtp")) GTEST_SKIP() << "no testdata";
  const Case k = load_case("v3_mtp", 2, 9);
  const LossOptions opt = loss_options(k.c);
  Params g1(k.c), g2(k.c);
  const StepResult r = forward_backward(k.c, k.params, k.tokens.data(), k.B, k.T, opt, g1, 1.0f);
  StageLosses l;
  run_stages(k, opt, one_stage(k.c), 1, false, g2, &l);
  EXPECT_TRUE(same_bits(g1, g2));
  EXPECT_NEAR(l.loss, r.loss, 1e-12 * std::abs(r.loss));
  EXPECT_EQ(l.main_ce, r.main_ce);
}

// The zero-bubble split of the head: its weight gradient, fused with the loss in the last stage's forward, is
// untouched until W runs, and then equal to the one computed at once bit for bit (main CE and MTP CE rows).
TEST(Pipeline, HeadWeightGradientWaitsForW) {
  if (!dsv3::testing::have_case("v3_mtp")) GTEST_SKIP() << "no testdata";
  const Case k = load_case("v3_mtp", 2, 9);
  const LossOptions opt = loss_options(k.c);
  const StageRange last{.layer_begin = 1, .layer_end = k.c.num_hidden_layers, .first = false, .last = true};
  Params now(k.c), later(k.c);
  const ModelP w = bind_params(k.c, k.params);
  RopeTable rope(k.c);
  rope.ensure(k.T);
  std::mt19937 rng(3);
  std::normal_distribution<float> n(0.0f, 1.0f);
  std::vector<float> h0(size_t(k.B * k.T * k.c.hidden_size));
  for (float& x : h0) x = n(rng);
  for (Params* g : {&now, &later}) {
    const ModelG gg = bind_grads(k.c, *g);
    const StageStep s{.config = k.c, .w = w, .g = gg, .rope = rope, .opt = opt, .batch = k.B, .seq_len = k.T};
    std::vector<float> h = h0;
    StageActs acts;
    WeightGradStore store;
    stage_forward(s, last, k.tokens.data(), h, acts, nullptr, g == &later ? &store : nullptr);
    const std::vector<float>& head = g->value(g->index("lm_head.weight"));
    if (g == &later) {
      EXPECT_TRUE(std::all_of(head.begin(), head.end(), [](float x) { return x == 0.0f; }));
      EXPECT_EQ(store.pending(), 2u);  // one chunk of rows for the main CE, one for the MTP module
      store.run();
    }
    EXPECT_FALSE(std::all_of(head.begin(), head.end(), [](float x) { return x == 0.0f; }));
  }
  EXPECT_TRUE(same_bits(now, later));
}

TEST(Pipeline, BThenWIsTheCombinedBackwardBitForBit) {
  for (const char* name : {"v3_mtp", "v3_tiny", "v2lite_tiny"}) {
    if (!dsv3::testing::have_case(name)) GTEST_SKIP() << "no testdata";
    for (Precision prec : {Precision::FP32, Precision::BF16, Precision::FP8}) {
      const Case k = load_case(name, 2, 7);
      LossOptions opt = loss_options(k.c);
      opt.linear.mode = prec;
      const StageSplit split = split_stages(k.c, 2, k.T, true);
      Params g1(k.c), g2(k.c);
      run_stages(k, opt, split, 2, false, g1);
      run_stages(k, opt, split, 2, true, g2);
      EXPECT_TRUE(same_bits(g1, g2)) << name << " " << precision_name(prec);
    }
  }
}

TEST(Pipeline, StageSplitsGiveTheOneStageGradients) {
  if (!dsv3::testing::have_case("v3_mtp")) GTEST_SKIP() << "no testdata";
  const Case k = load_case("v3_mtp", 4, 8);
  const LossOptions opt = loss_options(k.c);
  Params ref(k.c);
  forward_backward(k.c, k.params, k.tokens.data(), k.B, k.T, opt, ref, 1.0f);
  for (int S = 1; S <= 3; ++S)
    for (int micro : {1, 2, 4}) {
      Params g(k.c);
      run_stages(k, opt, split_stages(k.c, S, k.T, true), micro, true, g);
      EXPECT_LE(worst_rel(g, ref), 1e-6) << S << " stages, " << micro << " micro-batches";
    }
}

TEST(Pipeline, SplitBalancesCostAndRefusesTooManyStages) {
  ModelConfig c = load_config(case_dir("v3_mtp"));
  EXPECT_THROW(split_stages(c, 4, 16, true), Error);
  try {
    split_stages(c, 4, 16, true);
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--pp"), std::string::npos) << e.what();
  }
  c.num_hidden_layers = 12;
  const StageSplit s = split_stages(c, 4, 16, true);
  ASSERT_EQ(s.stages.size(), 4u);
  EXPECT_EQ(s.stages[0].layer_begin, 0);
  EXPECT_EQ(s.stages[3].layer_end, 12);
  for (size_t i = 1; i < 4; ++i) EXPECT_EQ(s.stages[i].layer_begin, s.stages[i - 1].layer_end);
  EXPECT_TRUE(s.stages[0].first && s.stages[3].last);
  // The last stage carries the head and the MTP module: it gets fewer decoder layers than the middle ones.
  EXPECT_LT(s.stages[3].layer_end - s.stages[3].layer_begin, s.stages[1].layer_end - s.stages[1].layer_begin);
  // No other contiguous split has a smaller maximum (brute force over the 3 cuts).
  const double best = *std::max_element(s.cost.begin(), s.cost.end());
  std::vector<double> lc;
  for (int64_t l = 0; l < 12; ++l) lc.push_back(layer_flops(c, l, 16));
  const double head = 2.0 * double(c.hidden_size) * double(c.vocab_size);
  const double last_extra = head + layer_flops(c, 12, 16) + head, first_extra = double(c.hidden_size);
  for (int a = 1; a < 12; ++a)
    for (int b = a + 1; b < 12; ++b)
      for (int d = b + 1; d < 12; ++d) {
        auto sum = [&](int x, int y) { return std::accumulate(lc.begin() + x, lc.begin() + y, 0.0); };
        const double m = std::max({sum(0, a) + first_extra, sum(a, b), sum(b, d), sum(d, 12) + last_extra});
        EXPECT_GE(m, best * (1 - 1e-12));
      }
}

// pipeline_scope: a rank's Params hold its stages' layers (DualPipe: two mirrored stages, twice 1F1B's), the
// embedding on both ends, norm / head / MTP on the last stage; every tensor is held by some rank.
TEST(Pipeline, PipelineScopeHoldsOnlyTheRanksStages) {
  if (!dsv3::testing::have_case("v3_mtp")) GTEST_SKIP() << "no testdata";
  ModelConfig c = load_config(case_dir("v3_mtp"));
  c.num_hidden_layers = 8;
  const int64_t whole = Params(c).total();
  for (ScheduleKind kind : {ScheduleKind::OneFOneB, ScheduleKind::DualPipe, ScheduleKind::DualPipeV})
    for (int P : {2, 4}) {
      SCOPED_TRACE(std::string(schedule_kind_name(kind)) + " --pp " + std::to_string(P));
      const PipeSchedule sched = make_schedule(kind, P, 2 * P);
      const StageSplit split = split_stages(c, sched.stages, 16, true);
      std::set<std::string> all;
      for (int r = 0; r < P; ++r) {
        const Params p(c, pipeline_scope(c, sched, split, r));
        if (kind == ScheduleKind::DualPipe && P == 2)
          EXPECT_EQ(p.total(), whole);  // stages r and P − 1 − r: both
        else
          EXPECT_LT(p.total(), whole);
        for (const WeightSpec& s : p.specs()) {
          all.insert(s.name);
          if (s.layer >= 0 && s.layer < c.num_hidden_layers) {
            bool mine = false;
            for (const auto& [st, dir] : sched.stages_of(r))
              mine = mine ||
                     (s.layer >= split.stages[size_t(st)].layer_begin && s.layer < split.stages[size_t(st)].layer_end);
            EXPECT_TRUE(mine) << s.name << " on rank " << r;
          }
        }
        bool last = false, first = false;
        for (const auto& [st, dir] : sched.stages_of(r))
          last = last || split.stages[size_t(st)].last, first = first || split.stages[size_t(st)].first;
        EXPECT_EQ(p.as_lookup()("model.embed_tokens.weight") != nullptr, first || last) << r;
        EXPECT_EQ(p.as_lookup()("model.norm.weight") != nullptr, last) << r;
      }
      EXPECT_EQ(all.size(), Params(c).size());
    }
}

TEST(Pipeline, OneRankScheduleOverALocalComm) {
  if (!dsv3::testing::have_case("v3_mtp")) GTEST_SKIP() << "no testdata";
  const Case k = load_case("v3_mtp", 4, 8);
  const LossOptions opt = loss_options(k.c);
  Params ref(k.c);
  const StepResult r = forward_backward(k.c, k.params, k.tokens.data(), k.B, k.T, opt, ref, 1.0f);
  dist::LocalComm comm;
  for (ScheduleKind kind : {ScheduleKind::OneFOneB, ScheduleKind::DualPipeV}) {
    const PipeSchedule sched = make_schedule(kind, 1, kind == ScheduleKind::DualPipeV ? 2 : 4);
    const StageSplit split = split_stages(k.c, sched.stages, k.T, true);
    Params g(k.c);
    const PipelineStepResult p =
        pipeline_forward_backward(k.c, k.params, k.tokens.data(), k.B, k.T, opt, g, 1.0f, comm, sched, split);
    EXPECT_LE(worst_rel(g, ref), 1e-6) << schedule_kind_name(kind);
    EXPECT_NEAR(p.step.loss, r.loss, 1e-6 * r.loss);
    EXPECT_NEAR(p.step.main_ce, r.main_ce, 1e-6 * r.main_ce);
    ASSERT_EQ(p.step.routing.size(), r.routing.size());
    for (size_t i = 0; i < r.routing.size(); ++i) {
      EXPECT_EQ(p.step.routing[i].layer, r.routing[i].layer);
      EXPECT_EQ(p.step.routing[i].load, r.routing[i].load);
      EXPECT_NEAR(p.step.routing[i].balance_loss, r.routing[i].balance_loss, 1e-9);
    }
    EXPECT_EQ(p.record.ops.size(), sched.ops[0].size());
    EXPECT_GT(p.record.peak_act_bytes, 0);
  }
  // --micro not dividing the batch: named.
  const PipeSchedule bad = make_schedule(ScheduleKind::OneFOneB, 1, 3);
  Params g(k.c);
  try {
    pipeline_forward_backward(k.c, k.params, k.tokens.data(), k.B, k.T, opt, g, 1.0f, comm, bad,
                              split_stages(k.c, 1, k.T, true));
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--micro"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace dsv3::train
