#include "train/pipeline_sim.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace dsv3::train {

double OpCosts::of(const PipeOp& op) const {
  switch (op.kind) {
    case OpKind::F:
      return f;
    case OpKind::B:
      return b;
    case OpKind::W:
      return w;
    case OpKind::BW:
      return b + w;
    case OpKind::FB:
      return fb < 0 ? f + b + w : fb;
  }
  return 0;
}

double PipeTimeline::max_bubble() const { return bubble.empty() ? 0 : *std::max_element(bubble.begin(), bubble.end()); }

double PipeTimeline::bubble_fraction() const {
  double idle = 0;
  for (double b : bubble) idle += b;
  return makespan > 0 ? idle / (double(bubble.size()) * makespan) : 0;
}

namespace {

const char* op_name(OpKind k) {
  switch (k) {
    case OpKind::F:
      return "F";
    case OpKind::B:
      return "B";
    case OpKind::W:
      return "W";
    case OpKind::BW:
      return "BW";
    case OpKind::FB:
      return "F&B";
  }
  return "?";
}

}  // namespace

PipeTimeline simulate(const PipeSchedule& s, const OpCosts& c) {
  const int P = s.ranks, S = s.stages, M = s.micro;
  constexpr double kNot = -1;
  // When each (stage, micro-batch) result is available on the rank that made it.
  std::vector<double> fwd(size_t(S * M), kNot), bwd(size_t(S * M), kNot), wgt(size_t(S * M), kNot);
  auto at = [&](std::vector<double>& v, int st, int mb) -> double& {
    if (st < 0 || st >= S || mb < 0 || mb >= M)
      fail("pipeline schedule: op for stage {} micro-batch {} (the schedule has {} stages, {} micro-batches)", st, mb,
           S, M);
    return v[size_t(st * M + mb)];
  };
  // The time an op's inputs are all here, or kNot when one is missing. `r`: the op's rank.
  auto fwd_ready = [&](int r, int st, int mb) -> double {
    if (st == 0) return 0;
    const double t = at(fwd, st - 1, mb);
    if (t == kNot) return kNot;
    return t + (s.rank_of(st - 1, mb) != r ? c.comm : 0);
  };
  auto bwd_ready = [&](int r, int st, int mb) -> double {
    const double self = at(fwd, st, mb);
    if (self == kNot) return kNot;
    if (st == S - 1) return self;  // the loss is on this stage
    const double t = at(bwd, st + 1, mb);
    if (t == kNot) return kNot;
    return std::max(self, t + (s.rank_of(st + 1, mb) != r ? c.comm : 0));
  };

  PipeTimeline tl;
  tl.ranks.resize(size_t(P));
  tl.busy.assign(size_t(P), 0);
  tl.peak_held.assign(size_t(P), 0);
  std::vector<double> clock(size_t(P), 0);
  std::vector<size_t> next(size_t(P), 0);
  std::vector<int> held(size_t(P), 0);
  size_t left = 0;
  for (const auto& ops : s.ops) left += ops.size();
  while (left > 0) {
    bool progress = false;
    for (int r = 0; r < P; ++r) {
      const auto& ops = s.ops[size_t(r)];
      while (next[size_t(r)] < ops.size()) {
        const PipeOp& op = ops[size_t(next[size_t(r)])];
        double ready = 0;
        switch (op.kind) {
          case OpKind::F:
            ready = fwd_ready(r, op.stage, op.mb);
            break;
          case OpKind::B:
          case OpKind::BW:
            ready = bwd_ready(r, op.stage, op.mb);
            break;
          case OpKind::W:
            ready = at(bwd, op.stage, op.mb);
            break;
          case OpKind::FB: {
            const double a = fwd_ready(r, op.stage, op.mb), b = bwd_ready(r, op.stage2, op.mb2);
            ready = (a == kNot || b == kNot) ? kNot : std::max(a, b);
            break;
          }
        }
        if (ready == kNot) break;
        const double start = std::max(clock[size_t(r)], ready), end = start + c.of(op);
        switch (op.kind) {
          case OpKind::F:
            at(fwd, op.stage, op.mb) = end;
            ++held[size_t(r)];
            break;
          case OpKind::B:
            at(bwd, op.stage, op.mb) = end;
            --held[size_t(r)];
            break;
          case OpKind::BW:
            at(bwd, op.stage, op.mb) = start + c.b;  // the input gradient leaves after the B part
            at(wgt, op.stage, op.mb) = end;
            --held[size_t(r)];
            break;
          case OpKind::W:
            at(wgt, op.stage, op.mb) = end;
            break;
          case OpKind::FB:
            at(fwd, op.stage, op.mb) = end;
            at(bwd, op.stage2, op.mb2) = end;
            at(wgt, op.stage2, op.mb2) = end;
            break;
        }
        tl.peak_held[size_t(r)] = std::max(tl.peak_held[size_t(r)], held[size_t(r)]);
        tl.ranks[size_t(r)].push_back({op, start, end});
        tl.busy[size_t(r)] += end - start;
        clock[size_t(r)] = end;
        ++next[size_t(r)];
        --left;
        progress = true;
      }
    }
    if (!progress) {
      for (int r = 0; r < P; ++r)
        if (next[size_t(r)] < s.ops[size_t(r)].size()) {
          const PipeOp& op = s.ops[size_t(r)][next[size_t(r)]];
          fail(
              "pipeline schedule {} --pp {} --micro {} deadlocks: rank {} waits forever at op {} ({} micro-batch {} "
              "stage {})",
              schedule_kind_name(s.kind), P, M, r, next[size_t(r)], op_name(op.kind), op.mb, op.stage);
        }
    }
  }
  for (int r = 0; r < P; ++r) tl.makespan = std::max(tl.makespan, clock[size_t(r)]);
  tl.bubble.resize(size_t(P));
  for (int r = 0; r < P; ++r) tl.bubble[size_t(r)] = tl.makespan - tl.busy[size_t(r)];
  return tl;
}

