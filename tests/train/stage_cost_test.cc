// The layer split over given costs (train/pipeline.h split_by_cost) and the measured costs
// (train/stage_cost.h): the split of hand-made costs is the one worked out by hand; the FLOP split is
// split_by_cost over the FLOP costs; measured costs cover every layer and both ends, positive and finite, and
// their split is a contiguous cover of the layers; a bad --split names the flag. (No assertion on timings
// themselves: speed is measured by benchmarks.)
#include "train/stage_cost.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>  // before testdata.h, which uses std::memcpy
#include <string>

#include "../model/testdata.h"
#include "core/error.h"
#include "dist/local_comm.h"
#include "model/config.h"

namespace dsv3::train {
namespace {

std::string case_dir(const std::string& name) { return dsv3::testing::testdata_dir() + "/" + name; }

std::vector<std::pair<int64_t, int64_t>> ranges(const StageSplit& s) {
  std::vector<std::pair<int64_t, int64_t>> v;
  for (const StageRange& r : s.stages) v.emplace_back(r.layer_begin, r.layer_end);
  return v;
}

TEST(StageCost, SplitByCostIsTheHandWorkedOptimum) {
  using V = std::vector<std::pair<int64_t, int64_t>>;
  // One heavy layer at the end: alone in the last stage, the rest together.
  EXPECT_EQ(ranges(split_by_cost({.layer = {1, 1, 1, 10}}, 2)), (V{{0, 3}, {3, 4}}));
  // The last stage's extra (a head) pushes layers to the first stage: max(3 + 0, 1 + 5) = 6 beats max(2, 2 + 5).
  EXPECT_EQ(ranges(split_by_cost({.layer = {1, 1, 1, 1}, .first = 0, .last = 5}, 2)), (V{{0, 3}, {3, 4}}));
  // Equal layers, no extras: 2 + 2.
  EXPECT_EQ(ranges(split_by_cost({.layer = {1, 1, 1, 1}}, 2)), (V{{0, 2}, {2, 4}}));
  const StageSplit s = split_by_cost({.layer = {1, 2, 3, 4, 5, 6}, .first = 0.5, .last = 4}, 3);
  // Cuts by hand: [1 2 3] + 0.5 = 6.5, [4 5] = 9, [6] + 4 = 10 — no other cut has a maximum below 10.
  EXPECT_EQ(ranges(s), (V{{0, 3}, {3, 5}, {5, 6}}));
  EXPECT_DOUBLE_EQ(s.cost[2], 10.0);
  EXPECT_TRUE(s.stages[0].first && s.stages[2].last && !s.stages[1].first && !s.stages[1].last);
  EXPECT_THROW(split_by_cost({.layer = {1, 1}}, 3), Error);
}

TEST(StageCost, FlopSplitIsSplitByCostOverTheFlopCosts) {
  if (!dsv3::testing::have_case("v3_mtp")) GTEST_SKIP() << "no testdata";
  ModelConfig c = load_config(case_dir("v3_mtp"));
  c.num_hidden_layers = 8;
  const StageCosts k = stage_flop_costs(c, 16, true);
  ASSERT_EQ(k.layer.size(), 8u);
  EXPECT_EQ(ranges(split_stages(c, 3, 16, true)), ranges(split_by_cost(k, 3)));
  EXPECT_DOUBLE_EQ(k.layer[1], layer_flops(c, 1, 16));
  EXPECT_DOUBLE_EQ(k.first, double(c.hidden_size));
}

TEST(StageCost, MeasuredCostsCoverEveryPartAndSplitContiguously) {
  if (!dsv3::testing::have_case("v3_mtp")) GTEST_SKIP() << "no testdata";
  ModelConfig c = load_config(case_dir("v3_mtp"));
  c.num_hidden_layers = 4;
  dist::LocalComm comm;
  LossOptions opt;
  opt.mtp_lambda = 0.3;
  const StageCosts k = measure_stage_costs(c, 2, 12, opt, comm, 1);
  ASSERT_EQ(k.layer.size(), 4u);
  for (double t : k.layer) EXPECT_TRUE(std::isfinite(t) && t > 0) << t;
  EXPECT_TRUE(std::isfinite(k.first) && k.first > 0);
  EXPECT_TRUE(std::isfinite(k.last) && k.last > 0);
  const StageSplit s = choose_split("measured", c, 3, 2, 12, opt, comm);
  ASSERT_EQ(s.stages.size(), 3u);
  EXPECT_EQ(s.stages[0].layer_begin, 0);
  EXPECT_EQ(s.stages[2].layer_end, 4);
  for (size_t i = 1; i < 3; ++i) {
    EXPECT_EQ(s.stages[i].layer_begin, s.stages[i - 1].layer_end);
    EXPECT_LT(s.stages[i].layer_begin, s.stages[i].layer_end);
  }
  try {
    choose_split("fastest", c, 2, 2, 12, opt, comm);
    ADD_FAILURE() << "--split fastest accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--split fastest"), std::string::npos) << e.what();
  }
  EXPECT_THROW(choose_split("measured", c, 5, 2, 12, opt, comm), Error);  // 5 stages, 4 layers: names --pp
}

}  // namespace
}  // namespace dsv3::train
