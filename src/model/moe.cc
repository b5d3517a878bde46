#include "model/moe.h"

#include <algorithm>
#include <cstring>
#include <span>

#include "kernels/linear.h"

namespace dsv3 {

Moe::Moe(const ModelConfig& c, const MoeWeights& w)
    : c_(c), w_(w), rp_(RouterParams::from(c)), offsets_(size_t(c.n_routed_experts) + 1) {
  fused_.reserve(size_t(c.n_routed_experts) + 1);
}

void Moe::forward(const float* x, int64_t m, float* out, RoutingRecord* record) {
  const int64_t D = c_.hidden_size, E = rp_.n_experts, K = rp_.top_k;
  logits_.resize(size_t(m * E));
  // Exact even under --bf16-activations: the gate is small, and a rounded score flips near-tied expert choices.
  kernels::linear(x, m, w_.gate, logits_.data(), kernels::LinearOptions{});
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

  // Routed experts, in expert order; each expert runs once over the rows that chose it. Buffers are sized
  // for the whole batch up front (an expert gets each row at most once), so a step that sends a row to an
  // expert for the first time allocates nothing.
  offsets_.assign(offsets_.size(), 0);
  for (int64_t i = 0; i < m * K; ++i) ++offsets_[size_t(experts_[size_t(i)]) + 1];
  for (int64_t e = 0; e < E; ++e) offsets_[size_t(e) + 1] += offsets_[size_t(e)];
  order_.resize(size_t(m * K));
  fill_.assign(offsets_.begin(), offsets_.end() - 1);
  for (int64_t i = 0; i < m * K; ++i) order_[size_t(fill_[size_t(experts_[size_t(i)])]++)] = i;  // row order kept
  std::fill(out, out + m * D, 0.0f);
  int64_t most = 0;
  for (int64_t e = 0; e < E; ++e) most = std::max(most, offsets_[size_t(e) + 1] - offsets_[size_t(e)]);
  if (most <= kernels::swiglu_max_rows() && m <= kernels::swiglu_max_rows()) {
    forward_fused(x, m, out);
    return;
  }
  xin_.resize(size_t(m * D));
  yout_.resize(size_t(m * D));
  ffn_.gate.resize(std::max(ffn_.gate.size(), size_t(m * c_.moe_intermediate_size)));
  ffn_.up.resize(std::max(ffn_.up.size(), size_t(m * c_.moe_intermediate_size)));
  for (int64_t e = 0; e < E; ++e) {
    const std::span<const int64_t> slots(order_.data() + offsets_[size_t(e)], order_.data() + offsets_[size_t(e) + 1]);
    if (slots.empty()) continue;
    const int64_t n = int64_t(slots.size());
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

// Decode: the routed experts (in expert order, each over the rows that chose it, gathered) and the shared
// expert in one kernels::swiglu_experts call, which sums them into out in that order, as forward() does.
void Moe::forward_fused(const float* x, int64_t m, float* out) {
  const int64_t D = c_.hidden_size, E = rp_.n_experts, K = rp_.top_k;
  xin_.resize(size_t(m * K * D));
  rows_.resize(size_t(m * K));
  row_gates_.resize(size_t(m * K));
  fused_.clear();
  for (int64_t e = 0; e < E; ++e) {
    const int64_t b = offsets_[size_t(e)], n = offsets_[size_t(e) + 1] - b;
    if (n == 0) continue;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t slot = order_[size_t(b + i)];
      std::memcpy(xin_.data() + (b + i) * D, x + (slot / K) * D, size_t(D) * sizeof(float));
      rows_[size_t(b + i)] = slot / K;
      row_gates_[size_t(b + i)] = gates_[size_t(slot)];
    }
    const FfnWeights& w = w_.experts[size_t(e)];
    fused_.push_back({.w1 = w.w1, .w3 = w.w3, .w2 = w.w2, .x = xin_.data() + b * D, .m = n,
                      .rows = rows_.data() + b, .gates = row_gates_.data() + b});
  }
  if (w_.has_shared) fused_.push_back({.w1 = w_.shared.w1, .w3 = w_.shared.w3, .w2 = w_.shared.w2, .x = x, .m = m});
  kernels::swiglu_experts(fused_, D, out, ffn_.fused);
}

}  // namespace dsv3
