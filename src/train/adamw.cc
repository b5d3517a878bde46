#include "train/adamw.h"

#include <cmath>

#include "core/dtype.h"
#include "core/error.h"

namespace dsv3::train {

bool trainable(WeightRole r) { return r != WeightRole::Bias; }

bool decays(WeightRole r) {
  return r == WeightRole::Linear || r == WeightRole::Gate || r == WeightRole::Embedding || r == WeightRole::Head ||
         r == WeightRole::Projection;
}

AdamW::AdamW(const Params& params, const AdamWOptions& o, const std::vector<char>& held) : o_(o) {
  if (!(o.beta1 >= 0 && o.beta1 < 1)) fail("adamw: beta1 must lie in [0, 1), got {}", o.beta1);
  if (!(o.beta2 >= 0 && o.beta2 < 1)) fail("adamw: beta2 must lie in [0, 1), got {}", o.beta2);
  if (!(o.eps > 0)) fail("adamw: eps must be positive, got {}", o.eps);
  if (!(o.weight_decay >= 0)) fail("adamw: weight_decay must not be negative, got {}", o.weight_decay);
  if (!held.empty() && held.size() != params.size())
    fail("adamw: {} ownership flags for {} tensors", held.size(), params.size());
  m_.resize(params.size());
  v_.resize(params.size());
  held_.assign(params.size(), 0);
  for (size_t i = 0; i < params.size(); ++i) {
    if (!trainable(params.specs()[i].role) || (!held.empty() && !held[i])) continue;
    held_[i] = 1;
    m_[i].assign(params.value(i).size(), 0.0f);
    v_[i].assign(params.value(i).size(), 0.0f);
  }
}

void AdamW::set_lr_scale(std::vector<double> scale) {
  if (!scale.empty() && scale.size() != held_.size())
    fail("adamw: {} learning-rate multipliers for {} tensors", scale.size(), held_.size());
  lr_scale_ = std::move(scale);
}

void AdamW::step(Params& params, const Params& grads, double lr_all) {
  ++t_;
  const double b1 = o_.beta1, b2 = o_.beta2;
  const double bc1 = 1.0 - std::pow(b1, double(t_)), bc2 = 1.0 - std::pow(b2, double(t_));
  const double inv_sqrt_bc2 = 1.0 / std::sqrt(bc2), eps = o_.eps;
  for (size_t i = 0; i < params.size(); ++i) {
    const WeightRole role = params.specs()[i].role;
    if (!held_[i]) continue;
    const double lr = lr_scale_.empty() ? lr_all : lr_all * lr_scale_[i];
    if (lr_scale_.size() && lr_scale_[i] == 0.0) continue;
    const double step_size = lr / bc1;
    const double keep = decays(role) ? 1.0 - lr * o_.weight_decay : 1.0;
    float* p = params.value(i).data();
    const float* g = grads.value(i).data();
    float* m = m_[i].data();
    float* v = v_[i].data();
    const int64_t n = int64_t(params.value(i).size());
    const bool bf16 = o_.bf16_moments;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t j = 0; j < n; ++j) {
      const double gj = g[j];
      double mj = b1 * double(m[j]) + (1.0 - b1) * gj;
      double vj = b2 * double(v[j]) + (1.0 - b2) * gj * gj;
      m[j] = float(mj);
      v[j] = float(vj);
      if (bf16) {
        m[j] = bf16_to_f32(f32_to_bf16(m[j]));
        v[j] = bf16_to_f32(f32_to_bf16(v[j]));
        mj = m[j], vj = v[j];
      }
      p[j] = float(double(p[j]) * keep - step_size * mj / (std::sqrt(vj) * inv_sqrt_bc2 + eps));
    }
  }
}

int64_t AdamW::state_bytes() const {
  int64_t n = 0;
  for (size_t i = 0; i < m_.size(); ++i) n += int64_t(m_[i].size() + v_[i].size()) * int64_t(sizeof(float));
  return n;
}

double grad_sq_sum(const Params& grads, const std::vector<char>& only) {
  // Fixed-size blocks summed in parallel, then the partial sums serially: the same bits for any thread count.
  constexpr int64_t kBlock = 16384;
  double total = 0.0;
  std::vector<double> part;
  for (size_t i = 0; i < grads.size(); ++i) {
    if (!trainable(grads.specs()[i].role) || (!only.empty() && !only[i])) continue;
    const float* g = grads.value(i).data();
    const int64_t n = int64_t(grads.value(i).size()), nb = (n + kBlock - 1) / kBlock;
    part.assign(size_t(nb), 0.0);
#pragma omp parallel for schedule(static) if (nb > 4)
    for (int64_t b = 0; b < nb; ++b) {
      double s = 0.0;
      for (int64_t j = b * kBlock; j < std::min(n, (b + 1) * kBlock); ++j) s += double(g[j]) * double(g[j]);
      part[size_t(b)] = s;
    }
    for (double s : part) total += s;
  }
  return total;
}

double grad_global_norm(const Params& grads) { return std::sqrt(grad_sq_sum(grads)); }

void scale_grads(Params& grads, float c, const std::vector<char>& only) {
  for (size_t i = 0; i < grads.size(); ++i) {
    if (!trainable(grads.specs()[i].role) || (!only.empty() && !only[i])) continue;
    for (float& g : grads.value(i)) g *= c;
  }
}

double clip_grad_norm(Params& grads, double max_norm) {
  const double norm = grad_global_norm(grads);
  if (max_norm <= 0) return norm;
  const double coef = max_norm / (norm + 1e-6);
  if (coef >= 1.0) return norm;
  scale_grads(grads, float(coef));
  return norm;
}

}  // namespace dsv3::train
