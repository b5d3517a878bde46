// dsv3 init --config CONFIG.json --out DIR [--seed N] [--dtype f32|bf16|fp8] [--std S]
#include "cli/command.h"
#include "model/config.h"
#include "tools/init.h"

namespace dsv3::cli {
namespace {

struct Options {
  std::string config, out, dtype = "bf16";
  uint64_t seed = 0;
  double std = -1.0;
};

int run(const Options& o) {
  ModelConfig c = load_config(o.config);
  InitDType dt = o.dtype == "f32" ? InitDType::F32 : o.dtype == "fp8" ? InitDType::FP8 : InitDType::BF16;
  auto weights = init_weights_f32(c, {.seed = o.seed, .std = o.std, .dtype = dt});
  write_model_dir(o.out, c, encode_for_storage(weights, dt, c.weight_block_n, c.ue8m0_scales()), dt);
  return 0;
}

Registrar reg("init", "Write a randomly initialised checkpoint (HF layout) for a config", [](CLI::App& app) {
  auto o = std::make_shared<Options>();
  app.add_option("--config", o->config, "HF config.json (or a directory holding one)")->required();
  app.add_option("--out", o->out, "Output model directory")->required();
  app.add_option("--seed", o->seed, "Random seed (deterministic output per seed)");
  app.add_option("--dtype", o->dtype, "Storage dtype of the matrices")->check(CLI::IsMember({"f32", "bf16", "fp8"}));
  app.add_option("--std", o->std, "Standard deviation of matrix entries (default: initializer_range)");
  return [o] { return run(*o); };
});

}  // namespace
}  // namespace dsv3::cli
