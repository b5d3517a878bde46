// Typed pointers into a Params (trainable float32 tensors by HF name), structured like the model: the
// training forward reads the parameters through ModelP, the backward accumulates into the gradients through
// ModelG. Built from the one weight table (model/weights.h), so names and shapes cannot drift from the
// inference loader. Shapes are those of enumerate_weights (row-major [out, in] for matrices).
#pragma once

#include <cstdint>
#include <vector>

#include "model/config.h"
#include "train/params.h"

namespace dsv3::train {

// T = const float (parameters) or float (gradients).
template <typename T>
struct FfnT {  // SwiGLU y = w2(silu(w1 x) ⊙ w3 x)
  T* w1 = nullptr;    // gate_proj [inter, hidden]
  T* w2 = nullptr;    // down_proj [hidden, inter]
  T* w3 = nullptr;    // up_proj   [inter, hidden]
  int64_t inter = 0;
};

template <typename T>
struct MlaT {
  T* wq_a = nullptr;     // [q_lora_rank, hidden]            (q_lora_rank > 0)
  T* q_norm = nullptr;   // [q_lora_rank]
  T* wq_b = nullptr;     // [H * (dn + dr), q_lora_rank]
  T* wq = nullptr;       // [H * (dn + dr), hidden]          (q_lora_rank = 0)
  T* wkv_a = nullptr;    // [kv_lora_rank + dr, hidden]
  T* kv_norm = nullptr;  // [kv_lora_rank]
  T* wkv_b = nullptr;    // [H * (dn + dv), kv_lora_rank]
  T* wo = nullptr;       // [hidden, H * dv]
};

template <typename T>
struct MoeT {
  T* gate = nullptr;              // [n_routed_experts, hidden]
  const float* bias = nullptr;    // e_score_correction_bias [n_routed_experts] (parameters only; no gradient)
  std::vector<FfnT<T>> experts;   // n_routed_experts, inter = moe_intermediate_size
  bool has_shared = false;
  FfnT<T> shared;                 // inter = n_shared_experts * moe_intermediate_size
};

template <typename T>
struct LayerT {
  int64_t index = 0;  // HF layer index
  T* attn_norm = nullptr;
  T* ffn_norm = nullptr;
  MlaT<T> attn;
  bool is_moe = false;
  FfnT<T> mlp;  // dense layers
  MoeT<T> moe;  // MoE layers
};

template <typename T>
struct MtpT {
  T* enorm = nullptr;
  T* hnorm = nullptr;
  T* eh_proj = nullptr;  // [hidden, 2 * hidden], input concat[enorm(embed), hnorm(h)]
  LayerT<T> layer;
  T* head_norm = nullptr;  // shared_head.norm; embedding and head are the main model's
};

template <typename T>
struct ModelT {
  T* embed = nullptr;  // [vocab, hidden]
  std::vector<LayerT<T>> layers;
  T* norm = nullptr;
  T* head = nullptr;  // [vocab, hidden]; == embed with tie_word_embeddings
  std::vector<MtpT<T>> mtp;
};

using FfnP = FfnT<const float>;
using FfnG = FfnT<float>;
using MlaP = MlaT<const float>;
using MlaG = MlaT<float>;
using MoeP = MoeT<const float>;
using MoeG = MoeT<float>;
using LayerP = LayerT<const float>;
using LayerG = LayerT<float>;
using MtpP = MtpT<const float>;
using MtpG = MtpT<float>;
using ModelP = ModelT<const float>;
using ModelG = ModelT<float>;

ModelP bind_params(const ModelConfig& c, const Params& p);
ModelG bind_grads(const ModelConfig& c, Params& g);

}  // namespace dsv3::train
