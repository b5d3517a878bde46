// The one weight schema of the DeepSeek-V3 family: the only place that spells a Hugging Face tensor name,
// its shape and its role. visit_model() walks the layer tree of a config and calls a visitor with each
// tensor's WeightSpec and the field of a ModelW<K> that holds it; every consumer is such a visitor:
//   enumerate_weights (this file)   the list of tensors a checkpoint holds: init, quantize, train::Params
//   bind_weights (model/weights.h)  inference views over a checkpoint (K = kernels::WeightRef matrices)
//   bind_params / bind_grads        training float32 buffers (train/layout.h)
//   count_params                    total / activated parameters (`dsv3 info`)
// Adding a tensor is one line in visit_layer / visit_model plus its field in the struct below.
//
// The structs are one family parameterised on a handle kit K: K::Mat holds a matrix, K::Vec a vector
// (norm weights), K::Bias the router's e_score_correction_bias (no gradient: const even in the gradient kit).
//
// HF name                                  reference (inference/model.py)
//   model.embed_tokens                     embed
//   model.layers.L.input_layernorm         attn_norm
//   self_attn.q_a_proj / q_a_layernorm     wq_a / q_norm          (q_lora_rank > 0)
//   self_attn.q_b_proj | self_attn.q_proj  wq_b | wq
//   self_attn.kv_a_proj_with_mqa           wkv_a
//   self_attn.kv_a_layernorm               kv_norm
//   self_attn.kv_b_proj                    wkv_b
//   self_attn.o_proj                       wo
//   self_attn.indexer.{wq_b,wk,k_norm,weights_proj}   indexer.*   (deepseek_v32: DSA's lightning indexer)
//   model.layers.L.post_attention_layernorm ffn_norm
//   mlp.gate_proj / up_proj / down_proj    w1 / w3 / w2           (dense layers, experts, shared experts)
//   mlp.gate.weight / e_score_correction_bias   gate.weight / gate.bias
//   model.norm, lm_head                    norm, head
//   layers.(N+k).enorm/hnorm/eh_proj/shared_head.{norm,head}/embed_tokens   the k-th MTP module
#pragma once

#include <fmt/format.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "model/config.h"

