// Training-step throughput (not a correctness test; disabled by default). Run with
//   train_tests --gtest_also_run_disabled_tests --gtest_filter='*Throughput*'
// Optional: DSV3_BENCH_CONFIG=path/to/config.json, DSV3_BENCH_BATCH, DSV3_BENCH_SEQ, DSV3_BENCH_STEPS.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <random>

#include "model/config.h"
#include "tools/init.h"
#include "train/step.h"

namespace dsv3::train {
namespace {

int64_t env_int(const char* name, int64_t def) {
  const char* v = std::getenv(name);
  return v ? std::atoll(v) : def;
}

// A small V3 (every feature on: q-LoRA, YaRN, groups, shared expert, MTP), the size a 2-core machine can
// train in minutes.
ModelConfig small_config() {
  ModelConfig c;
  c.model_type = "deepseek_v3";
  c.vocab_size = 4096;
  c.hidden_size = 256;
  c.intermediate_size = 768;
  c.moe_intermediate_size = 128;
  c.num_hidden_layers = 4;
  c.num_nextn_predict_layers = 1;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 4;
  c.n_shared_experts = 1;
  c.n_routed_experts = 8;
  c.num_experts_per_tok = 2;
  c.n_group = 4;
  c.topk_group = 2;
  c.routed_scaling_factor = 2.5;
  c.first_k_dense_replace = 1;
  c.q_lora_rank = 96;
  c.kv_lora_rank = 64;
  c.qk_nope_head_dim = 32;
  c.qk_rope_head_dim = 16;
  c.v_head_dim = 32;
  c.rope_scaling = YarnScaling{.factor = 4, .original_max_position_embeddings = 1024, .mscale_all_dim = 1.0};
  c.max_position_embeddings = 4096;
  return c;
}

TEST(TrainStepThroughput, DISABLED_Report) {
  const char* path = std::getenv("DSV3_BENCH_CONFIG");
  const ModelConfig c = path ? load_config(path) : small_config();
  const int64_t B = env_int("DSV3_BENCH_BATCH", 8), T = env_int("DSV3_BENCH_SEQ", 128),
                steps = env_int("DSV3_BENCH_STEPS", 3);
  Params p(c), g(c);
  const auto w = init_weights_f32(c, {.seed = 1});
  for (size_t i = 0; i < p.size(); ++i) p.value(i) = w[i].second;
  std::mt19937 gen(1);
  std::vector<int32_t> tokens(size_t(B * T));
  for (auto& t : tokens) t = int32_t(gen() % uint32_t(c.vocab_size));
  const LossOptions opt{.mtp_lambda = 0.3, .balance_alpha = 1e-4, .mode = BalanceMode::AuxFree};
  forward_backward(c, p, tokens.data(), B, T, opt, g);  // warm-up (allocations, page faults)
  double best = 1e30, best_cpu = 1e30;  // wall and process CPU seconds (CPU time is robust to a busy machine)
  for (int64_t s = 0; s < steps; ++s) {
    const auto t0 = std::chrono::steady_clock::now();
    const std::clock_t c0 = std::clock();
    forward_backward(c, p, tokens.data(), B, T, opt, g);
    best_cpu = std::min(best_cpu, double(std::clock() - c0) / CLOCKS_PER_SEC);
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  rusage ru0, ru1;
  getrusage(RUSAGE_SELF, &ru0);
  forward_backward(c, p, tokens.data(), B, T, opt, g);
  getrusage(RUSAGE_SELF, &ru1);
  std::printf("minor page faults in one steady-state step: %ld\n", ru1.ru_minflt - ru0.ru_minflt);
  const auto t0 = std::chrono::steady_clock::now();
  evaluate(c, p, tokens.data(), B, T, opt);
  const double ev = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf(
      "forward_backward: %lld x %lld tokens, %.1f M params: best %.3f s/step = %.0f tokens/s, %.0f tokens per "
      "CPU-second (evaluate %.0f tokens/s)\n",
      (long long)B, (long long)T, double(p.total()) / 1e6, best, double(B * T) / best, double(B * T) / best_cpu,
      double(B * T) / ev);
}

}  // namespace
}  // namespace dsv3::train
