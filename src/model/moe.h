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

  // forward() in the executor's four stages over micro-batch slot 0 or 1 (model/expert_executor.h):
  // begin routes x and starts the experts' work (a dispatch under expert parallelism), compute and combine
  // advance it, end writes out [m, hidden]. x stays valid until end(slot).
  void begin(int slot, const float* x, int64_t m, RoutingRecord* record = nullptr);
  void compute(int slot) { experts_exec_->compute(slot); }
  void combine(int slot) { experts_exec_->combine(slot); }
  void end(int slot, float* out);

 private:
  // One micro-batch's routing, reused across calls (no allocation once warmed up).
  struct Routed {
    std::vector<float> logits, route_scratch, gates;
    std::vector<int64_t> experts;
    // Slots (row * top_k + k) grouped by expert: expert e owns order[offsets[e], offsets[e + 1]).
    std::vector<int64_t> order, offsets, fill;
    // The slots' input rows gathered in that order, with the out row and gate of each, and one task per
    // expert that has rows.
    std::vector<float> xin;        // [m * top_k, hidden]
    std::vector<int64_t> rows;     // [m * top_k]
    std::vector<float> row_gates;  // [m * top_k]
    std::vector<ExpertTask> tasks;
    int64_t m = 0;
  };
  void route_into(Routed& r, const float* x, int64_t m, RoutingRecord* record);

  const ModelConfig& c_;
  MoeWeights w_;
  RouterParams rp_;
  std::unique_ptr<ExpertExecutor> experts_exec_;
  Routed routed_[2];
};

}  // namespace dsv3
