// MoE load balancing for training: the balance mode (which balance loss train/moe_grad.h adds), the routing
// a step reports per MoE layer, and auxiliary-loss-free balancing (DeepSeek-V3 §2.1.2, "Auxiliary-Loss-Free
// Load Balancing"; Wang et al. 2024, arXiv:2408.15664): after each optimizer step, every MoE layer's expert
// bias b_i (HF name mlp.gate.e_score_correction_bias; used for expert selection only) moves by γ towards
// balance over the step's whole batch:
//   b_i ← b_i + γ · sign(mean_j load_j − load_i)
// so overloaded experts become less attractive and underloaded ones more. The MTP module's MoE layer is
// balanced the same way. Balance is measured as in the paper (§4.5.2 / Wang et al.):
//   MaxVio_batch = (max_i load_i − mean load) / mean load.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"
#include "train/params.h"

namespace dsv3::train {

enum class BalanceMode {
  AuxFree,  // DeepSeek-V3: bias-based selection (bias updated by the trainer) + tiny sequence-wise loss
  AuxLoss,  // classic auxiliary loss (DeepSeek-V2 style expert-level balance loss), no bias updates
  None,     // no balancing at all
};

// Per MoE layer (main layers first, then MTP layers), what the step saw.
struct LayerRouting {
  int64_t layer = 0;          // HF layer index
  std::vector<int64_t> load;  // [n_routed_experts] tokens routed to each expert in this batch
  double balance_loss = 0.0;  // value of the layer's balance loss term (before α)
};

// (max − mean) / mean of a load vector; 0 for an empty or all-zero load.
double max_vio(const std::vector<int64_t>& load);

// Adds the loads of `more` into `acc` (one step's micro-batches → the step's batch). `acc` empty: copies.
// Layers must match in order and size.
void accumulate_routing(std::vector<LayerRouting>& acc, const std::vector<LayerRouting>& more);

// The index in `params` of a layer's selection bias (the schema's WeightRole::Bias of that layer).
size_t expert_bias_index(const Params& params, int64_t layer);

// Applies b_i += γ·sign(mean − load_i) to every layer in `routing`. Layers without a bias tensor (topk methods
// other than noaux_tc) are an error: the aux-free mode needs noaux_tc. γ = 0 leaves the biases unchanged.
void update_expert_bias(Params& params, const std::vector<LayerRouting>& routing, double gamma);

}  // namespace dsv3::train
