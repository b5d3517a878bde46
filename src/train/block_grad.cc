#include "train/block_grad.h"

#include "train/rmsnorm_grad.h"

namespace dsv3::train {

namespace {
void add_into(float* h, const float* x, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) h[i] += x[i];
}
}  // namespace

void block_forward(const ModelConfig& c, const RopeTable& rope, const LayerP& w, int64_t B, int64_t T,
                   BalanceMode balance, float* h, BlockActs& a, const LinearPrecision& prec) {
  const int64_t m = B * T, D = c.hidden_size;
  const float eps = float(c.rms_norm_eps);
  std::vector<float> tmp(size_t(m * D));
  a.x_in.assign(h, h + m * D);
  a.rs1.resize(size_t(m));
  a.xn1.resize(size_t(m * D));
  rmsnorm_forward(h, w.attn_norm, m, D, eps, a.xn1.data(), a.rs1.data());
  mla_forward(c, rope, w.attn, a.xn1.data(), B, T, tmp.data(), a.attn, prec);
  add_into(h, tmp.data(), m * D);
  a.h_mid.assign(h, h + m * D);
  a.rs2.resize(size_t(m));
  a.xn2.resize(size_t(m * D));
  rmsnorm_forward(h, w.ffn_norm, m, D, eps, a.xn2.data(), a.rs2.data());
  if (w.is_moe)
    moe_forward(c, w.moe, a.xn2.data(), B, T, balance, tmp.data(), a.moe, prec);
  else
    ffn_forward(w.mlp, D, a.xn2.data(), m, tmp.data(), a.mlp, prec);
  add_into(h, tmp.data(), m * D);
}

void block_backward(const ModelConfig& c, const RopeTable& rope, const LayerP& w, const LayerG& g, int64_t B,
                    int64_t T, const BlockActs& a, float balance_weight, float* dh,
                    const LinearPrecision& prec) {
  const int64_t m = B * T, D = c.hidden_size;
  std::vector<float> dxn(size_t(m * D), 0.0f);
  if (w.is_moe)
    moe_backward(c, w.moe, g.moe, a.xn2.data(), m, a.moe, dh, balance_weight, dxn.data(), prec);
  else
    ffn_backward(w.mlp, g.mlp, D, a.xn2.data(), m, a.mlp, dh, dxn.data(), prec);
  rmsnorm_backward(dxn.data(), a.h_mid.data(), w.ffn_norm, a.rs2.data(), m, D, dh, g.ffn_norm);  // dh = ∂L/∂h_mid
  std::fill(dxn.begin(), dxn.end(), 0.0f);
  mla_backward(c, rope, w.attn, g.attn, a.xn1.data(), B, T, a.attn, dh, dxn.data(), prec);
  rmsnorm_backward(dxn.data(), a.x_in.data(), w.attn_norm, a.rs1.data(), m, D, dh, g.attn_norm);
}

}  // namespace dsv3::train
