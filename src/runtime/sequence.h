// One generation in flight: its request, its caches and where it stands. The engine (generator.h) advances
// many of these together; the CLI and the server's scheduler own them.
//
// Invariants while decoding (n = cache.length()):
//   tokens = prompt + generated; the main cache holds tokens[0..n) and tokens[n] = tokens.back() is the last
//   emitted token, not yet run through the model ("pending").
//   With MTP speculation the MTP cache holds rows 0..L-1 (row i = (h[i], t[i+1]), h = the main model's final
//   hidden state after model.norm) and mtp_pending holds the rows L..n-1 not yet fed to it, all complete; the
//   last of them pairs h[n-1] with the pending token, so the next draft step drafts t[n+1].
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "model/kv_cache.h"
#include "runtime/mtp_pending.h"
#include "runtime/sampler.h"

namespace dsv3 {
class Model;
}

namespace dsv3::runtime {

class TokenConstraint;

enum class FinishReason { None, Stop, Length, Cancelled };
const char* finish_reason_name(FinishReason r);  // "stop", "length", "cancelled"

struct GenerationRequest {
  std::vector<int32_t> prompt;  // at least one token
  SamplingParams sampling;
  int64_t max_tokens = 256;                           // generated tokens, an end-of-sequence token included
  std::vector<int32_t> eos_ids;                       // sampling one of these ends the generation (FinishReason::Stop)
  bool ignore_eos = false;                            // benchmarks: generate exactly max_tokens
  std::shared_ptr<const TokenConstraint> constraint;  // optional: which tokens may come next (constraint.h)
  // Ids at or above this are never sampled: checkpoints pad the embedding past the tokenizer's vocabulary
  // (DeepSeek-V3: 129,280 rows, 128,815 tokens) and those rows decode to nothing. 0: every row may be sampled.
  int64_t emit_vocab = 0;
};

// Called once per generated token that is not end-of-sequence, in order; `lp` is set when logprobs were
// requested. Returning false ends the generation with FinishReason::Stop (e.g. a stop string matched).
using TokenCallback = std::function<bool(int32_t token, const TokenLogprobs* lp)>;

struct SequenceStats {
  int64_t prompt_tokens = 0, generated = 0;
  int64_t reused = 0;                  // prompt tokens taken over from a previous sequence's cache
  int64_t cached = 0;                  // prompt tokens copied from the prefix cache (prefix_cache.h)
  double prefill_s = 0, decode_s = 0;  // wall time of the engine steps this sequence took part in
  int64_t drafted = 0, accepted = 0;   // MTP drafts proposed / accepted
  int64_t verify_steps = 0;            // speculative decode steps (one main forward each)
};

struct Sequence {
  // `reuse` (optional): a finished sequence whose caches are taken over; the longest common prefix of its
  // tokens and the new prompt is kept and not computed again (multi-turn chat).
  Sequence(const Model& model, GenerationRequest request, TokenCallback callback, int64_t max_context, bool speculative,
           int64_t draft, Sequence* reuse = nullptr);

  bool done() const { return finish != FinishReason::None; }
  bool prefilling() const { return prefilled < int64_t(request.prompt.size()); }
  // Appends a generated token: pushes it to the sampler's history, checks end-of-sequence, calls the
  // callback and the length limit. Returns false when the generation is over. `logits` is the raw row the
  // token was drawn from (for logprobs).
  bool emit(int32_t token, const float* logits, int64_t vocab);

  GenerationRequest request;
  TokenCallback callback;
  Sampler sampler;
  int64_t max_total = 0;      // prompt + generated never exceeds this (context / max_position_embeddings)
  int64_t max_generated = 0;  // min(max_tokens, max_total − prompt)
  KvCache cache, mtp_cache;
  std::vector<int32_t> tokens;  // prompt + generated
  int64_t prefilled = 0;        // prompt tokens already in the cache
  int64_t reused = 0;           // of which taken over from a previous sequence
  MtpPending mtp_pending;       // MTP rows L..n-1 (see above); without speculation it has no width
  // Prefix cache (Engine): whether the prompt was looked up, and with MTP the final hidden state at the last
  // position of each whole block computed or copied so far ([blocks, hidden]: what a cached block keeps).
  bool prefix_checked = false;
  std::vector<float> block_hidden;
  FinishReason finish = FinishReason::None;
  std::atomic<bool> cancelled{false};  // set from any thread; the engine finishes the sequence at its next step
  SequenceStats stats;
};

}  // namespace dsv3::runtime
