#include "kernels/swiglu.h"

#include <omp.h>

#include <algorithm>
#include <vector>

#include "kernels/internal.h"
#include "kernels/ops.h"
#include "kernels/quant.h"

namespace dsv3::kernels {

struct SwigluScratch::Impl {
  std::vector<detail::GemvInput> xin, hin;
  std::vector<float> act;  // per expert: gate then h [m, inter], up [m, inter], down [m, d]
  std::vector<int64_t> offset;
};

SwigluScratch::SwigluScratch() : impl_(std::make_unique<Impl>()) {}
SwigluScratch::~SwigluScratch() = default;
SwigluScratch::SwigluScratch(SwigluScratch&&) noexcept = default;
SwigluScratch& SwigluScratch::operator=(SwigluScratch&&) noexcept = default;

namespace {

bool same_kind(const WeightRef& a, const WeightRef& b) {
  return a.dtype == b.dtype && a.quant == b.quant && a.k == b.k && a.n == b.n && a.block_n == b.block_n &&
         a.block_k == b.block_k;
}

// Work items are chunks of about n / 8 output rows whatever the thread count: the items of all experts
// balance the threads, and longer runs of rows stream better than the n / 16 linear() uses alone
// (BM_SwigluExperts, int8: 33 vs 30 GB/s, best of 5 interleaved runs 40 vs 34).
// Below this many weight bytes in all, one thread is faster than waking the other (as linear.cc).
constexpr int64_t kParallelBytes = 128 << 10;

void add_rows(const SwigluExpert& e, const float* y, int64_t d, int64_t n0, int64_t n1, float* out) {
  for (int64_t i = 0; i < e.m; ++i) {
    float* o = out + (e.rows ? e.rows[i] : i) * d;
    const float* yi = y + i * d;
    if (e.gates) {
      const float g = e.gates[i];
      for (int64_t j = n0; j < n1; ++j) o[j] += g * yi[j];
    } else {
      for (int64_t j = n0; j < n1; ++j) o[j] += yi[j];
    }
  }
}

// Experts whose shapes or kinds do not allow the fused path (or too many rows): linear() per projection.
void unfused(std::span<const SwigluExpert> experts, int64_t d, float* out, SwigluScratch::Impl& s,
             const LinearOptions& opt) {
  for (const SwigluExpert& e : experts) {
    const int64_t inter = e.w1.n;
    s.act.resize(std::max(s.act.size(), size_t(e.m * (2 * inter + d))));
    float* g = s.act.data();
    float* u = g + e.m * inter;
    float* y = u + e.m * inter;
    linear(e.x, e.m, e.w1, g, opt);
    linear(e.x, e.m, e.w3, u, opt);
    silu_mul(g, u, e.m * inter, g);
    linear(g, e.m, e.w2, y, opt);
    add_rows(e, y, d, 0, d, out);
  }
}

}  // namespace

int64_t swiglu_max_rows() { return detail::gemv_max_rows(); }

void swiglu_experts(std::span<const SwigluExpert> experts, int64_t d, float* out, SwigluScratch& scratch,
                    const LinearOptions& opt) {
  SwigluScratch::Impl& s = scratch.impl();
  const int64_t ne = int64_t(experts.size());
  if (ne == 0 || d <= 0) return;
  bool fusable = true;
  int64_t bytes = 0;
  for (const SwigluExpert& e : experts) {
    fusable = fusable && e.m <= swiglu_max_rows() && same_kind(e.w1, e.w3) && e.w2.n == d && e.w2.k == e.w1.n;
    // FP8 weights taking quantized inputs: linear() per projection does the quantization (unfused).
    fusable = fusable && (opt.fp8_input == LinearOptions::Fp8Input::Exact || e.w1.dtype != DType::F8_E4M3);
    bytes += weight_bytes(e.w1) + weight_bytes(e.w3) + weight_bytes(e.w2);
  }
  if (!fusable) return unfused(experts, d, out, s, opt);

  const bool bf16_x = opt.bf16_activations;  // as linear() with `opt` would (kernels/linear.h)
  const int nt = bytes < kParallelBytes || omp_in_parallel() ? 1 : std::max(1, omp_get_max_threads());
  if (s.xin.size() < size_t(ne)) s.xin.resize(size_t(ne));
  if (s.hin.size() < size_t(ne)) s.hin.resize(size_t(ne));
  // Activation scratch per expert, and the work items: up-projection chunks [item[e], item[e + 1]).
  s.offset.resize(size_t(2 * ne + 2));
  int64_t* act_at = s.offset.data();
  int64_t* item = act_at + ne + 1;
  act_at[0] = 0;
  item[0] = 0;
  for (int64_t e = 0; e < ne; ++e) {
    const SwigluExpert& x = experts[size_t(e)];
    const int64_t chunk = detail::gemv_chunk(x.w1, 1);
    act_at[e + 1] = act_at[e] + x.m * (2 * x.w1.n + d);
    item[e + 1] = item[e] + (x.w1.n + chunk - 1) / chunk;
  }
  if (s.act.size() < size_t(act_at[ne])) s.act.resize(size_t(act_at[ne]));
  float* act = s.act.data();
  const int64_t up_items = item[ne];
  const int64_t down_chunk = detail::gemv_chunk(experts[0].w2, 1);
  const int64_t down_items = (d + down_chunk - 1) / down_chunk;

#pragma omp parallel num_threads(nt)
  {
#pragma omp for schedule(static)
    for (int64_t e = 0; e < ne; ++e) {
      const SwigluExpert& x = experts[size_t(e)];
      s.xin[size_t(e)].prepare(x.x, x.m, x.w1, bf16_x);
    }
    // Gate and up projections, chunk by chunk of the intermediate rows, SiLU applied as each chunk ends.
#pragma omp for schedule(dynamic, 1)
    for (int64_t it = 0; it < up_items; ++it) {
      const int64_t e = std::upper_bound(item + 1, item + ne + 1, it) - (item + 1);
      const SwigluExpert& x = experts[size_t(e)];
      const int64_t inter = x.w1.n, chunk = detail::gemv_chunk(x.w1, 1);
      const int64_t n0 = (it - item[e]) * chunk, n1 = std::min(inter, n0 + chunk);
      float* g = act + act_at[e];
      float* u = g + x.m * inter;
      const detail::GemvInput& in = s.xin[size_t(e)];
      in.rows(x.w1, g, n0, n1);
      in.rows(x.w3, u, n0, n1);
      for (int64_t i = 0; i < x.m; ++i) silu_mul(g + i * inter + n0, u + i * inter + n0, n1 - n0, g + i * inter + n0);
    }
#pragma omp for schedule(static)
    for (int64_t e = 0; e < ne; ++e) {
      const SwigluExpert& x = experts[size_t(e)];
      s.hin[size_t(e)].prepare(act + act_at[e], x.m, x.w2, bf16_x);
    }
    // Down projections: each chunk of the hidden dimension runs every expert, summing into out in order.
#pragma omp for schedule(dynamic, 1)
    for (int64_t it = 0; it < down_items; ++it) {
      const int64_t n0 = it * down_chunk, n1 = std::min(d, n0 + down_chunk);
      for (int64_t e = 0; e < ne; ++e) {
        const SwigluExpert& x = experts[size_t(e)];
        float* y = act + act_at[e] + 2 * x.m * x.w1.n;
        s.hin[size_t(e)].rows(x.w2, y, n0, n1);
        add_rows(x, y, d, n0, n1, out);
      }
    }
  }
}

void swiglu_experts_ref(std::span<const SwigluExpert> experts, int64_t d, float* out) {
  // linear()'s own reference for the regime it takes at this m: quantized x or exact x.
  auto linear_r = [](const float* x, int64_t m, const WeightRef& w, float* y) {
    if (linear_quantizes_x(m, w))
      linear_qact_ref(x, m, w, y);
    else
      linear_ref(x, m, w, y);
  };
  for (const SwigluExpert& e : experts) {
    const int64_t inter = e.w1.n;
    std::vector<float> g(size_t(e.m * inter)), u(size_t(e.m * inter)), y(size_t(e.m * d));
    linear_r(e.x, e.m, e.w1, g.data());
    linear_r(e.x, e.m, e.w3, u.data());
    silu_mul_ref(g.data(), u.data(), e.m * inter, g.data());
    linear_r(g.data(), e.m, e.w2, y.data());
    add_rows(e, y.data(), d, 0, d, out);
  }
}

}  // namespace dsv3::kernels
