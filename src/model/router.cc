#include "model/router.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "kernels/ops.h"

namespace dsv3 {

constexpr int64_t kMaxGroups = 1024;

RouterParams RouterParams::from(const ModelConfig& c) {
  RouterParams p;
  p.n_experts = c.n_routed_experts;
  p.top_k = c.num_experts_per_tok;
  p.n_group = c.n_group;
  p.topk_group = c.topk_group;
  p.scoring = c.scoring_func;
  p.norm_topk_prob = c.norm_topk_prob;
  p.scale = float(c.routed_scaling_factor);
  p.scale_only_unnormalised = c.model_type == "deepseek_v2";
  // Group-limited routing only for the methods that use it (V2's "greedy" ignores n_group).
  if (c.topk_method == TopkMethod::Greedy) p.n_group = p.topk_group = 1;
  if (p.n_group > kMaxGroups) fail("n_group = {} exceeds the supported {}", p.n_group, kMaxGroups);
  return p;
}

namespace {
// Index of the largest value among v[0, n) not yet taken; lower index wins ties.
int64_t argmax_excluding(const float* v, int64_t n, const bool* taken) {
  int64_t best = -1;
  for (int64_t i = 0; i < n; ++i)
    if (!taken[i] && (best < 0 || v[i] > v[best])) best = i;
  return best;
}
}  // namespace

void route(const RouterParams& p, const float* logits, const float* bias, int64_t* experts, float* weights,
           float* scratch, float* scores_out) {
  const int64_t E = p.n_experts;
  float* s = scratch;        // [E] affinities
  float* sel = scratch + E;  // [E] selection scores
  float* gscore = sel + E;   // [n_group]
  std::copy(logits, logits + E, s);
  if (p.scoring == ScoringFunc::Softmax) {
    kernels::softmax(s, E);
  } else {
    for (int64_t i = 0; i < E; ++i) s[i] = 1.0f / (1.0f + std::exp(-s[i]));
  }
  if (scores_out) std::copy(s, s + E, scores_out);
  for (int64_t i = 0; i < E; ++i) sel[i] = bias ? s[i] + bias[i] : s[i];

  if (p.n_group > 1) {
    const int64_t per = E / p.n_group;
    for (int64_t g = 0; g < p.n_group; ++g) {
      const float* v = sel + g * per;
      if (bias) {  // sum of the top-2
        float a = -std::numeric_limits<float>::infinity(), b2 = a;
        for (int64_t i = 0; i < per; ++i) {
          if (v[i] > a) {
            b2 = a;
            a = v[i];
          } else if (v[i] > b2) {
            b2 = v[i];
          }
        }
        gscore[g] = per >= 2 ? a + b2 : a;
      } else {
        gscore[g] = *std::max_element(v, v + per);
      }
    }
    // Keep the topk_group best groups; mask the rest.
    bool keep[kMaxGroups] = {};
    bool taken[kMaxGroups] = {};
    for (int64_t k = 0; k < p.topk_group; ++k) {
      const int64_t g = argmax_excluding(gscore, p.n_group, taken);
      taken[g] = keep[g] = true;
    }
    for (int64_t g = 0; g < p.n_group; ++g)
      if (!keep[g]) std::fill(sel + g * per, sel + (g + 1) * per, -std::numeric_limits<float>::infinity());
  }

  // Top-k by selection score (k is small: a partial selection is simplest and exact).
  float sum = 0.0f;
  for (int64_t k = 0; k < p.top_k; ++k) {
    int64_t best = -1;
    for (int64_t i = 0; i < E; ++i) {
      bool used = false;
      for (int64_t j = 0; j < k; ++j) used |= experts[j] == i;
      if (!used && (best < 0 || sel[i] > sel[best])) best = i;
    }
    experts[k] = best;
    weights[k] = s[best];
    sum += s[best];
  }
  const bool normalise = p.norm_topk_prob && p.top_k > 1;
  if (normalise) {
    const float denom = p.scoring == ScoringFunc::Softmax ? sum + 1e-20f : sum;
    for (int64_t k = 0; k < p.top_k; ++k) weights[k] /= denom;
  }
  if (!(p.scale_only_unnormalised && normalise))
    for (int64_t k = 0; k < p.top_k; ++k) weights[k] *= p.scale;
}

}  // namespace dsv3
