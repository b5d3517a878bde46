#include "train/moe_grad.h"

#include <cstring>

#include "model/router.h"
#include "train/linear_grad.h"

namespace dsv3::train {

namespace {

// The routed experts in this process, each over the rows that chose it (parallel over experts): yslot and
// the experts' saved activations.
void local_experts_forward(const StepContext& ctx, const MoeP& w, const float* x, int64_t K, MoeActs& a) {
  const int64_t E = int64_t(a.slots.size()), D = ctx.config.hidden_size;
  a.expert_acts.resize(size_t(E));
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t e = 0; e < E; ++e) {
    const auto& slots = a.slots[size_t(e)];
    const int64_t n = int64_t(slots.size());
    if (n == 0) continue;
    std::vector<float> xin(size_t(n * D)), yout(size_t(n * D));
    for (int64_t i = 0; i < n; ++i)
      std::memcpy(xin.data() + i * D, x + (slots[size_t(i)] / K) * D, size_t(D) * sizeof(float));
    ffn_forward(ctx, w.experts[size_t(e)], xin.data(), n, yout.data(), a.expert_acts[size_t(e)]);
    for (int64_t i = 0; i < n; ++i)
      std::memcpy(a.yslot.data() + slots[size_t(i)] * D, yout.data() + i * D, size_t(D) * sizeof(float));
  }
}

// Its transpose: weight gradients into g.experts, dxslot [m·K, hidden] per slot.
void local_experts_backward(const StepContext& ctx, const MoeP& w, const MoeG& g, const float* x, const MoeActs& a,
                            int64_t K, const float* dout, float* dxslot) {
  const int64_t E = int64_t(a.slots.size()), D = ctx.config.hidden_size;
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t e = 0; e < E; ++e) {
    const auto& slots = a.slots[size_t(e)];
    const int64_t n = int64_t(slots.size());
    if (n == 0) continue;
    std::vector<float> xin(size_t(n * D)), dy(size_t(n * D)), dxin(size_t(n * D), 0.0f);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t slot = slots[size_t(i)], r = slot / K;
      std::memcpy(xin.data() + i * D, x + r * D, size_t(D) * sizeof(float));
      const float gk = a.gates[size_t(slot)];
      for (int64_t j = 0; j < D; ++j) dy[size_t(i * D + j)] = gk * dout[r * D + j];
    }
    ffn_backward(ctx, w.experts[size_t(e)], g.experts[size_t(e)], xin.data(), n, a.expert_acts[size_t(e)], dy.data(),
                 dxin.data());
    for (int64_t i = 0; i < n; ++i)
      std::memcpy(dxslot + slots[size_t(i)] * D, dxin.data() + i * D, size_t(D) * sizeof(float));
  }
}

}  // namespace

void moe_forward(const StepContext& ctx, const MoeP& w, const float* x, float* out, MoeActs& a) {
  const RouterParams rp = RouterParams::from(ctx.config);
  const BalanceMode balance = ctx.balance;
  const int64_t T = ctx.seq_len, m = ctx.rows(), D = ctx.config.hidden_size, E = rp.n_experts, K = rp.top_k;

  // Router: logits [m, E] → selection, gates and affinities per row.
  std::vector<float> logits(size_t(m * E));
  linear_forward(x, w.gate, m, E, D, logits.data());
  a.scores.resize(size_t(m * E));
  a.experts.resize(size_t(m * K));
  a.gates.resize(size_t(m * K));
#pragma omp parallel
  {
    std::vector<float> scratch(size_t(rp.scratch_floats()));
#pragma omp for schedule(static)
    for (int64_t r = 0; r < m; ++r)
      route(rp, logits.data() + r * E, w.bias, a.experts.data() + r * K, a.gates.data() + r * K, scratch.data(),
            a.scores.data() + r * E);
  }
  a.slots.assign(size_t(E), {});
  for (int64_t i = 0; i < m * K; ++i) a.slots[size_t(a.experts[size_t(i)])].push_back(i);
  a.load.resize(size_t(E));
  for (int64_t e = 0; e < E; ++e) a.load[size_t(e)] = int64_t(a.slots[size_t(e)].size());

  // Routed experts, each over the rows that chose it (outputs per slot): here, or on their owners.
  // The shared expert into out (under EP while the counts are in flight), the routed ones into yslot.
  a.yslot.resize(size_t(m * K * D));
  a.has_shared = w.has_shared;
  auto shared = [&] {
    if (w.has_shared)
      ffn_forward(ctx, w.shared, x, m, out, a.shared);
    else
      std::fill(out, out + m * D, 0.0f);
  };
  if (ctx.ep) {
    ep_experts_forward(ctx, *ctx.ep, w.experts, x, a.slots, K, a.yslot.data(), a.ep, shared);
  } else {
    local_experts_forward(ctx, w, x, K, a);
    shared();
  }
#pragma omp parallel for schedule(static) if (m * D > 65536)
  for (int64_t r = 0; r < m; ++r) {
    float* o = out + r * D;
    for (int64_t k = 0; k < K; ++k) {
      const float gk = a.gates[size_t(r * K + k)];
      const float* y = a.yslot.data() + (r * K + k) * D;
      for (int64_t j = 0; j < D; ++j) o[j] += gk * y[j];
    }
  }

  // Balance loss over segments.
  a.balance = 0.0;
  a.bal_coef.clear();
  a.seg_len = 0;
  if (balance == BalanceMode::None || m == 0) return;
  const int64_t seg_len = balance == BalanceMode::AuxFree ? T : m, nseg = m / seg_len;
  a.seg_len = seg_len;
  a.bal_coef.assign(size_t(nseg * E), 0.0f);
  std::vector<double> cnt(static_cast<size_t>(E)), P(static_cast<size_t>(E));
  for (int64_t sg = 0; sg < nseg; ++sg) {
    std::fill(cnt.begin(), cnt.end(), 0.0);
    std::fill(P.begin(), P.end(), 0.0);
    for (int64_t r = sg * seg_len; r < (sg + 1) * seg_len; ++r) {
      const float* s = a.scores.data() + r * E;
      double z = 0.0;
      for (int64_t i = 0; i < E; ++i) z += s[i];
      for (int64_t i = 0; i < E; ++i) P[size_t(i)] += s[i] / z;
      for (int64_t k = 0; k < K; ++k) cnt[size_t(a.experts[size_t(r * K + k)])] += 1.0;
    }
    double l = 0.0;
    for (int64_t i = 0; i < E; ++i) {
      const double f = double(E) / double(K * seg_len) * cnt[size_t(i)];
      l += f * P[size_t(i)] / double(seg_len);
      a.bal_coef[size_t(sg * E + i)] = float(f / double(seg_len) / double(nseg));
    }
    a.balance += l / double(nseg);
  }
}

