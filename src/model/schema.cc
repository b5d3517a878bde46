#include "model/schema.h"

#include <limits>

#include "core/error.h"

namespace dsv3 {

std::vector<WeightSpec> enumerate_weights(const ModelConfig& c, const SchemaScope& scope) {
  std::vector<WeightSpec> out;
  ModelW<SpecKit> w;
  visit_model(
      c, w, [&](const WeightSpec& s, SpecKit::None&) { out.push_back(s); }, scope);
  return out;
}

namespace {

using i128 = __int128;

struct Count {
  i128 total = 0, activated = 0;
};

int64_t narrow(i128 v) {
  if (v > i128(std::numeric_limits<int64_t>::max())) fail("parameter count overflows int64");
  return int64_t(v);
}

}  // namespace

// Parameter counts.
//
// Conventions (weights only):
//   * FP8 weight_scale_inv tensors and the routers' e_score_correction_bias are not counted: they are
//     scales and a balancing statistic, not weights trained by the optimizer (the bias is updated by the
//     load-balancing rule). With them DeepSeek-V3 has 14,848 more "parameters"; the 671.0B is unchanged.
//   * total_main: embedding + num_hidden_layers decoder layers + final norm + lm_head (once if tied).
//   * activated: what one token multiplies through in the main model: every layer's attention and norms,
//     dense MLPs, the router and the num_experts_per_tok routed + all shared experts of MoE layers, the final
//     norm and the lm_head. The embedding is excluded: a token reads one row of it, it is a lookup rather
//     than a matmul. This is DeepSeek's own convention: it gives 36.6B for DeepSeek-V3 (README_WEIGHTS.md:
//     "36.6B including 0.9B for the output Head"), which the paper rounds to 37B; counting the embedding
//     too would give 37.6B. The same convention gives DeepSeek-V2-Lite 2.45B (paper: 2.4B; 2.66B with the
//     embedding).
//   * mtp: each MTP module's enorm, hnorm, eh_proj [hidden, 2*hidden], one decoder layer (MoE when
//     is_moe_layer(num_hidden_layers + k)) and shared_head.norm. Its embed_tokens and shared_head.head are
//     shared with the main model (the checkpoint stores copies) and not counted: 11.6B for DeepSeek-V3
//     (README_WEIGHTS.md: "11.5B unique parameters").
ParamCounts count_params(const ModelConfig& c) {
  const SchemaScope one_expert{.expert_begin = 0, .expert_end = 1};
  const i128 E = c.n_routed_experts, top_k = c.num_experts_per_tok;
  // Adds one walk's tensors to `n`: each routed expert's matrices stand for all E of them (k per token).
  auto counter = [&](Count& n) {
    return [&n, E, top_k](const WeightSpec& s, SpecKit::None&) {
      if (s.role == WeightRole::Bias || s.optional) return;
      i128 numel = 1;  // in 128 bits: two sane dimensions may pass int64
      for (int64_t d : s.shape) numel *= d;
      if (s.expert >= 0) {
        n.total += numel * E;
        n.activated += numel * top_k;
      } else if (s.role == WeightRole::Embedding) {
        n.total += numel;  // a lookup, not a product
      } else {
        n.total += numel;
        n.activated += numel;
      }
    };
  };
  // A layer's count, and an MTP module's, depends only on whether its layer is an MoE layer.
  Count layers[2], modules[2];
  bool layer_known[2] = {false, false}, module_known[2] = {false, false};
  Count main;
  {  // the tensors outside the layers: embedding, final norm, head
    ModelConfig outer = c;
    outer.num_hidden_layers = 0;
    outer.num_nextn_predict_layers = 0;
    ModelW<SpecKit> w;
    visit_model(outer, w, counter(main));
    if (c.tie_word_embeddings) main.activated += i128(c.vocab_size) * c.hidden_size;  // the head is the embedding
  }
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const int kind = c.is_moe_layer(l) ? 1 : 0;
    if (!layer_known[kind]) {
      LayerW<SpecKit> w;
      auto visit = counter(layers[kind]);
      visit_layer(c, l, w, visit, one_expert);
      layer_known[kind] = true;
    }
    main.total += layers[kind].total;
    main.activated += layers[kind].activated;
  }
  i128 mtp = 0;
  for (int64_t k = 0; k < c.num_nextn_predict_layers; ++k) {
    const int kind = c.is_moe_layer(c.num_hidden_layers + k) ? 1 : 0;
    if (!module_known[kind]) {
      MtpW<SpecKit> m;
      auto visit = counter(modules[kind]);
      visit_mtp(c, k, m, visit, one_expert);
      module_known[kind] = true;
    }
    mtp += modules[kind].total;
  }
  return {.total_main = narrow(main.total), .activated = narrow(main.activated), .mtp = narrow(mtp)};
}

}  // namespace dsv3
