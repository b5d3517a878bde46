#include "train/mla_grad.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/matmul.h"
#include "kernels/ops.h"
#include "train/linear_grad.h"
#include "train/rmsnorm_grad.h"

namespace dsv3::train {

namespace {

struct Dims {
  int64_t D, H, dn, dr, dv, C, Rq, qk, kvw;
  float scale, eps;
};

Dims dims(const ModelConfig& c) {
  return {.D = c.hidden_size,
          .H = c.num_attention_heads,
          .dn = c.qk_nope_head_dim,
          .dr = c.qk_rope_head_dim,
          .dv = c.v_head_dim,
          .C = c.kv_lora_rank,
          .Rq = c.q_lora_rank,
          .qk = c.qk_nope_head_dim + c.qk_rope_head_dim,
          .kvw = c.qk_nope_head_dim + c.v_head_dim,
          .scale = float(c.softmax_scale()),
          .eps = float(c.rms_norm_eps)};
}

// Transpose of the rotation kernels::rope_pairs applies: (a, b) ← (a cos + b sin, −a sin + b cos).
void rope_pairs_backward(float* x, int64_t d, const float* cos_sin) {
  for (int64_t i = 0; i < d / 2; ++i) {
    const float c = cos_sin[2 * i], s = cos_sin[2 * i + 1];
    const float a = x[2 * i], b = x[2 * i + 1];
    x[2 * i] = a * c + b * s;
    x[2 * i + 1] = -a * s + b * c;
  }
}

}  // namespace

void mla_forward(const StepContext& ctx, const MlaP& w, const float* x, float* out, MlaActs& a) {
  const Dims d = dims(ctx.config);
  const RopeTable& rope = ctx.rope;
  const LinearPrecision& prec = ctx.linear;
  const int64_t B = ctx.batch, T = ctx.seq_len, m = ctx.rows();
  const int64_t ldq = d.H * d.qk, ldkv = d.H * d.kvw, ldo = d.H * d.dv;

  // Queries [m, H, qk].
  a.q.resize(size_t(m * d.H * d.qk));
  if (d.Rq > 0) {
    a.qa.resize(size_t(m * d.Rq));
    a.qa_rstd.resize(size_t(m));
    a.qn.resize(size_t(m * d.Rq));
    linear_forward(x, w.wq_a, m, d.Rq, d.D, a.qa.data(), prec);
    rmsnorm_forward(a.qa.data(), w.q_norm, m, d.Rq, d.eps, a.qn.data(), a.qa_rstd.data());
    linear_forward(a.qn.data(), w.wq_b, m, d.H * d.qk, d.Rq, a.q.data(), prec);
  } else {
    linear_forward(x, w.wq, m, d.H * d.qk, d.D, a.q.data(), prec);
  }

  // Latent [m, C] → cn, rope key [m, dr] (wkv_a's rows split: [0, C) latent, [C, C + dr) rope key).
  a.c.resize(size_t(m * d.C));
  a.c_rstd.resize(size_t(m));
  a.cn.resize(size_t(m * d.C));
  a.kpe.resize(size_t(m * d.dr));
  linear_forward(x, w.wkv_a, m, d.C, d.D, a.c.data(), prec);
  linear_forward(x, w.wkv_a + d.C * d.D, m, d.dr, d.D, a.kpe.data(), prec);
  rmsnorm_forward(a.c.data(), w.kv_norm, m, d.C, d.eps, a.cn.data(), a.c_rstd.data());
#pragma omp parallel for schedule(static) if (m * ldq > 65536)
  for (int64_t r = 0; r < m; ++r) {
    const float* cs = rope.at(r % T);
    kernels::rope_pairs(a.kpe.data() + r * d.dr, d.dr, cs);
    for (int64_t h = 0; h < d.H; ++h) kernels::rope_pairs(a.q.data() + (r * d.H + h) * d.qk + d.dn, d.dr, cs);
  }
  a.kvb.resize(size_t(m * d.H * d.kvw));
  linear_forward(a.cn.data(), w.wkv_b, m, d.H * d.kvw, d.C, a.kvb.data(), prec);

  // V3.2: the indexer's selection before the attention; the sparse stage masks every row to its S_t.
  const bool ix = w.has_indexer;
  const bool sparse = ix && ctx.dsa == DsaStage::Sparse;
  if (ix) indexer_forward(ctx, w.indexer, x, a.qn.data(), a.ix);
  std::vector<float> dense(sparse ? size_t(B * d.H * T * T) : 0);  // [B, H, T, T] the unmasked softmax

  // Causal attention per (sequence, head).
  a.probs.resize(size_t(B * d.H * T * T));
  a.o.resize(size_t(m * d.H * d.dv));
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t task = 0; task < B * d.H; ++task) {
    const int64_t b = task / d.H, h = task % d.H;
    const float* qh = a.q.data() + b * T * ldq + h * d.qk;      // [T, qk], row stride ldq
    const float* kh = a.kvb.data() + b * T * ldkv + h * d.kvw;  // k_nope [T, dn], row stride ldkv
    const float* vh = kh + d.dn;                                // v [T, dv]
    const float* kp = a.kpe.data() + b * T * d.dr;              // [T, dr]
    float* p = a.probs.data() + task * T * T;                   // [T, T]
    kernels::gemm(T, T, d.dn, d.scale, {qh, ldq, false}, {kh, ldkv, true}, 0.0f, p, T);
    kernels::gemm(T, T, d.dr, d.scale, {qh + d.dn, ldq, false}, {kp, d.dr, true}, 1.0f, p, T);
    for (int64_t i = 0; i < T; ++i) {
      float* row = p + i * T;
      if (sparse) {
        float* dn = dense.data() + task * T * T + i * T;
        std::copy(row, row + i + 1, dn);
        kernels::softmax(dn, i + 1);
        std::fill(dn + i + 1, dn + T, 0.0f);
        if (a.ix.count[size_t(b * T + i)] < i + 1) {
          const uint8_t* sel = a.ix.selected.data() + (b * T + i) * T;
          for (int64_t j = 0; j <= i; ++j)
            if (!sel[j]) row[j] = -INFINITY;
        }
      }
      kernels::softmax(row, i + 1);
      std::fill(row + i + 1, row + T, 0.0f);
    }
    kernels::gemm(T, d.dv, T, 1.0f, {p, T, false}, {vh, ldkv, false}, 0.0f, a.o.data() + b * T * ldo + h * d.dv, ldo);
  }
  if (ix) {
    // The indexer loss's target p = Σ_h P_h / H (detached), and the dense mass its selection is scored on.
    const float inv_h = 1.0f / float(d.H);
    a.ix.target.assign(size_t(B * T * T), 0.0f);
    std::vector<float> dense_mass(sparse ? size_t(B * T * T) : 0, 0.0f);
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < d.H; ++h)
        for (int64_t e = 0; e < T * T; ++e) {
          a.ix.target[size_t(b * T * T + e)] += a.probs[size_t((b * d.H + h) * T * T + e)] * inv_h;
          if (sparse) dense_mass[size_t(b * T * T + e)] += dense[size_t((b * d.H + h) * T * T + e)] * inv_h;
        }
    indexer_loss(ctx, sparse ? dense_mass.data() : a.ix.target.data(), a.ix);
  }
  linear_forward(a.o.data(), w.wo, m, d.D, d.H * d.dv, out, prec);
}

