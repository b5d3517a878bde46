#include "runtime/constraint.h"

#include <limits>

namespace dsv3::runtime {

void ScriptedReply::mask(std::span<const int32_t> output, float* logits, int64_t vocab) const {
  const int32_t want = output.size() < script_.size() ? script_[output.size()] : end_;
  for (int64_t t = 0; t < vocab; ++t)
    if (t != want) logits[t] = -std::numeric_limits<float>::infinity();
}

void ForcedPrefix::mask(std::span<const int32_t> output, float* logits, int64_t vocab) const {
  if (output.size() >= prefix_.size()) {
    if (then_) then_->mask(output, logits, vocab);
    return;
  }
  const int32_t want = prefix_[output.size()];
  for (int64_t t = 0; t < vocab; ++t)
    if (t != want) logits[t] = -std::numeric_limits<float>::infinity();
}

}  // namespace dsv3::runtime
