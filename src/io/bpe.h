// The BPE model of tokenizer.json ("model": {"type": "BPE", ...}): vocab, ranked merges and the merge loop.
//
// Semantics follow HF tokenizers' models/bpe (Rust): a word starts as one symbol per character (per byte in
// byte-level mode, via the GPT-2 alphabet); characters missing from the vocab become <0xXX> tokens with
// byte_fallback, else the unk token (fused runs with fuse_unk), else they are dropped; then the adjacent pair
// of lowest merge rank is merged, the leftmost on ties, until no pair has a rank. ignore_merges emits a
// word that is itself a vocab entry directly. Merges load from both the "a b" string form and the [a, b]
// list form. dropout (other than null/0), continuing_subword_prefix and end_of_word_suffix are refused.
//
// Speed: results are cached per word (per thread, open addressing, bounded), pair ranks live in a flat
// open-addressing table, short words merge by a linear scan over cached pair ranks and long ones with a
// binary heap, so a word of n symbols costs O(n log n) at worst.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace dsv3::io {

// Open-addressing map from a symbol pair (a, b) to its merge (rank, merged id).
class PairRankMap {
 public:
  struct Merge {
    int32_t rank;
    int32_t id;
  };
  void reserve(size_t n);
  // Inserts unless present (the first, lowest-ranked merge of a pair wins). Returns false if present.
  bool insert(int32_t a, int32_t b, Merge m);
  const Merge* find(int32_t a, int32_t b) const {
    if (keys_.empty()) return nullptr;
    uint64_t k = key(a, b);
    for (size_t i = hash(k) & mask_;; i = (i + 1) & mask_) {
      if (keys_[i] == k) return &vals_[i];
      if (keys_[i] == kEmpty) return nullptr;
    }
  }
  size_t size() const { return size_; }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  static uint64_t key(int32_t a, int32_t b) {
    return (uint64_t{static_cast<uint32_t>(a)} << 32) | static_cast<uint32_t>(b);
  }
  static size_t hash(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return static_cast<size_t>(k);
  }
  void grow();
  std::vector<uint64_t> keys_;
  std::vector<Merge> vals_;
  size_t mask_ = 0, size_ = 0;
};

class BpeModel {
 public:
  // Parses the "model" object of tokenizer.json; `label` names the file in errors.
  static std::unique_ptr<BpeModel> from_json(const nlohmann::json& model, const std::string& label);

  // Appends the ids of one pre-tokenized word. byte_level: the word is raw bytes to map through the GPT-2
  // alphabet; otherwise it is UTF-8 text whose characters are the initial symbols. Thread-safe.
  void encode_word(std::string_view word, bool byte_level, std::vector<int32_t>& out) const;

  const std::unordered_map<std::string, int32_t>& vocab() const { return vocab_; }
  std::optional<int32_t> unk_id() const { return unk_id_; }
  size_t num_merges() const { return merges_.size(); }

 private:
  BpeModel() = default;
  void initial_symbols(std::string_view word, bool byte_level, std::vector<int32_t>& syms) const;
  void merge(std::vector<int32_t>& syms) const;
  void merge_long(std::vector<int32_t>& syms) const;

  std::unordered_map<std::string, int32_t> vocab_;
  PairRankMap merges_;
  std::array<int32_t, 256> byte_ids_{};  // id of each byte's alphabet character, -1 if absent
  std::optional<int32_t> unk_id_;
  bool fuse_unk_ = false, byte_fallback_ = false, ignore_merges_ = false;
  std::array<int32_t, 256> fallback_ids_{};  // id of "<0xXX>", -1 if absent

  // Word cache: per thread (no locks, no shared cache lines), keyed by this model's unique id so a thread
  // that alternates between tokenizers keeps a few caches; each is bounded (cleared when full).
  static constexpr size_t kMaxCachedWord = 256;
  uint64_t cache_owner_ = 0;
};

}  // namespace dsv3::io
