// dsv3 schedule --pp P --micro M [--kind dualpipe|dualpipev|1f1b|all] [--f F --b B --w W --fb FB --comm C]
//               [--png FILE] [--trace FILE.json] [--table] [--json]
// A pipeline schedule (train/pipeline_schedule.h) played out by the simulator (train/pipeline_sim.h) with the
// given per-stage costs: makespan, each rank's bubble against the paper's formula (DeepSeek-V3 Table 2), the
// activations each rank holds at most, the parameters it holds. --png draws the timelines as the paper's
// Figure 5 does — one row per rank, F / B / W cells with their micro-batch, an F&B pair as one cell half
// forward, half backward, the second direction (DualPipe) or the second chunk (DualPipeV) in lighter shades —
// one panel per kind (--kind all: 1F1B, DualPipe, DualPipeV). --trace writes the Chrome trace JSON of the
// first kind (chrome://tracing, Perfetto).
//
// dsv3 schedule --from-trace T.json [--png FILE] [--json]
// A measured run's timeline instead (what `dsv3 grad / train --pp P --trace T.json` writes): the step, each
// rank's idle time, the mean F / B / W / F&B and the paper's formula with them, drawn (--png) by the same
// function in the same style as the simulated timelines, times in milliseconds.
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "cli/gnuplot.h"
#include "core/error.h"
#include "train/pipeline.h"
#include "train/pipeline_schedule.h"
#include "train/pipeline_sim.h"

