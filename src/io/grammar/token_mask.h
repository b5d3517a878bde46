// The token-mask engine: which tokens of a vocabulary the grammar allows next, in a matcher state.
//
// The vocabulary's byte trie (vocabulary.h) is walked depth-first against the state space (state_space.h):
// a child edge is one memoised transition (a table lookup once warm), a rejected byte skips the whole
// subtree, and the state reached at each depth is kept on a stack, so rolling back to the parent is free.
// A token is allowed when its last byte leaves a live state. Because the matcher works on bytes, a token
// spanning several grammar symbols (`":"`, `"},{"`) and a byte-level token that ends inside a UTF-8
// character (the partial character is a matcher state) are handled like any other. Special tokens walk
// their own trie with literal-only transitions (vocabulary.h gives the rule).
//
// Masks are cached per state, keyed by the StateId (exact: states are interned), so a state that recurs —
// inside a string, between array items — costs one lookup after the first time. The cache holds up to
// `cache_states` masks (16 KiB each for a 129K vocabulary) and is cleared when full.
// Not thread-safe: one TokenMasker per sequence (it shares the StateSpace of that sequence's matcher).
#pragma once

#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "io/grammar/state_space.h"
#include "io/grammar/vocabulary.h"

namespace dsv3::grammar {

class TokenMasker {
 public:
  using Bits = std::vector<uint64_t>;  // bit t set: token t allowed; size (vocab + 63) / 64

  TokenMasker(std::shared_ptr<StateSpace> space, std::shared_ptr<const TokenVocabulary> vocab,
              size_t cache_states = 1024);

  // The tokens allowed in state s (end-of-sequence is not the masker's business: see can_finish()).
  const Bits& allowed(StateId s);
  // Whether allowed(s) would be a cache hit.
  bool cached(StateId s) const { return cache_.count(s) != 0; }
  // Computes without the cache (for tests and benchmarks).
  void compute(StateId s, Bits& out);
  // Token t (its bytes from s, all of it) is allowed: the brute-force definition compute() must equal.
  bool allows(StateId s, int32_t t);

  StateSpace& space() { return *space_; }
  const TokenVocabulary& vocabulary() const { return *vocab_; }
  int64_t cache_hits() const { return hits_; }
  int64_t cache_misses() const { return misses_; }

 private:
  void walk(const std::vector<TokenVocabulary::Node>& trie, StateId s, bool literal, Bits& out);

  std::shared_ptr<StateSpace> space_;
  std::shared_ptr<const TokenVocabulary> vocab_;
  size_t cache_states_;
  std::unordered_map<StateId, Bits> cache_;
  std::vector<StateId> stack_;
  int64_t hits_ = 0, misses_ = 0;
};

}  // namespace dsv3::grammar
