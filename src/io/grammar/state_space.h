// The byte-level pushdown matcher's states, interned, with memoised transitions: a lazily built DFA over
// sets of stacks.
//
// Nondeterminism is handled as llama.cpp's grammar does, as a set of stacks, but the stacks are a
// graph-structured stack (Tomita): a stack frame is an interned node (position, parent node), so stacks
// share their bottoms and a stack is one integer. A position is an index into Grammar::elements(). Every
// stack in a state has a byte class on top (expansion pushes rule references until it reaches bytes); a
// reference in tail position (its alternative ends right after it) replaces the frame instead of pushing
// one, so right-recursive loops (strings, arrays) run in constant depth. A state is the sorted set of its
// stacks plus whether the input may end here; states are interned into StateId, so a state is saved and
// restored by copying an int, compared exactly by ==, and is a key for caching token masks.
//
// next(s, b) is memoised in a dense table [state × 256]: after warm-up, walking the vocabulary's trie
// against it is one table lookup per trie edge. next_literal follows only bytes that come from
// Grammar::literal (the path special tokens may take). The table only grows; a StateSpace belongs to one
// sequence (one request) at a time and is not thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "io/grammar/grammar.h"

namespace dsv3::grammar {

using StateId = int32_t;
constexpr StateId kDead = -1;

class StateSpace {
 public:
  explicit StateSpace(std::shared_ptr<const Grammar> grammar);

  StateId start() const { return start_; }
  // The state after byte b (kDead: b is not allowed in s). s must not be kDead.
  StateId next(StateId s, uint8_t b) {
    const StateId t = trans_[size_t(s) * 256 + b];
    return t != kUnknown ? t : compute(s, b, false);
  }
  // Same, following only literal bytes (Element::literal).
  StateId next_literal(StateId s, uint8_t b);
  // All bytes in turn; kDead as soon as one is rejected.
  StateId feed(StateId s, std::string_view bytes);
  bool can_finish(StateId s) const { return accept_[size_t(s)] != 0; }
  // Nothing more may follow (finished and no stack left).
  bool finished_only(StateId s) const { return accept_[size_t(s)] && stacks_[size_t(s)].empty(); }
  // The bytes next() accepts in s (from the stacks' top byte classes).
  ByteSet allowed_bytes(StateId s) const;
  int64_t state_count() const { return int64_t(stacks_.size()); }
  const Grammar& grammar() const { return *g_; }

 private:
  static constexpr StateId kUnknown = -2;
  struct VecHash {
    size_t operator()(const std::vector<int32_t>& v) const;
  };
  int32_t node(int32_t pos, int32_t parent);
  // Pushes the stacks reached from (pos, parent) without consuming a byte into top_, sets accept_now_.
  void expand(int32_t pos, int32_t parent);
  StateId compute(StateId s, uint8_t b, bool literal_only);
  StateId intern();  // the state of top_ / accept_now_

  std::shared_ptr<const Grammar> g_;
  const Element* elems_;
  std::vector<std::pair<int32_t, int32_t>> nodes_;  // (pos, parent); parent -1 = bottom
  std::unordered_map<uint64_t, int32_t> node_index_;
  std::vector<std::vector<int32_t>> stacks_;  // per state: sorted top nodes
  std::vector<uint8_t> accept_;
  std::unordered_map<std::vector<int32_t>, StateId, VecHash> state_index_;  // stacks + accept flag
  std::vector<StateId> trans_;                                              // [state × 256]
  std::unordered_map<uint64_t, StateId> literal_trans_;
  StateId start_ = kDead;
  // scratch of compute()
  std::vector<int32_t> top_;
  std::unordered_set<uint64_t> seen_;
  bool accept_now_ = false;
};

}  // namespace dsv3::grammar
