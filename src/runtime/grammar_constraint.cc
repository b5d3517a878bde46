#include "runtime/grammar_constraint.h"

#include <algorithm>
#include <chrono>
#include <limits>

#include "core/error.h"
#include "io/tokenizer.h"

namespace dsv3::runtime {

using grammar::kDead;
using grammar::StateId;
using grammar::TokenVocabulary;

std::shared_ptr<const TokenVocabulary> make_token_vocabulary(const io::Tokenizer& tokenizer,
                                                             std::span<const int32_t> exclude) {
  const int64_t V = tokenizer.vocab_size();
  std::vector<std::string> bytes(static_cast<size_t>(V));
  std::vector<TokenVocabulary::Kind> kinds(static_cast<size_t>(V), TokenVocabulary::Kind::Excluded);
  std::vector<char> added(static_cast<size_t>(V), 0);
  for (const io::AddedToken& a : tokenizer.added_tokens())
    if (a.id >= 0 && a.id < V) added[size_t(a.id)] = 1;
  for (int64_t i = 0; i < V; ++i) {
    const int32_t id = int32_t(i);
    if (!tokenizer.is_valid_id(id)) continue;
    bytes[size_t(i)] = tokenizer.token_bytes(id);
    // Every added token is a marker (DeepSeek's tool-call markers are added tokens with special: false).
    kinds[size_t(i)] =
        added[size_t(i)] || tokenizer.is_special(id) ? TokenVocabulary::Kind::Special : TokenVocabulary::Kind::Text;
  }
  for (int32_t id : exclude)
    if (id >= 0 && id < V) kinds[size_t(id)] = TokenVocabulary::Kind::Excluded;
  return std::make_shared<const TokenVocabulary>(std::move(bytes), std::move(kinds));
}

GrammarConstraint::GrammarConstraint(std::shared_ptr<const grammar::Grammar> grammar,
                                     std::shared_ptr<const TokenVocabulary> vocabulary,
                                     GrammarConstraintOptions options)
    : grammar_(std::move(grammar)), vocab_(std::move(vocabulary)), options_(std::move(options)) {
  if (!grammar_ || !vocab_) fail("grammar constraint: null grammar or vocabulary");
  space_ = std::make_shared<grammar::StateSpace>(grammar_);
  masker_ = std::make_unique<grammar::TokenMasker>(space_, vocab_, options_.mask_cache_states);
  if (options_.eos_ids.size() > 16) fail("grammar constraint: more than 16 end-of-sequence ids");
  is_eos_.assign(size_t(vocab_->size()), 0);
  for (int32_t e : options_.eos_ids)
    if (e >= 0 && e < vocab_->size()) is_eos_[size_t(e)] = 1;
  Position p0;
  p0.constrained = options_.start_after.empty();
  p0.state = p0.constrained ? space_->start() : kDead;
  positions_.push_back(std::move(p0));
}

GrammarConstraint::Position GrammarConstraint::advance(const Position& p, int32_t token) const {
  Position q;
  const bool eos = token >= 0 && token < int64_t(is_eos_.size()) && is_eos_[size_t(token)];
  const std::string& bytes = token >= 0 && token < vocab_->size() ? vocab_->bytes(token) : q.tail;
  if (p.constrained) {
    q.constrained = true;
    if (eos || p.state == kDead) {
      q.state = eos ? p.state : kDead;
      return q;
    }
    const bool special = vocab_->kind(token) == TokenVocabulary::Kind::Special;
    StateId s = p.state;
    for (char c : bytes) {
      s = special ? space_->next_literal(s, uint8_t(c)) : space_->next(s, uint8_t(c));
      if (s == kDead) break;
    }
    q.state = s;
    return q;
  }
  // Free phase: look for start_after in the bytes so far.
  const std::string& mark = options_.start_after;
  const std::string text = p.tail + bytes;
  const size_t at = text.find(mark);
  if (at == std::string::npos) {
    q.tail = text.size() >= mark.size() ? text.substr(text.size() - (mark.size() - 1)) : text;
    return q;
  }
  q.constrained = true;
  size_t k = at + mark.size();
  while (k < text.size() && (text[k] == ' ' || text[k] == '\n' || text[k] == '\r' || text[k] == '\t')) ++k;
  q.state = space_->feed(space_->start(), std::string_view(text).substr(k));
  return q;
}

const GrammarConstraint::Position& GrammarConstraint::sync(std::span<const int32_t> output) const {
  size_t common = 0;
  while (common < tokens_.size() && common < output.size() && tokens_[common] == output[common]) ++common;
  tokens_.resize(common);
  positions_.resize(common + 1);
  for (size_t i = common; i < output.size(); ++i) {
    positions_.push_back(advance(positions_.back(), output[i]));
    tokens_.push_back(output[i]);
  }
  return positions_.back();
}

GrammarConstraint::~GrammarConstraint() {
  if (pending_.valid()) pending_.wait();
}

void GrammarConstraint::prepare(std::span<const int32_t> output) const {
  if (!options_.background) return;
  if (pending_.valid()) pending_.wait();
  StateId s = kDead;
  {
    std::lock_guard lock(mu_);
    const Position& p = sync(output);
    if (!p.constrained || p.state == kDead || space_->finished_only(p.state) || masker_->cached(p.state)) return;
    s = p.state;
  }
  pending_ = std::async(std::launch::async, [this, s] {
    std::lock_guard lock(mu_);
    const auto t0 = std::chrono::steady_clock::now();
    try {
      masker_->allowed(s);
    } catch (...) {
      return;  // mask() computes it again on the decode thread and reports the error there
    }
    prepared_.fetch_add(1, std::memory_order_relaxed);
    prepare_ns_.fetch_add(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count(),
        std::memory_order_relaxed);
  });
}

void GrammarConstraint::mask(std::span<const int32_t> output, float* logits, int64_t vocab) const {
  const auto t0 = std::chrono::steady_clock::now();
  std::lock_guard lock(mu_);
  const Position& p = sync(output);
  constexpr float kNeg = -std::numeric_limits<float>::infinity();
  if (p.constrained) {
    const StateId s = p.state;
    const bool finish = s != kDead && space_->can_finish(s);
    if (s == kDead || space_->finished_only(s)) {
      for (int64_t t = 0; t < vocab; ++t)
        if (!(finish && t < int64_t(is_eos_.size()) && is_eos_[size_t(t)])) logits[t] = kNeg;
    } else {
      float eos_logit[16];
      const size_t ne = std::min<size_t>(options_.eos_ids.size(), 16);
      for (size_t i = 0; i < ne; ++i) {
        const int32_t e = options_.eos_ids[i];
        eos_logit[i] = e >= 0 && e < vocab ? logits[e] : kNeg;
      }
      const grammar::TokenMasker::Bits& bits = masker_->allowed(s);
      const int64_t V = std::min<int64_t>(vocab, vocab_->size());
      for (int64_t w = 0; w * 64 < V; ++w) {
        uint64_t word = bits[size_t(w)];
        if (word == ~uint64_t(0)) continue;
        const int64_t end = std::min<int64_t>(V, (w + 1) * 64);
        for (int64_t t = w * 64; t < end; ++t)
          if (!((word >> (t & 63)) & 1)) logits[t] = kNeg;
      }
      for (int64_t t = V; t < vocab; ++t) logits[t] = kNeg;  // ids the tokenizer does not have
      for (size_t i = 0; i < ne; ++i) {                      // end-of-sequence: exactly when the grammar can finish
        const int32_t e = options_.eos_ids[i];
        if (e >= 0 && e < vocab) logits[e] = finish ? eos_logit[i] : kNeg;
      }
    }
  }
  states_.store(space_->state_count(), std::memory_order_relaxed);
  hits_.store(masker_->cache_hits(), std::memory_order_relaxed);
  misses_.store(masker_->cache_misses(), std::memory_order_relaxed);
  masks_.fetch_add(1, std::memory_order_relaxed);
  mask_ns_.fetch_add(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count(),
      std::memory_order_relaxed);
}

bool GrammarConstraint::complete(std::span<const int32_t> output) const {
  std::lock_guard lock(mu_);
  const Position& p = sync(output);
  return p.constrained && p.state != kDead && space_->can_finish(p.state);
}

GrammarConstraintStats GrammarConstraint::stats() const {
  return {.mask_seconds = double(mask_ns_.load()) * 1e-9,
          .masks = masks_.load(),
          .prepare_seconds = double(prepare_ns_.load()) * 1e-9,
          .prepared = prepared_.load(),
          .cache_hits = hits_.load(),
          .cache_misses = misses_.load(),
          .states = states_.load()};
}

}  // namespace dsv3::runtime
