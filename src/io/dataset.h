// Token datasets for training: text → documents → token ids → uint32 shards + manifest.json, and the loader
// that packs them into fixed-length sequences.
//
// Preparation (`dsv3 data prepare`):
//  - every input file is split into documents (blank lines | one per line | one per file | a separator regex);
//  - documents are assigned to train / val by a seeded permutation (round(val_frac · N) of them to val, at
//    least one when val_frac > 0 and N ≥ 2);
//  - each document becomes [bos] tokens [eos] (DeepSeek-V3 §4.1: documents are packed, separated by eos;
//    bos marks a document start the way the HF tokenizer's add_bos does at inference);
//  - Fill-in-the-Middle (V3 §4.1, DeepSeek-Coder): with probability fim_rate a TRAIN document is rewritten in
//    Prefix-Suffix-Middle form before tokenisation:
//        [bos] <｜fim▁begin｜> prefix <｜fim▁hole｜> suffix <｜fim▁end｜> middle [eos]
//    with the two cut points drawn uniformly over the document's UTF-8 character boundaries. The coin and the
//    cuts come from a generator seeded by (seed, document index), so the output does not depend on order or
//    threads. Validation documents are never rewritten: the validation loss stays on plain text.
//  - shards: <split>-NNNNN.bin, uint32 little-endian ids, each written atomically; manifest.json last (its
//    presence marks a complete dataset): tokenizer file + SHA-256 + vocab size, sources, the split rule,
//    document and token counts, shard list. The tokenizer file is copied beside the shards.
// Loading: TokenStream reads one split's shards; SequenceLoader cuts the stream into windows of seq_len
// tokens, starting at an offset drawn per epoch, in an order shuffled per epoch — both from (seed, epoch) —
// and exposes its position {epoch, index} so a resumed run continues with exactly the same sequences.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace dsv3::io {

// ---------------------------------------------------------------- documents

enum class DocSplit { BlankLines, PerLine, PerFile, Regex };

struct DocSplitRule {
  DocSplit mode = DocSplit::BlankLines;
  std::string regex{};  // DocSplit::Regex: PCRE2 (UTF, multiline) matching the separators, which are dropped
  std::string describe() const;
};

// Splits a file's text into documents. Lines keep their text; a document never starts or ends with a
// newline; empty (whitespace-only) documents are dropped. Throws on a bad regex.
std::vector<std::string> split_documents(std::string_view text, const DocSplitRule& rule);

// ---------------------------------------------------------------- preparation

// What preparation needs of a tokenizer (the CLI wires io::Tokenizer in; tests use a byte-level stand-in).
struct TokenizerInfo {
  std::function<std::vector<int32_t>(std::string_view)> encode;  // plain text, no special tokens
  // Optional: many texts at once (e.g. on several threads); must equal encode() of each.
  std::function<std::vector<std::vector<int32_t>>(const std::vector<std::string_view>&)> encode_batch;
  int32_t bos = -1, eos = -1;                           // bos < 0: none
  int32_t fim_begin = -1, fim_hole = -1, fim_end = -1;  // needed when fim_rate > 0
  int64_t vocab_size = 0;
  std::string file;  // tokenizer.json to hash and copy beside the shards ("" in tests: none)
};

struct PrepareOptions {
  std::vector<std::string> inputs{};
  DocSplitRule split{};
  double val_frac = 0.01;
  double fim_rate = 0.0;
  uint64_t seed = 0;
  int64_t shard_tokens = int64_t(1) << 26;  // ids per shard file (256 MiB)
  bool add_bos = true;
};

struct ShardInfo {
  std::string file;  // relative to the dataset directory
  int64_t tokens = 0;
};

struct DatasetManifest {
  std::string dir;
  std::string tokenizer_file;    // "tokenizer.json" inside dir, or "" when none was copied
  std::string tokenizer_sha256;  // of the tokenizer file's bytes
  int64_t vocab_size = 0;
  int64_t bos_id = -1, eos_id = -1;
  int64_t train_docs = 0, val_docs = 0, fim_docs = 0;
  int64_t train_tokens = 0, val_tokens = 0;
  std::vector<ShardInfo> train_shards, val_shards;
  nlohmann::json raw;  // the whole manifest.json
};

// Rewrites document text in PSM form with the cut points drawn from `rng_seed` (exposed for tests):
// returns {prefix, middle, suffix}.
struct FimSplit {
  std::string prefix, middle, suffix;
};
FimSplit fim_split(std::string_view doc, uint64_t rng_seed);

// Reads, splits, tokenises and writes the dataset into out_dir (created). Returns the manifest written.
DatasetManifest prepare_dataset(const PrepareOptions& o, const TokenizerInfo& tok, const std::string& out_dir);

// Same, from documents already in memory (tests; `sources` is recorded in the manifest).
DatasetManifest prepare_dataset_from_docs(const std::vector<std::string>& docs, const PrepareOptions& o,
                                          const TokenizerInfo& tok, const std::string& out_dir);

// Parses and validates DIR/manifest.json (every shard present with the size the manifest states).
DatasetManifest read_manifest(const std::string& dir);

// SHA-256 of bytes, lowercase hex (FIPS 180-4).
std::string sha256_hex(std::string_view bytes);

// ---------------------------------------------------------------- loading

// One split's ids, all shards concatenated in memory, validated against the vocabulary.
class TokenStream {
 public:
  static TokenStream open(const DatasetManifest& m, const std::string& split);  // "train" | "val"
  int64_t size() const { return int64_t(ids_.size()); }
  const int32_t* data() const { return ids_.data(); }

 private:
  std::vector<int32_t> ids_;
};

struct LoaderPosition {
  int64_t epoch = 0;
  int64_t index = 0;  // next window of the epoch's order
  bool operator==(const LoaderPosition&) const = default;
};

class SequenceLoader {
 public:
  // shuffle = false: windows in stream order from offset 0 every epoch (validation).
  SequenceLoader(const TokenStream& stream, int64_t seq_len, uint64_t seed, bool shuffle);

  // Fills out [n, seq_len] with the next n windows (crossing into the next epoch when needed).
  void next(int64_t n, int32_t* out);

  LoaderPosition position() const { return pos_; }
  void seek(const LoaderPosition& p);
  int64_t windows_in_epoch() const { return int64_t(order_.size()); }
  int64_t seq_len() const { return seq_len_; }

 private:
  void start_epoch(int64_t epoch);

  const TokenStream& stream_;
  int64_t seq_len_;
  uint64_t seed_;
  bool shuffle_;
  LoaderPosition pos_;
  int64_t offset_ = 0;          // first token of window 0 in this epoch
  std::vector<int64_t> order_;  // window numbers in visiting order
};

}  // namespace dsv3::io
