#include "model/moe.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "kernels/linear.h"

namespace dsv3 {

Moe::Moe(const ModelConfig& c, const MoeWeights& w, std::unique_ptr<ExpertExecutor> experts,
         const kernels::LinearOptions& lin)
    : c_(c), w_(w), rp_(RouterParams::from(c)), experts_exec_(std::move(experts)) {
  if (!experts_exec_) experts_exec_ = std::make_unique<LocalExperts>(w_, c.hidden_size, lin);
  for (Routed& r : routed_) {
    r.offsets.resize(size_t(c.n_routed_experts) + 1);
    r.tasks.reserve(size_t(c.n_routed_experts));
  }
}

void Moe::route_into(Routed& r, const float* x, int64_t m, RoutingRecord* record) {
  const int64_t D = c_.hidden_size, E = rp_.n_experts, K = rp_.top_k;
  r.m = m;
  r.logits.resize(size_t(m * E));
  // Exact whatever the model's options: the gate is small, and a rounded score flips near-tied expert choices.
  kernels::linear(x, m, w_.gate, r.logits.data(), kernels::LinearOptions{});
  r.experts.resize(size_t(m * K));
  r.gates.resize(size_t(m * K));
  r.route_scratch.resize(size_t(rp_.scratch_floats()));
  if (record) {
    record->scores.resize(size_t(m * E));
  }
  for (int64_t i = 0; i < m; ++i)
    route(rp_, r.logits.data() + i * E, w_.bias, r.experts.data() + i * K, r.gates.data() + i * K,
          r.route_scratch.data(), record ? record->scores.data() + i * E : nullptr);
  if (record) {
    record->experts = r.experts;
    record->gates = r.gates;
  }

  // Routed experts, in expert order; each expert runs once over the rows that chose it. Buffers are sized
  // for the whole batch up front (an expert gets each row at most once), so a step that sends a row to an
  // expert for the first time allocates nothing.
  r.offsets.assign(r.offsets.size(), 0);
  for (int64_t i = 0; i < m * K; ++i) ++r.offsets[size_t(r.experts[size_t(i)]) + 1];
  for (int64_t e = 0; e < E; ++e) r.offsets[size_t(e) + 1] += r.offsets[size_t(e)];
  r.order.resize(size_t(m * K));
  r.fill.assign(r.offsets.begin(), r.offsets.end() - 1);
  for (int64_t i = 0; i < m * K; ++i) r.order[size_t(r.fill[size_t(r.experts[size_t(i)])]++)] = i;  // row order kept
  r.xin.resize(size_t(m * K * D));
  r.rows.resize(size_t(m * K));
  r.row_gates.resize(size_t(m * K));
  r.tasks.clear();
  for (int64_t e = 0; e < E; ++e) {
    const int64_t b = r.offsets[size_t(e)], n = r.offsets[size_t(e) + 1] - b;
    if (n == 0) continue;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t slot = r.order[size_t(b + i)];
      std::memcpy(r.xin.data() + (b + i) * D, x + (slot / K) * D, size_t(D) * sizeof(float));
      r.rows[size_t(b + i)] = slot / K;
      r.row_gates[size_t(b + i)] = r.gates[size_t(slot)];
    }
    r.tasks.push_back(
        {.expert = e, .x = r.xin.data() + b * D, .m = n, .rows = r.rows.data() + b, .gates = r.row_gates.data() + b});
  }
}

void Moe::forward(const float* x, int64_t m, float* out, RoutingRecord* record) {
  Routed& r = routed_[0];
  route_into(r, x, m, record);
  std::fill(out, out + m * c_.hidden_size, 0.0f);
  experts_exec_->run(r.tasks, x, m, out);
}

void Moe::begin(int slot, const float* x, int64_t m, RoutingRecord* record) {
  if (slot != 0 && slot != 1) fail("MoE: micro-batch slot {} (there are two: 0 and 1)", slot);
  Routed& r = routed_[slot];
  route_into(r, x, m, record);
  experts_exec_->begin(slot, r.tasks, x, m);
}

void Moe::end(int slot, float* out) {
  if (slot != 0 && slot != 1) fail("MoE: micro-batch slot {} (there are two: 0 and 1)", slot);
  std::fill(out, out + routed_[slot].m * c_.hidden_size, 0.0f);
  experts_exec_->end(slot, out);
}

}  // namespace dsv3
