// The DeepSeekMoE layer (V3 §2.1.2; reference MoE.forward): every token goes through the shared experts and
// through its top-k routed experts, weighted by the router's gates:
//   y = shared(x) + Σ_{i ∈ topk} g_i · expert_i(x)
// Tokens are grouped by expert so each expert's weights are read once per forward.
#pragma once

#include <cstdint>
#include <vector>

#include "model/config.h"
#include "model/ffn.h"
#include "model/router.h"
#include "model/weights.h"

namespace dsv3 {

// Per-forward routing record (optional): which experts each row chose, and the affinities.
struct RoutingRecord {
  std::vector<int64_t> experts;  // [m, top_k]
  std::vector<float> gates;      // [m, top_k]
  std::vector<float> scores;     // [m, n_experts] unbiased affinities
};

class Moe {
 public:
  Moe(const ModelConfig& c, const MoeWeights& w);

  // x: [m, hidden] (already ffn_norm'ed) → out: [m, hidden]. When `record` is given it receives the routing.
  void forward(const float* x, int64_t m, float* out, RoutingRecord* record = nullptr);

 private:
  void forward_fused(const float* x, int64_t m, float* out);

  const ModelConfig& c_;
  MoeWeights w_;
  RouterParams rp_;
  // Scratch reused across calls.
  std::vector<float> logits_, route_scratch_, gates_, xin_, yout_, shared_out_;
  std::vector<int64_t> experts_;
  // Slots (row * top_k + k) grouped by expert: expert e owns order_[offsets_[e], offsets_[e + 1]).
  std::vector<int64_t> order_, offsets_, fill_;
  // The decode regime (every expert at most kernels::swiglu_max_rows() rows): all experts in one pass.
  std::vector<kernels::SwigluExpert> fused_;
  std::vector<int64_t> rows_;     // out row of each gathered input row
  std::vector<float> row_gates_;  // and its gate
  FfnScratch ffn_;
};

}  // namespace dsv3
