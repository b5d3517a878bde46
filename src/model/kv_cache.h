// The latent KV cache of one sequence (MLA, DeepSeek-V2 §2.1): per layer and token only the normalised
// latent c_KV (kv_lora_rank values) and the rotated decoupled key k_pe (qk_rope_head_dim values) — 576
// values for V3 instead of 2 × 128 heads × 128. Stored float32 so the exact path matches the reference.
// The MTP module keeps a cache of its own (another KvCache with num_nextn_predict_layers layers).
//
// DeepSeek-V3.2 (DSA, model/indexer.h) adds an index-key cache beside the latent one: per layer and token
// the indexer's key as index_dim E4M3 bytes and one float32 scale (132 bytes at V3.2's 128). Both share
// the length, growth and truncation, so a rollback forgets both. Its layers are the index slots: a model whose
// `indexer_types` has "shared" layers keeps keys only for its full layers (ModelConfig::index_slot).
//
// The rows are allocated when a forward first writes to the cache (ensure()), not at construction: under a
// distributed forward (model/parallel.h) the process that drives the model keeps, for a sequence another
// process holds, a cache that only tracks its length — and holds no rows.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace dsv3 {

// What a distributed forward attaches to a cache it placed (which process holds its rows). Owned by the
// cache: destroying or replacing the cache destroys it, which is how the forward learns the sequence is gone.
class CachePlacement {
 public:
  virtual ~CachePlacement() = default;
};

class KvCache {
 public:
  KvCache() = default;
  // layers × capacity rows of `width` = kv_lora_rank + qk_rope_head_dim floats (allocated at first use);
  // index_dim > 0: the index-key cache too (index_dim bytes + one scale per row) over index_layers slots
  // (< 0: one per layer).
  KvCache(int64_t layers, int64_t width, int64_t capacity, int64_t index_dim = 0, int64_t index_layers = -1);
  KvCache(KvCache&&) noexcept = default;
  KvCache& operator=(KvCache&&) noexcept = default;

  int64_t layers() const { return layers_; }
  int64_t width() const { return width_; }
  int64_t length() const { return length_; }
  int64_t capacity() const { return capacity_; }    // rows per layer, held or planned
  int64_t index_dim() const { return index_dim_; }  // 0: no index-key cache
  int64_t index_layers() const { return index_layers_; }
  // Held, both caches: 0 before the first forward.
  size_t bytes() const { return data_.size() * sizeof(float) + index_keys_.size() + index_scales_.size() * 4; }

  // Grows capacity to at least n tokens (doubling; moves the rows when they exist). Never called per decoded
  // token when the capacity was chosen up front.
  void reserve(int64_t n);
  // reserve(n), and allocates the rows if they do not exist yet: what a forward calls before writing rows.
  void ensure(int64_t n);
  // Forgets tokens from position n on (speculative-decoding rollback, prompt-cache reuse).
  void truncate(int64_t n);
  // Marks n more tokens as present (after a forward wrote their rows).
  void advance(int64_t n) { length_ += n; }

  float* row(int64_t layer, int64_t pos) { return data_.data() + (layer * capacity_ + pos) * width_; }
  const float* layer_rows(int64_t layer) const { return data_.data() + layer * capacity_ * width_; }
  // The index-key cache (index_dim > 0): E4M3 key bytes [capacity, index_dim] and scales [capacity] per index
  // slot (`layer` below: the slot, which is the layer unless some layers share their indexer).
  uint8_t* index_key(int64_t layer, int64_t pos) { return index_keys_.data() + (layer * capacity_ + pos) * index_dim_; }
  float* index_scale(int64_t layer, int64_t pos) { return index_scales_.data() + layer * capacity_ + pos; }
  const uint8_t* index_keys(int64_t layer) const { return index_keys_.data() + layer * capacity_ * index_dim_; }
  const float* index_scales(int64_t layer) const { return index_scales_.data() + layer * capacity_; }

  CachePlacement* placement() const { return placement_.get(); }
  void set_placement(std::unique_ptr<CachePlacement> p) { placement_ = std::move(p); }

 private:
  int64_t layers_ = 0, width_ = 0, capacity_ = 0, length_ = 0, index_dim_ = 0, index_layers_ = 0;
  std::vector<float> data_;          // [layers, capacity, width] once allocated, else empty
  std::vector<uint8_t> index_keys_;  // [index_layers, capacity, index_dim] (index_dim > 0, once allocated)
  std::vector<float> index_scales_;  // [index_layers, capacity]
  std::unique_ptr<CachePlacement> placement_;
};

}  // namespace dsv3
