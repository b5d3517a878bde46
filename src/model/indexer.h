// DeepSeek Sparse Attention's lightning indexer (DeepSeek-V3.2-Exp report §2.1; Indexer in DeepSeek's
// V3.2-Exp inference/model.py, commit 87e509a, as ../shared/testdata/README.md spells it out):
//   q        = wq_b(qr)                      [m, H_I, D_I]   qr = MLA's query latent q_norm(wq_a(x))
//   k        = LayerNorm(wk(x))              [m, D_I]        one key per token, shared by the index heads
//   q, k     ← RoPE on the first qk_rope_head_dim values of each head ([rope | nope]; MLA's heads are
//              [nope | rope]), rotate-half unless config.indexer_rope_interleave; MLA's frequencies
//   q, k     ← Hadamard rotation (v · H) / √D_I, then FP8 E4M3 per 128-block: q8, sq per head; k8, sk
//   w[t, h]  = weights_proj(x)[t, h] · H_I^−½ · sq[t, h] · D_I^−½
//   I[t, s]  = sk[s] · Σ_h w[t, h] · max(0, q8[t, h] · k8[s])          s ≤ t
//   S_t      = the index_topk keys with the largest I[t, ·]; all of 0..t when t + 1 ≤ index_topk
// k8 and sk live in the index-key cache beside the latent cache (KvCache::index_key), so decoding scores
// every cached key without recomputing it. FP8 scales are powers of two with quantization_config.scale_fmt
// ue8m0. Deviations: none in the arithmetic; the Hadamard transform is the fast butterfly (float32 sums in
// another order than a matrix product, far below the E4M3 spacing the test cases keep clear of).
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/linear.h"
#include "model/batch.h"
#include "model/config.h"
#include "model/rope.h"
#include "model/weights.h"

namespace dsv3 {

// What one layer's indexer decided in a forward (ForwardOptions::index): for tests and inspection.
struct IndexRecord {
  int64_t topk = 0;                        // index_topk
  std::vector<int32_t> selected;           // [m, topk]: row r's S_t ascending, padded with −1
  std::vector<std::vector<float>> scores;  // [m][t + 1]: row r's I[t, s] for s ≤ t (t its position)
};

// A full layer's selections for every row of a forward, kept for the "shared" layers below it
// (ModelConfig::index_shared, GLM-5.x's IndexShare): row r's keys at sel[r · topk …], count[r] of them.
struct IndexShare {
  int64_t m = -1;  // rows of the forward that wrote it (−1: none yet)
  int64_t topk = 0;
  std::vector<int32_t> sel;
  std::vector<int64_t> count;
};

class Indexer {
 public:
  Indexer(const ModelConfig& c, const IndexerWeights& w, const kernels::LinearOptions& lin);

  // Computes every row's index key and writes it at its position in index slot `layer` of its cache
  // (ModelConfig::index_slot; the layer itself unless indexer_types shares), and the rows' queries (kept until the next
  // call). x [m, hidden] attn_norm'ed, qr [m, q_lora_rank].
  void prepare(const float* x, const float* qr, const Batch& b, int64_t layer, const RopeTable& rope);
  // Selects S_t for rows [r0, r1) of the prepared batch, scoring the keys their caches hold (prepare() has
  // written every row's own key). rec (optional) receives the rows' selections and scores.
  void select(const Batch& b, int64_t layer, int64_t r0, int64_t r1, IndexRecord* rec = nullptr);
  // After select(): row r's keys (ascending) and their count; count(r) == pos + 1 means every key (dense).
  const int32_t* selected(int64_t r) const { return sel_.data() + (r - sel_r0_) * topk_; }
  int64_t count(int64_t r) const { return count_[size_t(r - sel_r0_)]; }

 private:
  const ModelConfig& c_;
  const IndexerWeights& w_;
  kernels::LinearOptions lin_;
  int64_t H_, D_, R_, topk_;
  bool ue8m0_;
  std::vector<float> q_, k_, wts_;  // [m, H·D] E4M3 values of q8 (unscaled), [m, D] scratch, [m, H] weights
  std::vector<int32_t> sel_;        // [rows of the last select, topk]
  std::vector<int64_t> count_;
  int64_t sel_r0_ = 0;
  std::vector<float> scores_;  // the selected rows' I[t, 0..t], concatenated
  std::vector<int64_t> at_;    // [rows + 1] offsets of the rows' scores in scores_
  struct Task {                // one scoring task: keys [s0, s1) of a row
    int64_t row, s0, s1;
  };
  std::vector<Task> tasks_;
  std::vector<std::vector<int32_t>> order_;  // per thread: candidate positions
};

}  // namespace dsv3
