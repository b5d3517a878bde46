// FLOPs per token of a DeepSeek-V3-family model, counted from the architecture (a multiply-add = 2 FLOPs).
//
// Linear layers: 2 × the weights a token multiplies — MLA's q_a/q_b (or q_proj), kv_a, kv_b and o_proj; the dense
// MLP or the router gate plus top-k routed and the shared experts; the head; the MTP modules' eh_proj, decoder
// layer and head pass. Attention core (causal, mean over the S positions of a sequence): QKᵀ over qk_head_dim
// and PV over v_head_dim for every head, 2·H·(qk + v)·(S+1)/2. Norms, RoPE, softmax, SwiGLU and the routing
// top-k are elementwise and not counted (< 1 % here).
//
// Training: F = forward; B = the full backward = input gradient (linear FLOPs again + 2× the attention core)
// + weight gradient W (linear FLOPs again) + the recomputed MLA up-projections (q_b / kv_b forward again,
// DeepSeek-V3 §3.2.3: "Recomputation of RMSNorm and MLA Up-Projection"). F + B = 3 × forward + recompute.
#pragma once

#include <cstdint>

#include "model/config.h"

namespace dsv3::plan {

struct LayerFlops {
  double linear = 0;     // forward, per token
  double attention = 0;  // forward attention core, per token at the given sequence length
  double recompute = 0;  // forward FLOPs recomputed in backward (MLA up-projections)
  double forward() const { return linear + attention; }
  double backward() const { return 2 * linear + 2 * attention + recompute; }  // B: input + weight grads
  double weight_grad() const { return linear; }                               // W
  double training() const { return forward() + backward(); }
  LayerFlops& operator+=(const LayerFlops& o) {
    linear += o.linear;
    attention += o.attention;
    recompute += o.recompute;
    return *this;
  }
};

// Decoder layer `layer` (0-based; MoE or dense by ModelConfig::is_moe_layer) for sequences of `seq` tokens.
LayerFlops layer_flops(const ModelConfig& c, int64_t layer, int64_t seq);
LayerFlops head_flops(const ModelConfig& c);              // final norm's head: hidden × vocab
LayerFlops mtp_flops(const ModelConfig& c, int64_t seq);  // one MTP module: eh_proj + its layer + a head pass

struct ModelFlops {
  LayerFlops layers, head, mtp;  // mtp: all num_nextn_predict_layers modules
  LayerFlops total() const {
    LayerFlops t = layers;
    t += head;
    t += mtp;
    return t;
  }
};
ModelFlops model_flops(const ModelConfig& c, int64_t seq);

// Absorbed-MLA decode attention core per new token against `context` cached tokens, all layers: scores over the
// latent + rope key (kv_lora + rope) and the output over the latent (kv_lora), every head.
double decode_attention_flops(const ModelConfig& c, int64_t context);

}  // namespace dsv3::plan
