// Routing corner cases, with expectations worked out by hand from the rules in DESIGN.md / the reference.
#include "model/router.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace dsv3 {
namespace {

float logit_of(float s) { return std::log(s / (1.0f - s)); }  // inverse sigmoid

struct Routed {
  std::vector<int64_t> experts;
  std::vector<float> weights;
};

Routed run(const RouterParams& p, const std::vector<float>& logits, const std::vector<float>* bias = nullptr) {
  Routed r{std::vector<int64_t>(size_t(p.top_k)), std::vector<float>(size_t(p.top_k))};
  std::vector<float> scratch(size_t(p.scratch_floats()));
  route(p, logits.data(), bias ? bias->data() : nullptr, r.experts.data(), r.weights.data(), scratch.data());
  return r;
}

RouterParams sigmoid_params(int64_t E, int64_t k, int64_t groups, int64_t keep) {
  return {.n_experts = E,
          .top_k = k,
          .n_group = groups,
          .topk_group = keep,
          .scoring = ScoringFunc::Sigmoid,
          .norm_topk_prob = true,
          .scale = 2.5f};
}

TEST(Router, BiasChangesSelectionButNotGateWeights) {
  // s = [0.9, 0.8, 0.3, 0.2]; bias lifts expert 3 above expert 1.
  const std::vector<float> s{0.9f, 0.8f, 0.3f, 0.2f};
  std::vector<float> logits;
  for (float v : s) logits.push_back(logit_of(v));
  const std::vector<float> bias{0.0f, 0.0f, 0.0f, 0.7f};  // selection scores 0.9, 0.8, 0.3, 0.9
  const Routed r = run(sigmoid_params(4, 2, 1, 1), logits, &bias);
  ASSERT_EQ(r.experts, (std::vector<int64_t>{0, 3}));  // tie 0.9 = 0.9 → lower index first
  // Weights from the unbiased s, normalised over the selected, × 2.5.
  EXPECT_NEAR(r.weights[0], 0.9f / (0.9f + 0.2f) * 2.5f, 1e-5);
  EXPECT_NEAR(r.weights[1], 0.2f / (0.9f + 0.2f) * 2.5f, 1e-5);
}

TEST(Router, GroupLimitedRoutingUsesTopTwoSumWithBias) {
  // 3 groups of 3. Group 0 has one very strong expert (0.95) and weak ones: top-2 sum 0.95 + 0.1 = 1.05.
  // Group 1: 0.6 + 0.55 = 1.15. Group 2: 0.5 + 0.5 = 1.0. Keep 1 group → group 1, although the single best
  // expert lives in group 0 (with max-per-group, group 0 would win).
  const std::vector<float> s{0.95f, 0.1f, 0.05f, 0.6f, 0.55f, 0.01f, 0.5f, 0.5f, 0.02f};
  std::vector<float> logits;
  for (float v : s) logits.push_back(logit_of(v));
  const std::vector<float> zero(9, 0.0f);
  const Routed r = run(sigmoid_params(9, 2, 3, 1), logits, &zero);
  EXPECT_EQ(r.experts, (std::vector<int64_t>{3, 4}));
  // Without a bias (V2 style) the group score is the max: group 0 wins and supplies both experts.
  RouterParams p = sigmoid_params(9, 2, 3, 1);
  const Routed r2 = run(p, logits, nullptr);
  EXPECT_EQ(r2.experts, (std::vector<int64_t>{0, 1}));
}

TEST(Router, ExpertsOutsideKeptGroupsAreNeverChosenEvenIfNegativeScoresRemain) {
  // A large negative bias makes the kept group's selection scores negative; masked groups must still lose.
  const std::vector<float> s{0.9f, 0.9f, 0.2f, 0.1f};
  std::vector<float> logits;
  for (float v : s) logits.push_back(logit_of(v));
  const std::vector<float> bias{0.0f, 0.0f, -5.0f, -5.0f};
  RouterParams p = sigmoid_params(4, 2, 2, 1);
  const Routed r = run(p, logits, &bias);
  EXPECT_EQ(r.experts, (std::vector<int64_t>{0, 1}));
  // Keep group 1 only by flipping the biases: then both experts come from group 1 despite scores < 0.
  const std::vector<float> bias2{-5.0f, -5.0f, 0.0f, 0.0f};
  const Routed r2 = run(p, logits, &bias2);
  EXPECT_EQ(r2.experts, (std::vector<int64_t>{2, 3}));
}

TEST(Router, SoftmaxWithoutNormalisationKeepsProbabilities) {
  RouterParams p{.n_experts = 4,
                 .top_k = 2,
                 .scoring = ScoringFunc::Softmax,
                 .norm_topk_prob = false,
                 .scale = 1.0f,
                 .scale_only_unnormalised = true};
  const std::vector<float> logits{1.0f, 2.0f, 3.0f, 0.0f};
  const Routed r = run(p, logits);
  const double z = std::exp(1.0) + std::exp(2.0) + std::exp(3.0) + 1.0;
  EXPECT_EQ(r.experts, (std::vector<int64_t>{2, 1}));
  EXPECT_NEAR(r.weights[0], std::exp(3.0) / z, 1e-6);
  EXPECT_NEAR(r.weights[1], std::exp(2.0) / z, 1e-6);
}

TEST(Router, V2ScalesOnlyUnnormalisedWeights) {
  const std::vector<float> logits{1.0f, 2.0f, 3.0f, 0.0f};
  RouterParams p{.n_experts = 4,
                 .top_k = 2,
                 .scoring = ScoringFunc::Softmax,
                 .norm_topk_prob = false,
                 .scale = 16.0f,
                 .scale_only_unnormalised = true};
  const double z = std::exp(1.0) + std::exp(2.0) + std::exp(3.0) + 1.0;
  EXPECT_NEAR(run(p, logits).weights[0], 16.0 * std::exp(3.0) / z, 1e-4);
  p.norm_topk_prob = true;  // normalised: the factor is not applied (HF DeepseekV2)
  const Routed r = run(p, logits);
  EXPECT_NEAR(r.weights[0] + r.weights[1], 1.0f, 1e-6);
}

TEST(Router, ConfigMapping) {
  ModelConfig c;
  c.model_type = "deepseek_v2";
  c.n_routed_experts = 64;
  c.num_experts_per_tok = 6;
  c.n_group = 8;
  c.topk_group = 3;
  c.topk_method = TopkMethod::Greedy;  // greedy ignores groups
  RouterParams p = RouterParams::from(c);
  EXPECT_EQ(p.n_group, 1);
  EXPECT_TRUE(p.scale_only_unnormalised);
  c.topk_method = TopkMethod::GroupLimitedGreedy;
  EXPECT_EQ(RouterParams::from(c).n_group, 8);
}

}  // namespace
}  // namespace dsv3
