// Multi-head latent attention (DeepSeek-V2 §2.1, V3 §2.1.1), following MLA.forward in DeepSeek's
// inference/model.py with attn_impl = "absorb":
//   q        = wq_b(q_norm(wq_a(x)))  or  wq(x)                      [m, H, dn + dr]
//   c_kv,k_pe = split(wkv_a(x))                                      [m, C], [m, dr]
//   cache    ← (kv_norm(c_kv), rope(k_pe))                           one 576-value row per token for V3
//   q_lat_h  = W_UK_hᵀ q_nope_h        (W_UK = the key half of wkv_b)  [C]
//   o_lat_h  = Σ_t softmax_t(scale · [q_lat_h; rope(q_pe_h)]·cache_t) · c_kv_t
//   o_h      = W_UV_h o_lat_h          (W_UV = the value half of wkv_b) [dv]
//   out      = wo(concat_h o_h)
// The absorbed form is used for prefill and decode alike (it is the reference's default path). kv_b is
// read in its stored dtype (its key half transposed once at construction, see uk_ below); the reference
// dequantizes it on every call.
//
// DeepSeek-V3.2 (DSA; config.has_indexer()): the layer's lightning indexer (model/indexer.h) picks each
// row's index_topk keys from MLA's query latent, and the softmax runs over those cache rows only — they
// are gathered and the absorbed kernel reads nothing else (no score pass over the other positions); rows
// with pos + 1 <= index_topk attend to everything, as the reference does. The latent c_kv goes through
// FP8 E4M3 and back (blocks of 128, the reference's simulated FP8 cache) before it is cached.
// A "shared" layer of `indexer_types` (GLM-5.x) has no indexer: it attends to the keys the full layer above it
// selected for the same rows (Batch::index_share, written by that layer).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "kernels/linear.h"
#include "model/batch.h"
#include "model/config.h"
#include "model/indexer.h"
#include "model/rope.h"
#include "model/weights.h"

namespace dsv3 {

class Mla {
 public:
  // `lin`: the options of every projection (the model's, model/options.h; {} = exact).
  // `sparse` (V3.2 only): false attends to every key although the indexer's keys are still cached (the
  // dense baseline, ModelOptions::sparse_attention). `layer`: the HF layer (>= num_hidden_layers: an MTP
  // module's), which says whether it has an indexer of its own, its index-cache slot and whether the next
  // layer reuses its selection; −1: a full layer whose slot is the cache layer of forward().
  Mla(const ModelConfig& c, const MlaWeights& w, const kernels::LinearOptions& lin = {}, bool sparse = true,
      int64_t layer = -1);
  Mla(const Mla&) = delete;  // uk_ points into this object's own buffers
  Mla& operator=(const Mla&) = delete;

  // x: [m, hidden] (already attn_norm'ed). Writes each row's cache entry in layer `layer` of its cache,
  // then attends causally over the cache. out: [m, hidden]. The rows of one sequence may be split over
  // consecutive calls at the same layer (each attends to what the earlier ones cached).
  void forward(const float* x, const Batch& b, int64_t layer, const RopeTable& rope, float* out);
  // V3.2: from now on every forward appends one IndexRecord (the indexer's picks for its rows) to `index`;
  // nullptr stops recording.
  void record_index(std::vector<IndexRecord>* index) { index_rec_ = index; }

 private:
  const ModelConfig& c_;
  MlaWeights w_;
  kernels::LinearOptions lin_;
  kernels::LinearOptions lin_absorbed_;  // lin_ with exact inputs: the absorbed halves of kv_b (as the reference)
  std::unique_ptr<Indexer> indexer_;     // V3.2
  bool sparse_ = true;
  bool shared_ = false;      // V3.2 indexer_types "shared": the selection comes from Batch::index_share
  bool share_out_ = false;   // the next layer is shared: leave this layer's selections in Batch::index_share
  int64_t index_slot_ = -1;  // the index-key cache slot (−1: the cache layer)
  std::vector<IndexRecord>* index_rec_ = nullptr;
  // kv_b_proj split per head for the absorbed form, both halves as plain y = x·Wᵀ products for
  // kernels::linear: the key half transposed, uk_[h] [C, dn] (q_nope → latent query), and the value half,
  // uv_[h] [dv, C] (latent output → head output). The value half is a view of kv_b's own rows in their
  // stored dtype. The key half is a transposed copy, in the stored dtype for float checkpoints (BF16, F16,
  // F32, and FP8 whose head rows start on a scale block: the 128×128 scale grid transposes with it), exact;
  // in float32 for the int8 / int4 formats, whose blocks run along the other axis (and for FP8 otherwise).
  std::vector<kernels::WeightRef> uk_, uv_;
  std::vector<std::vector<uint8_t>> uk_data_;  // per head (kernels::transposed_rows)
  std::vector<std::vector<float>> uk_scales_;
  std::vector<std::vector<float>> uv_copy_;  // per head, FP8 rows off the scale blocks (kernels::rows_or_copy)
  float scale_;
  // Scratch, grown on demand and reused (no allocation per decoded token).
  std::vector<float> qa_, q_, kv_, attn_, thread_scratch_;
};

}  // namespace dsv3
