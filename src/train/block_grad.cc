#include "train/block_grad.h"

#include "train/rmsnorm_grad.h"

namespace dsv3::train {

namespace {
void add_into(float* h, const float* x, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) h[i] += x[i];
}
}  // namespace

void block_forward(const StepContext& ctx, const LayerP& w, float* h, BlockActs& a) {
  const int64_t m = ctx.rows(), D = ctx.config.hidden_size;
  const float eps = float(ctx.config.rms_norm_eps);
  std::vector<float> tmp(size_t(m * D));
  a.x_in.assign(h, h + m * D);
  a.rs1.resize(size_t(m));
  a.xn1.resize(size_t(m * D));
  rmsnorm_forward(h, w.attn_norm, m, D, eps, a.xn1.data(), a.rs1.data());
  mla_forward(ctx, w.attn, a.xn1.data(), tmp.data(), a.attn);
  add_into(h, tmp.data(), m * D);
  a.h_mid.assign(h, h + m * D);
  a.rs2.resize(size_t(m));
  a.xn2.resize(size_t(m * D));
  rmsnorm_forward(h, w.ffn_norm, m, D, eps, a.xn2.data(), a.rs2.data());
  if (w.is_moe)
    moe_forward(ctx, w.moe, a.xn2.data(), tmp.data(), a.moe);
  else
    ffn_forward(ctx, w.mlp, a.xn2.data(), m, tmp.data(), a.mlp);
  add_into(h, tmp.data(), m * D);
}

void block_backward(const StepContext& ctx, const LayerP& w, const LayerG& g, const BlockActs& a, float* dh) {
  const int64_t m = ctx.rows(), D = ctx.config.hidden_size;
  std::vector<float> dxn(size_t(m * D), 0.0f);
  if (w.is_moe)
    moe_backward(ctx, w.moe, g.moe, a.xn2.data(), a.moe, dh, dxn.data());
  else
    ffn_backward(ctx, w.mlp, g.mlp, a.xn2.data(), m, a.mlp, dh, dxn.data());
  rmsnorm_backward(dxn.data(), a.h_mid.data(), w.ffn_norm, a.rs2.data(), m, D, dh, g.ffn_norm);  // dh = ∂L/∂h_mid
  std::fill(dxn.begin(), dxn.end(), 0.0f);
  mla_backward(ctx, w.attn, g.attn, a.xn1.data(), a.attn, dh, dxn.data());
  rmsnorm_backward(dxn.data(), a.x_in.data(), w.attn_norm, a.rs1.data(), m, D, dh, g.attn_norm);
}

}  // namespace dsv3::train
