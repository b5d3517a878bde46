#include "plan/flops.h"

namespace dsv3::plan {

namespace {

double mla_linear_params(const ModelConfig& c, double* up_projection) {
  const double h = double(c.hidden_size), H = double(c.num_attention_heads);
  const double q = c.q_lora_rank > 0 ? h * double(c.q_lora_rank) + double(c.q_lora_rank) * H * double(c.qk_head_dim())
                                     : h * H * double(c.qk_head_dim());
  const double q_up = c.q_lora_rank > 0 ? double(c.q_lora_rank) * H * double(c.qk_head_dim()) : 0;
  const double kv_a = h * double(c.kv_lora_rank + c.qk_rope_head_dim);
  const double kv_b = double(c.kv_lora_rank) * H * double(c.qk_nope_head_dim + c.v_head_dim);
  const double o = H * double(c.v_head_dim) * h;
  if (up_projection) *up_projection = q_up + kv_b;
  return q + kv_a + kv_b + o;
}

double ffn_params(const ModelConfig& c, int64_t layer) {
  const double h = double(c.hidden_size);
  if (!c.is_moe_layer(layer)) return 3 * h * double(c.intermediate_size);
  const double expert = 3 * h * double(c.moe_intermediate_size);
  return h * double(c.n_routed_experts) + double(c.num_experts_per_tok + c.n_shared_experts) * expert;
}

}  // namespace

LayerFlops layer_flops(const ModelConfig& c, int64_t layer, int64_t seq) {
  double up = 0;
  LayerFlops f;
  f.linear = 2 * (mla_linear_params(c, &up) + ffn_params(c, layer));
  f.recompute = 2 * up;
  const double mean_keys = (double(seq) + 1) / 2;  // causal: position i attends to i+1 keys
  f.attention = 2 * double(c.num_attention_heads) * double(c.qk_head_dim() + c.v_head_dim) * mean_keys;
  return f;
}

LayerFlops head_flops(const ModelConfig& c) {
  LayerFlops f;
  f.linear = 2 * double(c.hidden_size) * double(c.vocab_size);
  return f;
}

LayerFlops mtp_flops(const ModelConfig& c, int64_t seq) {
  // HF layer index num_hidden_layers + k: a MoE layer whenever the main model's rule says so.
  LayerFlops f = layer_flops(c, c.num_hidden_layers, seq);
  f.linear += 2 * (2 * double(c.hidden_size)) * double(c.hidden_size);  // eh_proj [hidden, 2·hidden]
  f += head_flops(c);                                                   // shared_head.head
  return f;
}

ModelFlops model_flops(const ModelConfig& c, int64_t seq) {
  ModelFlops m;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) m.layers += layer_flops(c, l, seq);
  m.head = head_flops(c);
  for (int64_t k = 0; k < c.num_nextn_predict_layers; ++k) m.mtp += mtp_flops(c, seq);
  return m;
}

double decode_attention_flops(const ModelConfig& c, int64_t context) {
  const double per_layer =
      2 * double(c.num_attention_heads) * double(2 * c.kv_lora_rank + c.qk_rope_head_dim) * double(context);
  return per_layer * double(c.num_hidden_layers);
}

}  // namespace dsv3::plan
