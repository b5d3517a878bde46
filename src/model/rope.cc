#include "model/rope.h"

#include <algorithm>
#include <cmath>

namespace dsv3 {

RopeTable::RopeTable(const ModelConfig& c) : dim_(c.qk_rope_head_dim) {
  const int64_t half = dim_ / 2;
  const float base = float(c.rope_theta);
  inv_freq_.resize(size_t(half));
  for (int64_t i = 0; i < half; ++i) inv_freq_[size_t(i)] = 1.0f / std::pow(base, float(2 * i) / float(dim_));
  if (c.rope_scaling) {
    const YarnScaling& y = *c.rope_scaling;
    const double orig = double(y.original_max_position_embeddings);
    auto correction_dim = [&](double rotations) {
      return double(dim_) * std::log(orig / (rotations * 2.0 * M_PI)) / (2.0 * std::log(c.rope_theta));
    };
    double low = std::max(std::floor(correction_dim(y.beta_fast)), 0.0);
    double high = std::min(std::ceil(correction_dim(y.beta_slow)), double(dim_ - 1));
    if (low == high) high += 0.001;
    const float factor = float(y.factor);
    for (int64_t i = 0; i < half; ++i) {
      float ramp = (float(i) - float(low)) / (float(high) - float(low));
      ramp = std::clamp(ramp, 0.0f, 1.0f);
      const float smooth = 1.0f - ramp;
      const float f = inv_freq_[size_t(i)];
      inv_freq_[size_t(i)] = f / factor * (1.0f - smooth) + f * smooth;
    }
    // DeepseekV2YarnRotaryEmbedding (deepseek_v2 only): cos and sin times
    // yarn_get_mscale(factor, mscale) / yarn_get_mscale(factor, mscale_all_dim).
    if (c.model_type == "deepseek_v2") {
      auto yarn_get_mscale = [&](double m) { return y.factor <= 1 ? 1.0 : 0.1 * m * std::log(y.factor) + 1.0; };
      amplitude_ = float(yarn_get_mscale(y.mscale) / yarn_get_mscale(y.mscale_all_dim));
    }
  }
}

void RopeTable::ensure(int64_t n) {
  if (n <= len_) return;
  const int64_t half = dim_ / 2;
  int64_t cap = std::max<int64_t>(n, 2 * len_);
  table_.resize(size_t(cap * dim_));
  for (int64_t p = len_; p < cap; ++p)
    for (int64_t i = 0; i < half; ++i) {
      const float angle = float(p) * inv_freq_[size_t(i)];  // float32 product, as the reference
      table_[size_t(p * dim_ + 2 * i)] = float(std::cos(double(angle))) * amplitude_;  // float32, as V2's code
      table_[size_t(p * dim_ + 2 * i + 1)] = float(std::sin(double(angle))) * amplitude_;
    }
  len_ = cap;
}

}  // namespace dsv3
