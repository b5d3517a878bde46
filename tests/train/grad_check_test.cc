// Gradient checks of every training module against central differences of an independent float64
// reference (reference_f64.h), on awkward shapes: odd widths, rope dims 2 and 8 (with and without YaRN),
// q-LoRA and plain q, sigmoid routers with bias and groups, softmax routers (normalised or not, V2's scale
// rule), both balance losses; then the whole objective (MTP, balance loss, several sequences, grad_scale).
// Routing is discrete: inputs are redrawn until every selection margin is >= 1e-3, so neither the float32
// forward nor the ±1e-6 perturbations can change which experts are chosen.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>

#include "model/rope.h"
#include "reference_f64.h"
#include "train/ffn_grad.h"
#include "train/layout.h"
#include "train/loss.h"
#include "train/mla_grad.h"
#include "train/moe_grad.h"
#include "train/rmsnorm_grad.h"
#include "train/step.h"
#include "train/step_context.h"

namespace dsv3::train {
namespace {

using ref::DParams;
using ref::Vec;

constexpr double kTol = 1e-4;   // ‖analytic − fd‖ / ‖fd‖ per tensor
constexpr double kStep = 1e-6;  // central-difference step (float64 objective)

ModelConfig base_config() {
  ModelConfig c;
  c.model_type = "deepseek_v3";
  c.vocab_size = 11;
  c.hidden_size = 10;
  c.intermediate_size = 9;
  c.moe_intermediate_size = 5;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 3;
  c.num_key_value_heads = 3;
  c.n_shared_experts = 1;
  c.n_routed_experts = 8;
  c.num_experts_per_tok = 3;
  c.n_group = 4;
  c.topk_group = 2;
  c.routed_scaling_factor = 2.5;
  c.scoring_func = ScoringFunc::Sigmoid;
  c.topk_method = TopkMethod::NoauxTc;
  c.norm_topk_prob = true;
  c.first_k_dense_replace = 1;
  c.q_lora_rank = 5;
  c.kv_lora_rank = 6;
  c.qk_nope_head_dim = 4;
  c.qk_rope_head_dim = 2;
  c.v_head_dim = 3;
  c.rope_theta = 10000.0;
  c.rms_norm_eps = 1e-6;
  c.max_position_embeddings = 64;
  return c;
}

YarnScaling yarn() {
  return {.factor = 4.0,
          .original_max_position_embeddings = 16,
          .beta_fast = 32,
          .beta_slow = 1,
          .mscale = 1.0,
          .mscale_all_dim = 1.0};
}

// Matrices ~ N(0, 0.5²) (large enough that every nonlinearity matters), norms 1 + N(0, 0.1²), bias N(0, 0.05²).
void randomise(Params& p, uint32_t seed) {
  std::mt19937 g(seed);
  std::normal_distribution<float> n(0.0f, 1.0f);
  for (size_t i = 0; i < p.size(); ++i) {
    const WeightRole role = p.specs()[i].role;
    for (float& v : p.value(i)) {
      const float z = n(g);
      v = role == WeightRole::Norm ? 1.0f + 0.1f * z : role == WeightRole::Bias ? 0.05f * z : 0.5f * z;
    }
  }
}

std::vector<float> random_floats(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(g);
  return v;
}

double rel(const Vec& a, const Vec& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

// Central differences of f over (up to max_coords evenly spread) coordinates of theta (perturbed in place and
// restored), against the analytic gradient. Returns the relative error over the coordinates visited.
double fd_check(std::vector<double>& theta, const float* analytic, const std::function<double()>& f,
                size_t max_coords = 400) {
  const size_t n = theta.size(), stride = std::max<size_t>(1, n / max_coords);
  Vec fd, an;
  for (size_t j = 0; j < n; j += stride) {
    const double saved = theta[j];
    theta[j] = saved + kStep;
    const double up = f();
    theta[j] = saved - kStep;
    const double down = f();
    theta[j] = saved;
    fd.push_back((up - down) / (2 * kStep));
    an.push_back(analytic[j]);
  }
  return rel(an, fd);
}

// Checks every parameter tensor whose name starts with one of `prefixes` (the selection bias excluded).
double check_params(const Params& grads, DParams& dp, const std::vector<std::string>& prefixes,
                    const std::function<double()>& f, size_t max_coords = 400) {
  double worst = 0.0;
  int checked = 0;
  for (size_t i = 0; i < grads.size(); ++i) {
    const WeightSpec& s = grads.specs()[i];
    if (s.role == WeightRole::Bias) continue;
    bool match = false;
    for (const auto& p : prefixes) match |= s.name.rfind(p, 0) == 0;
    if (!match) continue;
    const double e = fd_check(dp.v[i], grads.value(i).data(), f, max_coords);
    EXPECT_LE(e, kTol) << s.name;
    worst = std::max(worst, e);
    ++checked;
  }
  EXPECT_GT(checked, 0);
  return worst;
}

double dot(const Vec& a, const std::vector<float>& r) {
  double s = 0.0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * r[i];
  return s;
}

// ---------------------------------------------------------------------------------------------------------

TEST(GradCheck, RmsNormOddWidth) {
  const int64_t m = 5, n = 13;
  auto x = random_floats(size_t(m * n), 1), w = random_floats(size_t(n), 2), r = random_floats(size_t(m * n), 3);
  for (float& v : w) v += 1.0f;
  std::vector<float> y(size_t(m * n)), rstd(static_cast<size_t>(m)), dx(size_t(m * n), 0.0f), dw(size_t(n), 0.0f);
  rmsnorm_forward(x.data(), w.data(), m, n, 1e-6f, y.data(), rstd.data());
  rmsnorm_backward(r.data(), x.data(), w.data(), rstd.data(), m, n, dx.data(), dw.data());
  Vec xd(x.begin(), x.end()), wd(w.begin(), w.end());
  auto f = [&] { return dot(ref::rmsnorm(xd, wd.data(), n, 1e-6), r); };
  EXPECT_LE(fd_check(xd, dx.data(), f), kTol);
  EXPECT_LE(fd_check(wd, dw.data(), f), kTol);
}

TEST(GradCheck, SwiGluFfnOddSizes) {
  ModelConfig c = base_config();
  c.hidden_size = 7;
  c.intermediate_size = 11;
  Params p(c), g(c);
  randomise(p, 4);
  const ModelP w = bind_params(c, p);
  const ModelG gw = bind_grads(c, g);
  const int64_t m = 5, D = c.hidden_size;
  auto x = random_floats(size_t(m * D), 5), r = random_floats(size_t(m * D), 6);
  std::vector<float> y(size_t(m * D)), dx(size_t(m * D), 0.0f);
  const RopeTable rope(c);
  const StepContext ctx{.config = c, .rope = rope, .batch = 1, .seq_len = m};
  FfnActs acts;
  ffn_forward(ctx, w.layers[0].mlp, x.data(), m, y.data(), acts);
  ffn_backward(ctx, w.layers[0].mlp, gw.layers[0].mlp, x.data(), m, acts, r.data(), dx.data());
  DParams dp(p);
  Vec xd(x.begin(), x.end());
  auto f = [&] { return dot(ref::ffn(dp, "model.layers.0.mlp.", xd, D, c.intermediate_size), r); };
  const Vec yref = ref::ffn(dp, "model.layers.0.mlp.", xd, D, c.intermediate_size);
  EXPECT_LE(rel(Vec(y.begin(), y.end()), yref), 1e-6);
  EXPECT_LE(fd_check(xd, dx.data(), f), kTol);
  check_params(g, dp, {"model.layers.0.mlp."}, f);
}

struct MlaCase {
  const char* name;
  int64_t q_lora_rank, rope_dim;
  bool yarn;
};

void PrintTo(const MlaCase& c, std::ostream* os) { *os << c.name; }

class MlaGrad : public ::testing::TestWithParam<MlaCase> {};

TEST_P(MlaGrad, MatchesFiniteDifferences) {
  const MlaCase& mc = GetParam();
  ModelConfig c = base_config();
  c.q_lora_rank = mc.q_lora_rank;
  c.qk_rope_head_dim = mc.rope_dim;
  if (mc.yarn) c.rope_scaling = yarn();
  Params p(c), g(c);
  randomise(p, 7);
  const ModelP w = bind_params(c, p);
  const ModelG gw = bind_grads(c, g);
  const int64_t B = 2, T = 5, D = c.hidden_size, m = B * T;
  RopeTable rope(c);
  rope.ensure(T);
  auto x = random_floats(size_t(m * D), 8), r = random_floats(size_t(m * D), 9);
  std::vector<float> y(size_t(m * D)), dx(size_t(m * D), 0.0f);
  const StepContext ctx{.config = c, .rope = rope, .batch = B, .seq_len = T};
  MlaActs acts;
  mla_forward(ctx, w.layers[0].attn, x.data(), y.data(), acts);
  mla_backward(ctx, w.layers[0].attn, gw.layers[0].attn, x.data(), acts, r.data(), dx.data());
  DParams dp(p);
  Vec xd(x.begin(), x.end());
  const std::string pre = "model.layers.0.self_attn.";
  EXPECT_LE(rel(Vec(y.begin(), y.end()), ref::mla(c, dp, pre, rope, xd, B, T)), 1e-6);
  auto f = [&] { return dot(ref::mla(c, dp, pre, rope, xd, B, T), r); };
  const double ex = fd_check(xd, dx.data(), f);
  EXPECT_LE(ex, kTol) << "dx";
  const double ew = check_params(g, dp, {pre}, f);
  std::printf("[ mla %s ] dx %.3g, worst weight %.3g\n", mc.name, ex, ew);
}

INSTANTIATE_TEST_SUITE_P(Shapes, MlaGrad,
                         ::testing::Values(MlaCase{"qlora_rope2", 5, 2, false}, MlaCase{"qlora_rope8_yarn", 5, 8, true},
                                           MlaCase{"plainq_rope2_yarn", 0, 2, true},
                                           MlaCase{"plainq_rope8", 0, 8, false}),
                         [](const auto& info) { return std::string(info.param.name); });

struct MoeCase {
  const char* name;
  const char* model_type;
  ScoringFunc scoring;
  TopkMethod method;
  int64_t n_group, topk_group, n_shared;
  bool norm;
  BalanceMode balance;
};

void PrintTo(const MoeCase& c, std::ostream* os) { *os << c.name; }

class MoeGrad : public ::testing::TestWithParam<MoeCase> {};

TEST_P(MoeGrad, MatchesFiniteDifferences) {
  const MoeCase& mc = GetParam();
  ModelConfig c = base_config();
  c.model_type = mc.model_type;
  c.scoring_func = mc.scoring;
  c.topk_method = mc.method;
  c.n_group = mc.n_group;
  c.topk_group = mc.topk_group;
  c.n_shared_experts = mc.n_shared;
  c.norm_topk_prob = mc.norm;
  if (mc.method != TopkMethod::NoauxTc) c.routed_scaling_factor = 1.7;
  const int64_t B = 2, T = 6, D = c.hidden_size, m = B * T;
  const double alpha = mc.balance == BalanceMode::None ? 0.0 : 0.3;
  const std::string pre = "model.layers.1.mlp.";
  // Redraw until every routing decision has a margin of at least 1e-3.
  Params p(c);
  std::vector<float> x;
  uint32_t seed = 100;
  for (;; ++seed) {
    ASSERT_LT(seed, 400u) << "no margin-safe draw";
    randomise(p, seed);
    x = random_floats(size_t(m * D), seed + 1000);
    DParams dp(p);
    if (ref::moe(c, dp, pre, Vec(x.begin(), x.end()), B, T, mc.balance).min_margin >= 1e-3) break;
  }
  Params g(c);
  const ModelP w = bind_params(c, p);
  const ModelG gw = bind_grads(c, g);
  auto r = random_floats(size_t(m * D), 11);
  std::vector<float> y(size_t(m * D)), dx(size_t(m * D), 0.0f);
  const RopeTable rope(c);  // unused by the MoE
  const StepContext ctx{
      .config = c, .rope = rope, .batch = B, .seq_len = T, .balance = mc.balance, .balance_weight = float(alpha)};
  MoeActs acts;
  moe_forward(ctx, w.layers[1].moe, x.data(), y.data(), acts);
  moe_backward(ctx, w.layers[1].moe, gw.layers[1].moe, x.data(), acts, r.data(), dx.data());
  DParams dp(p);
  Vec xd(x.begin(), x.end());
  const ref::MoeOut base = ref::moe(c, dp, pre, xd, B, T, mc.balance);
  EXPECT_LE(rel(Vec(y.begin(), y.end()), base.y), 1e-6);
  EXPECT_NEAR(acts.balance, base.balance, 1e-6 * std::max(1.0, base.balance));
  int64_t routed = 0;
  for (int64_t v : acts.load) routed += v;
  EXPECT_EQ(routed, m * c.num_experts_per_tok);
  auto f = [&] {
    const ref::MoeOut o = ref::moe(c, dp, pre, xd, B, T, mc.balance);
    return dot(o.y, r) + alpha * o.balance;
  };
  const double ex = fd_check(xd, dx.data(), f);
  EXPECT_LE(ex, kTol) << "dx";
  const double ew = check_params(g, dp, {pre}, f, 200);
  std::printf("[ moe %s ] dx %.3g, worst weight %.3g (seed %u)\n", mc.name, ex, ew, seed);
}

INSTANTIATE_TEST_SUITE_P(
    Routers, MoeGrad,
    ::testing::Values(
        // V3: sigmoid + bias + 4 groups / top-2, normalised, scale 2.5, one shared expert, sequence-wise loss.
        MoeCase{"v3_sigmoid_groups_auxfree", "deepseek_v3", ScoringFunc::Sigmoid, TopkMethod::NoauxTc, 4, 2, 1, true,
                BalanceMode::AuxFree},
        // V2-Lite: softmax, greedy, not normalised (scale applies), two shared experts, batch-wise aux loss.
        MoeCase{"v2_softmax_greedy_auxloss", "deepseek_v2", ScoringFunc::Softmax, TopkMethod::Greedy, 1, 1, 2, false,
                BalanceMode::AuxLoss},
        // V2: softmax, group-limited (max of group, no bias), normalised (so no scale), no shared expert.
        MoeCase{"v2_softmax_grouplimited_norm", "deepseek_v2", ScoringFunc::Softmax, TopkMethod::GroupLimitedGreedy, 2,
                1, 0, true, BalanceMode::None},
        // V3 layout with softmax scores, normalised (+1e-20), scaled; sequence-wise loss.
        MoeCase{"v3_softmax_norm_auxfree", "deepseek_v3", ScoringFunc::Softmax, TopkMethod::NoauxTc, 1, 1, 1, true,
                BalanceMode::AuxFree}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(GradCheck, HeadCrossEntropy) {
  const int64_t n = 7, V = 11, D = 6;
  auto hn = random_floats(size_t(n * D), 21), head = random_floats(size_t(V * D), 22, 0.7f);
  std::vector<CeTarget> targets;
  std::vector<std::pair<int64_t, int32_t>> rows;
  for (int64_t i = 0; i < n; i += 1)
    if (i != 3) {  // a row without a target gets no gradient
      targets.push_back({i, int32_t((5 * i + 2) % V)});
      rows.push_back({i, int32_t((5 * i + 2) % V)});
    }
  std::vector<float> dhn(size_t(n * D), 0.0f), dhead(size_t(V * D), 0.0f);
  const float coef = 0.37f;
  const double loss = head_cross_entropy(hn.data(), head.data(), V, D, targets, coef, dhn.data(), dhead.data());
  Vec hd(hn.begin(), hn.end()), wd(head.begin(), head.end());
  auto f = [&] { return coef * ref::ce_sum(hd, wd.data(), V, D, rows); };
  EXPECT_NEAR(coef * loss, f(), 1e-5);
  EXPECT_LE(fd_check(hd, dhn.data(), f), kTol);
  EXPECT_LE(fd_check(wd, dhead.data(), f), kTol);
  EXPECT_EQ(head_cross_entropy(hn.data(), head.data(), V, D, targets, coef, nullptr, nullptr), loss);
}

// ---------------------------------------------------------------------------------------------------------
// The whole objective: forward_backward against the float64 reference model, every tensor.

struct ModelCase {
  const char* name;
  bool mtp, v2;
  BalanceMode balance;
};

void PrintTo(const ModelCase& c, std::ostream* os) { *os << c.name; }

class ModelGrad : public ::testing::TestWithParam<ModelCase> {};

TEST_P(ModelGrad, WholeObjectiveMatchesFiniteDifferences) {
  const ModelCase& mc = GetParam();
  ModelConfig c = base_config();
  c.hidden_size = 8;
  c.intermediate_size = 7;
  c.vocab_size = 13;
  c.num_nextn_predict_layers = mc.mtp ? 1 : 0;
  c.rope_scaling = yarn();
  if (mc.v2) {
    c.model_type = "deepseek_v2";
    c.scoring_func = ScoringFunc::Softmax;
    c.topk_method = TopkMethod::Greedy;
    c.n_group = c.topk_group = 1;
    c.norm_topk_prob = false;
    c.routed_scaling_factor = 1.0;
    c.n_shared_experts = 2;
    c.q_lora_rank = 0;
    c.qk_rope_head_dim = 4;
    c.rope_scaling.reset();
    c.tie_word_embeddings = true;
  }
  const int64_t B = 2, T = 6;
  const LossOptions opt{.mtp_lambda = 0.3, .balance_alpha = 0.05, .mode = mc.balance};
  const float grad_scale = 0.7f;
  std::vector<int32_t> tokens(size_t(B * T));
  Params p(c);
  uint32_t seed = 200;
  for (;; ++seed) {
    ASSERT_LT(seed, 600u) << "no margin-safe draw";
    randomise(p, seed);
    std::mt19937 gen(seed);
    for (auto& t : tokens) t = int32_t(gen() % uint32_t(c.vocab_size));
    DParams dp(p);
    ref::Tally tally;
    ref::model_loss(c, dp, tokens.data(), B, T, opt, tally);
    if (tally.min_margin >= 1e-3) break;
  }
  Params g(c);
  const StepResult r = forward_backward(c, p, tokens.data(), B, T, opt, g, grad_scale);
  DParams dp(p);
  auto f = [&] {
    ref::Tally tally;
    return grad_scale * ref::model_loss(c, dp, tokens.data(), B, T, opt, tally);
  };
  EXPECT_NEAR(grad_scale * r.loss, f(), 1e-5 * std::fabs(f()));
  EXPECT_EQ(r.routing.size(), size_t(1 + (mc.mtp ? 1 : 0)));
  const double worst = check_params(g, dp, {"model.", "lm_head."}, f, 60);
  std::printf("[ model %s ] loss %.6f, worst tensor %.3g (seed %u)\n", mc.name, r.loss, worst, seed);
}

INSTANTIATE_TEST_SUITE_P(Objectives, ModelGrad,
                         ::testing::Values(ModelCase{"v3_mtp_auxfree", true, false, BalanceMode::AuxFree},
                                           ModelCase{"v2_tied_auxloss", false, true, BalanceMode::AuxLoss},
                                           ModelCase{"v3_mtp_nobalance", true, false, BalanceMode::None}),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace dsv3::train
