// An independent float64 reference of the training objective, module by module, written as plain loops
// straight from the equations (DeepSeek-V3 §2.1–2.2, inference/model.py) — no code shared with src/train.
// The gradient checks differentiate it by central differences. Attention is the naive (non-absorbed) form;
// routing re-implements Gate.forward (scores, bias for selection only, group limit, top-k, normalisation,
// routed scale) and reports the smallest selection margin so tests can insist on margin-safe inputs.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/rope.h"
#include "train/params.h"
#include "train/step.h"

namespace dsv3::train::ref {

using Vec = std::vector<double>;

// Double copies of every parameter, by name.
struct DParams {
  const Params* layout;
  std::vector<Vec> v;
  explicit DParams(const Params& p) : layout(&p) {
    for (size_t i = 0; i < p.size(); ++i) v.emplace_back(p.value(i).begin(), p.value(i).end());
  }
  const double* operator()(const std::string& name) const { return v[layout->index(name)].data(); }
  bool has(const std::string& name) const {
    for (const auto& s : layout->specs())
      if (s.name == name) return true;
    return false;
  }
};

// y [m, n] = x [m, k] · w[n, k]ᵀ
inline Vec linear(const Vec& x, const double* w, int64_t n, int64_t k) {
  const int64_t m = int64_t(x.size()) / k;
  Vec y(size_t(m * n), 0.0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double acc = 0.0;
      for (int64_t p = 0; p < k; ++p) acc += x[size_t(i * k + p)] * w[j * k + p];
      y[size_t(i * n + j)] = acc;
    }
  return y;
}

inline Vec rmsnorm(const Vec& x, const double* w, int64_t n, double eps) {
  Vec y(x.size());
  for (size_t i = 0; i < x.size() / size_t(n); ++i) {
    double ss = 0.0;
    for (int64_t j = 0; j < n; ++j) ss += x[i * size_t(n) + size_t(j)] * x[i * size_t(n) + size_t(j)];
    const double r = 1.0 / std::sqrt(ss / double(n) + eps);
    for (int64_t j = 0; j < n; ++j) y[i * size_t(n) + size_t(j)] = x[i * size_t(n) + size_t(j)] * r * w[j];
  }
  return y;
}

inline void add(Vec& a, const Vec& b) {
  for (size_t i = 0; i < a.size(); ++i) a[i] += b[i];
}

// SwiGLU: w2(silu(w1 x) ⊙ w3 x); prefix e.g. "model.layers.0.mlp."
inline Vec ffn(const DParams& P, const std::string& pre, const Vec& x, int64_t D, int64_t I) {
  Vec g = linear(x, P(pre + "gate_proj.weight"), I, D), u = linear(x, P(pre + "up_proj.weight"), I, D);
  for (size_t i = 0; i < g.size(); ++i) g[i] = g[i] / (1.0 + std::exp(-g[i])) * u[i];
  return linear(g, P(pre + "down_proj.weight"), D, I);
}

// Rotation of adjacent pairs by the table's (float) angles for position t.
inline void rope(double* x, int64_t d, const RopeTable& rt, int64_t t) {
  const float* cs = rt.at(t);
  for (int64_t i = 0; i < d / 2; ++i) {
    const double c = cs[2 * i], s = cs[2 * i + 1], a = x[2 * i], b = x[2 * i + 1];
    x[2 * i] = a * c - b * s;
    x[2 * i + 1] = a * s + b * c;
  }
}

// MLA over B sequences of T rows; prefix e.g. "model.layers.0.self_attn."
inline Vec mla(const ModelConfig& c, const DParams& P, const std::string& pre, const RopeTable& rt, const Vec& x,
               int64_t B, int64_t T) {
  const int64_t D = c.hidden_size, H = c.num_attention_heads, dn = c.qk_nope_head_dim, dr = c.qk_rope_head_dim,
                dv = c.v_head_dim, C = c.kv_lora_rank, Rq = c.q_lora_rank, qk = dn + dr, m = B * T;
  const double eps = c.rms_norm_eps, scale = c.softmax_scale();
  Vec q = Rq > 0
              ? linear(rmsnorm(linear(x, P(pre + "q_a_proj.weight"), Rq, D), P(pre + "q_a_layernorm.weight"), Rq, eps),
                       P(pre + "q_b_proj.weight"), H * qk, Rq)
              : linear(x, P(pre + "q_proj.weight"), H * qk, D);
  const Vec ckv = linear(x, P(pre + "kv_a_proj_with_mqa.weight"), C + dr, D);
  Vec cpart(size_t(m * C)), kpe(size_t(m * dr));
  for (int64_t r = 0; r < m; ++r) {
    for (int64_t j = 0; j < C; ++j) cpart[size_t(r * C + j)] = ckv[size_t(r * (C + dr) + j)];
    for (int64_t j = 0; j < dr; ++j) kpe[size_t(r * dr + j)] = ckv[size_t(r * (C + dr) + C + j)];
    rope(&kpe[size_t(r * dr)], dr, rt, r % T);
    for (int64_t h = 0; h < H; ++h) rope(&q[size_t((r * H + h) * qk + dn)], dr, rt, r % T);
  }
  const Vec kvb =
      linear(rmsnorm(cpart, P(pre + "kv_a_layernorm.weight"), C, eps), P(pre + "kv_b_proj.weight"), H * (dn + dv), C);
  Vec o(size_t(m * H * dv), 0.0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < T; ++i) {
        const double* qi = &q[size_t(((b * T + i) * H + h) * qk)];
        Vec s(size_t(i + 1));
        for (int64_t j = 0; j <= i; ++j) {
          const double* kj = &kvb[size_t(((b * T + j) * H + h) * (dn + dv))];
          const double* pj = &kpe[size_t((b * T + j) * dr)];
          double acc = 0.0;
          for (int64_t d = 0; d < dn; ++d) acc += qi[d] * kj[d];
          for (int64_t d = 0; d < dr; ++d) acc += qi[dn + d] * pj[d];
          s[size_t(j)] = scale * acc;
        }
        const double mx = *std::max_element(s.begin(), s.end());
        double z = 0.0;
        for (double& v : s) z += (v = std::exp(v - mx));
        double* oi = &o[size_t(((b * T + i) * H + h) * dv)];
        for (int64_t j = 0; j <= i; ++j) {
          const double* vj = &kvb[size_t(((b * T + j) * H + h) * (dn + dv) + dn)];
          for (int64_t d = 0; d < dv; ++d) oi[d] += s[size_t(j)] / z * vj[d];
        }
      }
  return linear(o, P(pre + "o_proj.weight"), D, H * dv);
}

struct MoeOut {
  Vec y;
  double balance = 0.0;     // mean over segments of Σ_i f_i P_i
  double min_margin = 1e9;  // smallest gap deciding a selection (top-k and group choice)
};

// DeepSeekMoE; prefix e.g. "model.layers.1.mlp."
inline MoeOut moe(const ModelConfig& c, const DParams& P, const std::string& pre, const Vec& x, int64_t B, int64_t T,
                  BalanceMode mode) {
  const int64_t D = c.hidden_size, E = c.n_routed_experts, K = c.num_experts_per_tok, m = B * T;
  const bool greedy = c.topk_method == TopkMethod::Greedy;
  const int64_t ng = greedy ? 1 : c.n_group, tg = greedy ? 1 : c.topk_group;
  const double* bias = c.topk_method == TopkMethod::NoauxTc ? P(pre + "gate.e_score_correction_bias") : nullptr;
  const bool normalise = c.norm_topk_prob && K > 1;
  const double f = (c.model_type == "deepseek_v2" && normalise) ? 1.0 : c.routed_scaling_factor;
  const Vec logits = linear(x, P(pre + "gate.weight"), E, D);
  MoeOut out;
  out.y = c.n_shared_experts > 0 ? ffn(P, pre + "shared_experts.", x, D, c.n_shared_experts * c.moe_intermediate_size)
                                 : Vec(size_t(m * D), 0.0);
  Vec scores(size_t(m * E));
  std::vector<int64_t> chosen(size_t(m * K));
  const double inf = std::numeric_limits<double>::infinity();
  for (int64_t r = 0; r < m; ++r) {
    double* s = &scores[size_t(r * E)];
    const double* l = &logits[size_t(r * E)];
    if (c.scoring_func == ScoringFunc::Sigmoid) {
      for (int64_t i = 0; i < E; ++i) s[i] = 1.0 / (1.0 + std::exp(-l[i]));
    } else {
      const double mx = *std::max_element(l, l + E);
      double z = 0.0;
      for (int64_t i = 0; i < E; ++i) z += (s[i] = std::exp(l[i] - mx));
      for (int64_t i = 0; i < E; ++i) s[i] /= z;
    }
    Vec sel(s, s + E);
    if (bias)
      for (int64_t i = 0; i < E; ++i) sel[size_t(i)] += bias[i];
    if (ng > 1) {
      const int64_t per = E / ng;
      Vec gs(static_cast<size_t>(ng));
      for (int64_t g = 0; g < ng; ++g) {
        Vec v(sel.begin() + g * per, sel.begin() + (g + 1) * per);
        std::sort(v.rbegin(), v.rend());
        gs[size_t(g)] = bias ? v[0] + (per > 1 ? v[1] : 0.0) : v[0];
      }
      std::vector<int64_t> order(static_cast<size_t>(ng));
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return gs[size_t(a)] > gs[size_t(b)]; });
      if (tg < ng)
        out.min_margin = std::min(out.min_margin, gs[size_t(order[size_t(tg - 1)])] - gs[size_t(order[size_t(tg)])]);
      for (int64_t gi = tg; gi < ng; ++gi)
        for (int64_t i = 0; i < per; ++i) sel[size_t(order[size_t(gi)] * per + i)] = -inf;
    }
    std::vector<int64_t> order(static_cast<size_t>(E));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return sel[size_t(a)] > sel[size_t(b)]; });
    if (K < E && sel[size_t(order[size_t(K)])] > -inf)
      out.min_margin = std::min(out.min_margin, sel[size_t(order[size_t(K - 1)])] - sel[size_t(order[size_t(K)])]);
    double z = 0.0;
    for (int64_t k = 0; k < K; ++k) z += s[order[size_t(k)]];
    if (c.scoring_func == ScoringFunc::Softmax) z += 1e-20;
    const Vec xr(x.begin() + r * D, x.begin() + (r + 1) * D);
    for (int64_t k = 0; k < K; ++k) {
      const int64_t e = order[size_t(k)];
      chosen[size_t(r * K + k)] = e;
      const double gk = f * (normalise ? s[e] / z : s[e]);
      const Vec ye = ffn(P, pre + "experts." + std::to_string(e) + ".", xr, D, c.moe_intermediate_size);
      for (int64_t j = 0; j < D; ++j) out.y[size_t(r * D + j)] += gk * ye[size_t(j)];
    }
  }
  if (mode != BalanceMode::None) {
    const int64_t seg = mode == BalanceMode::AuxFree ? T : m, nseg = m / seg;
    for (int64_t sg = 0; sg < nseg; ++sg) {
      Vec cnt(size_t(E), 0.0), Pm(size_t(E), 0.0);
      for (int64_t r = sg * seg; r < (sg + 1) * seg; ++r) {
        double z = 0.0;
        for (int64_t i = 0; i < E; ++i) z += scores[size_t(r * E + i)];
        for (int64_t i = 0; i < E; ++i) Pm[size_t(i)] += scores[size_t(r * E + i)] / z / double(seg);
        for (int64_t k = 0; k < K; ++k) cnt[size_t(chosen[size_t(r * K + k)])] += 1.0;
      }
      double l = 0.0;
      for (int64_t i = 0; i < E; ++i) l += double(E) / double(K * seg) * cnt[size_t(i)] * Pm[size_t(i)];
      out.balance += l / double(nseg);
    }
  }
  return out;
}

