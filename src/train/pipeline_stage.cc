#include "train/pipeline_stage.h"

#include <algorithm>
#include <utility>

#include "train/embedding_grad.h"
#include "train/loss.h"
#include "train/rmsnorm_grad.h"
#include "train/step_context.h"

namespace dsv3::train {

namespace {

StepContext context(const StageStep& s, WeightGradStore* wgrad, const Turn* turn) {
  const BalanceMode bal = s.opt.mode;
  StepContext ctx{
      .config = s.config,
      .rope = s.rope,
      .batch = s.batch,
      .seq_len = s.seq_len,
      .balance = bal,
      .balance_weight = bal == BalanceMode::None ? 0.0f : float(s.opt.balance_alpha) * s.grad_scale,
      .linear = s.opt.linear,
      .ep = s.ep,
  };
  ctx.wgrad = wgrad;
  ctx.turn = turn;
  return ctx;
}

int64_t n_mtp_of(const StageStep& s) {
  return s.opt.mtp_lambda > 0 ? std::clamp<int64_t>(s.seq_len - 2, 0, int64_t(s.w.mtp.size())) : 0;
}

int64_t floats(const std::vector<float>& v) { return int64_t(v.size()); }

int64_t ffn_floats(const FfnActs& a) { return floats(a.gate) + floats(a.up) + floats(a.sig) + floats(a.act); }

int64_t block_floats(const BlockActs& a) {
  // The residual-sized buffers and the attention's probabilities dominate; the rest is counted roughly.
  return floats(a.x_in) + floats(a.rs1) + floats(a.xn1) + floats(a.h_mid) + floats(a.rs2) + floats(a.xn2) +
         floats(a.attn.q) + floats(a.attn.kvb) + floats(a.attn.kpe) + floats(a.attn.probs) + floats(a.attn.o) +
         floats(a.attn.c) + floats(a.attn.cn) + floats(a.attn.qa) + floats(a.attn.qn) + floats(a.mlp.gate) +
         floats(a.mlp.up) + floats(a.mlp.sig) + floats(a.mlp.act) + floats(a.moe.yslot) + ffn_floats(a.moe.shared) +
         [&] {
           int64_t n = 0;
           for (const FfnActs& e : a.moe.expert_acts) n += ffn_floats(e);
           return n;
         }();
}

}  // namespace

int64_t StageActs::bytes() const {
  int64_t n = floats(h) + floats(hn_rstd) + floats(dhn);
  for (const BlockActs& b : blocks) n += block_floats(b);
  for (const MtpActs& a : mtp)
    n += floats(a.e) + floats(a.hin) + floats(a.cat) + floats(a.out) + floats(a.hn) + block_floats(a.block);
  for (const auto& d : dmtp_hn) n += floats(d);
  return 4 * n;
}

StageLosses stage_forward(const StageStep& s, const StageRange& r, const int32_t* tokens, std::vector<float>& h,
                          StageActs& acts, const Turn* turn, WeightGradStore* head_wgrad) {
  const ModelConfig& c = s.config;
  const ModelP& w = s.w;
  const int64_t B = s.batch, T = s.seq_len, m = B * T, D = c.hidden_size, V = c.vocab_size;
  const StepContext ctx = context(s, nullptr, turn);
  StageLosses res;
  if (r.first) {
    h.assign(size_t(m * D), 0.0f);
    embedding_forward(w.embed, tokens, m, D, h.data());
  }
  acts.blocks.resize(size_t(r.layer_end - r.layer_begin));
  for (int64_t l = r.layer_begin; l < r.layer_end; ++l)
    block_forward(ctx, w.layers[size_t(l)], h.data(), acts.blocks[size_t(l - r.layer_begin)]);
  // The balance loss of this stage's MoE layers joins its share of the objective (α · Σ balance).
  const double alpha = s.opt.mode == BalanceMode::None ? 0.0 : s.opt.balance_alpha;
  auto report = [&](const LayerP& lw, const BlockActs& a) {
    if (!lw.is_moe) return;
    res.routing.push_back({.layer = lw.index, .load = a.moe.load, .balance_loss = a.moe.balance});
    res.loss += alpha * a.moe.balance;
  };
  for (int64_t l = r.layer_begin; l < r.layer_end; ++l)
    report(w.layers[size_t(l)], acts.blocks[size_t(l - r.layer_begin)]);
  if (!r.last) return res;

  // The last stage: final norm, MTP modules, the losses fused with the head's backward (as run_batch).
  const float eps = float(c.rms_norm_eps);
  const int64_t n_mtp_cfg = int64_t(w.mtp.size()), n_mtp = n_mtp_of(s);
  const float grad_scale = s.grad_scale;
  std::vector<float> hn(size_t(m * D));
  acts.hn_rstd.resize(size_t(m));
  rmsnorm_forward(h.data(), w.norm, m, D, eps, hn.data(), acts.hn_rstd.data());
  acts.mtp.resize(size_t(n_mtp));
  for (int64_t k = 0; k < n_mtp; ++k)
    mtp_forward(ctx, w.mtp[size_t(k)], w.embed, tokens, k, k == 0 ? hn.data() : acts.mtp[size_t(k - 1)].out.data(),
                acts.mtp[size_t(k)]);
  if (s.grads) acts.dhn.assign(size_t(m * D), 0.0f);
  float* const head_grad = s.grads ? s.g.head : nullptr;
  {
    std::vector<CeTarget> targets;
    targets.reserve(size_t(B * (T - 1)));
    for (int64_t b = 0; b < B; ++b)
      for (int64_t i = 0; i + 1 < T; ++i) targets.push_back({b * T + i, tokens[b * T + i + 1]});
    const double n = double(targets.size());
    res.tokens = int64_t(targets.size());
    res.main_ce = head_cross_entropy(hn.data(), w.head, V, D, targets, float(grad_scale / n),
                                     s.grads ? acts.dhn.data() : nullptr, head_grad, head_wgrad) /
                  n;
  }
  acts.dmtp_hn.resize(size_t(n_mtp));
  for (int64_t k = 0; k < n_mtp; ++k) {
    const MtpActs& a = acts.mtp[size_t(k)];
    const int64_t Tk = a.rows_per_seq;
    std::vector<CeTarget> targets;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t i = 0; i + 1 < Tk; ++i) targets.push_back({b * Tk + i, tokens[b * T + i + k + 2]});
    const double n = double(targets.size());
    const double weight = s.opt.mtp_lambda / double(n_mtp_cfg);
    if (s.grads) acts.dmtp_hn[size_t(k)].assign(size_t(B * Tk * D), 0.0f);
    const double ce = head_cross_entropy(a.hn.data(), w.head, V, D, targets, float(grad_scale * weight / n),
                                         s.grads ? acts.dmtp_hn[size_t(k)].data() : nullptr, head_grad, head_wgrad) /
                      n;
    res.mtp_ce += ce / double(n_mtp_cfg);
  }
  for (int64_t k = 0; k < n_mtp; ++k) report(w.mtp[size_t(k)].layer, acts.mtp[size_t(k)].block);
  res.loss += res.main_ce + (n_mtp > 0 ? s.opt.mtp_lambda * res.mtp_ce : 0.0);
  acts.h = std::move(h);  // the final norm's backward reads it
  h.clear();
  return res;
}