void mla_backward(const StepContext& ctx, const MlaP& w, const MlaG& g, const float* x, const MlaActs& a,
                  const float* dout, float* dx) {
  const Dims d = dims(ctx.config);
  const RopeTable& rope = ctx.rope;
  const LinearPrecision& prec = ctx.linear;
  const int64_t B = ctx.batch, T = ctx.seq_len, m = ctx.rows();
  const int64_t ldq = d.H * d.qk, ldkv = d.H * d.kvw, ldo = d.H * d.dv;

  // V3.2: the indexer loss's gradient (its inputs x and qn are detached: nothing flows into dx).
  if (w.has_indexer) indexer_backward(ctx, w.indexer, g.indexer, x, a.qn.data(), a.ix);

  // out = wo(o)
  std::vector<float> dO(size_t(m * ldo), 0.0f);
  linear_backward(dout, a.o.data(), w.wo, m, d.D, ldo, dO.data(), g.wo, prec, ctx.wgrad);

  // Attention, per (sequence, head). Every task writes its own slices of dq and dkvb; the rope key is
  // shared by the heads, so its gradient goes to a per-head buffer summed afterwards.
  std::vector<float> dq(size_t(m * ldq)), dkvb(size_t(m * ldkv)), dkpe_h(size_t(B * d.H * T * d.dr));
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t task = 0; task < B * d.H; ++task) {
    const int64_t b = task / d.H, h = task % d.H;
    const float* qh = a.q.data() + b * T * ldq + h * d.qk;
    const float* kh = a.kvb.data() + b * T * ldkv + h * d.kvw;
    const float* vh = kh + d.dn;
    const float* kp = a.kpe.data() + b * T * d.dr;
    const float* p = a.probs.data() + task * T * T;
    const float* doh = dO.data() + b * T * ldo + h * d.dv;
    float* dqh = dq.data() + b * T * ldq + h * d.qk;
    float* dkh = dkvb.data() + b * T * ldkv + h * d.kvw;
    float* dvh = dkh + d.dn;
    float* dkp = dkpe_h.data() + task * T * d.dr;
    std::vector<float> ds(size_t(T * T));
    // dP = dO vᵀ;  dv = Pᵀ dO
    kernels::gemm(T, T, d.dv, 1.0f, {doh, ldo, false}, {vh, ldkv, true}, 0.0f, ds.data(), T);
    kernels::gemm(T, d.dv, T, 1.0f, {p, T, true}, {doh, ldo, false}, 0.0f, dvh, ldkv);
    // dS = P ⊙ (dP − Σ_j P dP)  (softmax backward, row by row; zero above the diagonal)
    for (int64_t i = 0; i < T; ++i) {
      const float* pi = p + i * T;
      float* si = ds.data() + i * T;
      float dot = 0.0f;
      for (int64_t j = 0; j <= i; ++j) dot += pi[j] * si[j];
      for (int64_t j = 0; j <= i; ++j) si[j] = pi[j] * (si[j] - dot);
      std::fill(si + i + 1, si + T, 0.0f);
    }
    // S = scale (q_nope k_nopeᵀ + q_pe k_peᵀ)
    kernels::gemm(T, d.dn, T, d.scale, {ds.data(), T, false}, {kh, ldkv, false}, 0.0f, dqh, ldq);
    kernels::gemm(T, d.dr, T, d.scale, {ds.data(), T, false}, {kp, d.dr, false}, 0.0f, dqh + d.dn, ldq);
    kernels::gemm(T, d.dn, T, d.scale, {ds.data(), T, true}, {qh, ldq, false}, 0.0f, dkh, ldkv);
    kernels::gemm(T, d.dr, T, d.scale, {ds.data(), T, true}, {qh + d.dn, ldq, false}, 0.0f, dkp, d.dr);
  }

  // Rope key gradient: sum over heads, then undo the rotations (q's too).
  std::vector<float> dkpe(size_t(m * d.dr), 0.0f);
