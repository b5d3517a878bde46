// tokenizer.json normalizers and pre-tokenizers (the parts of HF tokenizers' pipeline that run before the
// model). Semantics follow HF tokenizers (Rust), the reference implementation:
//   normalizer:    null | Sequence of {Prepend, Replace, Strip}. Unicode normalization forms (NFC, NFD, NFKC,
//                  NFKD), Lowercase, StripAccents, BertNormalizer, Precompiled and Nmt need Unicode data
//                  tables we do not carry; they are refused with a dsv3::Error naming them.
//   pre_tokenizer: null | Split | ByteLevel | Sequence of those. Split: pattern {Regex|String}, behavior
//                  Removed | Isolated | MergedWithPrevious | MergedWithNext | Contiguous, invert.
//                  ByteLevel: add_prefix_space, use_regex (GPT-2's pattern), trim_offsets (offsets only,
//                  ignored); it must come last because it switches the model to byte-level symbols.
// Pieces are produced depth first: each Split runs on each piece of the previous step (as HF does), and
// every final piece is handed to a callback, so no per-piece strings are allocated.
#pragma once

#include <functional>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "io/regex.h"

namespace dsv3::io {

enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

// Splits `text` by `re` the way HF's NormalizedString::split(pattern, behavior) does (with `invert`
// flipping which parts count as matches) and calls f(piece) for every non-empty piece, in order.
void split_by_regex(const Regex& re, SplitBehavior behavior, bool invert, std::string_view text,
                    const std::function<void(std::string_view)>& f);

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void normalize(std::string& s) const = 0;
  // False when the result of normalizing a concatenation may differ from concatenating normalized parts
  // (e.g. Prepend, Strip): then long texts cannot be encoded in independent chunks.
  virtual bool chunkable() const = 0;
};

// Builds the normalizer of a tokenizer.json "normalizer" value; nullptr for null or an empty Sequence.
// `label` names the file in error messages.
std::unique_ptr<Normalizer> make_normalizer(const nlohmann::json& j, const std::string& label);

class PreTokenizer {
 public:
  // Builds from a tokenizer.json "pre_tokenizer" value (null: the whole text is one piece).
  static std::unique_ptr<PreTokenizer> from_json(const nlohmann::json& j, const std::string& label);

  // Calls f(piece) for every final piece of text. Pieces view `text` or a temporary owned by this call
  // (ByteLevel add_prefix_space), so f must consume them before returning. Thread-safe.
  void for_each_piece(std::string_view text, const std::function<void(std::string_view)>& f) const;

  // The pieces as strings (raw bytes, before the byte-level mapping). For tests and tools.
  std::vector<std::string> pieces(std::string_view text) const;

  // True when the last step is ByteLevel: pieces are then fed to the model as bytes.
  bool byte_level() const { return byte_level_; }
  // True when ByteLevel adds a prefix space (prevents chunked encoding of long texts).
  bool adds_prefix_space() const { return prefix_space_; }

 private:
  struct Step {
    enum Kind { kSplit, kPrefixSpace } kind;
    std::shared_ptr<const Regex> re;
    SplitBehavior behavior = SplitBehavior::kIsolated;
    bool invert = false;
  };
  void add_json(const nlohmann::json& j, const std::string& label, int depth);
  void run(size_t step, std::string_view text, const std::function<void(std::string_view)>& f) const;

  std::vector<Step> steps_;
  bool byte_level_ = false;
  bool prefix_space_ = false;
};

// GPT-2's pre-tokenization pattern, used by ByteLevel(use_regex=true) (Oniguruma syntax).
extern const char* const kGpt2Pattern;
// DeepSeek-V3's pre_tokenizer Split patterns, in order (from its published tokenizer.json).
extern const char* const kDeepSeekV3Patterns[3];
// Llama-3's pre_tokenizer Split pattern (from its published tokenizer.json).
extern const char* const kLlama3Pattern;

}  // namespace dsv3::io
