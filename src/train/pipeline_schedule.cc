#include "train/pipeline_schedule.h"

#include <fmt/format.h>

#include <deque>
#include <functional>

#include "core/error.h"

namespace dsv3::train {

ScheduleKind parse_schedule_kind(const std::string& s, const char* what) {
  if (s == "1f1b") return ScheduleKind::OneFOneB;
  if (s == "dualpipe") return ScheduleKind::DualPipe;
  if (s == "dualpipev") return ScheduleKind::DualPipeV;
  fail("{} {}: unknown schedule (1f1b, dualpipe, dualpipev)", what, s);
}

const char* schedule_kind_name(ScheduleKind k) {
  switch (k) {
    case ScheduleKind::OneFOneB:
      return "1f1b";
    case ScheduleKind::DualPipe:
      return "dualpipe";
    case ScheduleKind::DualPipeV:
      return "dualpipev";
  }
  return "?";
}

int PipeSchedule::rank_of(int stage, int mb) const {
  switch (kind) {
    case ScheduleKind::OneFOneB:
      return stage;
    case ScheduleKind::DualPipe:
      return mb < micro / 2 ? stage : ranks - 1 - stage;
    case ScheduleKind::DualPipeV:
      return stage < ranks ? stage : 2 * ranks - 1 - stage;
  }
  return 0;
}

std::vector<std::pair<int, int>> PipeSchedule::stages_of(int rank) const {
  switch (kind) {
    case ScheduleKind::OneFOneB:
      return {{rank, 0}};
    case ScheduleKind::DualPipe:
      return {{rank, 0}, {ranks - 1 - rank, 1}};
    case ScheduleKind::DualPipeV:
      return {{rank, 0}, {2 * ranks - 1 - rank, 0}};
  }
  return {};
}

namespace {

// One rank's op list for the eight-phase schedule shared by DualPipe and DualPipeV. From the rank's view a
// "phase" is one of its two chunks: phase 0 the one nearer its micro-batches' entry, phase 1 the other. N:
// ranks in the V (DualPipe: half the ranks), h: the rank's place in it (0 at the entry), n: micro-batches per
// phase, `turn`: the rank where the V turns (h = N − 1), whose first main-phase pair is not overlapped.
struct EightPhases {
  std::vector<PipeOp>& out;
  std::function<int(int)> stage_of;    // phase → stage
  std::function<int(int, int)> mb_of;  // phase, i-th micro-batch of the phase → micro-batch id
  int next_f[2] = {0, 0}, next_b[2] = {0, 0};
  std::deque<std::pair<int, int>> deferred;  // (stage, mb) whose W is still to do, oldest first

  void f(int p) { out.push_back({.kind = OpKind::F, .stage = stage_of(p), .mb = mb_of(p, next_f[p]++)}); }
  void b(int p, bool zero_bubble) {
    const int st = stage_of(p), mb = mb_of(p, next_b[p]++);
    out.push_back({.kind = zero_bubble ? OpKind::B : OpKind::BW, .stage = st, .mb = mb});
    if (zero_bubble) deferred.emplace_back(st, mb);
  }
  void w() {
    const auto [st, mb] = deferred.front();
    deferred.pop_front();
    out.push_back({.kind = OpKind::W, .stage = st, .mb = mb});
  }
  void fb(int pf, int pb) {
    out.push_back({.kind = OpKind::FB,
                   .stage = stage_of(pf),
                   .mb = mb_of(pf, next_f[pf]++),
                   .stage2 = stage_of(pb),
                   .mb2 = mb_of(pb, next_b[pb]++)});
  }

