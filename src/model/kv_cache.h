// The latent KV cache of one sequence (MLA, DeepSeek-V2 §2.1): per layer and token only the normalised
// latent c_KV (kv_lora_rank values) and the rotated decoupled key k_pe (qk_rope_head_dim values) — 576
// values for V3 instead of 2 × 128 heads × 128. Stored float32 so the exact path matches the reference.
// The MTP module keeps a cache of its own (another KvCache with num_nextn_predict_layers layers).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace dsv3 {

class KvCache {
 public:
  KvCache() = default;
  // layers × capacity rows of `width` = kv_lora_rank + qk_rope_head_dim floats.
  KvCache(int64_t layers, int64_t width, int64_t capacity);

  int64_t layers() const { return layers_; }
  int64_t width() const { return width_; }
  int64_t length() const { return length_; }
  int64_t capacity() const { return capacity_; }
  size_t bytes() const { return data_.size() * sizeof(float); }

  // Grows capacity to at least n tokens (doubling; moves the rows). Never called per decoded token when
  // the capacity was chosen up front.
  void reserve(int64_t n);
  // Forgets tokens from position n on (speculative-decoding rollback, prompt-cache reuse).
  void truncate(int64_t n);
  // Marks n more tokens as present (after a forward wrote their rows).
  void advance(int64_t n) { length_ += n; }

  float* row(int64_t layer, int64_t pos) { return data_.data() + (layer * capacity_ + pos) * width_; }
  const float* layer_rows(int64_t layer) const { return data_.data() + layer * capacity_ * width_; }

 private:
  int64_t layers_ = 0, width_ = 0, capacity_ = 0, length_ = 0;
  std::vector<float> data_;  // [layers, capacity, width]
};

}  // namespace dsv3