#pragma omp parallel for schedule(static) if (m * ldq > 65536)
  for (int64_t r = 0; r < m; ++r) {
    const int64_t b = r / T, t = r % T;
    float* dst = dkpe.data() + r * d.dr;
    for (int64_t h = 0; h < d.H; ++h) {
      const float* src = dkpe_h.data() + ((b * d.H + h) * T + t) * d.dr;
      for (int64_t j = 0; j < d.dr; ++j) dst[j] += src[j];
    }
    rope_pairs_backward(dst, d.dr, rope.at(t));
    for (int64_t h = 0; h < d.H; ++h) rope_pairs_backward(dq.data() + (r * d.H + h) * d.qk + d.dn, d.dr, rope.at(t));
  }

  // kvb = wkv_b cn;  cn = kv_norm(c);  [c, k_pe] = wkv_a x
  std::vector<float> dcn(size_t(m * d.C), 0.0f), dc(size_t(m * d.C), 0.0f);
  linear_backward(dkvb.data(), a.cn.data(), w.wkv_b, m, ldkv, d.C, dcn.data(), g.wkv_b, prec, ctx.wgrad);
  rmsnorm_backward(dcn.data(), a.c.data(), w.kv_norm, a.c_rstd.data(), m, d.C, dc.data(), g.kv_norm);
  linear_backward(dc.data(), x, w.wkv_a, m, d.C, d.D, dx, g.wkv_a, prec, ctx.wgrad);
  linear_backward(dkpe.data(), x, w.wkv_a + d.C * d.D, m, d.dr, d.D, dx, g.wkv_a + d.C * d.D, prec, ctx.wgrad);

  // Queries.
  if (d.Rq > 0) {
    std::vector<float> dqn(size_t(m * d.Rq), 0.0f), dqa(size_t(m * d.Rq), 0.0f);
    linear_backward(dq.data(), a.qn.data(), w.wq_b, m, ldq, d.Rq, dqn.data(), g.wq_b, prec, ctx.wgrad);
    rmsnorm_backward(dqn.data(), a.qa.data(), w.q_norm, a.qa_rstd.data(), m, d.Rq, dqa.data(), g.q_norm);
    linear_backward(dqa.data(), x, w.wq_a, m, d.Rq, d.D, dx, g.wq_a, prec, ctx.wgrad);
  } else {
    linear_backward(dq.data(), x, w.wq, m, ldq, d.D, dx, g.wq, prec, ctx.wgrad);
  }
}

}  // namespace dsv3::train
