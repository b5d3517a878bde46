// AdamW against hand-computed values, gradient clipping, LR / batch / step schedules, expert-bias balancing.
#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "train/adamw.h"
#include "train/balance.h"
#include "train/schedule.h"

namespace dsv3::train {
namespace {

// A tiny MoE config: 1 dense layer + 1 MoE layer (4 experts, bias) — enough tensor roles for the optimizer.
ModelConfig tiny_config() {
  ModelConfig c;
  c.model_type = "deepseek_v3";
  c.vocab_size = 8, c.hidden_size = 4, c.intermediate_size = 6, c.moe_intermediate_size = 2;
  c.num_hidden_layers = 2, c.num_attention_heads = 1, c.num_key_value_heads = 1;
  c.n_shared_experts = 1, c.n_routed_experts = 4, c.num_experts_per_tok = 2, c.n_group = 2, c.topk_group = 1;
  c.first_k_dense_replace = 1, c.q_lora_rank = 0, c.kv_lora_rank = 4;
  c.qk_nope_head_dim = 2, c.qk_rope_head_dim = 2, c.v_head_dim = 2, c.max_position_embeddings = 16;
  return c;
}

TEST(AdamW, OneStepMatchesHandComputation) {
  const ModelConfig c = tiny_config();
  Params p(c), g(c);
  const size_t lin = p.index("model.layers.0.self_attn.o_proj.weight");
  const size_t norm = p.index("model.layers.0.input_layernorm.weight");
  const size_t bias = p.index("model.layers.1.mlp.gate.e_score_correction_bias");
  p.value(lin)[0] = 1.0f, g.value(lin)[0] = 0.5f;
  p.value(lin)[1] = -2.0f, g.value(lin)[1] = -0.25f;
  p.value(norm)[0] = 1.0f, g.value(norm)[0] = 2.0f;
  p.value(bias)[0] = 0.5f, g.value(bias)[0] = 9.0f;  // must be ignored
  AdamW opt(p, {.beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1});
  const double lr = 0.01;
  opt.step(p, g, lr);
  // t = 1: m̂ = g, v̂ = g², so the update is lr · g / (|g| + eps) after decay p·(1 − lr·wd).
  auto expect = [&](double p0, double g0, bool decay) {
    const double m = 0.1 * g0, v = 0.05 * g0 * g0;
    return p0 * (decay ? 1 - lr * 0.1 : 1.0) - lr / 0.1 * m / (std::sqrt(v) / std::sqrt(0.05) + 1e-8);
  };
  EXPECT_FLOAT_EQ(p.value(lin)[0], float(expect(1.0, 0.5, true)));     // 1·0.999 − 0.01 = 0.989
  EXPECT_FLOAT_EQ(p.value(lin)[1], float(expect(-2.0, -0.25, true)));  // −1.998 + 0.01
  EXPECT_FLOAT_EQ(p.value(lin)[0], 0.989f);
  EXPECT_FLOAT_EQ(p.value(norm)[0], float(expect(1.0, 2.0, false)));  // no decay on norms
  EXPECT_FLOAT_EQ(p.value(bias)[0], 0.5f);                            // the bias is not the optimizer's
  EXPECT_FLOAT_EQ(opt.exp_avg(lin)[0], 0.05f);
  EXPECT_FLOAT_EQ(opt.exp_avg_sq(lin)[0], float(0.05 * 0.25));
  EXPECT_TRUE(opt.exp_avg(bias).empty());
  // A second step with the same gradient, by hand: m = 0.19·g/…; check against the formula in double.
  opt.step(p, g, lr);
  const double g0 = 0.5, m2 = 0.9 * 0.05 + 0.1 * g0, v2 = 0.95 * (0.05 * 0.25) + 0.05 * g0 * g0;
  const double p2 = 0.989 * (1 - lr * 0.1) - lr / (1 - 0.81) * m2 / (std::sqrt(v2) / std::sqrt(1 - 0.9025) + 1e-8);
  EXPECT_NEAR(p.value(lin)[0], p2, 1e-7);
  EXPECT_EQ(opt.steps(), 2);
}

TEST(AdamW, RoleRules) {
  EXPECT_TRUE(decays(WeightRole::Linear));
  EXPECT_TRUE(decays(WeightRole::Embedding));
  EXPECT_TRUE(decays(WeightRole::Head));
  EXPECT_TRUE(decays(WeightRole::Gate));
  EXPECT_FALSE(decays(WeightRole::Norm));
  EXPECT_FALSE(decays(WeightRole::Bias));
  EXPECT_FALSE(trainable(WeightRole::Bias));
  EXPECT_THROW((AdamW(Params(tiny_config()), {.beta2 = 1.0})), Error);
}

TEST(Clip, GlobalNorm) {
  const ModelConfig c = tiny_config();
  Params g(c);
  g.value(0)[0] = 3.0f;
  g.value(1)[0] = 4.0f;
  g.data("model.layers.1.mlp.gate.e_score_correction_bias")[0] = 100.0f;  // not counted
  EXPECT_DOUBLE_EQ(grad_global_norm(g), 5.0);
  EXPECT_DOUBLE_EQ(clip_grad_norm(g, 10.0), 5.0);  // under the limit: untouched
  EXPECT_EQ(g.value(0)[0], 3.0f);
  EXPECT_DOUBLE_EQ(clip_grad_norm(g, 1.0), 5.0);
  EXPECT_FLOAT_EQ(g.value(0)[0], float(3.0 / (5.0 + 1e-6)));
  EXPECT_FLOAT_EQ(g.value(1)[0], float(4.0 / (5.0 + 1e-6)));
  EXPECT_NEAR(grad_global_norm(g), 1.0, 1e-6);
}

TEST(Schedule, LrBoundaries) {
  LrSchedule s{.lr = 1.0, .min_lr = 0.1, .warmup_steps = 10, .constant_steps = 20, .decay_steps = 40};
  EXPECT_DOUBLE_EQ(s.at(0), 0.1);
  EXPECT_DOUBLE_EQ(s.at(4), 0.5);
  EXPECT_DOUBLE_EQ(s.at(9), 1.0);   // last warmup step reaches the peak
  EXPECT_DOUBLE_EQ(s.at(10), 1.0);  // constant
  EXPECT_DOUBLE_EQ(s.at(29), 1.0);
  EXPECT_DOUBLE_EQ(s.at(30), 1.0);     // cosine starts at the peak
  EXPECT_NEAR(s.at(50), 0.55, 1e-12);  // halfway
  EXPECT_NEAR(s.at(69), 0.1 + 0.9 * 0.5 * (1 + std::cos(M_PI * 39 / 40)), 1e-12);
  EXPECT_DOUBLE_EQ(s.at(70), 0.1);  // floor
  EXPECT_DOUBLE_EQ(s.at(1000), 0.1);
  LrSchedule nowarm{.lr = 2.0, .min_lr = 0.0, .warmup_steps = 0, .constant_steps = 0, .decay_steps = 4};
  EXPECT_DOUBLE_EQ(nowarm.at(0), 2.0);
  EXPECT_NEAR(nowarm.at(2), 1.0, 1e-12);
}

TEST(Schedule, ResolveFractions) {
  LrScheduleSpec spec{.lr = 1.0, .min_lr = 0.1, .warmup_steps = 10, .constant_frac = 0.5, .decay_frac = 0.4};
  LrSchedule s = spec.resolve(100);
  EXPECT_EQ(s.warmup_steps, 10);
  EXPECT_EQ(s.constant_steps, 50);
  EXPECT_EQ(s.decay_steps, 40);  // floor: the last 0 steps
  LrSchedule r = LrScheduleSpec{.lr = 1.0, .min_lr = 0.1, .warmup_steps = 10, .constant_frac = 0.3}.resolve(100);
  EXPECT_EQ(r.decay_steps, 60);  // decay defaults to the rest
  LrSchedule clipped = LrScheduleSpec{.lr = 1.0, .min_lr = 0.1, .warmup_steps = 500}.resolve(100);
  EXPECT_EQ(clipped.warmup_steps, 100);
  EXPECT_THROW((LrScheduleSpec{.lr = 1.0, .min_lr = 2.0}.resolve(10)), Error);
  EXPECT_THROW(LrScheduleSpec{}.resolve(0), Error);
}

TEST(Schedule, BatchRampAndStepFunction) {
  BatchRamp b{.start = 4, .end = 16, .ramp_tokens = 1200};
  EXPECT_EQ(b.at(0), 4);
  EXPECT_EQ(b.at(600), 10);
  EXPECT_EQ(b.at(1199), 15);
  EXPECT_EQ(b.at(1200), 16);
  EXPECT_EQ(b.at(1 << 30), 16);
  EXPECT_EQ((BatchRamp{.start = 4, .end = 16, .ramp_tokens = 0}).at(0), 16);
  StepFunction lambda{.before = 0.3, .after = 0.1, .switch_frac = 0.7};
  EXPECT_EQ(lambda.at(0, 100), 0.3);
  EXPECT_EQ(lambda.at(69, 100), 0.3);
  EXPECT_EQ(lambda.at(70, 100), 0.1);
  EXPECT_EQ(lambda.at(99, 100), 0.1);
}

TEST(Balance, BiasMovesTowardsBalanceAndMaxVio) {
  const ModelConfig c = tiny_config();
  Params p(c);
  std::vector<LayerRouting> a{{.layer = 1, .load = {4, 2, 1, 1}}}, b{{.layer = 1, .load = {0, 2, 3, 1}}};
  accumulate_routing(a, b);
  EXPECT_EQ(a[0].load, (std::vector<int64_t>{4, 4, 4, 2}));  // mean 3.5
  EXPECT_NEAR(max_vio(a[0].load), (4 - 3.5) / 3.5, 1e-15);
  update_expert_bias(p, a, 1e-3);
  const float* bias = p.data("model.layers.1.mlp.gate.e_score_correction_bias");
  EXPECT_FLOAT_EQ(bias[0], -1e-3f);
  EXPECT_FLOAT_EQ(bias[2], -1e-3f);
  EXPECT_FLOAT_EQ(bias[3], 1e-3f);
  // Exactly balanced: no move. γ = 0: no move.
  update_expert_bias(p, {{.layer = 1, .load = {3, 3, 3, 3}}}, 1e-3);
  update_expert_bias(p, {{.layer = 1, .load = {9, 0, 0, 0}}}, 0.0);
  EXPECT_FLOAT_EQ(bias[3], 1e-3f);
  EXPECT_EQ(max_vio({0, 0}), 0.0);
  EXPECT_THROW(accumulate_routing(a, {}), Error);
  EXPECT_THROW((update_expert_bias(p, {{.layer = 0, .load = {1, 2, 3, 4}}}, 1e-3)), Error);  // dense layer
}

}  // namespace
}  // namespace dsv3::train
