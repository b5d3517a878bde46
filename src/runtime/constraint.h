// A sampling constraint: which tokens may come next, given the tokens generated so far. The sampler masks
// every other token (its logit becomes −inf) before penalties, temperature and the filters, in
// Sampler::distribution, so plain decoding and MTP speculative verification (which asks for the
// distribution after tentative drafts) see the same constraint. Structured output (grammar_constraint.h)
// implements this interface; so does ScriptedReply, the testing aid of `dsv3 serve --script-replies`.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

namespace dsv3::runtime {

class TokenConstraint {
 public:
  virtual ~TokenConstraint() = default;
  // Sets logits[t] = −inf for each token t that may not follow `output` (the generated tokens, drafts
  // included). Leaving no token allowed is an error the sampler reports.
  virtual void mask(std::span<const int32_t> output, float* logits, int64_t vocab) const = 0;
  // A hint, given after a token is accepted and before the next forward: the next mask() will most likely be
  // for `output`. An implementation may start computing that mask now, off the decode thread, so that it
  // overlaps the forward (GrammarConstraint does). It must not change what mask() returns.
  virtual void prepare(std::span<const int32_t> output) const { (void)output; }
};

// Forces a fixed continuation: token i of `script` at step i, then only `end` (an end-of-sequence id).
// The model still runs every forward; only the choice is fixed. Used to test the server's tool-call and
// reasoning paths end to end with a random model.
class ScriptedReply : public TokenConstraint {
 public:
  ScriptedReply(std::vector<int32_t> script, int32_t end) : script_(std::move(script)), end_(end) {}
  void mask(std::span<const int32_t> output, float* logits, int64_t vocab) const override;

 private:
  std::vector<int32_t> script_;
  int32_t end_;
};

// Forces the output to begin with `prefix` (token i at step i), then leaves it to `then` (which sees the
// whole output, the prefix included), or free when there is none. `dsv3 serve --script-replies` uses it for
// replies scripted as {"prefix": TEXT}: e.g. a reasoning block closed by the script, then structured output.
class ForcedPrefix : public TokenConstraint {
 public:
  explicit ForcedPrefix(std::vector<int32_t> prefix, std::shared_ptr<const TokenConstraint> then = nullptr)
      : prefix_(std::move(prefix)), then_(std::move(then)) {}
  void mask(std::span<const int32_t> output, float* logits, int64_t vocab) const override;

 private:
  std::vector<int32_t> prefix_;
  std::shared_ptr<const TokenConstraint> then_;
};

}  // namespace dsv3::runtime
