#include "model/indexer.h"

#include <omp.h>

#include <algorithm>
#include <cmath>

#include "core/dtype.h"
#include "core/error.h"
#include "kernels/indexer.h"
#include "kernels/ops.h"

namespace dsv3 {

namespace {

// DeepSeek's Indexer.k_norm is a LayerNorm with its default eps (not the config's rms_norm_eps).
constexpr float kKeyNormEps = 1e-6f;
// Keys one scoring task takes (decode splits a long cache over the threads in pieces of this size).
constexpr int64_t kKeysPerTask = 2048;

void layer_norm(float* x, const float* w, const float* b, int64_t n, float eps) {
  float mean = 0.0f;
  for (int64_t i = 0; i < n; ++i) mean += x[i];
  mean /= float(n);
  float var = 0.0f;
  for (int64_t i = 0; i < n; ++i) var += (x[i] - mean) * (x[i] - mean);
  var /= float(n);
  const float inv = 1.0f / std::sqrt(var + eps);
  for (int64_t i = 0; i < n; ++i) x[i] = (x[i] - mean) * inv * w[i] + b[i];
}

}  // namespace

Indexer::Indexer(const ModelConfig& c, const IndexerWeights& w, const kernels::LinearOptions& lin)
    : c_(c),
      w_(w),
      lin_(lin),
      H_(c.index_n_heads),
      D_(c.index_head_dim),
      R_(c.qk_rope_head_dim),
      topk_(c.index_topk),
      ue8m0_(c.ue8m0_scales()) {
  if (D_ != kernels::kFp8Block)  // config validation refuses it; the scale layout below relies on it
    fail("indexer: index_head_dim {} is not the FP8 block {}", D_, kernels::kFp8Block);
}

void Indexer::prepare(const float* x, const float* qr, const Batch& b, int64_t layer, const RopeTable& rope) {
  const int64_t m = b.m, H = H_, D = D_, R = R_;
  q_.resize(size_t(m * H * D));
  k_.resize(size_t(m * D));
  wts_.resize(size_t(m * H));
  kernels::linear(qr, m, w_.wq_b, q_.data(), lin_);
  kernels::linear(x, m, w_.wk, k_.data(), lin_);
  kernels::linear(x, m, w_.weights_proj, wts_.data(), lin_);
  const bool pairs = c_.indexer_rope_interleave;
  auto rotate = [&](float* v, int64_t pos) {
    if (pairs)
      kernels::rope_pairs(v, R, rope.at(pos));
    else
      kernels::rope_half(v, R, rope.at(pos));
    kernels::hadamard(v, D);
  };
  const float head_scale = float(1.0 / std::sqrt(double(H))), dim_scale = float(1.0 / std::sqrt(double(D)));
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < m; ++r) {
    const int64_t pos = b.pos[size_t(r)];
    KvCache& cache = *b.cache[size_t(r)];
    float* k = k_.data() + r * D;
    layer_norm(k, w_.k_norm, w_.k_norm_bias, D, kKeyNormEps);
    rotate(k, pos);
    kernels::fp8_quantize(k, D, ue8m0_, cache.index_key(layer, pos), cache.index_scale(layer, pos));
    uint8_t codes[kernels::kFp8Block];
    for (int64_t h = 0; h < H; ++h) {
      float* q = q_.data() + (r * H + h) * D;
      rotate(q, pos);
      float sq;
      kernels::fp8_quantize(q, D, ue8m0_, codes, &sq);
      for (int64_t j = 0; j < D; ++j) q[j] = e4m3_to_f32(codes[j]);
      float& wt = wts_[size_t(r * H + h)];
      wt = wt * head_scale * sq * dim_scale;  // the reference's order: (w · H^−½) · sq · D^−½
    }
  }
}

void Indexer::select(const Batch& b, int64_t layer, int64_t r0, int64_t r1, IndexRecord* rec) {
  const int64_t H = H_, D = D_, k = topk_, rows = r1 - r0;
  sel_r0_ = r0;
  sel_.resize(size_t(rows * k));
  count_.resize(size_t(rows));
  // Rows that drop keys (or all rows, when recording) are scored: offsets into scores_.
  std::vector<int64_t>& at = at_;
  at.assign(size_t(rows + 1), 0);
  for (int64_t i = 0; i < rows; ++i) {
    const int64_t t = b.pos[size_t(r0 + i)] + 1;
    at[size_t(i + 1)] = at[size_t(i)] + (t > k || rec ? t : 0);
  }
  scores_.resize(size_t(at[size_t(rows)]));
  std::vector<Task>& tasks = tasks_;
  tasks.clear();
  for (int64_t i = 0; i < rows; ++i) {
    const int64_t n = at[size_t(i + 1)] - at[size_t(i)];
    for (int64_t s0 = 0; s0 < n; s0 += kKeysPerTask) tasks.push_back({i, s0, std::min(n, s0 + kKeysPerTask)});
  }
#pragma omp parallel for schedule(dynamic, 1)
  for (size_t ti = 0; ti < tasks.size(); ++ti) {
    const Task& tk = tasks[ti];
    const int64_t r = r0 + tk.row;
    const KvCache& cache = *b.cache[size_t(r)];
    kernels::index_scores(q_.data() + r * H * D, wts_.data() + r * H, H, cache.index_keys(layer) + tk.s0 * D,
                          cache.index_scales(layer) + tk.s0, tk.s1 - tk.s0, D,
                          scores_.data() + at[size_t(tk.row)] + tk.s0);
  }
  order_.resize(size_t(omp_get_max_threads()));
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t i = 0; i < rows; ++i) {
    const int64_t t = b.pos[size_t(r0 + i)] + 1;
    int32_t* out = sel_.data() + i * k;
    if (t <= k) {
      for (int64_t s = 0; s < t; ++s) out[s] = int32_t(s);
      count_[size_t(i)] = t;
      continue;
    }
    // The k best: nth_element by (score descending, position ascending), then ascending positions.
    std::vector<int32_t>& ord = order_[size_t(omp_get_thread_num())];
    ord.resize(size_t(t));
    for (int64_t s = 0; s < t; ++s) ord[size_t(s)] = int32_t(s);
    const float* sc = scores_.data() + at[size_t(i)];
    std::nth_element(ord.begin(), ord.begin() + (k - 1), ord.end(),
                     [sc](int32_t a, int32_t c) { return sc[a] > sc[c] || (sc[a] == sc[c] && a < c); });
    std::sort(ord.begin(), ord.begin() + k);
    std::copy(ord.begin(), ord.begin() + k, out);
    count_[size_t(i)] = k;
  }
  if (!rec) return;
  rec->topk = k;
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < k; ++j) rec->selected.push_back(j < count_[size_t(i)] ? sel_[size_t(i * k + j)] : -1);
    const float* sc = scores_.data() + at[size_t(i)];
    rec->scores.emplace_back(sc, sc + (at[size_t(i + 1)] - at[size_t(i)]));
  }
}

}  // namespace dsv3
