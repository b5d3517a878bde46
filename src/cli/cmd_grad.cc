// dsv3 grad --model DIR --ids "I1 I2 ..." [--ids "..." ...] --out GRADS.safetensors [--mtp-lambda L]
//           [--ep E] [--dp D] [--overlap on|off] [--pp P [--schedule 1f1b|dualpipe|dualpipev] [--micro M]
//           [--trace FILE.json]]
// A batch of sequences (one per --ids, all of one length) through the training forward + backward
// (train/step.h) from the checkpoint's exact stored values: prints the loss (main CE + L · MTP CE, means over
// the batch's valid rows; L defaults to 0.3 with an MTP module, else 0) and writes the float32 gradient of
// every trainable weight under the checkpoint's own names (atomically). As in the reference vectors,
// e_score_correction_bias has no gradient and the MTP module's embedding/head copies are the main model's
// (their gradients are under model.embed_tokens / lm_head).
//
// Under `mpirun -np N` (N = D · E, dist/layout.h) the batch's sequences are split over the N ranks in order
// (the batch must be a multiple of N): each rank runs the step over its own sequences with expert parallelism
// over its EP group (train/expert_parallel.h: it holds only its block of routed experts), then the gradients
// are reduced — every tensor but the routed experts summed over all ranks, the routed experts over the DP
// group — and EP rank 0 of replica 0 (world rank 0) gathers the experts of its EP group and writes the same
// file the single-process command writes. With --overlap on each rank runs its sequences as two
// micro-batches whose all-to-alls overlap each other's compute (train/expert_parallel.h); stderr then shows,
// per rank, the step split into compute, posting and waiting in the exchanges.
// With --pp P (mpirun -np P·D·E, with --dp D / --ep E) the step runs pipeline-parallel (train/pipeline.h): the
// layers split into stages, each lane's B / (D·E) sequences into M micro-batches (default: one per sequence),
// the schedule's ops run on each rank, each rank allocating only its stages' tensors (train::pipeline_scope) and
// its EP rank's experts; each tensor's gradient is summed over the stage's lanes, then over the pipeline ranks
// holding it, and rank 0 gathers the whole model's to write the same file. stderr gets the measured timeline's
// bubble against the paper's formula and the simulator; --trace writes it as a Chrome trace.
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <optional>
#include <string>

#include "cli/command.h"
#include "cli/gen_flags.h"
#include "cli/ids.h"
#include "core/error.h"
#include "dist/layout.h"
#include "dist/world.h"
#include "io/safetensors.h"
#include "train/expert_parallel.h"
#include "train/param_io.h"
#include "train/pipeline.h"
#include "train/stage_cost.h"
#include "train/step.h"

