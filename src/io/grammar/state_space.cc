#include "io/grammar/state_space.h"

#include <algorithm>

#include "core/error.h"

namespace dsv3::grammar {

size_t StateSpace::VecHash::operator()(const std::vector<int32_t>& v) const {
  uint64_t h = 0xcbf29ce484222325ull;
  for (int32_t x : v) h = (h ^ uint32_t(x)) * 0x100000001b3ull;
  return size_t(h ^ (h >> 29));
}

StateSpace::StateSpace(std::shared_ptr<const Grammar> grammar) : g_(std::move(grammar)) {
  if (!g_) fail("grammar: StateSpace of a null grammar");
  elems_ = g_->elements().data();
  top_.clear();
  accept_now_ = false;
  seen_.clear();
  for (int32_t p : g_->alternatives(g_->root())) expand(p, -1);
  start_ = intern();
  if (start_ == kDead) fail("grammar: the grammar matches nothing");
}

int32_t StateSpace::node(int32_t pos, int32_t parent) {
  const uint64_t key = (uint64_t(uint32_t(pos)) << 32) | uint32_t(parent);
  auto [it, fresh] = node_index_.try_emplace(key, int32_t(nodes_.size()));
  if (fresh) nodes_.push_back({pos, parent});
  return it->second;
}

void StateSpace::expand(int32_t pos, int32_t parent) {
  for (;;) {
    const uint64_t key = (uint64_t(uint32_t(pos)) << 32) | uint32_t(parent);
    if (!seen_.insert(key).second) return;
    const Element& e = elems_[pos];
    switch (e.kind) {
      case Element::Kind::Bytes:
        top_.push_back(node(pos, parent));
        return;
      case Element::Kind::End:
        if (parent < 0) {
          accept_now_ = true;
          return;
        }
        pos = nodes_[size_t(parent)].first;
        parent = nodes_[size_t(parent)].second;
        continue;
      case Element::Kind::Rule: {
        // Tail position: the rule's end is the caller's end, no return frame.
        const int32_t ret = elems_[pos + 1].kind == Element::Kind::End ? parent : node(pos + 1, parent);
        for (int32_t p : g_->alternatives(e.index)) expand(p, ret);
        return;
      }
    }
  }
}

StateId StateSpace::intern() {
  std::sort(top_.begin(), top_.end());
  top_.erase(std::unique(top_.begin(), top_.end()), top_.end());
  if (top_.empty() && !accept_now_) return kDead;
  std::vector<int32_t> key = top_;
  key.push_back(accept_now_ ? -1 : -2);
  auto [it, fresh] = state_index_.try_emplace(std::move(key), StateId(stacks_.size()));
  if (fresh) {
    stacks_.push_back(top_);
    accept_.push_back(accept_now_ ? 1 : 0);
    trans_.resize(trans_.size() + 256, kUnknown);
  }
  return it->second;
}

StateId StateSpace::compute(StateId s, uint8_t b, bool literal_only) {
  top_.clear();
  seen_.clear();
  accept_now_ = false;
  const std::vector<ByteSet>& sets = g_->byte_sets();
  // Copy: intern() may grow stacks_.
  const std::vector<int32_t> from = stacks_[size_t(s)];
  for (int32_t n : from) {
    const auto [pos, parent] = nodes_[size_t(n)];
    const Element& e = elems_[pos];
    if (literal_only && !e.literal) continue;
    if (sets[size_t(e.index)][b]) expand(pos + 1, parent);
  }
  const StateId t = intern();
  if (!literal_only) trans_[size_t(s) * 256 + b] = t;
  return t;
}

StateId StateSpace::next_literal(StateId s, uint8_t b) {
  const uint64_t key = (uint64_t(uint32_t(s)) << 8) | b;
  auto it = literal_trans_.find(key);
  if (it != literal_trans_.end()) return it->second;
  const StateId t = compute(s, b, true);
  literal_trans_.emplace(key, t);
  return t;
}

StateId StateSpace::feed(StateId s, std::string_view bytes) {
  for (char c : bytes) {
    if (s == kDead) return kDead;
    s = next(s, uint8_t(c));
  }
  return s;
}

ByteSet StateSpace::allowed_bytes(StateId s) const {
  ByteSet out;
  for (int32_t n : stacks_[size_t(s)]) out |= g_->byte_sets()[size_t(elems_[nodes_[size_t(n)].first].index)];
  return out;
}

}  // namespace dsv3::grammar
