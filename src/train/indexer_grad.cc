#include "train/indexer_grad.h"

#include <omp.h>

#include <algorithm>
#include <cmath>

#include "kernels/indexer.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"

namespace dsv3::train {

namespace {

// DeepSeek's Indexer.k_norm is a LayerNorm with torch's default eps (model/indexer.cc).
constexpr float kKeyNormEps = 1e-6f;

struct Dims {
  int64_t B, T, m, D, H, DI, R, Rq, K;
  float wscale;  // H_I^−½ · D_I^−½
  bool pairs;
};

Dims dims(const StepContext& ctx) {
  const ModelConfig& c = ctx.config;
  return {.B = ctx.batch,
          .T = ctx.seq_len,
          .m = ctx.rows(),
          .D = c.hidden_size,
          .H = c.index_n_heads,
          .DI = c.index_head_dim,
          .R = c.qk_rope_head_dim,
          .Rq = c.q_lora_rank,
          .K = c.index_topk,
          .wscale = float(1.0 / std::sqrt(double(c.index_n_heads))) * float(1.0 / std::sqrt(double(c.index_head_dim))),
          .pairs = c.indexer_rope_interleave};
}

void rope_forward(float* v, const Dims& d, const float* cs) {
  if (d.pairs)
    kernels::rope_pairs(v, d.R, cs);
  else
    kernels::rope_half(v, d.R, cs);
}

// The transpose of the rotation rope_forward applies (its inverse).
void rope_backward(float* v, const Dims& d, const float* cs) {
  const int64_t half = d.R / 2;
  for (int64_t i = 0; i < half; ++i) {
    const float c = cs[2 * i], s = cs[2 * i + 1];
    float& a = d.pairs ? v[2 * i] : v[i];
    float& b = d.pairs ? v[2 * i + 1] : v[i + half];
    const float x = a, y = b;
    a = x * c + y * s;
    b = -x * s + y * c;
  }
}

// Whether key j is in row (b, t)'s loss key set: 0..t in the dense warm-up, S_t in the sparse stage.
bool in_keys(const StepContext& ctx, const uint8_t* sel_row, int64_t t, int64_t j) {
  return j <= t && (ctx.dsa == DsaStage::DenseWarmup || sel_row[j]);
}

// Row t's softmax over its key set: the largest score and Σ exp(z − max) (log-sum-exp = max + log Σ).
struct KeySoftmax {
  double mx = -INFINITY, sum = 0.0;
};
KeySoftmax key_softmax(const StepContext& ctx, const float* z, const uint8_t* sel, int64_t t) {
  KeySoftmax k;
  for (int64_t j = 0; j <= t; ++j)
    if (in_keys(ctx, sel, t, j)) k.mx = std::max(k.mx, double(z[j]));
  for (int64_t j = 0; j <= t; ++j)
    if (in_keys(ctx, sel, t, j)) k.sum += std::exp(double(z[j]) - k.mx);
  return k;
}

}  // namespace

void indexer_forward(const StepContext& ctx, const IndexerP& w, const float* x, const float* qr, IndexerActs& a) {
  const Dims d = dims(ctx);
  const int64_t ldq = d.H * d.DI;
  a.q.resize(size_t(d.m * ldq));
  a.kpre.resize(size_t(d.m * d.DI));
  a.k.resize(size_t(d.m * d.DI));
  a.krstd.resize(size_t(d.m));
  a.wts.resize(size_t(d.m * d.H));
  kernels::matmul_nt(qr, w.wq_b, d.m, ldq, d.Rq, a.q.data());
  kernels::matmul_nt(x, w.wk, d.m, d.DI, d.D, a.kpre.data());
  kernels::matmul_nt(x, w.weights_proj, d.m, d.H, d.D, a.wts.data());
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < d.m; ++r) {
    const float* cs = ctx.rope.at(r % d.T);
    const float* kp = a.kpre.data() + r * d.DI;
    float* k = a.k.data() + r * d.DI;
    float mean = 0.0f, var = 0.0f;
    for (int64_t i = 0; i < d.DI; ++i) mean += kp[i];
    mean /= float(d.DI);
    for (int64_t i = 0; i < d.DI; ++i) var += (kp[i] - mean) * (kp[i] - mean);
    var /= float(d.DI);
    const float rstd = 1.0f / std::sqrt(var + kKeyNormEps);
    a.krstd[size_t(r)] = rstd;
    for (int64_t i = 0; i < d.DI; ++i) k[i] = (kp[i] - mean) * rstd * w.k_norm[i] + w.k_norm_bias[i];
    rope_forward(k, d, cs);
    for (int64_t h = 0; h < d.H; ++h) {
      rope_forward(a.q.data() + r * ldq + h * d.DI, d, cs);
      a.wts[size_t(r * d.H + h)] *= d.wscale;
    }
  }

