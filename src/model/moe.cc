#include "model/moe.h"

#include <algorithm>
#include <cstring>

#include "kernels/linear.h"

namespace dsv3 {

Moe::Moe(const ModelConfig& c, const MoeWeights& w)
    : c_(c), w_(w), rp_(RouterParams::from(c)), rows_of_(size_t(c.n_routed_experts)) {}

void Moe::forward(const float* x, int64_t m, float* out, RoutingRecord* record) {
  const int64_t D = c_.hidden_size, E = rp_.n_experts, K = rp_.top_k;
  logits_.resize(size_t(m * E));
  kernels::linear(x, m, w_.gate, logits_.data());
  experts_.resize(size_t(m * K));
  gates_.resize(size_t(m * K));
  route_scratch_.resize(size_t(rp_.scratch_floats()));
  if (record) {
    record->scores.resize(size_t(m * E));
  }
  for (int64_t r = 0; r < m; ++r)
    route(rp_, logits_.data() + r * E, w_.bias, experts_.data() + r * K, gates_.data() + r * K,
          route_scratch_.data(), record ? record->scores.data() + r * E : nullptr);
  if (record) {
    record->experts = experts_;
    record->gates = gates_;
  }

  // Routed experts, in expert order; each expert runs once over the rows that chose it.
  for (auto& v : rows_of_) v.clear();
  for (int64_t i = 0; i < m * K; ++i) rows_of_[size_t(experts_[size_t(i)])].push_back(i);
  std::fill(out, out + m * D, 0.0f);
  for (int64_t e = 0; e < E; ++e) {
    const auto& slots = rows_of_[size_t(e)];
    if (slots.empty()) continue;
    const int64_t n = int64_t(slots.size());
    xin_.resize(size_t(n * D));
    yout_.resize(size_t(n * D));
    for (int64_t i = 0; i < n; ++i)
      std::memcpy(xin_.data() + i * D, x + (slots[size_t(i)] / K) * D, size_t(D) * sizeof(float));
    ffn_forward(w_.experts[size_t(e)], xin_.data(), n, yout_.data(), ffn_);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t slot = slots[size_t(i)];
      const float g = gates_[size_t(slot)];
      float* o = out + (slot / K) * D;
      const float* y = yout_.data() + i * D;
      for (int64_t j = 0; j < D; ++j) o[j] += g * y[j];
    }
  }
  if (w_.has_shared) {
    shared_out_.resize(size_t(m * D));
    ffn_forward(w_.shared, x, m, shared_out_.data(), ffn_);
    for (int64_t i = 0; i < m * D; ++i) out[i] += shared_out_[size_t(i)];
  }
}

}  // namespace dsv3