namespace dsv3 {

enum class WeightRole {
  Embedding,   // [vocab, hidden]; never FP8 nor block-quantized
  Linear,      // [out, in]; FP8-quantizable with weight_scale_inv, block-quantizable
  Gate,        // router [n_routed_experts, hidden]; never FP8 nor block-quantized (DeepSeek's release)
  Norm,        // RMSNorm weight [dim]
  Bias,        // e_score_correction_bias [n_routed_experts]; selection only, no gradient
  Head,        // output head [vocab, hidden]; never FP8, block-quantizable
  Projection,  // a small matrix read as stored, never FP8 nor block-quantized (the indexer's weights_proj,
               // BF16 in DeepSeek's release)
  NormBias,    // LayerNorm bias [dim] (the indexer's k_norm.bias); initialised to zero, trained, not decayed
};

struct WeightSpec {
  std::string name;  // HF name, e.g. "model.layers.3.self_attn.kv_b_proj.weight"
  std::vector<int64_t> shape;
  WeightRole role;
  bool optional = false;  // MTP copies of embedding/head may be absent (then the main ones are used)
  int64_t layer = -1;     // HF layer index (MTP modules: num_hidden_layers + k); -1 outside the layers
  int64_t expert = -1;    // routed expert index for the experts' matrices, else -1
  bool mtp = false;       // part of an MTP module
  bool indexer = false;   // part of a V3.2 lightning indexer (self_attn.indexer.*)

  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
};

// ---- The layer tree, one struct family over a handle kit K.

template <class K>
struct FfnW {            // SwiGLU: w2(silu(w1 x) ⊙ w3 x)
  typename K::Mat w1{};  // gate_proj [inter, hidden]
  typename K::Mat w2{};  // down_proj [hidden, inter]
  typename K::Mat w3{};  // up_proj   [inter, hidden]
  int64_t inter = 0;
};

// DeepSeek Sparse Attention's lightning indexer (V3.2; model/indexer.h), prefix self_attn.indexer.
template <class K>
struct IndexerW {
  typename K::Mat wq_b{};          // [index_n_heads * index_head_dim, q_lora_rank]
  typename K::Mat wk{};            // [index_head_dim, hidden]
  typename K::Vec k_norm{};        // LayerNorm weight [index_head_dim]
  typename K::Vec k_norm_bias{};   // LayerNorm bias [index_head_dim]
  typename K::Mat weights_proj{};  // [index_n_heads, hidden], as stored
};

template <class K>
struct MlaW {
  typename K::Mat wq_a{};     // [q_lora_rank, hidden]                       (q_lora_rank > 0)
  typename K::Vec q_norm{};   // [q_lora_rank]
  typename K::Mat wq_b{};     // [heads * (qk_nope + qk_rope), q_lora_rank]
  typename K::Mat wq{};       // [heads * (qk_nope + qk_rope), hidden]        (q_lora_rank = 0)
  typename K::Mat wkv_a{};    // [kv_lora_rank + qk_rope_head_dim, hidden]
  typename K::Vec kv_norm{};  // [kv_lora_rank]
  typename K::Mat wkv_b{};    // [heads * (qk_nope_head_dim + v_head_dim), kv_lora_rank]
  typename K::Mat wo{};       // [hidden, heads * v_head_dim]
  bool has_indexer = false;   // deepseek_v32
  IndexerW<K> indexer;
};

template <class K>
struct MoeW {
  typename K::Mat gate{};        // [n_routed_experts, hidden]
  typename K::Bias bias{};       // [n_routed_experts] (noaux_tc) or empty
  std::vector<FfnW<K>> experts;  // n_routed_experts (outside a SchemaScope's range: left empty)
  bool has_shared = false;
  FfnW<K> shared;  // width n_shared_experts * moe_intermediate_size
};

template <class K>
struct LayerW {
  int64_t index = 0;            // HF layer index
  typename K::Vec attn_norm{};  // input_layernorm [hidden]
  typename K::Vec ffn_norm{};   // post_attention_layernorm [hidden]
  MlaW<K> attn;
  bool is_moe = false;
  FfnW<K> mlp;  // dense layers
  MoeW<K> moe;  // MoE layers
};

template <class K>
struct MtpW {
  typename K::Vec enorm{};
  typename K::Vec hnorm{};
  typename K::Mat eh_proj{};  // [hidden, 2 * hidden], input = concat[enorm(embed), hnorm(h)]
  LayerW<K> layer;
  typename K::Vec head_norm{};      // shared_head.norm
  typename K::Mat embed{}, head{};  // the module's copies, or the main model's when absent
};

template <class K>
struct ModelW {
  typename K::Mat embed{};  // [vocab, hidden]
  std::vector<LayerW<K>> layers;
  typename K::Vec norm{};
  typename K::Mat head{};  // [vocab, hidden]; the embedding with tie_word_embeddings
  std::vector<MtpW<K>> mtp;
};

// Which routed experts a walk visits: [expert_begin, expert_end) (end < 0: all). Expert parallelism binds
// a rank's share; count_params walks one expert and multiplies.
struct SchemaScope {
  int64_t expert_begin = 0, expert_end = -1;
  // A pipeline rank's share (train/pipeline.h pipeline_scope): the main decoder layers held, a union of
  // [begin, end) ranges (empty: every layer); embed: model.embed_tokens; tail: model.norm, lm_head and the MTP
  // modules. Tensors outside are not visited (their handles stay default: null / empty).
  std::vector<std::pair<int64_t, int64_t>> layers;
  bool embed = true, tail = true;
  bool has(int64_t e) const { return e >= expert_begin && (expert_end < 0 || e < expert_end); }
  bool has_layer(int64_t l) const {
    if (layers.empty()) return true;
    for (const auto& [b, e] : layers)
      if (l >= b && l < e) return true;
    return false;
  }
};

// ---- The walk. `visit(const WeightSpec&, Handle&)` is called for every tensor, in checkpoint order.

template <class K, class Visit>
void visit_ffn(const std::string& p, int64_t hidden, int64_t inter, WeightSpec base, FfnW<K>& w, Visit& visit) {
  w.inter = inter;
  auto spec = [&](const char* name, std::vector<int64_t> shape) {
    WeightSpec s = base;
    s.name = p + name;
    s.shape = std::move(shape);
    s.role = WeightRole::Linear;
    return s;
  };
  visit(spec("gate_proj.weight", {inter, hidden}), w.w1);
  visit(spec("up_proj.weight", {inter, hidden}), w.w3);
  visit(spec("down_proj.weight", {hidden, inter}), w.w2);
}

template <class K, class Visit>
void visit_layer(const ModelConfig& c, int64_t l, LayerW<K>& w, Visit& visit, const SchemaScope& scope = {}) {
  const std::string p = fmt::format("model.layers.{}.", l), a = p + "self_attn.";
  const int64_t D = c.hidden_size, H = c.num_attention_heads, E = c.n_routed_experts;
  const bool mtp = l >= c.num_hidden_layers;
  auto spec = [&](std::string name, std::vector<int64_t> shape, WeightRole role) {
    return WeightSpec{.name = std::move(name), .shape = std::move(shape), .role = role, .layer = l, .mtp = mtp};
  };
  using R = WeightRole;
  w.index = l;
  visit(spec(p + "input_layernorm.weight", {D}, R::Norm), w.attn_norm);
  MlaW<K>& m = w.attn;
  if (c.q_lora_rank > 0) {
    visit(spec(a + "q_a_proj.weight", {c.q_lora_rank, D}, R::Linear), m.wq_a);
    visit(spec(a + "q_a_layernorm.weight", {c.q_lora_rank}, R::Norm), m.q_norm);
    visit(spec(a + "q_b_proj.weight", {H * c.qk_head_dim(), c.q_lora_rank}, R::Linear), m.wq_b);
  } else {
    visit(spec(a + "q_proj.weight", {H * c.qk_head_dim(), D}, R::Linear), m.wq);
  }
  visit(spec(a + "kv_a_proj_with_mqa.weight", {c.kv_lora_rank + c.qk_rope_head_dim, D}, R::Linear), m.wkv_a);
  visit(spec(a + "kv_a_layernorm.weight", {c.kv_lora_rank}, R::Norm), m.kv_norm);
  visit(spec(a + "kv_b_proj.weight", {H * (c.qk_nope_head_dim + c.v_head_dim), c.kv_lora_rank}, R::Linear), m.wkv_b);
  visit(spec(a + "o_proj.weight", {D, H * c.v_head_dim}, R::Linear), m.wo);
  m.has_indexer = c.layer_has_indexer(l);  // not in a "shared" layer of indexer_types
  if (m.has_indexer) {
    const std::string ix = a + "indexer.";
    const int64_t DI = c.index_head_dim;
    IndexerW<K>& x = m.indexer;
    auto ispec = [&](std::string name, std::vector<int64_t> shape, WeightRole role) {
      WeightSpec s = spec(std::move(name), std::move(shape), role);
      s.indexer = true;
      return s;
    };
    visit(ispec(ix + "wq_b.weight", {c.index_n_heads * DI, c.q_lora_rank}, R::Linear), x.wq_b);
    visit(ispec(ix + "wk.weight", {DI, D}, R::Linear), x.wk);
    visit(ispec(ix + "k_norm.weight", {DI}, R::Norm), x.k_norm);
    visit(ispec(ix + "k_norm.bias", {DI}, R::NormBias), x.k_norm_bias);
    visit(ispec(ix + "weights_proj.weight", {c.index_n_heads, D}, R::Projection), x.weights_proj);
  }
  visit(spec(p + "post_attention_layernorm.weight", {D}, R::Norm), w.ffn_norm);
  w.is_moe = c.is_moe_layer(l);
  if (w.is_moe) {
    MoeW<K>& e = w.moe;
    visit(spec(p + "mlp.gate.weight", {E, D}, R::Gate), e.gate);
    if (c.topk_method == TopkMethod::NoauxTc) visit(spec(p + "mlp.gate.e_score_correction_bias", {E}, R::Bias), e.bias);
    e.experts.resize(size_t(E));
    for (int64_t i = 0; i < E; ++i) {
      if (!scope.has(i)) continue;
      WeightSpec base = spec("", {}, R::Linear);
      base.expert = i;
      visit_ffn(fmt::format("{}mlp.experts.{}.", p, i), D, c.moe_intermediate_size, base, e.experts[size_t(i)], visit);
    }
    e.has_shared = c.n_shared_experts > 0;
    if (e.has_shared)
      visit_ffn(p + "mlp.shared_experts.", D, c.n_shared_experts * c.moe_intermediate_size, spec("", {}, R::Linear),
                e.shared, visit);
  } else {
    visit_ffn(p + "mlp.", D, c.intermediate_size, spec("", {}, R::Linear), w.mlp, visit);
  }
}

// The k-th MTP module (HF layer num_hidden_layers + k): its own tensors around one decoder layer.
template <class K, class Visit>
void visit_mtp(const ModelConfig& c, int64_t k, MtpW<K>& m, Visit& visit, const SchemaScope& scope = {}) {
  const int64_t l = c.num_hidden_layers + k, V = c.vocab_size, D = c.hidden_size;
  const std::string p = fmt::format("model.layers.{}.", l);
  auto spec = [&](const char* name, std::vector<int64_t> shape, WeightRole role, bool optional = false) {
    return WeightSpec{
        .name = p + name, .shape = std::move(shape), .role = role, .optional = optional, .layer = l, .mtp = true};
  };
  using R = WeightRole;
  visit(spec("enorm.weight", {D}, R::Norm), m.enorm);
  visit(spec("hnorm.weight", {D}, R::Norm), m.hnorm);
  visit(spec("eh_proj.weight", {D, 2 * D}, R::Linear), m.eh_proj);
  visit_layer(c, l, m.layer, visit, scope);
  visit(spec("shared_head.norm.weight", {D}, R::Norm), m.head_norm);
  visit(spec("embed_tokens.weight", {V, D}, R::Embedding, /*optional=*/true), m.embed);
  visit(spec("shared_head.head.weight", {V, D}, R::Head, /*optional=*/true), m.head);
}

// The whole model (or the scope's part of it): embedding, layers, final norm, head, MTP modules. Afterwards the head is
// the embedding when tied, and an MTP module's absent copies (K::is_set false) are the main model's.
template <class K, class Visit>
void visit_model(const ModelConfig& c, ModelW<K>& w, Visit&& visit, const SchemaScope& scope = {}) {
  const int64_t V = c.vocab_size, D = c.hidden_size;
  using R = WeightRole;
  if (scope.embed)
    visit(WeightSpec{.name = "model.embed_tokens.weight", .shape = {V, D}, .role = R::Embedding}, w.embed);
  w.layers.resize(size_t(c.num_hidden_layers));
  for (int64_t l = 0; l < c.num_hidden_layers; ++l)
    if (scope.has_layer(l)) visit_layer(c, l, w.layers[size_t(l)], visit, scope);
  w.mtp.resize(size_t(c.num_nextn_predict_layers));
  if (!scope.tail) return;
  visit(WeightSpec{.name = "model.norm.weight", .shape = {D}, .role = R::Norm}, w.norm);
  if (c.tie_word_embeddings)
    w.head = w.embed;
  else
    visit(WeightSpec{.name = "lm_head.weight", .shape = {V, D}, .role = R::Head}, w.head);
  for (int64_t k = 0; k < c.num_nextn_predict_layers; ++k) {
    MtpW<K>& m = w.mtp[size_t(k)];
    visit_mtp(c, k, m, visit, scope);
    if (!K::is_set(m.embed)) m.embed = w.embed;
    if (!K::is_set(m.head)) m.head = w.head;
  }
}

// The kit of a walk that only names tensors.
struct SpecKit {
  struct None {};
  using Mat = None;
  using Vec = None;
  using Bias = None;
  static bool is_set(None) { return true; }
};

// Every weight of the model the config describes, main layers then MTP modules, in checkpoint order.
std::vector<WeightSpec> enumerate_weights(const ModelConfig& c, const SchemaScope& scope = {});

// Parameter counts of the architecture the config describes (weights only: no FP8 scales, no router
// e_score_correction_bias).
struct ParamCounts {
  int64_t total_main = 0;  // embedding + layers + final norm + head (MTP modules excluded)
  int64_t activated = 0;   // per token in the main model, head included, embedding (a lookup) excluded
  int64_t mtp = 0;         // all MTP modules, excluding their optional copies of the embedding and head
};
// Walks one dense and one MoE layer (a single routed expert, multiplied), so any sane config counts at once.
ParamCounts count_params(const ModelConfig& c);

}  // namespace dsv3
