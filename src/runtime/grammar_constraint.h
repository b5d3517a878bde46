// Structured output: a TokenConstraint (constraint.h) that keeps the generated text inside a grammar
// (io/grammar: a JSON schema, any JSON object, or a composition such as tool-call markers around
// arguments).
//
//   auto vocab = runtime::make_token_vocabulary(tokenizer);            // once per tokenizer, shared
//   auto g = std::make_shared<const grammar::Grammar>(grammar::Grammar::json_schema(schema));
//   req.constraint = std::make_shared<runtime::GrammarConstraint>(g, vocab,
//       runtime::GrammarConstraintOptions{.eos_ids = bundle.eos_ids, .start_after = "</think>"});
//
// Rules of the mask, in this order:
//   - before `start_after` has appeared in the output's bytes (thinking: the reasoning block), every token
//     is free; the bytes of the token that completes it which follow it (ASCII whitespace skipped) are the
//     first bytes the grammar sees (when the grammar rejects them, only end-of-sequence is allowed);
//   - end-of-sequence ids are allowed exactly when the grammar can finish, and when nothing more may follow
//     they are the only tokens allowed (without eos ids the caller must stop the generation itself);
//   - other tokens: those the vocabulary's mask engine allows (io/grammar/token_mask.h; special tokens only
//     where the grammar literally writes their text, see io/grammar/vocabulary.h).
// The matcher state after each output position is cached: decoding appends one token, MTP verification
// appends drafts and rolls back to a shorter or different output; mask() compares with the cached tokens
// and rewinds to the common prefix. mask() is const for the sampler but keeps mutable caches: one engine
// thread calls it (the engine steps sequences on one thread); stats() may be read from any thread.
// prepare() (after each accepted token) advances the matcher and, when the new state's mask is not cached,
// computes it on a worker thread while the engine runs the next forward; mask() then finds it cached (or
// waits for it). The caches are behind one mutex, so the result never depends on the timing.
#pragma once

#include <atomic>
#include <cstdint>
#include <future>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "io/grammar/grammar.h"
#include "io/grammar/token_mask.h"
#include "io/grammar/vocabulary.h"
#include "runtime/constraint.h"

namespace dsv3::io {
class Tokenizer;
}

namespace dsv3::runtime {

// The tokenizer's vocabulary for the mask engine: each id's bytes (token_bytes); every added token (special
// or not: DeepSeek's <｜tool▁calls▁begin｜> is an added token with special: false) as Special, i.e. allowed
// only where the grammar writes its content with Grammar::literal; unassigned ids and `exclude` as Excluded. eos ids
// need not be excluded: GrammarConstraint decides them. Costs ~100 ms for 129K tokens; build once and share.
std::shared_ptr<const grammar::TokenVocabulary> make_token_vocabulary(const io::Tokenizer& tokenizer,
                                                                      std::span<const int32_t> exclude = {});

struct GrammarConstraintOptions {
  std::vector<int32_t> eos_ids = {};  // allowed when the grammar can finish; alone when it must
  std::string start_after = {};       // e.g. "</think>": unconstrained until the output's bytes contain it
  size_t mask_cache_states = 1024;
  bool background = true;  // prepare() computes uncached masks on a worker thread (false: prepare does nothing)
};

struct GrammarConstraintStats {
  double mask_seconds = 0;     // total time in mask(): on the decode path, waits for a prepared mask included
  int64_t masks = 0;           // mask() calls
  double prepare_seconds = 0;  // total time of masks computed by prepare() on the worker thread
  int64_t prepared = 0;        // masks computed by prepare()
  int64_t cache_hits = 0, cache_misses = 0;
  int64_t states = 0;  // matcher states explored
};

class GrammarConstraint : public TokenConstraint {
 public:
  GrammarConstraint(std::shared_ptr<const grammar::Grammar> grammar,
                    std::shared_ptr<const grammar::TokenVocabulary> vocabulary, GrammarConstraintOptions options = {});

  void mask(std::span<const int32_t> output, float* logits, int64_t vocab) const override;
  void prepare(std::span<const int32_t> output) const override;
  ~GrammarConstraint() override;

  // Whether `output` is a complete sentence of the grammar (eos excluded; after start_after when set).
  bool complete(std::span<const int32_t> output) const;
  GrammarConstraintStats stats() const;

 private:
  struct Position {
    bool constrained = false;  // start_after seen (always true without start_after)
    grammar::StateId state = grammar::kDead;
    std::string tail;  // free phase: the last start_after.size() - 1 bytes of the output
  };
  // Brings positions_ to `output` (rewinding to the common prefix) and returns the last position.
  const Position& sync(std::span<const int32_t> output) const;
  Position advance(const Position& p, int32_t token) const;

  std::shared_ptr<const grammar::Grammar> grammar_;
  std::shared_ptr<const grammar::TokenVocabulary> vocab_;
  GrammarConstraintOptions options_;
  std::vector<uint8_t> is_eos_;
  mutable std::shared_ptr<grammar::StateSpace> space_;
  mutable std::unique_ptr<grammar::TokenMasker> masker_;
  mutable std::vector<int32_t> tokens_;      // the output positions_ describe
  mutable std::vector<Position> positions_;  // positions_[i]: after tokens_[0..i)
  mutable std::mutex mu_;                    // guards everything mutable above (mask(), complete(), the worker)
  mutable std::atomic<int64_t> mask_ns_{0}, masks_{0}, hits_{0}, misses_{0}, states_{0}, prepare_ns_{0}, prepared_{0};
  mutable std::future<void> pending_;  // the worker's mask; only the engine thread touches the future itself
};

}  // namespace dsv3::runtime
