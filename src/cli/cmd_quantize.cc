// dsv3 quantize --model IN --out OUT --type int8|int4|bf16
//   Converts a checkpoint (F32 / BF16 / F16 / FP8-block, sharded or not) into the int8 / int4 block
//   formats (or BF16) as a model directory every other command loads (src/model/quantize.h for what is
//   quantized, docs/formats.md for the layout).
// dsv3 divergence --model TEST --ref REF [--ids "..."]... [--sequences N --length L --seed S] [--json]
//   Logit divergence of TEST from REF (typically a quantized model and its source, run exactly): max
//   relative error, relative L2, top-1 agreement and KL, for prefill (all positions in one forward) and
//   decode (one token per forward).
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "cli/gen_flags.h"
#include "cli/ids.h"
#include "core/error.h"
#include "tools/divergence.h"
#include "tools/quantize.h"

namespace dsv3::cli {
namespace {

struct QuantizeArgs {
  std::string model, out, type;
  uint64_t max_shard_gb = 4;
  ExtraTensors extra_tensors = ExtraTensors::Refuse;
};

int run_quantize(const QuantizeArgs& o) {
  QuantizeOptions opt;
  opt.type = parse_quantize_type(o.type);
  if (o.max_shard_gb < 1) fail("--max-shard-gb must be >= 1");
  opt.max_shard_bytes = o.max_shard_gb << 30;
  opt.extra_tensors = o.extra_tensors;
  const QuantizeReport r = quantize_model(o.model, o.out, opt);
  fmt::print("{}: {} tensors ({} converted to {}, {} source tensors dropped), {:.1f} MiB -> {:.1f} MiB in {} file{}\n",
             o.out, r.tensors, r.quantized, o.type, r.dropped, double(r.bytes_in) / (1 << 20),
             double(r.bytes_out) / (1 << 20), r.shards, r.shards == 1 ? "" : "s");
  return 0;
}

Registrar reg_q("quantize", "Convert a checkpoint to int8 / int4 block-quantized (or bf16) weights", [](CLI::App& app) {
  auto o = std::make_shared<QuantizeArgs>();
  app.add_option("--model", o->model, "Input model directory")->required();
  app.add_option("--out", o->out, "Output model directory (new or empty)")->required();
  app.add_option("--type", o->type, "int8 | int4 | bf16")->required();
  app.add_option("--max-shard-gb", o->max_shard_gb, "Largest safetensors file, GiB (default 4)");
  add_extra_tensors_flag(app, o->extra_tensors);
  return [o] { return run_quantize(*o); };
});

struct DivergenceArgs {
  std::string model, ref;
  std::vector<std::string> ids;
  int64_t sequences = 4, length = 24;
  uint64_t seed = 1;
  bool json = false;
  ExtraTensors extra_tensors = ExtraTensors::Refuse;
};

nlohmann::json to_json(const LogitDivergence& d) {
  return {{"rows", d.rows},       {"max_rel_err", d.max_rel_err},
          {"rel_l2", d.rel_l2},   {"top1_agree", d.top1_agree},
          {"kl_mean", d.kl_mean}, {"kl_max", d.kl_max}};
}

int run_divergence(const DivergenceArgs& o) {
  DivergenceOptions opt;
  opt.sequences = o.sequences;
  opt.length = o.length;
  opt.seed = o.seed;
  if (o.sequences < 1 || o.length < 1) fail("--sequences and --length must be >= 1");
  for (const std::string& s : o.ids) opt.ids.push_back(parse_ids(s));
  const ModelOptions mo{.extra_tensors = o.extra_tensors};
  auto test = Model::load(o.model, mo);
  auto ref = Model::load(o.ref, mo);
  const DivergenceReport r = measure_divergence(*test, *ref, opt);
  if (o.json) {
    fmt::print("{}\n",
               nlohmann::json{
                   {"model", o.model}, {"ref", o.ref}, {"prefill", to_json(r.prefill)}, {"decode", to_json(r.decode)}}
                   .dump(2));
    return 0;
  }
  fmt::print("{} vs {}\n", o.model, o.ref);
  fmt::print("{:<8} {:>6} {:>12} {:>10} {:>10} {:>11} {:>11}\n", "path", "rows", "max_rel_err", "rel_l2", "top1",
             "kl_mean", "kl_max");
  for (auto [name, d] : {std::pair<const char*, const LogitDivergence*>{"prefill", &r.prefill}, {"decode", &r.decode}})
    fmt::print("{:<8} {:>6} {:>12.3e} {:>10.3e} {:>10.4f} {:>11.3e} {:>11.3e}\n", name, d->rows, d->max_rel_err,
               d->rel_l2, d->top1_agree, d->kl_mean, d->kl_max);
  return 0;
}

Registrar reg_d("divergence", "Logit divergence of a model (e.g. quantized) from a reference model", [](CLI::App& app) {
  auto o = std::make_shared<DivergenceArgs>();
  app.add_option("--model", o->model, "Model directory under test")->required();
  app.add_option("--ref", o->ref, "Reference model directory (run exactly)")->required();
  app.add_option("--ids", o->ids, "A token-id sequence (repeatable); default: random sequences");
  app.add_option("--sequences", o->sequences, "Random sequences (default 4)");
  app.add_option("--length", o->length, "Tokens per random sequence (default 24)");
  app.add_option("--seed", o->seed, "Seed of the random sequences");
  app.add_flag("--json", o->json, "JSON output");
  add_extra_tensors_flag(app, o->extra_tensors);
  return [o] { return run_divergence(*o); };
});

}  // namespace
}  // namespace dsv3::cli