struct Tally {
  double balance = 0.0;
  double min_margin = 1e9;
};

// One decoder layer, HF index l.
inline Vec block(const ModelConfig& c, const DParams& P, int64_t l, const RopeTable& rt, Vec h, int64_t B, int64_t T,
                 BalanceMode mode, Tally& tally) {
  const std::string pre = "model.layers." + std::to_string(l) + ".";
  const int64_t D = c.hidden_size;
  add(h, mla(c, P, pre + "self_attn.", rt, rmsnorm(h, P(pre + "input_layernorm.weight"), D, c.rms_norm_eps), B, T));
  const Vec xn = rmsnorm(h, P(pre + "post_attention_layernorm.weight"), D, c.rms_norm_eps);
  if (c.is_moe_layer(l)) {
    const MoeOut o = moe(c, P, pre + "mlp.", xn, B, T, mode);
    add(h, o.y);
    tally.balance += o.balance;
    tally.min_margin = std::min(tally.min_margin, o.min_margin);
  } else {
    add(h, ffn(P, pre + "mlp.", xn, D, c.intermediate_size));
  }
  return h;
}

// Σ over rows of CE(hn[row]·headᵀ, target)
inline double ce_sum(const Vec& hn, const double* head, int64_t V, int64_t D,
                     const std::vector<std::pair<int64_t, int32_t>>& rows) {
  double total = 0.0;
  for (const auto& [row, t] : rows) {
    Vec l(static_cast<size_t>(V));
    for (int64_t v = 0; v < V; ++v) {
      double acc = 0.0;
      for (int64_t j = 0; j < D; ++j) acc += hn[size_t(row * D + j)] * head[v * D + j];
      l[size_t(v)] = acc;
    }
    const double mx = *std::max_element(l.begin(), l.end());
    double z = 0.0;
    for (double v : l) z += std::exp(v - mx);
    total += mx + std::log(z) - l[size_t(t)];
  }
  return total;
}