double paper_bubble(ScheduleKind k, int P, const OpCosts& c) {
  const double fb = c.fb < 0 ? c.f + c.b + c.w : c.fb;
  switch (k) {
    case ScheduleKind::OneFOneB:
      return double(P - 1) * (c.f + c.b);
    case ScheduleKind::DualPipe:
      return (double(P) / 2 - 1) * (fb + c.b - 3 * c.w);
    case ScheduleKind::DualPipeV:
      fail("the paper gives no bubble formula for DualPipeV");
  }
  return 0;
}

std::string chrome_trace(const PipeTimeline& t, const std::string& name) {
  nlohmann::json ev = nlohmann::json::array();
  for (size_t r = 0; r < t.ranks.size(); ++r) {
    ev.push_back({{"name", "thread_name"},
                  {"ph", "M"},
                  {"pid", 0},
                  {"tid", r},
                  {"args", {{"name", fmt::format("rank {}", r)}}}});
    for (const TimedOp& o : t.ranks[r]) {
      std::string label = fmt::format("{}{}", op_name(o.op.kind), o.op.mb);
      if (o.op.kind == OpKind::FB) label = fmt::format("F{}&B{}", o.op.mb, o.op.mb2);
      ev.push_back(
          {{"name", label},
           {"cat", op_name(o.op.kind)},
           {"ph", "X"},
           {"pid", 0},
           {"tid", r},
           {"ts", o.start * 1e6},
           {"dur", (o.end - o.start) * 1e6},
           {"args", o.op.kind == OpKind::FB ? nlohmann::json{{"stage", o.op.stage},
                                                             {"micro_batch", o.op.mb},
                                                             {"stage2", o.op.stage2},
                                                             {"micro_batch2", o.op.mb2}}
                                            : nlohmann::json{{"stage", o.op.stage}, {"micro_batch", o.op.mb}}}});
    }
  }
  return nlohmann::json{{"traceEvents", ev}, {"displayTimeUnit", "ms"}, {"otherData", {{"schedule", name}}}}.dump();
}