  // I[t, s] per sequence: Σ_h w[t, h] · relu(q_h k_sᵀ).
  const int64_t TT = d.T * d.T;
  a.scores.assign(size_t(d.B * TT), 0.0f);
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t b = 0; b < d.B; ++b) {
    std::vector<float> dots(static_cast<size_t>(TT));
    float* S = a.scores.data() + b * TT;
    for (int64_t h = 0; h < d.H; ++h) {
      kernels::gemm(d.T, d.T, d.DI, 1.0f, {a.q.data() + b * d.T * ldq + h * d.DI, ldq, false},
                    {a.k.data() + b * d.T * d.DI, d.DI, true}, 0.0f, dots.data(), d.T);
      for (int64_t i = 0; i < d.T; ++i) {
        const float wt = a.wts[size_t((b * d.T + i) * d.H + h)];
        for (int64_t j = 0; j <= i; ++j) S[i * d.T + j] += wt * std::max(0.0f, dots[size_t(i * d.T + j)]);
      }
    }
  }

  // S_t: the K best by (score descending, position ascending); every key when t + 1 <= K.
  a.selected.assign(size_t(d.B * TT), 0);
  a.count.assign(size_t(d.m), 0);
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < d.m; ++r) {
    const int64_t b = r / d.T, t = r % d.T, n = t + 1;
    uint8_t* sel = a.selected.data() + b * TT + t * d.T;
    if (n <= d.K) {
      std::fill(sel, sel + n, uint8_t(1));
      a.count[size_t(r)] = n;
      continue;
    }
    const float* sc = a.scores.data() + b * TT + t * d.T;
    std::vector<int32_t> ord(static_cast<size_t>(n));
    for (int64_t s = 0; s < n; ++s) ord[size_t(s)] = int32_t(s);
    std::nth_element(ord.begin(), ord.begin() + (d.K - 1), ord.end(),
                     [sc](int32_t p, int32_t q) { return sc[p] > sc[q] || (sc[p] == sc[q] && p < q); });
    for (int64_t j = 0; j < d.K; ++j) sel[ord[size_t(j)]] = 1;
    a.count[size_t(r)] = d.K;
  }
}

void indexer_loss(const StepContext& ctx, const float* dense, IndexerActs& a) {
  const Dims d = dims(ctx);
  const int64_t TT = d.T * d.T;
  std::vector<double> kl(size_t(d.m), 0.0), rec(size_t(d.m), 0.0);
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < d.m; ++r) {
    const int64_t b = r / d.T, t = r % d.T, off = b * TT + t * d.T;
    const float* z = a.scores.data() + off;
    const float* p = a.target.data() + off;
    const uint8_t* sel = a.selected.data() + off;
    const KeySoftmax ks = key_softmax(ctx, z, sel, t);
    const double lse = ks.mx + std::log(ks.sum);
    double v = 0.0;
    for (int64_t j = 0; j <= t; ++j)
      if (in_keys(ctx, sel, t, j) && p[j] > 0) v += double(p[j]) * (std::log(double(p[j])) - (double(z[j]) - lse));
    kl[size_t(r)] = v;
    if (t + 1 > d.K) {
      double m = 0.0;
      for (int64_t j = 0; j <= t; ++j)
        if (sel[j]) m += double(dense[off + j]);
      rec[size_t(r)] = m;
    }
  }
  a.loss = 0.0, a.recall = 0.0, a.recall_rows = 0;
  for (int64_t r = 0; r < d.m; ++r) {
    a.loss += kl[size_t(r)];
    if (r % d.T + 1 > d.K) a.recall += rec[size_t(r)], ++a.recall_rows;
  }
  a.loss /= double(d.m);
  if (a.recall_rows > 0) a.recall /= double(a.recall_rows);
}