// The whole objective of train/step.h: main CE + λ·(1/D_mtp) Σ_k MTP CE_k + α·Σ balance.
inline double model_loss(const ModelConfig& c, const DParams& P, const int32_t* tokens, int64_t B, int64_t T,
                         const LossOptions& opt, Tally& tally) {
  const int64_t D = c.hidden_size, V = c.vocab_size, m = B * T;
  RopeTable rt(c);
  rt.ensure(T);
  const double* embed = P("model.embed_tokens.weight");
  const double* head = c.tie_word_embeddings ? embed : P("lm_head.weight");
  Vec h(size_t(m * D));
  for (int64_t r = 0; r < m; ++r)
    for (int64_t j = 0; j < D; ++j) h[size_t(r * D + j)] = embed[tokens[r] * D + j];
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) h = block(c, P, l, rt, h, B, T, opt.mode, tally);
  Vec prev = rmsnorm(h, P("model.norm.weight"), D, c.rms_norm_eps);
  std::vector<std::pair<int64_t, int32_t>> rows;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i + 1 < T; ++i) rows.push_back({b * T + i, tokens[b * T + i + 1]});
  double loss = ce_sum(prev, head, V, D, rows) / double(rows.size());
  const int64_t Dm = c.num_nextn_predict_layers;
  const int64_t n_mtp = opt.mtp_lambda > 0 ? std::clamp<int64_t>(T - 2, 0, Dm) : 0;
  for (int64_t k = 0; k < n_mtp; ++k) {
    const int64_t Tk = T - 1 - k, l = c.num_hidden_layers + k;
    const std::string pre = "model.layers." + std::to_string(l) + ".";
    Vec e(size_t(B * Tk * D)), hin(size_t(B * Tk * D));
    for (int64_t b = 0; b < B; ++b)
      for (int64_t i = 0; i < Tk; ++i)
        for (int64_t j = 0; j < D; ++j) {
          e[size_t((b * Tk + i) * D + j)] = embed[tokens[b * T + i + k + 1] * D + j];
          hin[size_t((b * Tk + i) * D + j)] = prev[size_t((b * (Tk + 1) + i) * D + j)];
        }
    const Vec en = rmsnorm(e, P(pre + "enorm.weight"), D, c.rms_norm_eps);
    const Vec hh = rmsnorm(hin, P(pre + "hnorm.weight"), D, c.rms_norm_eps);
    Vec cat(size_t(B * Tk * 2 * D));
    for (int64_t r = 0; r < B * Tk; ++r)
      for (int64_t j = 0; j < D; ++j) {
        cat[size_t(r * 2 * D + j)] = en[size_t(r * D + j)];
        cat[size_t(r * 2 * D + D + j)] = hh[size_t(r * D + j)];
      }
    Vec x = block(c, P, l, rt, linear(cat, P(pre + "eh_proj.weight"), D, 2 * D), B, Tk, opt.mode, tally);
    std::vector<std::pair<int64_t, int32_t>> mrows;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t i = 0; i + 1 < Tk; ++i) mrows.push_back({b * Tk + i, tokens[b * T + i + k + 2]});
    const Vec hn = rmsnorm(x, P(pre + "shared_head.norm.weight"), D, c.rms_norm_eps);
    loss += opt.mtp_lambda / double(Dm) * ce_sum(hn, head, V, D, mrows) / double(mrows.size());
    prev = x;
  }
  if (opt.mode != BalanceMode::None) loss += opt.balance_alpha * tally.balance;
  return loss;
}

}  // namespace dsv3::train::ref