void stage_backward(const StageStep& s, const StageRange& r, const int32_t* tokens, StageActs& acts,
                    std::vector<float>& dh, WeightGradStore* wgrad, const Turn* turn) {
  const ModelConfig& c = s.config;
  const ModelP& w = s.w;
  const ModelG& g = s.g;
  const int64_t B = s.batch, T = s.seq_len, m = B * T, D = c.hidden_size;
  const StepContext ctx = context(s, wgrad, turn);
  if (r.last) {
    const int64_t n_mtp = int64_t(acts.mtp.size());
    std::vector<float> dnext;  // ∂L/∂out of module k from module k+1
    for (int64_t k = n_mtp - 1; k >= 0; --k) {
      const MtpActs& a = acts.mtp[size_t(k)];
      const int64_t rows = B * a.rows_per_seq;
      std::vector<float> dout = k + 1 < n_mtp ? std::move(dnext) : std::vector<float>(size_t(rows * D), 0.0f);
      std::vector<float> dprev(k == 0 ? 0 : size_t(B * (a.rows_per_seq + 1) * D), 0.0f);
      mtp_backward(ctx, w.mtp[size_t(k)], g.mtp[size_t(k)], a, acts.dmtp_hn[size_t(k)].data(), dout.data(),
                   k == 0 ? acts.dhn.data() : dprev.data(), g.embed);
      dnext = std::move(dprev);
    }
    dh.assign(size_t(m * D), 0.0f);
    rmsnorm_backward(acts.dhn.data(), acts.h.data(), w.norm, acts.hn_rstd.data(), m, D, dh.data(), g.norm);
  }
  for (int64_t l = r.layer_end; l-- > r.layer_begin;)
    block_backward(ctx, w.layers[size_t(l)], g.layers[size_t(l)], acts.blocks[size_t(l - r.layer_begin)], dh.data());
  if (r.first) {
    embedding_backward(dh.data(), tokens, m, D, g.embed);
    dh.clear();
  }
  acts = StageActs{};
}

}  // namespace dsv3::train
