// Rotary position tables with YaRN frequency correction, following precompute_freqs_cis in DeepSeek's
// inference/model.py: inv_freq_i = theta^(-2i/d); with YaRN, the dimensions between the correction range
// of beta_fast and beta_slow rotations over original_max_position_embeddings are blended by a linear ramp
// between inv_freq / factor and inv_freq. Deviation: the reference applies YaRN only when its max_seq_len
// exceeds original_seq_len; we apply it whenever rope_scaling is yarn (as HF transformers and the
// reference vectors do). Arithmetic mirrors the reference's float32 (frequencies and pos·freq products).
// deepseek_v2 follows DeepSeek-V2's modeling_deepseek.py instead in one respect: its cos/sin carry the factor
// yarn_get_mscale(factor, mscale) / yarn_get_mscale(factor, mscale_all_dim) (1 when the two keys are equal, as
// in every published config); model.py, which the other model types follow, has no such factor. The softmax
// scale's share of YaRN is ModelConfig::softmax_scale(). tests/reference/README.md has the whole rule.
#pragma once

#include <cstdint>
#include <vector>

#include "model/config.h"

namespace dsv3 {

class RopeTable {
 public:
  explicit RopeTable(const ModelConfig& c);

  int64_t dim() const { return dim_; }
  const std::vector<float>& inv_freq() const { return inv_freq_; }
  // Makes positions [0, n) available. Not thread-safe; call before parallel work.
  void ensure(int64_t n);
  // [dim/2] interleaved (cos, sin) pairs for position pos (< ensured length), times amplitude_.
  const float* at(int64_t pos) const { return table_.data() + pos * dim_; }

 private:
  int64_t dim_;
  std::vector<float> inv_freq_;  // [dim/2]
  std::vector<float> table_;     // [len, dim/2, 2]
  int64_t len_ = 0;
  float amplitude_ = 1.0f;  // 1 except deepseek_v2 with mscale != mscale_all_dim
};

}  // namespace dsv3
