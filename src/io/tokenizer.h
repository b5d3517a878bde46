// Hugging Face tokenizer.json (byte-level BPE, as DeepSeek-V3 publishes it): load, encode, decode.
//
//   auto tok = dsv3::io::Tokenizer::load("/models/DeepSeek-V3");        // dir or path to tokenizer.json
//   std::vector<int32_t> ids = tok.encode("Hello<｜end▁of▁sentence｜>");  // special tokens matched in text
//   std::string text = tok.decode(ids);
//
// Pipeline (HF tokenizers' order): repair invalid UTF-8 (U+FFFD per maximal ill-formed subpart, what a JS or
// Python string holds for the same bytes) -> split out added tokens that are not `normalized` -> normalizer
// -> split out `normalized` added tokens -> pre_tokenizer (Split / ByteLevel) -> BPE per piece. Added tokens
// match leftmost-longest and honour lstrip / rstrip (absorb adjacent White_Space) and single_word (only
// when not inside a word). Decode maps ids to their bytes (ByteLevel decoder) with added tokens verbatim,
// drops `special` ones when asked, and repairs invalid UTF-8 the same way.
// Supported feature set and deviations: see pretokenizer.h, bpe.h, regex.h and docs/tokenizer.md. Anything
// unsupported in a tokenizer.json is a dsv3::Error that names it; nothing is silently ignored except
// post_processor / truncation / padding (encode never adds special tokens; see add_bos()).
//
// A Tokenizer is immutable after load; all const methods are thread-safe. Copies share the loaded data.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dsv3::io {

struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool special = false;
  bool lstrip = false, rstrip = false, single_word = false, normalized = false;
};

class Tokenizer {
 public:
  // Loads path_or_dir/tokenizer.json (or the file itself) and, when present, the tokenizer_config.json next
  // to it (bos_token, eos_token, pad_token, add_bos_token). Throws dsv3::Error naming the file on any
  // problem: missing file, invalid JSON, unsupported or inconsistent content.
  static Tokenizer load(const std::string& path_or_dir);
  // Same from in-memory JSON texts; config may be empty. `label` names the source in errors.
  static Tokenizer from_json(std::string_view tokenizer_json, std::string_view config_json = {},
                             const std::string& label = "tokenizer.json");

  // Token ids of text. allow_special = false: special added tokens are not matched (encoded as plain text).
  std::vector<int32_t> encode(std::string_view text, bool allow_special = true) const;
  // Appends to out (avoids a copy when building batches).
  void encode_into(std::string_view text, std::vector<int32_t>& out, bool allow_special = true) const;
  // Encodes independent texts on `threads` threads (0: hardware concurrency). Same result as encode().
  std::vector<std::vector<int32_t>> encode_batch(const std::vector<std::string_view>& texts, int threads = 0,
                                                 bool allow_special = true) const;
  // One long text on several threads: it is cut at line breaks where this pipeline provably (by probing)
  // splits pieces anyway, so the ids equal encode(text). Falls back to one thread when no such cut exists.
  std::vector<int32_t> encode_parallel(std::string_view text, int threads = 0, bool allow_special = true) const;
  // The cut encode_parallel makes: consecutive chunks of about target_bytes (more when no cut point is near)
  // whose encodings concatenate to encode(text). One chunk when this pipeline admits no cut.
  std::vector<std::string_view> split_for_parallel(std::string_view text, size_t target_bytes) const;

  // Text of ids: valid UTF-8 (incomplete or invalid byte sequences become U+FFFD). Throws dsv3::Error on
  // an id that is out of range or unassigned.
  std::string decode(const std::vector<int32_t>& ids, bool skip_special = false) const;
  // The raw bytes a token contributes to decoded text (may be a partial UTF-8 sequence). Throws on bad id.
  const std::string& token_bytes(int32_t id) const;

  // The token's string in the vocab (byte-level alphabet, e.g. "Ġthe"), or an added token's content.
  std::string token_piece(int32_t id) const;
  std::optional<int32_t> token_id(std::string_view token) const;
  // One past the largest assigned id (vocab and added tokens).
  int64_t vocab_size() const;
  bool is_valid_id(int32_t id) const;
  bool is_special(int32_t id) const;
  const std::vector<AddedToken>& added_tokens() const;

  // From tokenizer_config.json (bos_token / eos_token / pad_token) when present, else by well-known names
  // (<｜begin▁of▁sentence｜>, <s>, <|begin_of_text|>, ... / <｜end▁of▁sentence｜>, </s>, <|endoftext|>, ...).
  std::optional<int32_t> bos_id() const;
  std::optional<int32_t> eos_id() const;
  std::optional<int32_t> pad_id() const;
  // tokenizer_config.json "add_bos_token" (DeepSeek: true). encode() never adds it; callers do.
  bool add_bos() const;
  // False for a tokenizer.json without decoder: decode() then joins token strings with " " (HF).
  bool byte_level_decoder() const;

  // Pre-tokenization pieces of text (after added-token splitting and normalization; raw bytes). For tests
  // and debugging.
  std::vector<std::string> pre_tokenize(std::string_view text, bool allow_special = true) const;

  struct Impl;

 private:
  explicit Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

// Incremental detokenizer for generation: push ids as they are sampled, get back only complete UTF-8 text.
// Bytes of a character split across tokens are held until it completes; bytes that can no longer form a
// valid character come out as U+FFFD, so the concatenation of all outputs plus finish() equals
// tokenizer.decode(all ids).
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer, bool skip_special = false)
      : tok_(&tokenizer), skip_special_(skip_special) {}
  // Text completed by this id (possibly empty). Throws dsv3::Error on a bad id.
  std::string push(int32_t id);
  // Flushes held bytes (as U+FFFD) and resets.
  std::string finish();
  // Bytes currently held back (0..3).
  size_t pending() const { return pending_.size(); }

 private:
  const Tokenizer* tok_;
  bool skip_special_;
  bool first_ = true;
  std::string pending_;
};

}  // namespace dsv3::io