void moe_backward(const StepContext& ctx, const MoeP& w, const MoeG& g, const float* x, const MoeActs& a,
                  const float* dout, float* dx) {
  const RouterParams rp = RouterParams::from(ctx.config);
  const float balance_weight = ctx.balance_weight;
  const int64_t m = ctx.rows(), D = ctx.config.hidden_size, E = rp.n_experts, K = rp.top_k;

  // Routed experts: dy of slot (r, k) is g_k · dout[r]; each expert writes its slots' input gradients.
  // The shared expert's backward (under EP while dy is in flight) adds into dx first, as without EP.
  std::vector<float> dxslot(size_t(m * K * D));
  auto shared = [&] {
    if (a.has_shared) ffn_backward(ctx, w.shared, g.shared, x, m, a.shared, dout, dx);
  };
  if (ctx.ep) {
    ep_experts_backward(ctx, *ctx.ep, w.experts, g.experts, a.ep, a.gates.data(), dout, K, dxslot.data(), shared);
  } else {
    local_experts_backward(ctx, w, g, x, a, K, dout, dxslot.data());
    shared();
  }

  // Router: gate gradients → affinities (through normalisation and scale) (+ balance loss) → logits.
  const bool normalise = rp.norm_topk_prob && K > 1;
  const float f = (rp.scale_only_unnormalised && normalise) ? 1.0f : rp.scale;
  std::vector<float> dlogits(size_t(m * E)), dgates(size_t(m * K));
#pragma omp parallel for schedule(static) if (m * K * D > 65536)
  for (int64_t r = 0; r < m; ++r) {
    float* dxr = dx + r * D;
    for (int64_t k = 0; k < K; ++k) {
      const float* d = dxslot.data() + (r * K + k) * D;
      for (int64_t j = 0; j < D; ++j) dxr[j] += d[j];
    }
    const float* s = a.scores.data() + r * E;
    float* ds = dlogits.data() + r * E;  // ∂L/∂s first, then ∂L/∂logit in place
    std::fill(ds, ds + E, 0.0f);
    float* dgate = dgates.data() + r * K;  // ∂L/∂g_k
    float zsel = 0.0f, gs = 0.0f;
    for (int64_t k = 0; k < K; ++k) {
      const float* y = a.yslot.data() + (r * K + k) * D;
      const float* dy = dout + r * D;
      float acc = 0.0f;
      for (int64_t j = 0; j < D; ++j) acc += dy[j] * y[j];
      dgate[k] = acc;
      const float sk = s[a.experts[size_t(r * K + k)]];
      zsel += sk;
      gs += acc * sk;
    }
    if (normalise) {
      const float z = rp.scoring == ScoringFunc::Softmax ? zsel + 1e-20f : zsel;
      for (int64_t k = 0; k < K; ++k) ds[a.experts[size_t(r * K + k)]] += f * (dgate[k] / z - gs / (z * z));
    } else {
      for (int64_t k = 0; k < K; ++k) ds[a.experts[size_t(r * K + k)]] += f * dgate[k];
    }
    if (balance_weight != 0.0f && !a.bal_coef.empty()) {
      const float* coef = a.bal_coef.data() + (r / a.seg_len) * E;
      float z = 0.0f, dot = 0.0f;
      for (int64_t i = 0; i < E; ++i) z += s[i];
      for (int64_t i = 0; i < E; ++i) dot += coef[i] * s[i] / z;
      for (int64_t i = 0; i < E; ++i) ds[i] += balance_weight * (coef[i] - dot) / z;
    }
    if (rp.scoring == ScoringFunc::Sigmoid) {
      for (int64_t i = 0; i < E; ++i) ds[i] *= s[i] * (1.0f - s[i]);
    } else {
      float dot = 0.0f;
      for (int64_t i = 0; i < E; ++i) dot += s[i] * ds[i];
      for (int64_t i = 0; i < E; ++i) ds[i] = s[i] * (ds[i] - dot);
    }
  }
  linear_backward(dlogits.data(), x, w.gate, m, E, D, dx, g.gate);
}

}  // namespace dsv3::train
