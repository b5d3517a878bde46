#include "runtime/mtp_pending.h"

#include "core/error.h"

namespace dsv3::runtime {

MtpPending::MtpPending(int64_t width, int64_t start) : width_(width), start_(start) {
  if (width < 1) fail("MTP pending rows: the hidden width must be >= 1, got {}", width);
  if (start < 0) fail("MTP pending rows: the first position must be >= 0, got {}", start);
}

void MtpPending::append_hidden(int64_t position, std::span<const float> hidden) {
  if (width_ < 1) fail("MTP pending rows: hidden rows appended without a hidden width (no MTP for this sequence)");
  if (int64_t(hidden.size()) % width_ != 0)
    fail("MTP pending rows: {} values are not whole rows of the hidden width {}", hidden.size(), width_);
  if (position != start_ + rows())
    fail("MTP pending rows: hidden rows appended at position {}, but the next row is position {} (rows {}..{} pending)",
         position, start_ + rows(), start_, start_ + rows() - 1);
  hidden_.insert(hidden_.end(), hidden.begin(), hidden.end());
}

void MtpPending::append_next(int64_t position, std::span<const int32_t> tokens) {
  const int64_t first_open = start_ + complete(), end = position + int64_t(tokens.size());
  if (position != first_open)
    fail("MTP pending rows: next tokens given to rows from position {}, but the first row without one is position {}",
         position, first_open);
  if (end > start_ + rows())
    fail(
        "MTP pending rows: next tokens for rows {}..{}, but only {} rows from position {} have their hidden "
        "state: a row's next token came before its hidden state",
        position, end - 1, rows(), start_);
  next_.insert(next_.end(), tokens.begin(), tokens.end());
}

void MtpPending::take(int64_t r, int64_t at, std::vector<int32_t>& next, std::vector<float>& hidden) {
  if (at != start_)
    fail("MTP pending rows: rows taken for position {}, but the first pending row is position {}", at, start_);
  if (r < 0 || r > complete())
    fail("MTP pending rows: {} rows taken, but {} of the {} pending rows have their next token", r, complete(), rows());
  next.insert(next.end(), next_.begin(), next_.begin() + r);
  hidden.insert(hidden.end(), hidden_.begin(), hidden_.begin() + r * width_);
  next_.erase(next_.begin(), next_.begin() + r);
  hidden_.erase(hidden_.begin(), hidden_.begin() + r * width_);
  start_ += r;
}

void MtpPending::clear() {
  hidden_.clear();
  next_.clear();
}

}  // namespace dsv3::runtime