namespace dsv3::cli {
namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

struct Options {
  std::string model, out;
  std::vector<std::string> ids;
  double mtp_lambda = -1.0;  // < 0: the default
  int ep = 1, dp = 0;        // dp 0: world size / ep
  std::string overlap = "off";
  int pp = 1, micro = 0;  // micro 0: one micro-batch per sequence
  std::string schedule = "1f1b", trace, split = "flops";
  ExtraTensors extra_tensors = ExtraTensors::Refuse;  // --allow-extra-tensors
};

void write_grads(const std::string& path, const train::Params& grads, double loss) {
  std::vector<io::TensorToWrite> out;
  for (size_t i = 0; i < grads.size(); ++i) {
    const WeightSpec& s = grads.specs()[i];
    if (s.role == WeightRole::Bias) continue;
    out.push_back({s.name, DType::F32, s.shape, grads.value(i).data()});
  }
  io::write_safetensors(path, out, {{"loss", fmt::format("{:.9g}", loss)}});
}

// --pp: the pipeline-parallel step; with --dp / --ep (a pp × dp × ep layout, dist/layout.h) each lane — the
// pipeline ranks of one (dp_rank, ep_rank) — runs its contiguous share of the batch through the pipeline, the
// MoE layers of a stage exchanging rows over the stage's EP group. Checks before any message.
int run_pipelined(const Options& o, const ModelConfig& c, const train::LossOptions& opt,
                  const std::vector<int32_t>& tokens, int64_t B, int64_t T) {
  dist::Comm& world = dist::world();
  const dist::Layout layout = dist::make_layout(world.size(), o.dp, o.ep, c.n_routed_experts, o.pp);
  if (o.overlap == "on" && layout.ep == 1)
    fail("--overlap on with --pp: it overlaps the EP all-to-alls inside DualPipe's F&B pairs; give --ep > 1");
  if (o.overlap == "on" && o.schedule == "1f1b")
    fail("--overlap on: --schedule 1f1b has no F&B pairs to overlap (use dualpipe or dualpipev)");
  const int64_t L = layout.stage_ranks();
  if (B % L != 0)
    fail(
        "--ids: {} sequence(s) do not split over the {} lanes (--dp {} × --ep {}) of the pipeline: give a multiple "
        "of {}",
        B, L, layout.dp, layout.ep, L);
  const int64_t Bl = B / L;
  const train::ScheduleKind kind = train::parse_schedule_kind(o.schedule, "--schedule");
  const int micro = o.micro > 0 ? o.micro : int(Bl);
  const train::PipeSchedule sched = train::make_schedule(kind, o.pp, micro);
  if (Bl % micro != 0) fail("--micro {}: a lane's {} sequence(s) do not split into equal micro-batches", micro, Bl);
  const train::StageSplit split = train::choose_split(o.split, c, sched.stages, Bl / micro, T, opt, world);
  dist::Groups groups = dist::make_groups(world, layout);
  if (world.rank() == 0) std::fprintf(stderr, "%s\n", dist::describe(groups, world, c.n_routed_experts).c_str());
  std::optional<train::ExpertParallel> ep;
  if (layout.ep > 1) ep = train::ExpertParallel::make(c, *groups.ep);
  if (ep) ep->overlap = o.overlap == "on";  // the F&B pairs' chunks take turns at the exchanges
  // This rank's tensors only (its stages', the embedding / head / final norm / MTP on the ends; its EP rank's
  // routed experts).
  SchemaScope scope = train::pipeline_scope(c, sched, split, groups.pp_rank);
  if (ep) scope.expert_begin = ep->scope.expert_begin, scope.expert_end = ep->scope.expert_end;
  const train::Params params = train::load_params(c, io::Checkpoint::open(o.model), scope, o.extra_tensors);
  train::Params grads(c, scope);
  const train::PipelineStepResult r =
      train::pipeline_forward_backward(c, params, tokens.data() + groups.lane() * Bl * T, Bl, T, opt, grads,
                                       float(double(Bl) / double(B)), *groups.pp, sched, split, ep ? &*ep : nullptr);
  // Sum over the stage's lanes (routed experts over the DP group only: they hold every EP rank's rows), then
  // over the pipeline ranks holding a tensor.
  if (L > 1) train::allreduce_ep_grads(grads, *groups.stage, *groups.dp);
  train::reduce_pipeline_grads(c, grads, *groups.pp, sched, split);
  const double loss = groups.stage->allreduce_one(r.step.loss * double(Bl) / double(B));
  const int64_t held_floats = world.allreduce_one(params.total(), dist::ReduceOp::Max);
  // Each lane's whole model at its pipeline rank 0; lane 0's EP group then gathers the routed experts.
  std::optional<train::Params> full = train::gather_pipeline_params(c, grads, *groups.pp, sched, split, 0);
  if (ep && groups.pp_rank == 0 && groups.dp_rank == 0) full = train::gather_experts(c, *full, *ep, /*root=*/0);
  const train::PipeTimeline tl = train::gather_timeline(r.record, *groups.pp);
  const int64_t param_floats = world.allreduce_one(r.record.param_floats, dist::ReduceOp::Max);
  const int64_t act_bytes = world.allreduce_one(r.record.peak_act_bytes, dist::ReduceOp::Max);
  const std::vector<int64_t> held = world.allgather_one(int64_t(r.record.peak_held));
  if (world.rank() != 0) return 0;
  write_grads(o.out, *full, loss);
  fmt::print("loss {:.6f}\n", loss);
  std::string stages;
  for (size_t s = 0; s < split.stages.size(); ++s)
    stages += fmt::format("{}[{}, {}){}", s ? " " : "", split.stages[s].layer_begin, split.stages[s].layer_end,
                          o.split == "measured" ? fmt::format(" {:.4f} s", split.cost[s]) : std::string());
  std::fprintf(stderr, "pipeline: stages (layers) %s\n%s", stages.c_str(), train::bubble_report(sched, tl).c_str());
  std::string h;
  for (int64_t x : held) h += fmt::format(" {}", x);
  std::fprintf(stderr,
               "pipeline: per rank at most %.2f MB of parameters read, %.2f MB allocated (of %.2f MB), %.2f MB of "
               "activations held at the peak; (stage, micro-batch) activations held at the peak per rank:%s\n",
               double(param_floats) * 4 / 1e6, double(held_floats) * 4 / 1e6, double(full->total()) * 4 / 1e6,
               double(act_bytes) / 1e6, h.c_str());
  if (!o.trace.empty()) {
    std::FILE* f = std::fopen(o.trace.c_str(), "w");
    if (!f) fail("--trace {}: cannot write", o.trace);
    const std::string json = train::chrome_trace(tl, train::schedule_kind_name(kind));
    std::fwrite(json.data(), 1, json.size(), f);
    std::fclose(f);
  }
  return 0;
}

int run(const Options& o) {
  // The batch: [B, T] row-major.
  std::vector<int32_t> tokens;
  int64_t T = 0;
  for (size_t b = 0; b < o.ids.size(); ++b) {
    const std::vector<int32_t> ids = parse_ids(o.ids[b]);
    if (ids.size() < 2)
      fail("--ids (sequence {}): need at least 2 token ids (position i predicts token i+1), got {}", b, ids.size());
    if (b == 0) T = int64_t(ids.size());
    if (int64_t(ids.size()) != T)
      fail("--ids (sequence {}): {} token ids, sequence 0 has {} (every sequence of the batch needs the same length)",
           b, ids.size(), T);
    tokens.insert(tokens.end(), ids.begin(), ids.end());
  }
  const int64_t B = int64_t(o.ids.size());
  const ModelConfig c = load_config(o.model);
  train::LossOptions opt;
  opt.mtp_lambda = o.mtp_lambda >= 0 ? o.mtp_lambda : (c.num_nextn_predict_layers > 0 ? 0.3 : 0.0);
  opt.balance_alpha = 0.0;
  opt.mode = train::BalanceMode::None;

  if (o.pp != 1 || !o.trace.empty() || o.micro != 0) {
    if (o.pp < 1) fail("--pp {}: need at least 1 pipeline rank", o.pp);
    return run_pipelined(o, c, opt, tokens, B, T);
  }
  dist::Comm& world = dist::world();
  const dist::Layout layout = dist::make_layout(world.size(), o.dp, o.ep, c.n_routed_experts);
  const int N = layout.ranks();
  if (N == 1) {  // the single-process step
    const train::Params params = train::load_params(c, io::Checkpoint::open(o.model), {}, o.extra_tensors);
    train::Params grads(c);
    const auto t0 = std::chrono::steady_clock::now();
    const train::StepResult r = train::forward_backward(c, params, tokens.data(), B, T, opt, grads, 1.0f);
    const double t_step = seconds_since(t0);
    write_grads(o.out, grads, r.loss);
    fmt::print("loss {:.6f}\n", r.loss);
    std::fprintf(stderr, "step %.3f s\n", t_step);
    return 0;
  }

  if (B % N != 0)
    fail("--ids: {} sequence(s) do not split over the {} ranks (--dp {} × --ep {}): give a multiple of {}", B, N,
         layout.dp, layout.ep, N);
  dist::Groups groups = dist::make_groups(world, layout);
  if (world.rank() == 0) std::fprintf(stderr, "%s\n", dist::describe(groups, world, c.n_routed_experts).c_str());
  std::optional<train::ExpertParallel> ep;
  if (layout.ep > 1) {
    ep = train::ExpertParallel::make(c, *groups.ep);
    ep->overlap = o.overlap == "on";
  }
  const SchemaScope scope = ep ? ep->scope : SchemaScope{};
  const train::Params params = train::load_params(c, io::Checkpoint::open(o.model), scope, o.extra_tensors);
  train::Params grads(c, scope);
  // Every rank has Bl sequences of T tokens, so its share of every mean (main CE rows, MTP rows, balance
  // segments) is Bl / B: one scale makes the sum over ranks the gradient of the whole batch.
  const int64_t Bl = B / N;
  const float scale = float(double(Bl) / double(B));
  world.barrier();  // time the step from a common start
  const auto t0 = std::chrono::steady_clock::now();
  const train::StepResult r = train::forward_backward(c, params, tokens.data() + world.rank() * Bl * T, Bl, T, opt,
                                                      grads, scale, ep ? &*ep : nullptr);
  const double t_step = world.allreduce_one(seconds_since(t0), dist::ReduceOp::Max);
  const auto t1 = std::chrono::steady_clock::now();
  train::allreduce_ep_grads(grads, world, *groups.dp);
  const double loss = world.allreduce_one(r.loss * double(Bl) / double(B));
  const double t_reduce = seconds_since(t1);
  // Every rank's split of its step (rank 0 prints them).
  constexpr int kTimes = 6;
  const double mine[kTimes] = {
      r.seconds, r.comm.post_s, r.comm.wait_s, r.comm.in_flight_s, r.overlapped ? 1.0 : 0.0, double(r.comm.bytes_sent)};
  std::vector<double> times(size_t(kTimes * N));
  world.allgather(mine, kTimes, times.data(), dist::DType::F64);
  if (groups.dp_rank != 0) return 0;  // replica 0 holds the same (reduced) gradients
  std::optional<train::Params> full;
  if (ep) {
    full = train::gather_experts(c, grads, *ep, /*root=*/0);
    if (!full) return 0;
  } else if (world.rank() != 0) {
    return 0;
  }
  write_grads(o.out, full ? *full : grads, loss);
  fmt::print("loss {:.6f}\n", loss);
  std::fprintf(stderr, "step %.3f s (slowest rank), gradient all-reduce %.3f s (rank 0)\n", t_step, t_reduce);
  if (ep)
    for (int q = 0; q < N; ++q) {
      const double* t = times.data() + kTimes * q;
      std::fprintf(stderr,
                   "rank %d: step %.3f s = compute %.3f + all-to-all post %.4f + wait %.3f s (overlap %s: in flight "
                   "while computing %.3f s; %.1f MB sent)\n",
                   q, t[0], t[0] - t[1] - t[2], t[1], t[2], t[4] != 0 ? "on" : "off", t[3], t[5] / 1e6);
    }
  return 0;
}

Registrar reg(
    "grad", "Loss and float32 gradients of every weight for a batch of sequences (mpirun: EP × DP)", [](CLI::App& app) {
      auto o = std::make_shared<Options>();
      app.add_option("--model", o->model, "Model directory (config.json + safetensors)")->required();
      app.add_option("--ids", o->ids, "Token ids of one sequence, space separated; repeat for a batch (one length)")
          ->required();
      app.add_option("--out", o->out, "Output .safetensors of float32 gradients")->required();
      app.add_option("--mtp-lambda", o->mtp_lambda, "Weight of the MTP cross-entropy (default 0.3 with MTP, else 0)")
          ->check(CLI::NonNegativeNumber);
      app.add_option("--ep", o->ep, "Expert-parallel ranks per replica (under mpirun; default 1)");
      app.add_option("--dp", o->dp, "Data-parallel replicas (default: ranks / --ep)");
      app.add_option("--overlap", o->overlap,
                     "Two-micro-batch overlap of the EP all-to-alls with compute (each rank needs >= 2 sequences)")
          ->check(CLI::IsMember({"on", "off"}))
          ->default_str("off");
      app.add_option("--pp", o->pp, "Pipeline-parallel ranks (under mpirun -np P; train/pipeline.h)");
      app.add_option("--schedule", o->schedule, "Pipeline schedule with --pp: 1f1b, dualpipe or dualpipev")
          ->default_str("1f1b");
      app.add_option("--micro", o->micro, "Micro-batches with --pp (default: one per sequence)");
      add_extra_tensors_flag(app, o->extra_tensors);
      app.add_option("--trace", o->trace, "With --pp: write the step's per-rank timeline as a Chrome trace JSON");
      app.add_option("--split", o->split,
                     "With --pp: the layer split by the FLOP estimate (flops) or by each layer's forward + backward "
                     "timed here (measured)")
          ->default_str("flops");
      return [o] { return run(*o); };
    });

}  // namespace
}  // namespace dsv3::cli
