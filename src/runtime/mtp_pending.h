// The MTP module's pending rows. Row p of the MTP cache pairs h[p], the main model's final hidden state
// (after model.norm) at position p, with t[p+1], the token after it (DeepSeek-V3 §2.2: the depth-1 module
// combines h_i with Emb(t_{i+1})). The two halves become known at different times: h[p] when position p runs
// through the main model, t[p+1] with the prompt, or for the last prompt row only once the first token is
// sampled, or after a verify step as the accepted drafts and the verifier's next token. MtpPending holds
// rows from the moment their hidden state is known until the MTP forward takes them, in order.
//
// The rows are the contiguous positions start() .. start() + rows() − 1; the first complete() of them have
// their next token (complete() <= rows()). Every operation names the position it is for, so a row appended
// twice or skipped, a token given to the wrong row, or rows fed to a cache of another length throw a
// dsv3::Error naming both positions instead of pairing h[p] with the wrong token.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace dsv3::runtime {

class MtpPending {
 public:
  MtpPending() = default;  // no width: every append fails (a sequence decoding without MTP)
  // `width`: the hidden size (>= 1). `start`: the position of the first row to come, i.e. the MTP cache's
  // length (0, or the prefix a sequence took over from a previous one).
  MtpPending(int64_t width, int64_t start);

  int64_t width() const { return width_; }
  int64_t start() const { return start_; }  // position of the first pending row (= the next one taken)
  int64_t rows() const { return width_ > 0 ? int64_t(hidden_.size()) / width_ : 0; }  // rows with h[p]
  int64_t complete() const { return int64_t(next_.size()); }                          // of which also with t[p+1]
  bool empty() const { return hidden_.empty(); }

  // Appends the hidden rows h[position ..]: `hidden` is [r, width]; `position` must be start() + rows().
  void append_hidden(int64_t position, std::span<const float> hidden);
  // Gives rows position, position + 1, … their next tokens: `position` must be the first row without one
  // (start() + complete()) and those rows' hidden states must be there already.
  void append_next(int64_t position, std::span<const int32_t> tokens);
  void append_next(int64_t position, int32_t token) { append_next(position, std::span<const int32_t>(&token, 1)); }
  // Moves the first r complete rows to the end of a batch: their tokens to `next` ([+r]), their hidden rows to
  // `hidden` ([+r, width]). `at` is the position they go to (the MTP cache's length) and must be start();
  // start() advances by r.
  void take(int64_t r, int64_t at, std::vector<int32_t>& next, std::vector<float>& hidden);
  // Drops every pending row; start() stays, so the next row appended is again the one the MTP cache lacks.
  void clear();

 private:
  int64_t width_ = 0, start_ = 0;
  std::vector<float> hidden_;  // [rows, width]: h[start ..]
  std::vector<int32_t> next_;  // [complete]: t[start + 1 ..]
};

}  // namespace dsv3::runtime
