// Token sampling: logits → the next-token distribution → a token, plus what stops a generation.
//
// The distribution a token is drawn from is defined once, in Sampler::distribution, in this order:
//   1. penalties on the logits (history = the prompt and the tokens generated so far):
//        repetition (CTRL, Keskar et al. 2019, as HF transformers / vLLM apply it): every token seen in the
//          prompt or the output has its logit divided by the penalty when positive, multiplied when negative;
//        frequency and presence (OpenAI's definition): logit −= count·frequency + (count > 0)·presence, where
//          count is how often the token occurs in the *output* so far (as vLLM counts it);
//   2. temperature 0 → greedy: all mass on the arg-max (lowest id on ties); the filters below are moot;
//   3. softmax(logits / temperature);
//   4. top-k: keep the k most probable (ties: lower id first); 0 keeps all;
//   5. top-p (nucleus, Holtzman et al. 2019): keep the smallest most-probable prefix whose mass ≥ top_p;
//   6. min-p: keep tokens with p ≥ min_p · p_max;
//   7. renormalise.
// The draw walks the dense distribution in token-id order with one uniform number from Rng, so a seed names
// the same tokens on every platform. Logprobs are reported from the raw model distribution
// (log_softmax of the logits before penalties and temperature), as vLLM and OpenAI do.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace dsv3::runtime {

class TokenConstraint;

// A random stream with a fixed definition: SplitMix64 expands the seed into the state of xoshiro256**
// (Blackman & Vigna 2018); uniform() = (next() >> 11) · 2⁻⁵³ ∈ [0, 1).
class Rng {
 public:
  explicit Rng(uint64_t seed = 0);
  uint64_t next();
  double uniform();

 private:
  uint64_t s_[4];
};

struct SamplingParams {
  double temperature = 1.0;         // 0 = greedy
  int64_t top_k = 0;                // 0 = off
  double top_p = 1.0;               // 1 = off
  double min_p = 0.0;               // 0 = off
  double repetition_penalty = 1.0;  // 1 = off
  double frequency_penalty = 0.0;
  double presence_penalty = 0.0;
  uint64_t seed = 0;
  int64_t logprobs = -1;  // -1 = none; n >= 0: the chosen token's logprob and the top n

  // Throws dsv3::Error naming the field when a value is out of range.
  void validate() const;
  bool greedy() const { return temperature == 0.0; }
};

struct TokenLogprob {
  int32_t id = 0;
  float logprob = 0;
};
struct TokenLogprobs {
  TokenLogprob chosen;
  std::vector<TokenLogprob> top;  // most probable first
};

// Log-softmax of raw logits [vocab]: the chosen token and the top n (ties: lower id first).
TokenLogprobs compute_logprobs(const float* logits, int64_t vocab, int32_t chosen, int64_t n);

class Sampler {
 public:
  Sampler(SamplingParams params, int64_t vocab);

  const SamplingParams& params() const { return params_; }
  int64_t vocab() const { return vocab_; }
  Rng& rng() { return rng_; }

  // History the penalties see: the prompt (repetition penalty only) and the generated tokens.
  void set_prompt(std::span<const int32_t> prompt);
  void push(int32_t generated);
  // Restricts the next token (constraint.h); null: none. Shared: the constraint is not copied per sequence.
  void set_constraint(std::shared_ptr<const TokenConstraint> c) { constraint_ = std::move(c); }
  // Ids >= n are never drawn (padded embedding rows past the tokenizer); n <= 0 or >= vocab: no limit.
  void set_emit_vocab(int64_t n) { emit_vocab_ = n > 0 && n < vocab_ ? n : vocab_; }
  // Tells the constraint the output is final up to here and the next forward begins (TokenConstraint::prepare).
  void prepare_next() const;

  // The distribution of the next token [vocab] (sums to 1), given the history plus `extra` tentative
  // generated tokens (speculative drafts not yet accepted).
  void distribution(const float* logits, std::span<const int32_t> extra, std::vector<float>& out) const;
  // Draws from a distribution [vocab] with one uniform number.
  int32_t draw(std::span<const float> dist);
  // distribution() then draw(); the token is not pushed.
  int32_t sample(const float* logits);

 private:
  void apply_penalties(float* logits, std::span<const int32_t> extra) const;

  SamplingParams params_;
  int64_t vocab_;
  Rng rng_;
  std::unordered_map<int32_t, int64_t> prompt_seen_;  // token → 1
  std::unordered_map<int32_t, int64_t> output_count_;
  std::vector<int32_t> output_;  // the generated tokens, in order (for the constraint)
  std::shared_ptr<const TokenConstraint> constraint_;
  int64_t emit_vocab_ = 0;  // set to vocab_ by the constructor
  mutable std::vector<float> work_;
  mutable std::vector<int32_t> order_;
  std::vector<float> dist_;
};

// Stop strings over streamed text (OpenAI semantics: the stop string and everything after it are not
// returned). Text that might be the beginning of a stop string is held back until it is decided.
class StopStrings {
 public:
  explicit StopStrings(std::vector<std::string> stops = {});
  // Appends a decoded piece; returns the text that is now safe to emit. After a match, stopped() is true
  // and later calls return nothing.
  std::string push(std::string_view piece);
  // The held-back text, when the generation ends for another reason.
  std::string flush();
  bool stopped() const { return stopped_; }
  const std::string& matched() const { return matched_; }  // the stop string that matched (empty: none)

 private:
  std::vector<std::string> stops_;
  std::string matched_;
  std::string pending_;
  bool stopped_ = false;
};

}  // namespace dsv3::runtime
