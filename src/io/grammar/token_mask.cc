#include "io/grammar/token_mask.h"

#include "core/error.h"

namespace dsv3::grammar {

TokenMasker::TokenMasker(std::shared_ptr<StateSpace> space, std::shared_ptr<const TokenVocabulary> vocab,
                         size_t cache_states)
    : space_(std::move(space)), vocab_(std::move(vocab)), cache_states_(std::max<size_t>(cache_states, 1)) {
  if (!space_ || !vocab_) fail("token masker: null state space or vocabulary");
  stack_.resize(size_t(vocab_->max_depth()) + 1);
}

const TokenMasker::Bits& TokenMasker::allowed(StateId s) {
  if (auto it = cache_.find(s); it != cache_.end()) {
    ++hits_;
    return it->second;
  }
  ++misses_;
  if (cache_.size() >= cache_states_) cache_.clear();
  Bits& b = cache_[s];
  compute(s, b);
  return b;
}

void TokenMasker::compute(StateId s, Bits& out) {
  out.assign(size_t((vocab_->size() + 63) / 64), 0);
  if (s == kDead) return;
  walk(vocab_->text_trie(), s, false, out);
  walk(vocab_->special_trie(), s, true, out);
}

void TokenMasker::walk(const std::vector<TokenVocabulary::Node>& trie, StateId s, bool literal, Bits& out) {
  const TokenVocabulary::Node* nodes = trie.data();
  const int32_t* toks = vocab_->trie_tokens().data();
  StateId* st = stack_.data();
  StateSpace& sp = *space_;
  st[0] = s;
  const int32_t n = int32_t(trie.size());
  for (int32_t i = 0; i < n;) {
    const TokenVocabulary::Node& nd = nodes[i];
    const StateId from = st[nd.depth - 1];
    const StateId t = literal ? sp.next_literal(from, nd.byte) : sp.next(from, nd.byte);
    if (t == kDead) {
      i = nd.skip;
      continue;
    }
    st[nd.depth] = t;
    for (int32_t k = nd.tokens_begin; k < nd.tokens_end; ++k) {
      const int32_t id = toks[k];
      out[size_t(id) >> 6] |= uint64_t(1) << (id & 63);
    }
    ++i;
  }
}

bool TokenMasker::allows(StateId s, int32_t t) {
  const auto kind = vocab_->kind(t);
  if (kind == TokenVocabulary::Kind::Excluded || s == kDead) return false;
  for (char c : vocab_->bytes(t)) {
    s = kind == TokenVocabulary::Kind::Special ? space_->next_literal(s, uint8_t(c)) : space_->next(s, uint8_t(c));
    if (s == kDead) return false;
  }
  return true;
}

}  // namespace dsv3::grammar
