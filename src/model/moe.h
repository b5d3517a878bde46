// The DeepSeekMoE layer (V3 §2.1.2; reference MoE.forward): every token goes through the shared experts and
// through its top-k routed experts, weighted by the router's gates:
//   y = shared(x) + Σ_{i ∈ topk} g_i · expert_i(x)
// Tokens are grouped by expert so each expert's weights are read once per forward; running the experts is
// asked of an ExpertExecutor (model/expert_executor.h), local unless expert parallelism supplies another.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "model/config.h"
#include "model/expert_executor.h"
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
  // `experts` runs the routed and shared experts; nullptr = LocalExperts over `w`, its matmuls with `lin`
  // (the model's options, model/options.h; {} = exact). The router gate is exact whatever `lin` says.
  Moe(const ModelConfig& c, const MoeWeights& w, std::unique_ptr<ExpertExecutor> experts = nullptr,
      const kernels::LinearOptions& lin = {});
  Moe(const Moe&) = delete;  // the local executor refers to w_
  Moe& operator=(const Moe&) = delete;

  // x: [m, hidden] (already ffn_norm'ed) → out: [m, hidden]. When `record` is given it receives the routing.
  void forward(const float* x, int64_t m, float* out, RoutingRecord* record = nullptr);

 private:
  const ModelConfig& c_;
  MoeWeights w_;
  RouterParams rp_;
  std::unique_ptr<ExpertExecutor> experts_exec_;
  // Scratch reused across calls.
  std::vector<float> logits_, route_scratch_, gates_;
  std::vector<int64_t> experts_;
  // Slots (row * top_k + k) grouped by expert: expert e owns order_[offsets_[e], offsets_[e + 1]).
  std::vector<int64_t> order_, offsets_, fill_;
  // The slots' input rows gathered in that order, with the out row and gate of each, and one task per
  // expert that has rows.
  std::vector<float> xin_;        // [m * top_k, hidden]
  std::vector<int64_t> rows_;     // [m * top_k]
  std::vector<float> row_gates_;  // [m * top_k]
  std::vector<ExpertTask> tasks_;
};

}  // namespace dsv3
