#include "train/ffn_grad.h"

#include <cmath>

#include "train/linear_grad.h"

namespace dsv3::train {

void ffn_forward(const StepContext& ctx, const FfnP& w, const float* x, int64_t m, float* y, FfnActs& a) {
  const int64_t hidden = ctx.config.hidden_size, I = w.inter, n = m * I;
  const LinearPrecision& prec = ctx.linear;
  a.gate.resize(size_t(n));
  a.up.resize(size_t(n));
  a.sig.resize(size_t(n));
  a.act.resize(size_t(n));
  linear_forward(x, w.w1, m, I, hidden, a.gate.data(), prec);
  linear_forward(x, w.w3, m, I, hidden, a.up.data(), prec);
  float* sig = a.sig.data();
  float* act = a.act.data();
  const float* gt = a.gate.data();
  const float* up = a.up.data();
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    const float s = 1.0f / (1.0f + std::exp(-gt[i]));
    sig[i] = s;
    act[i] = gt[i] * s * up[i];
  }
  linear_forward(a.act.data(), w.w2, m, hidden, I, y, prec);
}

void ffn_backward(const StepContext& ctx, const FfnP& w, const FfnG& g, const float* x, int64_t m, const FfnActs& a,
                  const float* dy, float* dx) {
  const int64_t hidden = ctx.config.hidden_size, I = w.inter, n = m * I;
  const LinearPrecision& prec = ctx.linear;
  std::vector<float> da(size_t(n), 0.0f), du(static_cast<size_t>(n));
  linear_backward(dy, a.act.data(), w.w2, m, hidden, I, da.data(), g.w2, prec, ctx.wgrad);
  float* dg = da.data();  // overwritten in place: da → dg
  float* dup = du.data();
  const float* gt = a.gate.data();
  const float* up = a.up.data();
  const float* sig = a.sig.data();
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    const float s = sig[i], gv = gt[i], d = dg[i];
    dup[i] = d * gv * s;
    dg[i] = d * up[i] * s * (1.0f + gv * (1.0f - s));
  }
  linear_backward(dg, x, w.w1, m, I, hidden, dx, g.w1, prec, ctx.wgrad);
  linear_backward(dup, x, w.w3, m, I, hidden, dx, g.w3, prec, ctx.wgrad);
}

}  // namespace dsv3::train
