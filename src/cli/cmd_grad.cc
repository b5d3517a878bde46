// dsv3 grad --model DIR --ids "I1 I2 ..." --out GRADS.safetensors [--mtp-lambda L]
// One sequence through the training forward + backward (train/step.h) from the checkpoint's exact stored
// values: prints the loss (main CE + L · MTP CE; L defaults to 0.3 with an MTP module, else 0) and writes the
// float32 gradient of every trainable weight under the checkpoint's own names (atomically). As in the
// reference vectors, e_score_correction_bias has no gradient and the MTP module's embedding/head copies are
// the main model's (their gradients are under model.embed_tokens / lm_head).
#include <fmt/format.h>

#include <cstdio>
#include <string>

#include "cli/command.h"
#include "cli/ids.h"
#include "core/error.h"
#include "io/safetensors.h"
#include "train/param_io.h"
#include "train/step.h"

namespace dsv3::cli {
namespace {

struct Options {
  std::string model, ids, out;
  double mtp_lambda = -1.0;  // < 0: the default
};

int run(const Options& o) {
  const std::vector<int32_t> ids = parse_ids(o.ids);
  if (ids.size() < 2) fail("--ids: need at least 2 token ids (position i predicts token i+1)");
  const ModelConfig c = load_config(o.model);
  const train::Params params = train::load_params(c, io::Checkpoint::open(o.model));
  train::LossOptions opt;
  opt.mtp_lambda = o.mtp_lambda >= 0 ? o.mtp_lambda : (c.num_nextn_predict_layers > 0 ? 0.3 : 0.0);
  opt.balance_alpha = 0.0;
  opt.mode = train::BalanceMode::None;
  train::Params grads(c);
  const train::StepResult r = train::forward_backward(c, params, ids.data(), 1, int64_t(ids.size()), opt, grads, 1.0f);
  std::vector<io::TensorToWrite> out;
  for (size_t i = 0; i < grads.size(); ++i) {
    const WeightSpec& s = grads.specs()[i];
    if (s.role == WeightRole::Bias) continue;
    out.push_back({s.name, DType::F32, s.shape, grads.value(i).data()});
  }
  io::write_safetensors(o.out, out, {{"loss", fmt::format("{:.9g}", r.loss)}});
  fmt::print("loss {:.6f}\n", r.loss);
  return 0;
}

Registrar reg("grad", "Loss and float32 gradients of every weight for one sequence", [](CLI::App& app) {
  auto o = std::make_shared<Options>();
  app.add_option("--model", o->model, "Model directory (config.json + safetensors)")->required();
  app.add_option("--ids", o->ids, "Token ids, space separated")->required();
  app.add_option("--out", o->out, "Output .safetensors of float32 gradients")->required();
  app.add_option("--mtp-lambda", o->mtp_lambda, "Weight of the MTP cross-entropy (default 0.3 with MTP, else 0)")
      ->check(CLI::NonNegativeNumber);
  return [o] { return run(*o); };
});

}  // namespace
}  // namespace dsv3::cli
