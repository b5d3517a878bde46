// Pipeline-parallel schedules as data (DeepSeek-V3 §3.2.1, Figure 5, Table 2): for every pipeline rank the
// ordered list of what it computes — a micro-batch's forward through one of its stages (F), the backward for
// the stage's input (B, the weight gradient left for later: zero bubble), the deferred weight gradient (W),
// the whole backward at once (BW = B then W), or one chunk's forward overlapped with another's whole backward
// (FB, DualPipe's "F&B"). The sends and receives follow from the stages: an op of stage s needs the output of
// stage s − 1 (forward) or s + 1 (backward), and when those live on another rank a message carries it. One
// executor (the trainer) and one simulator (train/pipeline_sim.h) read the same table.
//
// Kinds, for P pipeline ranks and m micro-batches:
//   OneFOneB   P stages, stage r on rank r; warm-up of P − r − 1 forwards, then one F and one BW in turn,
//              then the remaining BWs (PipeDream-flush). Any P >= 1, m >= 1.
//   DualPipe   micro-batches fed from both ends: micro-batches 0 … m/2 − 1 run stages 0 … P − 1 on ranks
//              0 … P − 1, micro-batches m/2 … m − 1 run stages 0 … P − 1 on ranks P − 1 … 0, so each rank holds
//              two mirrored stages (stage r of the first direction, stage P − 1 − r of the second: 2× the
//              parameters); eight phases per rank as in DeepSeek's DualPipe (warm-up forwards, forwards of both
//              directions, zero-bubble B/W/F, the main F&B pairs, …, trailing W). P even, m even, m >= 2P.
//   DualPipeV  the "cut-in-half" DualPipe: 2P stages, rank r holds stage r and stage 2P − 1 − r; every
//              micro-batch goes down the ranks through the first and back up through the second; the same
//              eight phases over all P ranks. P >= 1, m >= 2P.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dsv3::train {

enum class ScheduleKind { OneFOneB, DualPipe, DualPipeV };

// "1f1b", "dualpipe", "dualpipev" (errors name the flag `what`).
ScheduleKind parse_schedule_kind(const std::string& s, const char* what = "--schedule");
const char* schedule_kind_name(ScheduleKind k);

enum class OpKind { F, B, W, BW, FB };

// One unit of work on a rank. F / B / W / BW: micro-batch `mb` through stage `stage`. FB: the forward of
// (stage, mb) overlapped with the whole backward of (stage2, mb2).
struct PipeOp {
  OpKind kind = OpKind::F;
  int stage = 0, mb = 0;
  int stage2 = -1, mb2 = -1;
};

struct PipeSchedule {
  ScheduleKind kind = ScheduleKind::OneFOneB;
  int ranks = 1, micro = 1;
  int stages = 1;                        // 1F1B, DualPipe: P (each direction); DualPipeV: 2P
  bool two_directions = false;           // DualPipe: stage s of micro-batch mb lives on rank_of(s, mb)
  std::vector<std::vector<PipeOp>> ops;  // [rank] in execution order

  // The rank that runs stage s of micro-batch mb.
  int rank_of(int stage, int mb) const;
  // The stages rank r holds (one for 1F1B, two otherwise), as (stage, direction) pairs flattened:
  // direction 0 for micro-batches 0 … m/2 − 1 in DualPipe, else 0.
  std::vector<std::pair<int, int>> stages_of(int rank) const;
};

// The schedule of `kind` for `ranks` pipeline ranks and `micro` micro-batches (errors name --pp / --micro).
PipeSchedule make_schedule(ScheduleKind kind, int ranks, int micro);

// A text table: one line per rank, one cell per op ("F3", "B12", "W3", "F3|B0" ...), with the stage of each
// op when the rank holds two.
std::string describe(const PipeSchedule& s);

}  // namespace dsv3::train
