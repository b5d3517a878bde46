#include "train/stage_cost.h"

#include <algorithm>
#include <chrono>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "core/error.h"
#include "model/rope.h"
#include "train/layout.h"
#include "train/pipeline_stage.h"

namespace dsv3::train {

namespace {

using Clock = std::chrono::steady_clock;

void randomize(Params& p, std::mt19937_64& rng) {
  std::normal_distribution<float> n(0.0f, 0.02f);
  for (size_t i = 0; i < p.size(); ++i) {
    std::vector<float>& v = p.value(i);
    switch (p.specs()[i].role) {
      case WeightRole::Norm:
        std::fill(v.begin(), v.end(), 1.0f);
        break;
      case WeightRole::Bias:
        std::fill(v.begin(), v.end(), 0.0f);
        break;
      default:
        for (float& x : v) x = n(rng);
    }
  }
}

// The minimum over reps timed runs (after one untimed) of one stage range's forward + backward on its own
// tensors (`scope`).
double time_range(const ModelConfig& c, const SchemaScope& scope, const StageRange& r, int64_t B, int64_t T,
                  const LossOptions& opt, int reps, std::mt19937_64& rng) {
  Params params(c, scope), grads(c, scope);
  randomize(params, rng);
  const ModelP w = bind_params(c, params);
  const ModelG g = bind_grads(c, grads);
  RopeTable rope(c);
  rope.ensure(T);
  const StageStep step{.config = c,
                       .w = w,
                       .g = g,
                       .rope = rope,
                       .opt = opt,
                       .batch = B,
                       .seq_len = T,
                       .grad_scale = 1.0f,
                       .ep = nullptr,
                       .grads = true};
  const int64_t m = B * T, D = c.hidden_size;
  std::vector<int32_t> tokens(static_cast<size_t>(m));
  std::uniform_int_distribution<int32_t> tok(0, int32_t(c.vocab_size - 1));
  for (int32_t& t : tokens) t = tok(rng);
  std::normal_distribution<float> n(0.0f, 1.0f);
  std::vector<float> h0(size_t(m * D)), dh0(size_t(m * D));
  for (float& x : h0) x = n(rng);
  for (float& x : dh0) x = n(rng) * 1e-3f;
  double best = -1;
  for (int k = 0; k <= reps; ++k) {
    std::vector<float> h = h0, dh = dh0;
    StageActs acts;
    const auto t0 = Clock::now();
    stage_forward(step, r, tokens.data(), h, acts);
    stage_backward(step, r, tokens.data(), acts, dh, nullptr);
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    if (k > 0) best = best < 0 ? s : std::min(best, s);
  }
  return best;
}

}  // namespace

StageCosts measure_stage_costs(const ModelConfig& c, int64_t B, int64_t T, const LossOptions& opt, dist::Comm& comm,
                               int reps) {
  if (B < 1 || T < 2) fail("--split measured: need a micro-batch of at least 1 sequence of 2 tokens");
  std::mt19937_64 rng(0x5eed5);
  const int64_t L = c.num_hidden_layers;
  std::vector<double> t(static_cast<size_t>(L + 2));
  for (int64_t l = 0; l < L; ++l) {
    SchemaScope sc;
    sc.layers = {{l, l + 1}};
    sc.embed = false, sc.tail = false;
    t[size_t(l)] = time_range(c, sc, StageRange{.layer_begin = l, .layer_end = l + 1}, B, T, opt, reps, rng);
  }
  SchemaScope first;
  first.layers = {{0, 0}};
  first.tail = false;
  t[size_t(L)] = time_range(c, first, StageRange{.first = true}, B, T, opt, reps, rng);
  SchemaScope last;
  last.layers = {{0, 0}};
  t[size_t(L + 1)] = time_range(c, last, StageRange{.last = true}, B, T, opt, reps, rng);
  if (comm.size() > 1) comm.allreduce(std::span<double>(t), dist::ReduceOp::Max);
  StageCosts k;
  k.layer.assign(t.begin(), t.begin() + L);
  k.first = t[size_t(L)];
  k.last = t[size_t(L + 1)];
  return k;
}

StageSplit choose_split(const std::string& how, const ModelConfig& c, int stages, int64_t B, int64_t T,
                        const LossOptions& opt, dist::Comm& comm, const char* what) {
  if (how == "flops") return split_stages(c, stages, T, opt.mtp_lambda > 0);
  if (how == "measured") {
    if (stages > c.num_hidden_layers) return split_stages(c, stages, T, opt.mtp_lambda > 0);  // fails naming --pp
    return split_by_cost(measure_stage_costs(c, B, T, opt, comm), stages);
  }
  fail("{} {}: give flops (the FLOP estimate) or measured (each layer timed on this machine)", what, how);
}

}  // namespace dsv3::train
