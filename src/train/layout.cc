#include "train/layout.h"

#include <fmt/format.h>

#include <functional>
#include <string>

namespace dsv3::train {

namespace {

template <typename T>
using Lookup = std::function<T*(const std::string&)>;

template <typename T>
FfnT<T> ffn(const Lookup<T>& get, const std::string& p, int64_t inter) {
  return {.w1 = get(p + "gate_proj.weight"), .w2 = get(p + "down_proj.weight"), .w3 = get(p + "up_proj.weight"),
          .inter = inter};
}

template <typename T>
LayerT<T> layer(const ModelConfig& c, const Lookup<T>& get, const Params& names, int64_t l) {
  const std::string p = fmt::format("model.layers.{}.", l), a = p + "self_attn.";
  LayerT<T> lw;
  lw.index = l;
  lw.attn_norm = get(p + "input_layernorm.weight");
  lw.ffn_norm = get(p + "post_attention_layernorm.weight");
  MlaT<T>& m = lw.attn;
  if (c.q_lora_rank > 0) {
    m.wq_a = get(a + "q_a_proj.weight");
    m.q_norm = get(a + "q_a_layernorm.weight");
    m.wq_b = get(a + "q_b_proj.weight");
  } else {
    m.wq = get(a + "q_proj.weight");
  }
  m.wkv_a = get(a + "kv_a_proj_with_mqa.weight");
  m.kv_norm = get(a + "kv_a_layernorm.weight");
  m.wkv_b = get(a + "kv_b_proj.weight");
  m.wo = get(a + "o_proj.weight");
  lw.is_moe = c.is_moe_layer(l);
  if (lw.is_moe) {
    MoeT<T>& e = lw.moe;
    e.gate = get(p + "mlp.gate.weight");
    if (c.topk_method == TopkMethod::NoauxTc) e.bias = names.data(p + "mlp.gate.e_score_correction_bias");
    for (int64_t i = 0; i < c.n_routed_experts; ++i)
      e.experts.push_back(ffn(get, fmt::format("{}mlp.experts.{}.", p, i), c.moe_intermediate_size));
    e.has_shared = c.n_shared_experts > 0;
    if (e.has_shared) e.shared = ffn(get, p + "mlp.shared_experts.", c.n_shared_experts * c.moe_intermediate_size);
  } else {
    lw.mlp = ffn(get, p + "mlp.", c.intermediate_size);
  }
  return lw;
}

template <typename T>
ModelT<T> bind(const ModelConfig& c, const Lookup<T>& get, const Params& names) {
  ModelT<T> w;
  w.embed = get("model.embed_tokens.weight");
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) w.layers.push_back(layer(c, get, names, l));
  w.norm = get("model.norm.weight");
  w.head = c.tie_word_embeddings ? w.embed : get("lm_head.weight");
  for (int64_t k = 0; k < c.num_nextn_predict_layers; ++k) {
    const int64_t l = c.num_hidden_layers + k;
    const std::string p = fmt::format("model.layers.{}.", l);
    MtpT<T> m;
    m.enorm = get(p + "enorm.weight");
    m.hnorm = get(p + "hnorm.weight");
    m.eh_proj = get(p + "eh_proj.weight");
    m.layer = layer(c, get, names, l);
    m.head_norm = get(p + "shared_head.norm.weight");
    w.mtp.push_back(std::move(m));
  }
  return w;
}

}  // namespace

ModelP bind_params(const ModelConfig& c, const Params& p) {
  return bind<const float>(c, [&](const std::string& n) { return p.data(n); }, p);
}

ModelG bind_grads(const ModelConfig& c, Params& g) {
  return bind<float>(c, [&](const std::string& n) { return g.data(n); }, g);
}

}  // namespace dsv3::train