namespace dsv3::cli {
namespace {

namespace fs = std::filesystem;
using train::OpKind;
using train::PipeSchedule;
using train::PipeTimeline;
using train::ScheduleKind;

struct Options {
  int pp = 8, micro = 20;
  std::string kind = "all", png, trace, from_trace;
  double f = 1, b = 1, w = 0.5, fb = -1, comm = 0;
  bool table = false, json = false;
};

struct Drawn {
  PipeSchedule s;
  PipeTimeline t;
};

// The stage share of the model one rank holds, in units of one 1F1B stage (1/P of the layers).
double params_per_rank(ScheduleKind k) { return k == ScheduleKind::DualPipe ? 2.0 : 1.0; }

// Peak activations held, in units of one 1F1B stage's activations for one micro-batch (DualPipeV's stages are
// half as deep).
double activations(const Drawn& d) {
  const int peak = *std::max_element(d.t.peak_held.begin(), d.t.peak_held.end());
  return d.s.kind == ScheduleKind::DualPipeV ? peak / 2.0 : double(peak);
}

// The costs are given for one micro-batch through 1/P of the layers (a 1F1B or DualPipe stage); DualPipeV's
// 2P stages are half as deep.
train::OpCosts stage_costs(ScheduleKind k, train::OpCosts c) {
  if (k != ScheduleKind::DualPipeV) return c;
  c.f /= 2, c.b /= 2, c.w /= 2, c.fb /= 2;
  return c;
}

// One rectangle: x0..x1 on row r, vertical part [lo, hi] of the row (0 top .. 1 bottom).
void rect(std::string& g, int& n, double x0, double x1, int row, double lo, double hi, const char* color) {
  g += fmt::format(
      "set object {} rect from {:.6g},{:.6g} to {:.6g},{:.6g} fc rgb '{}' fs solid 1.0 border lc rgb "
      "'white' lw 0.5\n",
      ++n, x0, row - 0.45 + 0.9 * lo, x1, row - 0.45 + 0.9 * hi, color);
}

void label(std::string& g, double x, double y, const std::string& text, int size) {
  g += fmt::format("set label {} at {:.6g},{:.6g} center font ',{}' front\n", gp_string(text), x, y, size);
}

// One panel of the picture: a timeline (simulated or measured) and what it is drawn with.
struct Panel {
  ScheduleKind kind = ScheduleKind::OneFOneB;
  int ranks = 1, micro = 1;
  const PipeTimeline* t = nullptr;
  train::OpCosts c;  // splits a BW cell into its B and W parts
  std::string title;
};

std::string panel(const Panel& p, double xmax, int font, const std::string& xlabel) {
  const int P = p.ranks;
  // Colours: forward orange, input backward blue, weight gradient green; the second direction / chunk lighter.
  auto color = [&](OpKind k, int stage, int mb) {
    const bool second = p.kind == ScheduleKind::DualPipe    ? mb >= p.micro / 2
                        : p.kind == ScheduleKind::DualPipeV ? stage >= P
                                                            : false;
    switch (k) {
      case OpKind::F:
        return second ? "#f9c98f" : "#f08c2e";
      case OpKind::B:
        return second ? "#a7cdef" : "#3d85c6";
      default:
        return second ? "#b8e0b0" : "#4f9d45";
    }
  };
  const train::OpCosts& c = p.c;
  std::string g = "unset object\nunset label\n";
  int n = 0;
  for (int r = 0; r < P; ++r) {
    for (const train::TimedOp& o : p.t->ranks[size_t(r)]) {
      const double x0 = o.start, x1 = o.end, xm = 0.5 * (x0 + x1);
      const train::PipeOp& op = o.op;
      switch (op.kind) {
        case OpKind::F:
        case OpKind::B:
        case OpKind::W:
          rect(g, n, x0, x1, r, 0, 1, color(op.kind, op.stage, op.mb));
          label(g, xm, r, std::to_string(op.mb), font);
          break;
        case OpKind::BW: {
          const double xb = c.b + c.w > 0 ? x0 + (x1 - x0) * c.b / (c.b + c.w) : x1;
          rect(g, n, x0, xb, r, 0, 1, color(OpKind::B, op.stage, op.mb));
          rect(g, n, xb, x1, r, 0, 1, color(OpKind::W, op.stage, op.mb));
          label(g, xm, r, std::to_string(op.mb), font);
          break;
        }
        case OpKind::FB:
          rect(g, n, x0, x1, r, 0, 0.5, color(OpKind::F, op.stage, op.mb));
          rect(g, n, x0, x1, r, 0.5, 1, color(OpKind::B, op.stage2, op.mb2));
          label(g, xm, r - 0.22, std::to_string(op.mb), font - 1);
          label(g, xm, r + 0.22, std::to_string(op.mb2), font - 1);
          break;
      }
    }
  }
  // A '\n' in the title starts a second line (gnuplot's escape inside a double-quoted string).
  std::string title;
  size_t at = 0;
  for (size_t nl; (nl = p.title.find('\n', at)) != std::string::npos; at = nl + 1) {
    const std::string q = gp_string(p.title.substr(at, nl - at));
    title += (title.empty() ? q.substr(0, q.size() - 1) : q.substr(1, q.size() - 2)) + "\\n";
  }
  const std::string q = gp_string(p.title.substr(at));
  title += title.empty() ? q : q.substr(1);
  g += fmt::format("set title {} noenhanced\n", title);
  g += fmt::format("set xrange [0:{:.6g}]\nset yrange [{:.6g}:-0.6]\n", xmax, P - 0.4);
  g += "set ytics (";
  for (int r = 0; r < P; ++r) g += fmt::format("{}\"rank {}\" {}", r ? ", " : "", r, r);
  g += ")\nset xlabel " + gp_string(xlabel) + "\nplot NaN notitle\n";
  return g;
}

// The panels one above the other on a common time axis, to `png` (gnuplot): the one drawing of a simulated
// (`dsv3 schedule --png`) and a measured (`--from-trace`) timeline.
void draw(const std::vector<Panel>& panels, const std::string& png, int width, const std::string& xlabel) {
  require_gnuplot();
  char tmpl[] = "/tmp/dsv3_schedule_XXXXXX";
  if (!mkdtemp(tmpl)) fail("cannot create a temporary directory: {}", std::strerror(errno));
  const std::string dir = tmpl;
  double xmax = 0;
  int rows = 0;
  for (const Panel& p : panels) xmax = std::max(xmax, p.t->makespan), rows = std::max(rows, p.ranks);
  const int rows_px = 26 * rows + 105;
  const int font = rows > 16 ? 6 : 8;
  std::string g = "set terminal " + png_terminal(width, rows_px * int(panels.size()), 10) + "\nset output " +
                  gp_string(fs::absolute(png).string()) + "\n";
  g += fmt::format("set multiplot layout {},1\nset key off\nset lmargin 10\nset grid xtics lc rgb '#dddddd'\n",
                   panels.size());
  for (const Panel& p : panels) g += panel(p, xmax, font, xlabel);
  g += "unset multiplot\n";
  run_gnuplot(g, dir, "schedule");
  fs::remove_all(dir);
}

std::string simulated_title(const Drawn& d, const train::OpCosts& c) {
  const PipeSchedule& s = d.s;
  const double least = *std::min_element(d.t.bubble.begin(), d.t.bubble.end());
  std::string formula;
  if (s.kind != ScheduleKind::DualPipeV)
    formula = fmt::format(", paper's formula {:.3g}", train::paper_bubble(s.kind, s.ranks, c));
  return fmt::format(
      "{} --pp {} --micro {}: time {:.4g}, bubble per rank {:.3g}..{:.3g}{}; parameters {}x, activations {:.3g} "
      "(per rank, 1F1B stage units)",
      train::schedule_kind_name(s.kind), s.ranks, s.micro, d.t.makespan, least, d.t.max_bubble(), formula,
      params_per_rank(s.kind), activations(d));
}

// --from-trace: a measured run's timeline (`dsv3 grad / train --pp P --trace T.json`), summarised and drawn as
// the simulated ones are; times in milliseconds.
int run_from_trace(const Options& o) {
  const std::string what = "--from-trace " + o.from_trace;
  std::ifstream in(o.from_trace, std::ios::binary);
  if (!in) fail("{}: cannot read", what);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::string name;
  PipeTimeline t = train::parse_chrome_trace(text, name, what);
  for (auto& r : t.ranks)
    for (train::TimedOp& op : r) op.start *= 1e3, op.end *= 1e3;
  t.makespan *= 1e3;
  for (double& x : t.busy) x *= 1e3;
  for (double& x : t.bubble) x *= 1e3;
  ScheduleKind kind = ScheduleKind::OneFOneB;
  bool known = true;
  try {
    kind = train::parse_schedule_kind(name, "otherData.schedule");
  } catch (const Error&) {
    known = false;  // drawn without the second direction's shades
  }
  const int P = int(t.ranks.size());
  int micro = 0;
  size_t most_ops = 0;
  for (const auto& r : t.ranks) {
    most_ops = std::max(most_ops, r.size());
    for (const train::TimedOp& op : r) micro = std::max({micro, op.op.mb + 1, op.op.mb2 + 1});
  }
  const train::OpCosts c = train::measured_costs(t);
  const double least = *std::min_element(t.bubble.begin(), t.bubble.end());
  std::string formula;
  if (known && kind != ScheduleKind::DualPipeV && (kind != ScheduleKind::DualPipe || P % 2 == 0))
    formula = fmt::format("; the paper's bubble (Table 2) with them {:.3g} ms", train::paper_bubble(kind, P, c));
  std::string costs = fmt::format("F {:.3g}, B {:.3g}, W {:.3g}", c.f, c.b, c.w);
  if (c.fb >= 0) costs += fmt::format(", F&B {:.3g}", c.fb);
  const std::string title = fmt::format(
      "measured {} --pp {} --micro {}: step {:.4g} ms, idle per rank {:.3g}..{:.3g} ms ({:.1f}%)\nmean {} ms{}",
      known ? train::schedule_kind_name(kind) : name, P, micro, t.makespan, least, t.max_bubble(),
      100 * t.bubble_fraction(), costs, formula);
  if (o.json) {
    nlohmann::json j{{"schedule", name},
                     {"pp", P},
                     {"micro", micro},
                     {"makespan_ms", t.makespan},
                     {"busy_ms_per_rank", t.busy},
                     {"bubble_ms_per_rank", t.bubble},
                     {"bubble_fraction", t.bubble_fraction()},
                     {"peak_activations_per_rank", t.peak_held},
                     {"costs_ms", {{"f", c.f}, {"b", c.b}, {"w", c.w}, {"fb", c.fb}}}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::string line = title;
    line.replace(line.find('\n'), 1, "; ");
    std::printf("%s\n", line.c_str());
  }
  if (!o.png.empty()) {
    const Panel p{.kind = kind, .ranks = P, .micro = micro, .t = &t, .c = c, .title = title};
    draw({p}, o.png, std::clamp(int(most_ops) * 60, 900, 2600), "time (ms)");
    if (!o.json) std::printf("%s\n", o.png.c_str());
  }
  return 0;
}

int run(const Options& o) {
  if (!o.from_trace.empty()) return run_from_trace(o);
  std::vector<ScheduleKind> kinds;
  if (o.kind == "all")
    kinds = {ScheduleKind::OneFOneB, ScheduleKind::DualPipe, ScheduleKind::DualPipeV};
  else
    kinds = {train::parse_schedule_kind(o.kind, "--kind")};
  for (double v : {o.f, o.b, o.w})
    if (!(v >= 0)) fail("--f, --b and --w must be >= 0");
  if (o.comm < 0) fail("--comm {}: must be >= 0", o.comm);
  const train::OpCosts c{.f = o.f, .b = o.b, .w = o.w, .fb = o.fb < 0 ? o.f + o.b + o.w : o.fb, .comm = o.comm};

  std::vector<Drawn> drawn;
  for (ScheduleKind k : kinds) {
    PipeSchedule s = train::make_schedule(k, o.pp, o.micro);
    PipeTimeline t = train::simulate(s, stage_costs(k, c));
    drawn.push_back({std::move(s), std::move(t)});
  }

  nlohmann::json out = nlohmann::json::array();
  for (const Drawn& d : drawn) {
    const double least = *std::min_element(d.t.bubble.begin(), d.t.bubble.end());
    nlohmann::json j{{"kind", train::schedule_kind_name(d.s.kind)},
                     {"pp", o.pp},
                     {"micro", o.micro},
                     {"costs", {{"f", c.f}, {"b", c.b}, {"w", c.w}, {"fb", c.fb}, {"comm", c.comm}}},
                     {"makespan", d.t.makespan},
                     {"bubble_per_rank", d.t.bubble},
                     {"bubble_min", least},
                     {"bubble_max", d.t.max_bubble()},
                     {"bubble_fraction", d.t.bubble_fraction()},
                     {"peak_activations_per_rank", d.t.peak_held},
                     {"activations_1f1b_units", activations(d)},
                     {"parameters_1f1b_units", params_per_rank(d.s.kind)}};
    if (d.s.kind != ScheduleKind::DualPipeV) j["paper_bubble"] = train::paper_bubble(d.s.kind, o.pp, c);
    out.push_back(j);
  }
  if (o.json) {
    std::printf("%s\n", (out.size() == 1 ? out[0] : out).dump().c_str());
  } else {
    for (size_t i = 0; i < drawn.size(); ++i) {
      const nlohmann::json& j = out[i];
      std::printf(
          "%-9s --pp %d --micro %d: time %.4g, bubble per rank %.4g .. %.4g (%.1f%% of the time)%s, "
          "parameters %gx, activations %g (per rank, 1F1B stage units)\n",
          j["kind"].get<std::string>().c_str(), o.pp, o.micro, j["makespan"].get<double>(),
          j["bubble_min"].get<double>(), j["bubble_max"].get<double>(), 100 * j["bubble_fraction"].get<double>(),
          j.contains("paper_bubble") ? fmt::format(", paper {:.4g}", j["paper_bubble"].get<double>()).c_str() : "",
          j["parameters_1f1b_units"].get<double>(), j["activations_1f1b_units"].get<double>());
      if (o.table) std::printf("%s", train::describe(drawn[i].s).c_str());
    }
  }

  if (!o.trace.empty()) {
    std::ofstream f(o.trace);
    if (!f) fail("--trace {}: cannot write", o.trace);
    f << train::chrome_trace(drawn[0].t, train::schedule_kind_name(drawn[0].s.kind));
  }
  if (!o.png.empty()) {
    double xmax = 0;
    for (const Drawn& d : drawn) xmax = std::max(xmax, d.t.makespan);
    std::vector<Panel> panels;
    for (const Drawn& d : drawn) {
      const train::OpCosts sc = stage_costs(d.s.kind, c);
      panels.push_back({.kind = d.s.kind,
                        .ranks = d.s.ranks,
                        .micro = d.s.micro,
                        .t = &d.t,
                        .c = sc,
                        .title = simulated_title(d, c)});
    }
    draw(panels, o.png, std::clamp(int(xmax * 28), 900, 2600), "time (F = " + fmt::format("{:g}", c.f) + ")");
    if (!o.json) std::printf("%s\n", o.png.c_str());
  }
  return 0;
}

Registrar reg("schedule", "Pipeline schedules (1F1B, DualPipe, DualPipeV): simulate, compare bubbles, draw",
              [](CLI::App& app) {
                auto o = std::make_shared<Options>();
                app.add_option("--pp", o->pp, "Pipeline ranks (default 8)");
                app.add_option("--micro", o->micro, "Micro-batches per step (default 20)");
                app.add_option("--kind", o->kind, "1f1b, dualpipe, dualpipev or all (default all)");
                app.add_option("--f", o->f,
                               "Forward time of one micro-batch through 1/P of the layers (default 1; DualPipeV's "
                               "stages are half of that)");
                app.add_option("--b", o->b, "Input-gradient backward time (default 1)");
                app.add_option("--w", o->w, "Weight-gradient backward time (default 0.5)");
                app.add_option(
                    "--fb", o->fb,
                    "Time of an overlapped F&B pair (default F + B + W: nothing hidden; less when the pair hides its "
                    "communication)");
                app.add_option("--comm", o->comm, "Time added to a dependency between ranks (default 0)");
                app.add_option("--png", o->png, "Draw the timelines (gnuplot) to this PNG");
                app.add_option("--trace", o->trace, "Write the first kind's timeline as Chrome trace JSON");
                app.add_option("--from-trace", o->from_trace,
                               "Read a measured run's timeline (dsv3 grad / train --pp P --trace T.json) instead: "
                               "summarise it, and draw it with --png");
                app.add_flag("--table", o->table, "Print each rank's ops in order");
                app.add_flag("--json", o->json, "Print JSON");
                return [o] { return run(*o); };
              });

}  // namespace
}  // namespace dsv3::cli
