#include "model/mla.h"

#include <omp.h>

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "kernels/indexer.h"
#include "kernels/linear.h"
#include "kernels/ops.h"
#include "kernels/weight_view.h"

namespace dsv3 {

namespace {

// Index scores one attention block may hold (rows are taken in blocks so that a long prefill's scores,
// Σ (pos + 1) floats, stay bounded).
constexpr int64_t kScoreBudget = int64_t(1) << 24;

}  // namespace

Mla::Mla(const ModelConfig& c, const MlaWeights& w, const kernels::LinearOptions& lin, bool sparse, int64_t layer)
    : c_(c), w_(w), lin_(lin), lin_absorbed_(lin), sparse_(sparse), scale_(float(c.softmax_scale())) {
  lin_absorbed_.fp8_input = kernels::LinearOptions::Fp8Input::Exact;
  if (w.has_indexer) indexer_ = std::make_unique<Indexer>(c, w_.indexer, lin);
  if (layer >= 0 && layer < c.num_hidden_layers && c.has_indexer()) {
    shared_ = c.layer_shares_index(layer);
    if (shared_ == bool(indexer_))
      fail("layer {}: indexer_types says {}, but its weights {} an indexer", layer, shared_ ? "shared" : "full",
           indexer_ ? "hold" : "lack");
    if (!shared_) index_slot_ = c.index_slot(layer);
    share_out_ = !shared_ && layer + 1 < c.num_hidden_layers && c.layer_shares_index(layer + 1);
  }
  const int64_t H = c.num_attention_heads, dn = c.qk_nope_head_dim, dv = c.v_head_dim;
  uk_.resize(size_t(H));
  uv_.resize(size_t(H));
  uk_data_.resize(size_t(H));
  uk_scales_.resize(size_t(H));
  uv_copy_.resize(size_t(H));
  for (int64_t h = 0; h < H; ++h) {
    uk_[size_t(h)] = kernels::transposed_rows(w.wkv_b, h * (dn + dv), dn, uk_data_[size_t(h)], uk_scales_[size_t(h)]);
    uv_[size_t(h)] = kernels::rows_or_copy(w.wkv_b, h * (dn + dv) + dn, dv, uv_copy_[size_t(h)]);
  }
}

void Mla::forward(const float* x, const Batch& b, int64_t layer, const RopeTable& rope, float* out) {
  const int64_t m = b.m, H = c_.num_attention_heads, C = c_.kv_lora_rank, R = c_.qk_rope_head_dim;
  const int64_t dn = c_.qk_nope_head_dim, dv = c_.v_head_dim, qk = dn + R, W = C + R;
  const float eps = float(c_.rms_norm_eps);
  if (m == 0) return;  // a process with no rows in a distributed step

  // Queries [m, H, dn + R].
  q_.resize(size_t(m * H * qk));
  if (c_.q_lora_rank > 0) {
    qa_.resize(size_t(m * c_.q_lora_rank));
    kernels::linear(x, m, w_.wq_a, qa_.data(), lin_);
    kernels::rmsnorm(qa_.data(), w_.q_norm, m, c_.q_lora_rank, eps, qa_.data());
    kernels::linear(qa_.data(), m, w_.wq_b, q_.data(), lin_);
  } else {
    kernels::linear(x, m, w_.wq, q_.data(), lin_);
  }

  // Latent and rope key [m, C + R] → cache rows (kv_norm(c_kv), rope(k_pe)).
  kv_.resize(size_t(m * W));
  kernels::linear(x, m, w_.wkv_a, kv_.data(), lin_);
  for (int64_t r = 0; r < m; ++r) {
    float* dst = b.cache[size_t(r)]->row(layer, b.pos[size_t(r)]);
    const float* src = kv_.data() + r * W;
    kernels::rmsnorm(src, w_.kv_norm, 1, C, eps, dst);
    if (c_.has_indexer()) kernels::fp8_roundtrip(dst, C, c_.ue8m0_scales(), dst);  // V3.2: the FP8 latent cache
    std::memcpy(dst + C, src + C, size_t(R) * sizeof(float));
    kernels::rope_pairs(dst + C, R, rope.at(b.pos[size_t(r)]));
  }

  const int64_t slot = index_slot_ >= 0 ? index_slot_ : layer;  // this layer's index-key cache slot
  if (indexer_) indexer_->prepare(x, qa_.data(), b, slot, rope);
  const bool sparse = (indexer_ || shared_) && sparse_;
  IndexRecord* rec = sparse && index_rec_ ? &index_rec_->emplace_back() : nullptr;
  IndexShare* share = b.index_share;
  if (sparse && (shared_ || share_out_) && !share)
    fail("layer {}: indexer_types shares this layer's selection, but the batch has no IndexShare", layer);
  if (sparse && shared_ && share->m != m)
    fail("layer {}: a shared-indexer layer ran without its full layer's selection of the same {} rows", layer, m);
  if (sparse && share_out_) {
    share->m = m;
    share->topk = c_.index_topk;
    share->sel.resize(size_t(m * c_.index_topk));
    share->count.resize(size_t(m));
  }
  if (rec && shared_) {  // the reused selection, as the full layer's record shows it (no scores of its own)
    rec->topk = share->topk;
    for (int64_t r = 0; r < m; ++r)
      for (int64_t j = 0; j < share->topk; ++j)
        rec->selected.push_back(j < share->count[size_t(r)] ? share->sel[size_t(r * share->topk + j)] : -1);
  }
  // Row r's selected keys and their count (sparse rows only).
  auto count = [&](int64_t r) { return shared_ ? share->count[size_t(r)] : indexer_->count(r); };
  auto selected = [&](int64_t r) { return shared_ ? share->sel.data() + r * share->topk : indexer_->selected(r); };

  // Attention, parallel over (row, group of heads) so that a single decoded row still uses every core.
  attn_.resize(size_t(m * H * dv));
  const int nthreads = omp_get_max_threads();
  const int64_t groups = std::clamp<int64_t>((nthreads + m - 1) / m, 1, H);
  const int64_t heads_per_group = (H + groups - 1) / groups;
  // Scores are sized by the caches' capacity, not the current length, so decoding never regrows them.
  int64_t max_t = 0;
  for (int64_t r = 0; r < m; ++r) max_t = std::max({max_t, b.pos[size_t(r)] + 1, b.cache[size_t(r)]->capacity()});
  const int64_t gathered = sparse ? c_.index_topk * W : 0;  // a sparse row's selected cache rows
  const int64_t per_thread = W + C + max_t + gathered;
  thread_scratch_.resize(size_t(nthreads * per_thread));

  for (int64_t r0 = 0, r1 = 0; r0 < m; r0 = r1) {
    // Rows [r0, r1): the indexer's scores of the block within kScoreBudget (at least one row).
    int64_t budget = 0;
    for (r1 = r0; r1 < m && (r1 == r0 || budget + b.pos[size_t(r1)] + 1 <= kScoreBudget); ++r1)
      budget += b.pos[size_t(r1)] + 1;
    if (!sparse || shared_) r1 = m;
    if (sparse && !shared_) indexer_->select(b, slot, r0, r1, rec);
    if (sparse && share_out_)
      for (int64_t r = r0; r < r1; ++r) {
        share->count[size_t(r)] = indexer_->count(r);
        std::copy_n(indexer_->selected(r), indexer_->count(r), share->sel.data() + r * c_.index_topk);
      }
    const int64_t rows = r1 - r0;
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t task = 0; task < rows * groups; ++task) {
      const int64_t r = r0 + task / groups, g = task % groups;
      float* qfull = thread_scratch_.data() + omp_get_thread_num() * per_thread;  // [C + R]
      float* olat = qfull + W;                                                    // [C]
      float* scores = olat + C;                                                   // [t]
      const int64_t pos = b.pos[size_t(r)];
      const float* rows_kv = b.cache[size_t(r)]->layer_rows(layer);
      int64_t t = pos + 1;
      if (sparse && count(r) < t) {
        // Only the selected latent rows, gathered: [count, W].
        float* gather = scores + max_t;
        const int32_t* sel = selected(r);
        t = count(r);
        for (int64_t j = 0; j < t; ++j)
          std::memcpy(gather + j * W, rows_kv + int64_t(sel[j]) * W, size_t(W) * sizeof(float));
        rows_kv = gather;
      }
      for (int64_t h = g * heads_per_group; h < std::min(H, (g + 1) * heads_per_group); ++h) {
        const float* qh = q_.data() + (r * H + h) * qk;
        kernels::linear(qh, 1, uk_[size_t(h)], qfull, lin_absorbed_);
        std::memcpy(qfull + C, qh + dn, size_t(R) * sizeof(float));
        kernels::rope_pairs(qfull + C, R, rope.at(pos));
        kernels::latent_attention(qfull, 1, rows_kv, t, W, C, R, scale_, olat, scores);
        kernels::linear(olat, 1, uv_[size_t(h)], attn_.data() + (r * H + h) * dv, lin_absorbed_);
      }
    }
  }
  kernels::linear(attn_.data(), m, w_.wo, out, lin_);
}

}  // namespace dsv3
