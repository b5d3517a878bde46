#include "train/mtp_grad.h"

#include <cstring>

#include "train/embedding_grad.h"
#include "train/linear_grad.h"
#include "train/rmsnorm_grad.h"

namespace dsv3::train {

void mtp_forward(const StepContext& ctx, const MtpP& w, const float* embed, const int32_t* tokens, int64_t k,
                 const float* prev, MtpActs& a) {
  const int64_t B = ctx.batch, T = ctx.seq_len, D = ctx.config.hidden_size, Tk = T - 1 - k, m = B * Tk;
  const float eps = float(ctx.config.rms_norm_eps);
  a.rows_per_seq = Tk;
  a.next.resize(size_t(m));
  a.hin.resize(size_t(m * D));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < Tk; ++i) {
      a.next[size_t(b * Tk + i)] = tokens[b * T + i + k + 1];
      std::memcpy(a.hin.data() + (b * Tk + i) * D, prev + (b * (Tk + 1) + i) * D, size_t(D) * sizeof(float));
    }
  a.e.resize(size_t(m * D));
  embedding_forward(embed, a.next.data(), m, D, a.e.data());
  a.e_rstd.resize(size_t(m));
  a.h_rstd.resize(size_t(m));
  a.cat.resize(size_t(m * 2 * D));
  std::vector<float> tmp(size_t(m * D));
  rmsnorm_forward(a.e.data(), w.enorm, m, D, eps, tmp.data(), a.e_rstd.data());
  for (int64_t r = 0; r < m; ++r) std::memcpy(a.cat.data() + r * 2 * D, tmp.data() + r * D, size_t(D) * 4);
  rmsnorm_forward(a.hin.data(), w.hnorm, m, D, eps, tmp.data(), a.h_rstd.data());
  for (int64_t r = 0; r < m; ++r) std::memcpy(a.cat.data() + r * 2 * D + D, tmp.data() + r * D, size_t(D) * 4);
  a.out.resize(size_t(m * D));
  linear_forward(a.cat.data(), w.eh_proj, m, D, 2 * D, a.out.data(), ctx.linear);
  block_forward(ctx.with_seq_len(Tk), w.layer, a.out.data(), a.block);
  a.out_rstd.resize(size_t(m));
  a.hn.resize(size_t(m * D));
  rmsnorm_forward(a.out.data(), w.head_norm, m, D, eps, a.hn.data(), a.out_rstd.data());
}

void mtp_backward(const StepContext& ctx, const MtpP& w, const MtpG& g, const MtpActs& a, const float* dhn, float* dout,
                  float* dprev, float* dembed) {
  const int64_t B = ctx.batch, D = ctx.config.hidden_size, Tk = a.rows_per_seq, m = B * Tk;
  rmsnorm_backward(dhn, a.out.data(), w.head_norm, a.out_rstd.data(), m, D, dout, g.head_norm);
  block_backward(ctx.with_seq_len(Tk), w.layer, g.layer, a.block, dout);
  std::vector<float> dcat(size_t(m * 2 * D), 0.0f);
  linear_backward(dout, a.cat.data(), w.eh_proj, m, D, 2 * D, dcat.data(), g.eh_proj, ctx.linear, ctx.wgrad);
  // Split dcat into the two halves (contiguous copies for the row-batched norm backward).
  std::vector<float> dhalf(size_t(m * D)), de(size_t(m * D), 0.0f), dh(size_t(m * D), 0.0f);
  for (int64_t r = 0; r < m; ++r) std::memcpy(dhalf.data() + r * D, dcat.data() + r * 2 * D, size_t(D) * 4);
  rmsnorm_backward(dhalf.data(), a.e.data(), w.enorm, a.e_rstd.data(), m, D, de.data(), g.enorm);
  for (int64_t r = 0; r < m; ++r) std::memcpy(dhalf.data() + r * D, dcat.data() + r * 2 * D + D, size_t(D) * 4);
  rmsnorm_backward(dhalf.data(), a.hin.data(), w.hnorm, a.h_rstd.data(), m, D, dh.data(), g.hnorm);
  embedding_backward(de.data(), a.next.data(), m, D, dembed);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < Tk; ++i) {
      float* dst = dprev + (b * (Tk + 1) + i) * D;
      const float* src = dh.data() + (b * Tk + i) * D;
      for (int64_t j = 0; j < D; ++j) dst[j] += src[j];
    }
}

}  // namespace dsv3::train
