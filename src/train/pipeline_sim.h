// A pipeline schedule (train/pipeline_schedule.h) played out in time: every rank runs its ops in order, an
// op starts when the rank is free and its inputs have arrived — the previous stage's forward output, the next
// stage's input gradient, its own B before its W — so the result is the timeline, each rank's idle time (the
// bubble) and its peak of micro-batches held (activations). A rank whose next op can never start (a schedule
// that deadlocks) is an error naming it. Used to check the generator, to draw the schedule (`dsv3 schedule`)
// and to compare with the paper's bubble formulas (DeepSeek-V3 Table 2) and with a measured run.
#pragma once

#include <string>
#include <vector>

#include "train/pipeline_schedule.h"

namespace dsv3::train {

// Durations of one stage's work for one micro-batch (any unit). fb < 0: an F&B pair costs f + b + w (no
// overlap gained); DeepSeek's overlapped chunk costs less. comm: added to a dependency between two ranks.
struct OpCosts {
  double f = 1, b = 1, w = 1, fb = -1, comm = 0;
  double of(const PipeOp& op) const;
};

struct TimedOp {
  PipeOp op;
  double start = 0, end = 0;
};

struct PipeTimeline {
  std::vector<std::vector<TimedOp>> ranks;
  double makespan = 0;
  std::vector<double> busy;    // [rank] time computing
  std::vector<double> bubble;  // [rank] makespan − busy
  std::vector<int> peak_held;  // [rank] most (stage, micro-batch) pairs forwarded and not yet backwarded (B)

  double max_bubble() const;
  double bubble_fraction() const;  // Σ bubble / (ranks · makespan)
};

PipeTimeline simulate(const PipeSchedule& s, const OpCosts& costs);

// The paper's bubble (DeepSeek-V3 Table 2) for P ranks, B being the input-gradient backward: 1F1B
// (P − 1)(F + B), DualPipe (P/2 − 1)(F&B + B − 3W). The simulator gives exactly the first (a stage sends its
// input gradient after the B part of a BW, so a downstream W never delays it), and the second on the least idle
// rank when F = B and F&B = F + B (an upper bound when F < B); other ranks idle up to (P/2 − 2)·W more
// (tests/train/pipeline_schedule_test.cc). DualPipeV: no formula in the paper (an error).
double paper_bubble(ScheduleKind k, int P, const OpCosts& c);

// Chrome trace JSON (chrome://tracing, Perfetto): one track per rank, one slice per op (args: stage,
// micro_batch; an F&B pair also stage2, micro_batch2), the schedule's name in otherData.schedule.
std::string chrome_trace(const PipeTimeline& t, const std::string& name);

// The timeline a chrome_trace wrote, read back (times in seconds, as recorded): busy, bubble and makespan
// recomputed, peak_held counted from the ops as simulate counts it (after each op; an F holds its micro-batch
// until its B, BW or F&B backward).
// `schedule` gets otherData.schedule. Errors name `what` (e.g. "--from-trace T.json").
PipeTimeline parse_chrome_trace(const std::string& json, std::string& schedule, const std::string& what);

}  // namespace dsv3::train
