#include "runtime/sequence.h"

#include <algorithm>

#include "core/error.h"
#include "model/transformer.h"

namespace dsv3::runtime {

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::Stop:
      return "stop";
    case FinishReason::Length:
      return "length";
    case FinishReason::Cancelled:
      return "cancelled";
    case FinishReason::None:
      break;
  }
  return "none";
}

Sequence::Sequence(const Model& model, GenerationRequest req, TokenCallback cb, int64_t max_context, bool speculative,
                   int64_t draft, Sequence* reuse)
    : request(std::move(req)), callback(std::move(cb)), sampler(request.sampling, model.config().vocab_size) {
  const ModelConfig& c = model.config();
  const int64_t n = int64_t(request.prompt.size());
  if (n == 0) fail("the prompt is empty");
  for (size_t i = 0; i < request.prompt.size(); ++i)
    if (request.prompt[i] < 0 || request.prompt[i] >= c.vocab_size)
      fail("prompt token {} at index {} is outside the vocabulary [0, {})", request.prompt[i], i, c.vocab_size);
  if (request.max_tokens < 1) fail("max_tokens must be >= 1, got {}", request.max_tokens);
  max_total = std::min(max_context, c.max_position_embeddings);
  if (n >= max_total)
    fail("the prompt has {} tokens; the context holds {} (prompt + at least one generated token)", n, max_total);
  max_generated = std::min(request.max_tokens, max_total - n);
  sampler.set_prompt(request.prompt);
  sampler.set_constraint(request.constraint);
  sampler.set_emit_vocab(request.emit_vocab);
  tokens = request.prompt;
  // Room for the generation plus the drafts verified beyond it (truncated right after). A long generation
  // starts with room for 256 tokens and the cache grows by doubling (KvCache::reserve, a few times per
  // sequence), so queued requests with a large max_tokens do not hold memory they may never use.
  const int64_t cap = n + std::min<int64_t>(max_generated, 256) + (speculative ? draft + 1 : 0);
  int64_t keep = 0;
  if (reuse && reuse->cache.layers() > 0) {
    // Keep the common prefix, but leave at least one prompt token to run (its logits start the generation).
    // With MTP, row i of the MTP cache pairs h[i] with t[i+1]: keep rows whose t[i+1] is shared too.
    const int64_t have = std::min<int64_t>(reuse->cache.length(), int64_t(reuse->tokens.size()));
    int64_t common = 0;
    while (common < have && common < n && reuse->tokens[size_t(common)] == request.prompt[size_t(common)]) ++common;
    keep = std::min(common, n - 1);
    if (speculative) keep = reuse->mtp_cache.layers() > 0 ? std::min({keep, common - 1, reuse->mtp_cache.length()}) : 0;
    keep = std::max<int64_t>(keep, 0);
  }
  if (keep > 0) {
    cache = std::move(reuse->cache);
    cache.truncate(keep);
    cache.reserve(cap);
    if (speculative) {
      mtp_cache = std::move(reuse->mtp_cache);
      mtp_cache.truncate(keep);
      mtp_cache.reserve(cap);
    }
    prefilled = reused = stats.reused = keep;
  } else {
    cache = model.new_cache(cap);
    if (speculative) mtp_cache = model.new_mtp_cache(cap);
  }
  if (speculative) mtp_pending = MtpPending(c.hidden_size, keep);  // the MTP cache holds rows 0..keep-1
  stats.prompt_tokens = n;
}

bool Sequence::emit(int32_t token, const float* logits, int64_t vocab) {
  tokens.push_back(token);
  sampler.push(token);
  ++stats.generated;
  if (!request.ignore_eos &&
      std::find(request.eos_ids.begin(), request.eos_ids.end(), token) != request.eos_ids.end()) {
    finish = FinishReason::Stop;
    return false;
  }
  std::optional<TokenLogprobs> lp;
  // Over the ids that can be drawn: padded rows past the tokenizer are neither in the top list nor the sum.
  const int64_t drawable = request.emit_vocab > 0 && request.emit_vocab < vocab ? request.emit_vocab : vocab;
  if (request.sampling.logprobs >= 0) lp = compute_logprobs(logits, drawable, token, request.sampling.logprobs);
  if (callback && !callback(token, lp ? &*lp : nullptr)) {
    finish = FinishReason::Stop;
    return false;
  }
  if (stats.generated >= max_generated) {
    finish = FinishReason::Length;
    return false;
  }
  sampler.prepare_next();  // the constraint's next mask may overlap the next forward
  return true;
}

}  // namespace dsv3::runtime
