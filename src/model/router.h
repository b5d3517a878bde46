// Expert selection of DeepSeekMoE (V3 §2.1.2, eqs. 12–16; V2 §2.2), following Gate.forward in DeepSeek's
// inference/model.py:
//   s        = sigmoid(u·e)  (V3)  |  softmax(u·e)  (V2)
//   select on s + b (b = e_score_correction_bias, selection only; absent for V2)
//   n_group > 1: keep the topk_group groups ranked by the sum of their top-2 (s + b) — the max of s when
//   there is no bias — mask the others to −inf, then top-k within the kept groups
//   gate weight = s (unbiased) of the selected, normalised over them when norm_topk_prob, then
//   × routed_scaling_factor. (deepseek_v2 follows HF's DeepseekV2 rule: the factor applies only when the
//   weights are not normalised.)
// Ties are broken towards the lower index, as a stable ordering.
#pragma once

#include <cstdint>

#include "model/config.h"

namespace dsv3 {

struct RouterParams {
  int64_t n_experts = 0, top_k = 0, n_group = 1, topk_group = 1;
  ScoringFunc scoring = ScoringFunc::Sigmoid;
  bool norm_topk_prob = true;
  float scale = 1.0f;
  bool scale_only_unnormalised = false;  // deepseek_v2

  static RouterParams from(const ModelConfig& c);
  int64_t scratch_floats() const { return 2 * n_experts + n_group; }
};

// logits: [n_experts] router logits of one token; bias: [n_experts] or nullptr.
// experts: [top_k] selected ids, in descending order of selection score; weights: [top_k] gate weights;
// scores_out (optional): [n_experts] the unbiased affinities s (the training balance loss needs them).
// scratch: scratch_floats() floats.
void route(const RouterParams& p, const float* logits, const float* bias, int64_t* experts, float* weights,
           float* scratch, float* scores_out = nullptr);

}  // namespace dsv3