PipeTimeline parse_chrome_trace(const std::string& json, std::string& schedule, const std::string& what) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(json);
  } catch (const std::exception& e) {
    fail("{}: not JSON ({})", what, e.what());
  }
  if (!j.is_object() || !j.contains("traceEvents") || !j["traceEvents"].is_array())
    fail("{}: not a Chrome trace (no traceEvents array)", what);
  schedule.clear();
  if (j.contains("otherData") && j["otherData"].is_object() && j["otherData"].contains("schedule") &&
      j["otherData"]["schedule"].is_string())
    schedule = j["otherData"]["schedule"].get<std::string>();
  PipeTimeline tl;
  try {
    for (const nlohmann::json& e : j["traceEvents"]) {
      if (!e.is_object() || e.value("ph", "") != "X") continue;
      const int64_t tid = e.at("tid").get<int64_t>();
      if (tid < 0 || tid >= 4096) fail("{}: track (tid) {} out of range", what, tid);
      const std::string cat = e.at("cat").get<std::string>();
      OpKind k;
      if (cat == "F")
        k = OpKind::F;
      else if (cat == "B")
        k = OpKind::B;
      else if (cat == "W")
        k = OpKind::W;
      else if (cat == "BW")
        k = OpKind::BW;
      else if (cat == "F&B" || cat == "FB")
        k = OpKind::FB;
      else
        fail("{}: unknown op category '{}'", what, cat);
      const nlohmann::json& a = e.at("args");
      TimedOp t{.op = {.kind = k, .stage = a.at("stage").get<int>(), .mb = a.at("micro_batch").get<int>()}};
      if (k == OpKind::FB) {
        t.op.stage2 = a.value("stage2", t.op.stage);
        t.op.mb2 = a.at("micro_batch2").get<int>();
      }
      if (t.op.mb < 0 || t.op.mb2 < -1 || t.op.stage < 0) fail("{}: negative stage or micro-batch", what);
      t.start = e.at("ts").get<double>() * 1e-6;
      t.end = t.start + e.at("dur").get<double>() * 1e-6;
      if (!(t.end >= t.start) || !std::isfinite(t.end)) fail("{}: a slice with a bad ts / dur", what);
      if (size_t(tid) >= tl.ranks.size()) tl.ranks.resize(size_t(tid) + 1);
      tl.ranks[size_t(tid)].push_back(t);
    }
  } catch (const nlohmann::json::exception& e) {
    fail("{}: a malformed slice ({})", what, e.what());
  }
  if (tl.ranks.empty()) fail("{}: no op slices (ph X) in the trace", what);
  const size_t P = tl.ranks.size();
  tl.busy.assign(P, 0.0);
  tl.peak_held.assign(P, 0);
  for (size_t r = 0; r < P; ++r) {
    auto& ops = tl.ranks[r];
    if (ops.empty()) fail("{}: rank {} has no ops", what, r);
    std::stable_sort(ops.begin(), ops.end(), [](const TimedOp& x, const TimedOp& y) { return x.start < y.start; });
    int held = 0;
    for (const TimedOp& o : ops) {
      tl.makespan = std::max(tl.makespan, o.end);
      tl.busy[r] += o.end - o.start;
      held += o.op.kind == OpKind::F ? 1 : o.op.kind == OpKind::B || o.op.kind == OpKind::BW ? -1 : 0;
      tl.peak_held[r] = std::max(tl.peak_held[r], held);  // after each op, as simulate counts
    }
  }
  for (double b : tl.busy) tl.bubble.push_back(tl.makespan - b);
  return tl;
}

}  // namespace dsv3::train
