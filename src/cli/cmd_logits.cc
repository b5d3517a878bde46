// dsv3 logits --model DIR --ids "I1 I2 ..." --out FILE [--mtp-out FILE] [--ep N]
// Writes float32 little-endian row-major logits [n, vocab]; with --mtp-out also the MTP module's logits
// [n-1, vocab] (row i predicts token i+2 from position i's final hidden state and token i+1).
// Under mpirun -np N with --ep N the experts are spread over the ranks (cli/dist_flags.h); rank 0 writes.
#include <string>

#include "cli/command.h"
#include "cli/dist_flags.h"
#include "cli/gen_flags.h"
#include "cli/ids.h"
#include "core/error.h"
#include "io/safetensors.h"
#include "model/transformer.h"

namespace dsv3::cli {
namespace {

struct Options {
  std::string model, ids, out, mtp_out;
  DistFlags dist;
  ExtraTensors extra_tensors = ExtraTensors::Refuse;
};

void write_floats(const std::string& path, const std::vector<float>& v) {
  io::write_file_atomic(path, std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float)));
}

int run(const Options& o) {
  const std::vector<int32_t> ids = parse_ids(o.ids);
  ModelOptions options;
  options.extra_tensors = o.extra_tensors;
  auto job = o.dist.start(o.model, options);
  if (job && !job->leads()) return follow(*job, o.model, options);
  JobStopper stopper{job};
  auto model = Model::load(o.model, options);
  const ModelConfig& c = model->config();
  const int64_t n = int64_t(ids.size()), V = c.vocab_size, D = c.hidden_size;
  if (!o.mtp_out.empty() && model->num_mtp() == 0)
    fail("--mtp-out: {} has no MTP module (num_nextn_predict_layers = 0)", o.model);
  if (!o.mtp_out.empty() && n < 2) fail("--mtp-out needs at least 2 token ids");
  KvCache cache = model->new_cache(n);
  std::vector<float> logits(size_t(n * V)), hidden(size_t(n * D));
  SeqChunk chunk{&cache, n};
  model->forward(ids, {&chunk, 1}, hidden.data(), logits.data());
  write_floats(o.out, logits);
  if (!o.mtp_out.empty()) {
    KvCache mcache = model->new_mtp_cache(n - 1);
    std::vector<float> mlogits(size_t((n - 1) * V));
    SeqChunk mchunk{&mcache, n - 1};
    model->mtp_forward(0, std::span<const int32_t>(ids).subspan(1), hidden.data(), {&mchunk, 1}, nullptr,
                       mlogits.data());
    write_floats(o.mtp_out, mlogits);
  }
  return 0;
}

Registrar reg("logits", "Write float32 logits of every position (and MTP logits)", [](CLI::App& app) {
  auto o = std::make_shared<Options>();
  app.add_option("--model", o->model, "Model directory (config.json + safetensors)")->required();
  app.add_option("--ids", o->ids, "Token ids, space separated")->required();
  app.add_option("--out", o->out, "Output file: float32 [n, vocab]")->required();
  app.add_option("--mtp-out", o->mtp_out, "Output file for MTP logits: float32 [n-1, vocab]");
  o->dist.add_to(app);
  add_extra_tensors_flag(app, o->extra_tensors);
  return [o] { return run(*o); };
});

}  // namespace
}  // namespace dsv3::cli
