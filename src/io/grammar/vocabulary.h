// A tokenizer's vocabulary as the token-mask engine sees it: each token id's bytes and kind, arranged in a
// byte trie laid out in depth-first order (walked against the matcher in token_mask.h). Built once per
// tokenizer (runtime/grammar_constraint.h: make_token_vocabulary) and shared, immutable, by every request.
//
// Kinds: Text tokens match wherever the grammar admits their bytes. Special tokens (a tokenizer's added
// tokens, e.g. <｜tool▁calls▁begin｜>) carry their content text as bytes but match only bytes the
// grammar wrote with Grammar::literal — where a grammar literally requires the marker — never free text
// such as a JSON string that happens to admit the same characters. Excluded ids (unassigned ids, and ids
// the caller names, e.g. end-of-sequence, which the constraint decides itself) are never allowed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dsv3::grammar {

class TokenVocabulary {
 public:
  enum class Kind : uint8_t { Text, Special, Excluded };

  // bytes[i], kinds[i]: token i. Empty-byte tokens are treated as Excluded.
  TokenVocabulary(std::vector<std::string> bytes, std::vector<Kind> kinds);

  int64_t size() const { return int64_t(bytes_.size()); }
  const std::string& bytes(int32_t id) const { return bytes_[size_t(id)]; }
  Kind kind(int32_t id) const { return kinds_[size_t(id)]; }

  // A trie node in depth-first order: its children follow it; `skip` is the index after its subtree.
  struct Node {
    uint8_t byte;
    uint16_t depth;  // 1 for children of the root (the root itself is not stored)
    int32_t skip;
    int32_t tokens_begin, tokens_end;  // into trie_tokens(): the tokens whose bytes end here
  };
  const std::vector<Node>& text_trie() const { return text_; }
  const std::vector<Node>& special_trie() const { return special_; }
  const std::vector<int32_t>& trie_tokens() const { return tokens_; }
  int max_depth() const { return max_depth_; }

 private:
  void build(const std::vector<int32_t>& ids, std::vector<Node>& out);
  std::vector<std::string> bytes_;
  std::vector<Kind> kinds_;
  std::vector<Node> text_, special_;
  std::vector<int32_t> tokens_;
  int max_depth_ = 0;
};

}  // namespace dsv3::grammar