void indexer_backward(const StepContext& ctx, const IndexerP& w, const IndexerG& g, const float* x, const float* qr,
                      const IndexerActs& a) {
  if (ctx.kl_scale == 0.0f) return;
  const Dims d = dims(ctx);
  const int64_t TT = d.T * d.T, ldq = d.H * d.DI;
  const float gs = ctx.kl_scale / float(d.m);

  // ∂/∂I[t, s] = gs · ((Σ_K p) softmax_K(I)_s − p_s) on the key set K, 0 elsewhere.
  std::vector<float> dz(size_t(d.B * TT), 0.0f);
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < d.m; ++r) {
    const int64_t b = r / d.T, t = r % d.T, off = b * TT + t * d.T;
    const float* z = a.scores.data() + off;
    const float* p = a.target.data() + off;
    const uint8_t* sel = a.selected.data() + off;
    float* out = dz.data() + off;
    const KeySoftmax ks = key_softmax(ctx, z, sel, t);
    double psum = 0.0;
    for (int64_t j = 0; j <= t; ++j)
      if (in_keys(ctx, sel, t, j)) psum += double(p[j]);
    for (int64_t j = 0; j <= t; ++j)
      if (in_keys(ctx, sel, t, j)) out[j] = gs * float(psum * std::exp(double(z[j]) - ks.mx) / ks.sum - double(p[j]));
  }

  // Through I = Σ_h w_h · relu(q_h kᵀ), per (sequence, head); the key gradient per head, summed afterwards.
  std::vector<float> dq(size_t(d.m * ldq)), dwts(size_t(d.m * d.H)), dk_h(size_t(d.B * d.H * d.T * d.DI));
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t task = 0; task < d.B * d.H; ++task) {
    const int64_t b = task / d.H, h = task % d.H;
    const float* qh = a.q.data() + b * d.T * ldq + h * d.DI;  // [T, DI], row stride ldq
    const float* kb = a.k.data() + b * d.T * d.DI;            // [T, DI]
    std::vector<float> dots(static_cast<size_t>(TT)), G(static_cast<size_t>(TT), 0.0f);
    kernels::gemm(d.T, d.T, d.DI, 1.0f, {qh, ldq, false}, {kb, d.DI, true}, 0.0f, dots.data(), d.T);
    for (int64_t i = 0; i < d.T; ++i) {
      const float wt = a.wts[size_t((b * d.T + i) * d.H + h)];
      const float* dzi = dz.data() + b * TT + i * d.T;
      float dw = 0.0f;
      for (int64_t j = 0; j <= i; ++j) {
        const float dot = dots[size_t(i * d.T + j)];
        if (dot > 0.0f) {
          dw += dzi[j] * dot;
          G[size_t(i * d.T + j)] = dzi[j] * wt;
        }
      }
      dwts[size_t((b * d.T + i) * d.H + h)] = dw * d.wscale;
    }
    kernels::gemm(d.T, d.DI, d.T, 1.0f, {G.data(), d.T, false}, {kb, d.DI, false}, 0.0f,
                  dq.data() + b * d.T * ldq + h * d.DI, ldq);
    kernels::gemm(d.T, d.DI, d.T, 1.0f, {G.data(), d.T, true}, {qh, ldq, false}, 0.0f, dk_h.data() + task * d.T * d.DI,
                  d.DI);
  }

  // Keys: sum over heads, undo the rotations (queries too), then the LayerNorm.
  std::vector<float> dkpre(size_t(d.m * d.DI));
  std::vector<float> dgamma_r(size_t(d.m * d.DI)), dbeta_r(size_t(d.m * d.DI));  // per row, summed in order below
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < d.m; ++r) {
    const int64_t b = r / d.T, t = r % d.T;
    const float* cs = ctx.rope.at(t);
    std::vector<float> dk(size_t(d.DI), 0.0f);
    for (int64_t h = 0; h < d.H; ++h) {
      const float* src = dk_h.data() + ((b * d.H + h) * d.T + t) * d.DI;
      for (int64_t i = 0; i < d.DI; ++i) dk[size_t(i)] += src[i];
      rope_backward(dq.data() + r * ldq + h * d.DI, d, cs);
    }
    rope_backward(dk.data(), d, cs);
    const float* kp = a.kpre.data() + r * d.DI;
    const float rstd = a.krstd[size_t(r)];
    float mean = 0.0f;
    for (int64_t i = 0; i < d.DI; ++i) mean += kp[i];
    mean /= float(d.DI);
    float s1 = 0.0f, s2 = 0.0f;  // mean(dxhat), mean(dxhat · xhat)
    for (int64_t i = 0; i < d.DI; ++i) {
      const float xhat = (kp[i] - mean) * rstd, dxhat = dk[size_t(i)] * w.k_norm[i];
      dgamma_r[size_t(r * d.DI + i)] = dk[size_t(i)] * xhat;
      dbeta_r[size_t(r * d.DI + i)] = dk[size_t(i)];
      s1 += dxhat;
      s2 += dxhat * xhat;
    }
    s1 /= float(d.DI), s2 /= float(d.DI);
    for (int64_t i = 0; i < d.DI; ++i) {
      const float xhat = (kp[i] - mean) * rstd, dxhat = dk[size_t(i)] * w.k_norm[i];
      dkpre[size_t(r * d.DI + i)] = rstd * (dxhat - s1 - xhat * s2);
    }
  }
  for (int64_t r = 0; r < d.m; ++r)
    for (int64_t i = 0; i < d.DI; ++i) {
      g.k_norm[i] += dgamma_r[size_t(r * d.DI + i)];
      g.k_norm_bias[i] += dbeta_r[size_t(r * d.DI + i)];
    }

  // The projections; their inputs x and qr are detached (no input gradient).
  kernels::matmul_tn(dq.data(), qr, ldq, d.Rq, d.m, g.wq_b, 1.0f);
  kernels::matmul_tn(dkpre.data(), x, d.DI, d.D, d.m, g.wk, 1.0f);
  kernels::matmul_tn(dwts.data(), x, d.H, d.D, d.m, g.weights_proj, 1.0f);
}

}  // namespace dsv3::train