  void run(int N, int h, int n) {
    const bool turn = h == N - 1;
    for (int i = 0; i < 2 * (N - h - 1); ++i) f(0);  // 1: forwards of the near chunk
    for (int i = 0; i < h + 1; ++i) f(0), f(1);      // 2: both chunks
    for (int i = 0; i < N - h - 1; ++i) {            // 3: zero-bubble B, W, F of the far chunk
      b(1, true);
      w();
      f(1);
    }
    for (int i = 0; i < n - 2 * N + h + 1; ++i) {  // 4: the main phase, F&B pairs
      if (i == 0 && turn) {
        f(0);
        b(1, false);
      } else {
        fb(0, 1);
      }
      fb(1, 0);
    }
    for (int i = 0; i < N - h - 1; ++i) {  // 5
      b(1, false);
      fb(1, 0);
    }
    bool zb = false;
    for (int i = 0; i < h + 1; ++i) {  // 6: backwards of both chunks, the second half zero-bubble
      if (i == (h + 1) / 2 && h % 2 == 1) zb = true;
      b(1, zb);
      if (i == (h + 1) / 2 && h % 2 == 0) zb = true;
      b(0, zb);
    }
    for (int i = 0; i < N - h - 1; ++i) {  // 7
      w();
      b(0, true);
    }
    while (!deferred.empty()) w();  // 8: the remaining weight gradients (h + 1 of them)
  }
};

}  // namespace

PipeSchedule make_schedule(ScheduleKind kind, int P, int m) {
  if (P < 1) fail("--pp {}: must be at least 1", P);
  if (m < 1) fail("--micro {}: must be at least 1", m);
  PipeSchedule s;
  s.kind = kind;
  s.ranks = P;
  s.micro = m;
  s.ops.resize(size_t(P));
  switch (kind) {
    case ScheduleKind::OneFOneB: {
      s.stages = P;
      for (int r = 0; r < P; ++r) {
        auto& ops = s.ops[size_t(r)];
        const int warm = std::min(P - r - 1, m);
        int nf = 0, nb = 0;
        for (; nf < warm; ++nf) ops.push_back({.kind = OpKind::F, .stage = r, .mb = nf});
        while (nf < m) {
          ops.push_back({.kind = OpKind::F, .stage = r, .mb = nf++});
          ops.push_back({.kind = OpKind::BW, .stage = r, .mb = nb++});
        }
        while (nb < m) ops.push_back({.kind = OpKind::BW, .stage = r, .mb = nb++});
      }
      break;
    }
    case ScheduleKind::DualPipe: {
      if (P < 2 || P % 2 != 0) fail("--pp {}: DualPipe needs an even number of pipeline ranks (2 or more)", P);
      if (m % 2 != 0 || m < 2 * P)
        fail("--micro {}: DualPipe with --pp {} needs an even number of micro-batches, at least {} (2 × --pp)", m, P,
             2 * P);
      s.stages = P;
      s.two_directions = true;
      const int N = P / 2, n = m / 2;
      for (int r = 0; r < P; ++r) {
        const bool second = r >= N;
        const int h = second ? P - 1 - r : r;
        EightPhases e{.out = s.ops[size_t(r)],
                      .stage_of = [=](int p) { return (p ^ int(second)) == 0 ? r : P - 1 - r; },
                      .mb_of = [=](int p, int i) { return (p ^ int(second)) * n + i; }};
        e.run(N, h, n);
      }
      break;
    }
    case ScheduleKind::DualPipeV: {
      if (m < 2 * P) fail("--micro {}: DualPipeV with --pp {} needs at least {} micro-batches (2 × --pp)", m, P, 2 * P);
      s.stages = 2 * P;
      for (int r = 0; r < P; ++r) {
        EightPhases e{.out = s.ops[size_t(r)],
                      .stage_of = [=](int p) { return p == 0 ? r : 2 * P - 1 - r; },
                      .mb_of = [](int, int i) { return i; }};
        e.run(P, r, m);
      }
      break;
    }
  }
  return s;
}

std::string describe(const PipeSchedule& s) {
  std::string out = fmt::format("{} --pp {} --micro {} ({} stages{})\n", schedule_kind_name(s.kind), s.ranks, s.micro,
                                s.stages, s.two_directions ? " per direction" : "");
  const bool two = s.kind != ScheduleKind::OneFOneB;
  for (int r = 0; r < s.ranks; ++r) {
    out += fmt::format("rank {:>2}:", r);
    for (const PipeOp& op : s.ops[size_t(r)]) {
      auto one = [&](const char* k, int st, int mb) {
        return two ? fmt::format("{}{}@{}", k, mb, st) : fmt::format("{}{}", k, mb);
      };
      switch (op.kind) {
        case OpKind::F:
          out += " " + one("F", op.stage, op.mb);
          break;
        case OpKind::B:
          out += " " + one("B", op.stage, op.mb);
          break;
        case OpKind::W:
          out += " " + one("W", op.stage, op.mb);
          break;
        case OpKind::BW:
          out += " " + one("BW", op.stage, op.mb);
          break;
        case OpKind::FB:
          out += " " + one("F", op.stage, op.mb) + "|" + one("BW", op.stage2, op.mb2);
          break;
      }
    }
    out += "\n";
  }
  return out;
}

}  // namespace dsv3::train
