#include "plan/memory.h"

#include <algorithm>

namespace dsv3::plan {

double attention_params(const ModelConfig& c) {
  const double h = double(c.hidden_size), H = double(c.num_attention_heads);
  double p = c.q_lora_rank > 0 ? h * double(c.q_lora_rank) + double(c.q_lora_rank) +
                                     double(c.q_lora_rank) * H * double(c.qk_head_dim())
                               : h * H * double(c.qk_head_dim());
  p += h * double(c.kv_lora_rank + c.qk_rope_head_dim) + double(c.kv_lora_rank);  // kv_a + kv_a_layernorm
  p += double(c.kv_lora_rank) * H * double(c.qk_nope_head_dim + c.v_head_dim);    // kv_b
  p += H * double(c.v_head_dim) * h;                                              // o_proj
  return p + 2 * h;                                                               // the two layer norms
}

double expert_params(const ModelConfig& c) { return 3 * double(c.hidden_size) * double(c.moe_intermediate_size); }

namespace {

int64_t experts_per_device(const ModelConfig& c, int ep) { return (c.n_routed_experts + ep - 1) / ep; }

// Replicated and routed-expert parameters of decoder layer `layer` (HF index; num_hidden_layers + k = MTP k).
StageParams layer_params(const ModelConfig& c, int64_t layer, int ep) {
  StageParams p;
  const double h = double(c.hidden_size);
  p.replicated = attention_params(c);
  if (c.is_moe_layer(layer)) {
    p.replicated += h * double(c.n_routed_experts) + double(c.n_routed_experts);  // gate + its bias
    p.replicated += double(c.n_shared_experts) * expert_params(c);
    p.experts = double(experts_per_device(c, ep)) * expert_params(c);
  } else {
    p.replicated += 3 * h * double(c.intermediate_size);
  }
  return p;
}

// FP8 bytes of n values with one FP32 scale per 128 (DeepSeek-V3's 1×128 activation tiles).
double fp8(double n) { return n + 4 * n / 128; }

}  // namespace

StageParams stage_params(const ModelConfig& c, const Stage& stage, int ep) {
  StageParams p;
  const double h = double(c.hidden_size), v = double(c.vocab_size);
  for (int64_t l = stage.first_layer; l < stage.first_layer + stage.n_layers; ++l) {
    StageParams q = layer_params(c, l, ep);
    p.replicated += q.replicated;
    p.experts += q.experts;
  }
  if (stage.embedding) p.replicated += v * h;
  if (stage.head) {
    p.replicated += h + h * v;  // final norm + head
    for (int64_t k = 0; k < c.num_nextn_predict_layers; ++k) {
      StageParams q = layer_params(c, c.num_hidden_layers + k, ep);
      p.replicated += q.replicated + 2 * h * h + 3 * h;  // + eh_proj, enorm, hnorm, shared_head.norm
      p.experts += q.experts;
    }
  }
  return p;
}

double layer_activation_bytes(const ModelConfig& c, int64_t layer) {
  const double h = double(c.hidden_size), H = double(c.num_attention_heads);
  double b = 2 * h;                                      // input_layernorm's input (BF16)
  b += 2 * double(c.q_lora_rank);                        // q_a output (BF16), 0 without q_lora
  if (c.q_lora_rank == 0) b += fp8(h);                   // q_proj's input instead
  b += 2 * double(c.kv_lora_rank + c.qk_rope_head_dim);  // kv_a output (BF16)
  b += 1.5 * H * double(c.v_head_dim);                   // o_proj input, E5M6
  b += 4 * H;                                            // softmax LSE
  b += 2 * h;                                            // post_attention_layernorm's input
  if (c.is_moe_layer(layer)) {
    const double I = double(c.moe_intermediate_size);
    b += 4 * double(c.n_routed_experts);  // router scores
    b += double(c.num_experts_per_tok + c.n_shared_experts) * (fp8(h) + fp8(2 * I));
  } else {
    b += fp8(h) + fp8(2 * double(c.intermediate_size));
  }
  return b;
}

double head_activation_bytes(const ModelConfig& c) {
  const double h = double(c.hidden_size);
  double b = 2 * h;  // final norm's input
  for (int64_t k = 0; k < c.num_nextn_predict_layers; ++k)
    b += 2 * h + 2 * h + fp8(2 * h) + layer_activation_bytes(c, c.num_hidden_layers + k) + 2 * h;
  return b;  // enorm, hnorm inputs, eh_proj input, the layer, shared_head.norm input
}

double stage_activation_bytes_per_token(const ModelConfig& c, const Stage& stage) {
  double b = 0;
  for (int64_t l = stage.first_layer; l < stage.first_layer + stage.n_layers; ++l) b += layer_activation_bytes(c, l);
  if (stage.head) b += head_activation_bytes(c);
  return b;
}

double activations_in_flight(Schedule s, int pp) {
  switch (s) {
    case Schedule::DualPipe:
      return pp == 1 ? 1 : pp + 1;
    case Schedule::DualPipeV:
      return 2 * pp + 1;
    default:
      return pp;
  }
}

TrainingMemory training_memory(const ModelConfig& c, const Cluster& k, Schedule s, int64_t seq, int64_t micro_batch) {
  const std::vector<Stage> stages = split_stages(c, stage_count(s, k.pp), seq);
  const double micro_tokens = double(seq) * double(micro_batch);
  const double mirror = (s == Schedule::DualPipe && k.pp > 1) ? 2 : 1;
  TrainingMemory best;
  for (int d = 0; d < k.pp; ++d) {
    TrainingMemory m;
    m.device = d;
    for (int si : device_stages(s, k.pp, d)) {
      const StageParams p = stage_params(c, stages[size_t(si)], k.ep);
      m.params += p.total();
      m.expert_params += p.experts;
      m.optimizer += 8 * (p.replicated / (mirror * k.dp * k.ep) + p.experts / (mirror * k.dp));
      m.activation_per_microbatch =
          std::max(m.activation_per_microbatch, micro_tokens * stage_activation_bytes_per_token(c, stages[size_t(si)]));
    }
    m.weights = 2 * m.params;
    m.gradients = 4 * m.params;
    m.in_flight = activations_in_flight(s, k.pp);
    m.activations = m.in_flight * m.activation_per_microbatch;
    if (d == 0 || m.total() > best.total()) best = m;
  }
  return best;
}

}  // namespace dsv3::plan
