#include "model/moe.h"

#include <algorithm>
#include <cstring>

#include "kernels/linear.h"

namespace dsv3 {

Moe::Moe(const ModelConfig& c, const MoeWeights& w, std::unique_ptr<ExpertExecutor> experts,
         const kernels::LinearOptions& lin)
    : c_(c),
      w_(w),
      rp_(RouterParams::from(c)),
      experts_exec_(std::move(experts)),
      offsets_(size_t(c.n_routed_experts) + 1) {
  if (!experts_exec_) experts_exec_ = std::make_unique<LocalExperts>(w_, c.hidden_size, lin);
  tasks_.reserve(size_t(c.n_routed_experts));
}

void Moe::forward(const float* x, int64_t m, float* out, RoutingRecord* record) {
  const int64_t D = c_.hidden_size, E = rp_.n_experts, K = rp_.top_k;
  logits_.resize(size_t(m * E));
  // Exact whatever the model's options: the gate is small, and a rounded score flips near-tied expert choices.
  kernels::linear(x, m, w_.gate, logits_.data(), kernels::LinearOptions{});
  experts_.resize(size_t(m * K));
  gates_.resize(size_t(m * K));
  route_scratch_.resize(size_t(rp_.scratch_floats()));
  if (record) {
    record->scores.resize(size_t(m * E));
  }
  for (int64_t r = 0; r < m; ++r)
    route(rp_, logits_.data() + r * E, w_.bias, experts_.data() + r * K, gates_.data() + r * K, route_scratch_.data(),
          record ? record->scores.data() + r * E : nullptr);
  if (record) {
    record->experts = experts_;
    record->gates = gates_;
  }

  // Routed experts, in expert order; each expert runs once over the rows that chose it. Buffers are sized
  // for the whole batch up front (an expert gets each row at most once), so a step that sends a row to an
  // expert for the first time allocates nothing.
  offsets_.assign(offsets_.size(), 0);
  for (int64_t i = 0; i < m * K; ++i) ++offsets_[size_t(experts_[size_t(i)]) + 1];
  for (int64_t e = 0; e < E; ++e) offsets_[size_t(e) + 1] += offsets_[size_t(e)];
  order_.resize(size_t(m * K));
  fill_.assign(offsets_.begin(), offsets_.end() - 1);
  for (int64_t i = 0; i < m * K; ++i) order_[size_t(fill_[size_t(experts_[size_t(i)])]++)] = i;  // row order kept
  xin_.resize(size_t(m * K * D));
  rows_.resize(size_t(m * K));
  row_gates_.resize(size_t(m * K));
  tasks_.clear();
  for (int64_t e = 0; e < E; ++e) {
    const int64_t b = offsets_[size_t(e)], n = offsets_[size_t(e) + 1] - b;
    if (n == 0) continue;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t slot = order_[size_t(b + i)];
      std::memcpy(xin_.data() + (b + i) * D, x + (slot / K) * D, size_t(D) * sizeof(float));
      rows_[size_t(b + i)] = slot / K;
      row_gates_[size_t(b + i)] = gates_[size_t(slot)];
    }
    tasks_.push_back(
        {.expert = e, .x = xin_.data() + b * D, .m = n, .rows = rows_.data() + b, .gates = row_gates_.data() + b});
  }
  std::fill(out, out + m * D, 0.0f);
  experts_exec_->run(tasks_, x, m, out);
}

}  // namespace dsv3
