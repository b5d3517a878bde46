// The pipeline schedule generator (train/pipeline_schedule.h) and its simulator (train/pipeline_sim.h):
// every kind over many rank and micro-batch counts runs each micro-batch's F, B and W of every stage exactly
// once, on the rank holding that stage, in dependency order, without deadlock; 1F1B's and DualPipe's bubbles
// equal the paper's formulas (DeepSeek-V3 Table 2) for uniform stage costs; activations held stay within
// Table 2's PP (1F1B) and PP + 1 (DualPipe); bad sizes are refused naming the flag, a deadlock names the rank.
#include "train/pipeline_schedule.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>
#include <tuple>

#include "core/error.h"
#include "train/pipeline_sim.h"

namespace dsv3::train {
namespace {

struct Case {
  ScheduleKind kind;
  int P, m;
};

std::vector<Case> cases() {
  std::vector<Case> v;
  for (int P : {1, 2, 3, 4, 5, 8})
    for (int m : {1, 2, 3, 4, 7, 8, 16, 20}) v.push_back({ScheduleKind::OneFOneB, P, m});
  for (int P : {2, 4, 6, 8, 16})
    for (int m : {2 * P, 2 * P + 2, 3 * P, 4 * P, 20, 40})
      if (m % 2 == 0 && m >= 2 * P) v.push_back({ScheduleKind::DualPipe, P, m});
  for (int P : {1, 2, 3, 4, 8})
    for (int m : {2 * P, 2 * P + 1, 3 * P, 20}) v.push_back({ScheduleKind::DualPipeV, P, m});
  return v;
}

TEST(PipelineSchedule, EveryOpExactlyOnceOnItsRankInOrder) {
  for (const Case& k : cases()) {
    SCOPED_TRACE(std::string(schedule_kind_name(k.kind)) + " P=" + std::to_string(k.P) + " m=" + std::to_string(k.m));
    const PipeSchedule s = make_schedule(k.kind, k.P, k.m);
    ASSERT_EQ(int(s.ops.size()), k.P);
    // (what, stage, mb) → count; what: 0 forward, 1 input backward, 2 weight gradient.
    std::map<std::tuple<int, int, int>, int> seen;
    for (int r = 0; r < k.P; ++r) {
      std::set<std::pair<int, int>> fwd_here, bwd_here;
      auto note = [&](int what, int st, int mb) {
        ASSERT_EQ(s.rank_of(st, mb), r) << "stage " << st << " mb " << mb;
        if (what == 1) EXPECT_TRUE(fwd_here.count({st, mb})) << "backward before forward, stage " << st << " mb " << mb;
        if (what == 2) EXPECT_TRUE(bwd_here.count({st, mb})) << "W before B, stage " << st << " mb " << mb;
        if (what == 0) fwd_here.insert({st, mb});
        if (what == 1) bwd_here.insert({st, mb});
        ++seen[{what, st, mb}];
      };
      for (const PipeOp& op : s.ops[size_t(r)]) {
        switch (op.kind) {
          case OpKind::F:
            note(0, op.stage, op.mb);
            break;
          case OpKind::B:
            note(1, op.stage, op.mb);
            break;
          case OpKind::W:
            note(2, op.stage, op.mb);
            break;
          case OpKind::BW:
            note(1, op.stage, op.mb);
            note(2, op.stage, op.mb);
            break;
          case OpKind::FB:
            note(0, op.stage, op.mb);
            note(1, op.stage2, op.mb2);
            note(2, op.stage2, op.mb2);
            break;
        }
      }
    }
    EXPECT_EQ(int(seen.size()), 3 * s.stages * k.m);
    for (const auto& [key, n] : seen) EXPECT_EQ(n, 1);
    // Stages run in order for each micro-batch (forward up, backward down): the simulator plays it through.
    const PipeTimeline t = simulate(s, {.f = 1, .b = 1, .w = 1});
    EXPECT_GT(t.makespan, 0);
  }
}

TEST(PipelineSchedule, OneFOneBBubbleIsThePapers) {
  for (int P : {2, 4, 8})
    for (int m : {P, 2 * P, 20}) {
      const OpCosts c{.f = 1.0, .b = 1.5, .w = 0.5};
      const PipeTimeline t = simulate(make_schedule(ScheduleKind::OneFOneB, P, m), c);
      EXPECT_DOUBLE_EQ(t.makespan, m * (c.f + c.b + c.w) + (P - 1) * (c.f + c.b)) << P << " " << m;
      EXPECT_DOUBLE_EQ(t.max_bubble(), paper_bubble(ScheduleKind::OneFOneB, P, c));
      EXPECT_EQ(t.peak_held[0], std::min(P, m));  // Table 2: PP micro-batches' activations on the first rank
    }
}

TEST(PipelineSchedule, DualPipeBubbleAndActivations) {
  // F&B = F + B: with F = B the paper's (P/2 − 1)(F&B + B − 3W) is exactly the least idle rank's bubble
  // (with F < B it is an upper bound); the ranks between the ends and the middle idle up to (P/2 − 2)·W more
  // (measured); DualPipe finishes before 1F1B; each rank holds at most PP + 1 micro-batches' activations of a
  // stage (Table 2).
  for (const OpCosts c :
       {OpCosts{.f = 1.0, .b = 1.0, .w = 0.5, .fb = 2.0}, OpCosts{.f = 1.0, .b = 2.0, .w = 1.0, .fb = 3.0},
        OpCosts{.f = 0.5, .b = 1.0, .w = 0.25, .fb = 1.5}}) {
    for (int P : {4, 8, 16}) {
      for (int m : {2 * P, 2 * P + 4, 4 * P}) {
        SCOPED_TRACE("P=" + std::to_string(P) + " m=" + std::to_string(m) + " w=" + std::to_string(c.w));
        const PipeTimeline t = simulate(make_schedule(ScheduleKind::DualPipe, P, m), c);
        const PipeTimeline one = simulate(make_schedule(ScheduleKind::OneFOneB, P, m), c);
        const double formula = paper_bubble(ScheduleKind::DualPipe, P, c);
        const double least = *std::min_element(t.bubble.begin(), t.bubble.end());
        if (c.f == c.b)
          EXPECT_DOUBLE_EQ(least, formula);
        else
          EXPECT_LE(least, formula);
        EXPECT_LE(t.max_bubble(), formula + std::max(0, P / 2 - 2) * c.w + 1e-12);
        EXPECT_LT(t.makespan, one.makespan);
        for (int r = 0; r < P; ++r) EXPECT_LE(t.peak_held[size_t(r)], P + 1) << "rank " << r;
        EXPECT_EQ(*std::max_element(t.peak_held.begin(), t.peak_held.end()), P + 1);
      }
    }
  }
}

TEST(PipelineSchedule, BadSizesAreRefusedNamingTheFlag) {
  auto refused = [](ScheduleKind k, int P, int m, const std::string& what) {
    try {
      make_schedule(k, P, m);
      ADD_FAILURE() << what << " accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  };
  refused(ScheduleKind::OneFOneB, 0, 4, "--pp 0");
  refused(ScheduleKind::OneFOneB, 2, 0, "--micro 0");
  refused(ScheduleKind::DualPipe, 3, 12, "--pp 3");
  refused(ScheduleKind::DualPipe, 4, 6, "--micro 6");
  refused(ScheduleKind::DualPipe, 4, 9, "--micro 9");
  refused(ScheduleKind::DualPipeV, 4, 7, "--micro 7");
  EXPECT_THROW(parse_schedule_kind("gpipe"), Error);
  EXPECT_EQ(parse_schedule_kind("dualpipev"), ScheduleKind::DualPipeV);
}

TEST(PipelineSchedule, ADeadlockNamesTheRank) {
  PipeSchedule s = make_schedule(ScheduleKind::OneFOneB, 2, 2);
  std::swap(s.ops[1][0], s.ops[1][1]);  // rank 1 now wants BW0 before F0 arrived... and before its own F0
  try {
    simulate(s, {});
    ADD_FAILURE() << "deadlock not found";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("1f1b --pp 2 --micro 2 deadlocks: rank "), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("waits forever"), std::string::npos) << e.what();
  }
}

TEST(PipelineSchedule, ChromeTraceHasEveryOp) {
  const PipeSchedule s = make_schedule(ScheduleKind::DualPipe, 4, 8);
  const PipeTimeline t = simulate(s, {});
  const std::string j = chrome_trace(t, "dualpipe");
  size_t n = 0;
  for (const auto& r : s.ops) n += r.size();
  size_t slices = 0;
  for (size_t p = j.find("\"ph\":\"X\""); p != std::string::npos; p = j.find("\"ph\":\"X\"", p + 1)) ++slices;
  EXPECT_EQ(slices, n);
}

}  // namespace
}  // namespace dsv3::train
