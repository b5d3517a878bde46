// Token ids → text for display: the tokenizer's streaming decoder (complete UTF-8 only; special tokens
// skipped, so an end-of-turn marker never shows) followed by stop strings (sampler.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/tokenizer.h"
#include "runtime/sampler.h"

namespace dsv3::runtime {

class TextStream {
 public:
  // skip_special false: special tokens show as their text (the chat output parsers match tool-call and
  // reasoning markers, which some tokenizers mark special); end-of-sequence tokens never reach the stream.
  TextStream(const io::Tokenizer& tokenizer, std::vector<std::string> stop, bool skip_special = true)
      : decoder_(tokenizer, skip_special), stop_(std::move(stop)) {}
  // The stop string that ended the text (empty: none matched).
  const std::string& matched_stop() const { return stop_.matched(); }
  // The text that can be shown now (may be empty).
  std::string push(int32_t token) { return stop_.push(decoder_.push(token)); }
  // What was held back, at the end (nothing after a stop string matched).
  std::string finish() {
    std::string out = stop_.push(decoder_.finish());
    return out + stop_.flush();
  }
  bool stopped() const { return stop_.stopped(); }

 private:
  io::StreamDecoder decoder_;
  StopStrings stop_;
};

}  // namespace dsv3::runtime
