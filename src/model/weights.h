// The one table of DeepSeek-V3-family weights. enumerate_weights(config) lists every tensor a checkpoint
// holds under its Hugging Face name (the names DeepSeek publishes) with its shape and role; the loader,
// `dsv3 init`, the trainer and the tests are all driven by that list.
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
//   model.layers.L.post_attention_layernorm ffn_norm
//   mlp.gate_proj / up_proj / down_proj    w1 / w3 / w2           (dense layers, experts, shared experts)
//   mlp.gate.weight / e_score_correction_bias   gate.weight / gate.bias
//   model.norm, lm_head                    norm, head
//   layers.(N+k).enorm/hnorm/eh_proj/shared_head.{norm,head}/embed_tokens   the k-th MTP module
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "kernels/linear.h"
#include "model/config.h"

namespace dsv3 {

enum class WeightRole {
  Embedding,  // [vocab, hidden]
  Linear,     // [out, in]; FP8-quantizable with weight_scale_inv
  Gate,       // router [n_routed_experts, hidden]; never FP8 in DeepSeek's release
  Norm,       // RMSNorm weight [dim]
  Bias,       // e_score_correction_bias [n_routed_experts]; selection only, no gradient
  Head,       // output head [vocab, hidden]
};

struct WeightSpec {
  std::string name;  // HF name, e.g. "model.layers.3.self_attn.kv_b_proj.weight"
  std::vector<int64_t> shape;
  WeightRole role;
  bool optional = false;  // MTP copies of embedding/head may be absent (then the main ones are used)
};

// Every weight of the model the config describes, main layers then MTP modules, in a stable order.
std::vector<WeightSpec> enumerate_weights(const ModelConfig& c);

// ---- The structured, read-only view the forward pass uses. Everything is a view: matrices are
// kernels::WeightRef over their stored dtype (mmap'd checkpoint or a trainer's buffers); vectors are
// float32 pointers (converted once at load when stored in another dtype).

struct FfnWeights {  // SwiGLU: w2(silu(w1 x) * w3 x)
  kernels::WeightRef w1, w2, w3;
};

struct MlaWeights {
  kernels::WeightRef wq_a, wq_b, wq;  // wq_a/wq_b when q_lora_rank > 0, else wq
  const float* q_norm = nullptr;      // [q_lora_rank]
  kernels::WeightRef wkv_a;           // [kv_lora_rank + qk_rope_head_dim, hidden]
  const float* kv_norm = nullptr;     // [kv_lora_rank]
  kernels::WeightRef wkv_b;           // [heads * (qk_nope_head_dim + v_head_dim), kv_lora_rank]
  kernels::WeightRef wo;              // [hidden, heads * v_head_dim]
};

struct MoeWeights {
  kernels::WeightRef gate;           // [n_routed_experts, hidden]
  const float* bias = nullptr;       // [n_routed_experts] or nullptr
  std::vector<FfnWeights> experts;   // n_routed_experts
  bool has_shared = false;
  FfnWeights shared;                 // width n_shared_experts * moe_intermediate_size
};

struct LayerWeights {
  const float* attn_norm = nullptr;
  const float* ffn_norm = nullptr;
  MlaWeights attn;
  bool is_moe = false;
  FfnWeights mlp;  // dense layers
  MoeWeights moe;  // MoE layers
};

struct MtpWeights {
  const float* enorm = nullptr;
  const float* hnorm = nullptr;
  kernels::WeightRef eh_proj;  // [hidden, 2 * hidden], input = concat[enorm(embed), hnorm(h)]
  LayerWeights layer;
  const float* head_norm = nullptr;  // shared_head.norm
  kernels::WeightRef embed, head;    // the module's copies, or the main model's when absent
};

struct ModelWeights {
  kernels::WeightRef embed;
  std::vector<LayerWeights> layers;
  const float* norm = nullptr;
  kernels::WeightRef head;
  std::vector<MtpWeights> mtp;
  std::vector<std::vector<float>> owned;  // float32 copies of vectors stored in another dtype
};

// Binds weights from an opened checkpoint, validating names, shapes, dtypes and FP8 scales; errors name the
// tensor. The checkpoint must outlive the returned views.
ModelWeights bind_weights(const ModelConfig& c, const io::Checkpoint& ckpt);

// A source of tensors by name: the generic form used by bind_weights (and by the trainer over its own
// float32 buffers). Returns nullptr when absent.
using TensorLookup = std::function<const TensorView*(const std::string&)>;
ModelWeights bind_weights(const ModelConfig& c, const TensorLookup& lookup, const std::string& label);

}  // namespace dsv3
