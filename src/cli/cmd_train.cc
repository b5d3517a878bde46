// dsv3 train --config TRAIN.json --data DIR --out RUNDIR [--resume] [--max-minutes M] [--steps N]
//            [--stop-at S] [--no-progress] [--precision fp32|bf16|fp8] [--init-from DIR]
// mpirun -np N dsv3 train ... [--dp D] [--ep E] [--bucket-mb MB] [--overlap on|off]     (N = D·E)
// mpirun -np P·D·E dsv3 train ... --pp P [--dp D] [--ep E] [--schedule 1f1b|dualpipe|dualpipev] [--micro M]
//                                  [--trace FILE.json]
// Trains a DeepSeek-V3-family model from scratch on prepared token shards (docs/training.md); under mpirun
// data- and expert-parallel (docs/scale-out-training-dp.md).
#include <fmt/format.h>

#include <cstdio>

#include "cli/command.h"
#include "dist/world.h"
#include "train/trainer.h"

namespace dsv3::cli {
namespace {

int run(const train::RunOptions& o) {
  const train::TrainSummary s = train::run_training(o);
  if (dist::world().rank() != 0) return 0;
  std::printf("%s: step %lld/%lld, train loss %.4f, val loss %s, %.0f tokens/s, %.1f s%s\n", o.out.c_str(),
              (long long)s.step, (long long)s.total_steps, s.train_loss,
              s.val_loss >= 0 ? fmt::format("{:.4f}", s.val_loss).c_str() : "n/a", s.tokens_per_s, s.seconds,
              s.finished ? "" : " (not finished: --resume continues)");
  return 0;
}

Registrar reg("train", "Train a model on prepared data (checkpoints, metrics, exact resume)", [](CLI::App& app) {
  auto o = std::make_shared<train::RunOptions>();
  app.add_option("--config", o->config, "TRAIN.json: HF config fields + a \"training\" object (see configs/)");
  app.add_option("--data", o->data, "Dataset directory from `dsv3 data prepare`")->required();
  app.add_option("--out", o->out, "Run directory (metrics.jsonl, checkpoint/)")->required();
  app.add_flag("--resume", o->resume, "Continue the run in --out from its checkpoint (bit-exact)");
  app.add_option("--max-minutes", o->max_minutes,
                 "Time budget: fits the schedule when no step count is set, "
                 "and stops (with a checkpoint) when exceeded");
  app.add_option("--steps", o->steps, "Total optimizer steps of the schedule (overrides training.steps)");
  app.add_option("--stop-at", o->stop_at, "Stop after this step with a checkpoint (the schedule is unchanged)");
  app.add_option("--precision", o->precision,
                 "Linear layers in fp32 (default), bf16, or fp8 (DeepSeek-V3's fine-grained FP8 recipe, emulated; "
                 "docs/fp8.md); overrides training.precision")
      ->check(CLI::IsMember({"fp32", "bf16", "fp8"}));
  app.add_option("--init-from", o->init_from,
                 "Start a new run from this model directory's tensors (those it lacks keep their random init; "
                 "docs/dsa-training.md)");
  app.add_option("--dp", o->dp,
                 "Data-parallel replicas under mpirun (default: the job's ranks / --ep); each rank runs "
                 "batch_seqs / ranks of every step's sequences");
  app.add_option("--ep", o->ep, "Expert-parallel ranks per replica under mpirun (routed experts split over them)");
  app.add_option("--pp", o->pp,
                 "Pipeline-parallel ranks under mpirun -np P·D·E, with --dp D / --ep E per stage (train/pipeline.h)");
  app.add_option("--schedule", o->schedule, "Pipeline schedule with --pp: 1f1b, dualpipe or dualpipev")
      ->default_str("1f1b");
  app.add_option("--micro", o->micro, "Micro-batches per lane and step with --pp (default: P for 1f1b, 2P otherwise)");
  app.add_option("--trace", o->trace, "With --pp: the last step's per-rank timeline as a Chrome trace JSON");
  app.add_option("--split", o->split,
                 "With --pp: the layer split by the FLOP estimate (flops) or by each layer's forward + backward "
                 "timed on this machine (measured)")
      ->default_str("flops");
  app.add_option("--bucket-mb", o->bucket_mb,
                 "Gradient all-reduce bucket size in MiB (buckets start while the backward runs)");
  auto overlap = std::make_shared<std::string>("off");
  app.add_option("--overlap", *overlap,
                 "Two-micro-batch overlap of the EP all-to-alls with compute (each rank's micro-batch of >= 2 "
                 "sequences runs as two halves taking turns)")
      ->check(CLI::IsMember({"on", "off"}))
      ->default_str("off");
  auto np = std::make_shared<bool>(false);
  app.add_flag("--no-progress", *np, "No progress line on stderr");
  return [o, np, overlap] {
    o->progress = !*np;
    o->overlap = *overlap == "on";
    return run(*o);
  };
});

}  // namespace
}  // namespace dsv3::cli
