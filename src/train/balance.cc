#include "train/balance.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/error.h"

namespace dsv3::train {

double max_vio(const std::vector<int64_t>& load) {
  if (load.empty()) return 0.0;
  int64_t sum = 0, mx = 0;
  for (int64_t l : load) sum += l, mx = std::max(mx, l);
  if (sum == 0) return 0.0;
  const double mean = double(sum) / double(load.size());
  return (double(mx) - mean) / mean;
}

void accumulate_routing(std::vector<LayerRouting>& acc, const std::vector<LayerRouting>& more) {
  if (acc.empty()) {
    acc = more;
    return;
  }
  if (acc.size() != more.size()) fail("routing: {} MoE layers, then {}", acc.size(), more.size());
  for (size_t k = 0; k < acc.size(); ++k) {
    if (acc[k].layer != more[k].layer || acc[k].load.size() != more[k].load.size())
      fail("routing: layer {} ({} experts) does not match layer {} ({} experts)", acc[k].layer, acc[k].load.size(),
           more[k].layer, more[k].load.size());
    for (size_t e = 0; e < acc[k].load.size(); ++e) acc[k].load[e] += more[k].load[e];
    acc[k].balance_loss += more[k].balance_loss;
  }
}

size_t expert_bias_index(const Params& params, int64_t layer) {
  for (size_t i = 0; i < params.size(); ++i) {
    const WeightSpec& s = params.specs()[i];
    if (s.role == WeightRole::Bias && s.layer == layer) return i;
  }
  fail("balance: layer {} has no e_score_correction_bias (not an MoE layer, or topk_method is not noaux_tc)", layer);
}

void update_expert_bias(Params& params, const std::vector<LayerRouting>& routing, double gamma) {
  if (gamma == 0.0) return;
  for (const LayerRouting& r : routing) {
    const size_t idx = expert_bias_index(params, r.layer);
    std::vector<float>& b = params.value(idx);
    if (b.size() != r.load.size())
      fail("balance: layer {} has {} biases but {} expert loads", r.layer, b.size(), r.load.size());
    int64_t sum = 0;
    for (int64_t l : r.load) sum += l;
    // Compare load_i · E with Σ load (exact in integers) instead of the fractional mean.
    const int64_t E = int64_t(r.load.size());
    for (size_t i = 0; i < b.size(); ++i) {
      const int64_t d = sum - r.load[i] * E;  // sign(mean − load_i)
      if (d > 0) b[i] = float(double(b[i]) + gamma);
      if (d < 0) b[i] = float(double(b[i]) - gamma);
    }
  }
}

}  // namespace dsv3::train
