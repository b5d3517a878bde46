#include "model/expert_executor.h"

#include <algorithm>

#include "core/error.h"
#include "kernels/swiglu.h"

namespace dsv3 {

void ExpertExecutor::begin(int slot, std::span<const ExpertTask> tasks, const float* x, int64_t m) {
  if (slot != 0 && slot != 1) fail("MoE: micro-batch slot {} (there are two: 0 and 1)", slot);
  staged_[slot] = {tasks, x, m};
}

void ExpertExecutor::end(int slot, float* out) {
  if (slot != 0 && slot != 1) fail("MoE: micro-batch slot {} (there are two: 0 and 1)", slot);
  const Staged& s = staged_[slot];
  run(s.tasks, s.x, s.m, out);
  staged_[slot] = {};
}

LocalExperts::LocalExperts(const MoeWeights& w, int64_t hidden, const kernels::LinearOptions& lin)
    : w_(w), hidden_(hidden), lin_(lin) {
  fused_.reserve(w.experts.size() + 1);
}

void LocalExperts::run(std::span<const ExpertTask> tasks, const float* x, int64_t m, float* out) {
  const int64_t D = hidden_;
  if (m == 0) return;  // no rows (a process with none in a distributed step): no pass over the weights
  int64_t most = m;
  for (const ExpertTask& t : tasks) {
    if (t.expert < 0 || t.expert >= int64_t(w_.experts.size()))
      fail("MoE: expert {} is outside this layer's {} experts", t.expert, w_.experts.size());
    most = std::max(most, t.m);
  }
  if (most <= kernels::swiglu_max_rows()) {
    // Decode: the routed experts and the shared expert in one kernels::swiglu_experts call, which sums them
    // into out in this order.
    fused_.clear();
    for (const ExpertTask& t : tasks) {
      if (t.m == 0) continue;
      const FfnWeights& e = w_.experts[size_t(t.expert)];
      fused_.push_back({.w1 = e.w1, .w3 = e.w3, .w2 = e.w2, .x = t.x, .m = t.m, .rows = t.rows, .gates = t.gates});
    }
    if (w_.has_shared) fused_.push_back({.w1 = w_.shared.w1, .w3 = w_.shared.w3, .w2 = w_.shared.w2, .x = x, .m = m});
    kernels::swiglu_experts(fused_, D, out, ffn_.fused, lin_);
    return;
  }
  for (const ExpertTask& t : tasks) {
    if (t.m == 0) continue;
    yout_.resize(std::max(yout_.size(), size_t(t.m * D)));
    ffn_forward(w_.experts[size_t(t.expert)], t.x, t.m, yout_.data(), ffn_, lin_);
    for (int64_t i = 0; i < t.m; ++i) {
      const float g = t.gates[i];
      float* o = out + t.rows[i] * D;
      const float* y = yout_.data() + i * D;
      for (int64_t j = 0; j < D; ++j) o[j] += g * y[j];
    }
  }
  if (w_.has_shared) {
    shared_out_.resize(std::max(shared_out_.size(), size_t(m * D)));
    ffn_forward(w_.shared, x, m, shared_out_.data(), ffn_, lin_);
    for (int64_t i = 0; i < m * D; ++i) out[i] += shared_out_[size_t(i)];
  }
}

}  // namespace dsv3
