#include "runtime/generator.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "core/error.h"
#include "model/transformer.h"
#include "runtime/speculative.h"

namespace dsv3::runtime {

namespace {
using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }
}  // namespace

SpecMode parse_spec_mode(const std::string& s) {
  if (s == "none") return SpecMode::None;
  if (s == "mtp") return SpecMode::Mtp;
  fail("unknown speculative mode '{}' (expected none or mtp)", s);
}

Engine::Engine(Model& model, EngineOptions options) : model_(model), options_(options) {
  const ModelConfig& c = model.config();
  if (options_.spec == SpecMode::Mtp && model.num_mtp() == 0)
    fail("--spec mtp: the model has no MTP module (num_nextn_predict_layers = {}); use --spec none",
         c.num_nextn_predict_layers);
  if (options_.draft < 1) fail("the draft depth must be >= 1, got {}", options_.draft);
  if (options_.prefill_chunk < 1) fail("the prefill chunk must be >= 1 token, got {}", options_.prefill_chunk);
  if (options_.max_context < 0) fail("the context size must be >= 0, got {}", options_.max_context);
  max_context_ =
      options_.max_context == 0 ? c.max_position_embeddings : std::min(options_.max_context, c.max_position_embeddings);
  if (options_.prefix_cache_bytes < 0)
    fail("the prefix cache size must be >= 0 bytes, got {}", options_.prefix_cache_bytes);
  if (options_.prefix_block < 1) fail("the prefix cache block must be >= 1 token, got {}", options_.prefix_block);
  if (options_.prefix_cache_bytes > 0 && !model.options().parallel) {
    const KvCache main = model.new_cache(0);
    PrefixLayout layout{.block_tokens = options_.prefix_block,
                        .layers = main.layers(),
                        .width = main.width(),
                        .index_dim = main.index_dim(),
                        .index_layers = main.index_layers()};
    if (options_.spec == SpecMode::Mtp) {
      const KvCache mtp = model.new_mtp_cache(0);
      layout.mtp_layers = mtp.layers();
      layout.mtp_index_dim = mtp.index_dim();
      layout.mtp_index_layers = mtp.index_layers();
      layout.hidden = c.hidden_size;
    }
    prefix_ = std::make_unique<PrefixCache>(layout, options_.prefix_cache_bytes);
    stats_.prefix = prefix_->stats();
  }
}

// A hit copies whole blocks and leaves at least one prompt token to prefill (its logits start the
// generation). A sequence that took over another's caches (`reuse`, multi-turn chat) is left alone.
void Engine::lookup_prefix(Sequence& s) {
  s.prefix_checked = true;
  if (!prefix_ || s.prefilled > 0 || s.cache.length() > 0) return;
  const std::span<const int32_t> prompt(s.request.prompt);
  const int64_t B = prefix_->block_tokens(), n = int64_t(prompt.size());
  const std::vector<BlockRef> blocks = prefix_->lookup(prompt, (n - 1) / B);
  const bool spec = options_.spec == SpecMode::Mtp;
  if (!blocks.empty()) {
    const int64_t hit = int64_t(blocks.size()) * B, D = model_.config().hidden_size;
    prefix_->copy_in(blocks, s.cache, spec ? &s.mtp_cache : nullptr);
    if (spec) {
      // The MTP cache now holds rows 0..hit-2; row hit-1 pairs the last block's h with prompt[hit].
      for (const BlockRef& b : blocks) s.block_hidden.insert(s.block_hidden.end(), b->hidden.begin(), b->hidden.end());
      s.mtp_pending = MtpPending(D, hit - 1);
      s.mtp_pending.append_hidden(hit - 1, blocks.back()->hidden);
      s.mtp_pending.append_next(hit - 1, prompt[size_t(hit)]);
    }
    s.prefilled = hit;
    s.stats.cached = hit;
  }
  stats_.prefix = prefix_->stats();
}

void Engine::insert_prefix(Sequence& s, std::span<const int32_t> tokens, int64_t max_blocks) {
  if (!prefix_ || s.reused > 0 || s.cache.bytes() == 0) return;
  const int64_t B = prefix_->block_tokens(), D = model_.config().hidden_size;
  const bool spec = options_.spec == SpecMode::Mtp;
  int64_t blocks = std::min(max_blocks, s.cache.length() / B);
  if (spec) blocks = std::min({blocks, (s.mtp_cache.length() + 1) / B, int64_t(s.block_hidden.size()) / D});
  if (blocks <= 0) return;
  prefix_->insert(tokens, blocks, [&](int64_t j) {
    return prefix_->make_block(j, s.cache, spec ? &s.mtp_cache : nullptr,
                               spec ? s.block_hidden.data() + j * D : nullptr);
  });
  stats_.prefix = prefix_->stats();
}

std::unique_ptr<Sequence> Engine::start(GenerationRequest request, TokenCallback callback, Sequence* reuse) const {
  return std::make_unique<Sequence>(model_, std::move(request), std::move(callback), max_context_,
                                    options_.spec == SpecMode::Mtp, options_.draft, reuse);
}

void Engine::step(std::span<Sequence* const> seqs) {
  std::vector<Sequence*> pre, dec;
  for (Sequence* s : seqs) {
    if (s->done()) continue;
    if (s->cancelled.load(std::memory_order_relaxed)) {
      s->finish = FinishReason::Cancelled;
      continue;
    }
    if (!s->prefix_checked && s->prefilling()) lookup_prefix(*s);
    (s->prefilling() ? pre : dec).push_back(s);
  }
  if (pre.empty() && dec.empty()) return;
  ++stats_.steps;
  if (!pre.empty()) prefill(pre);
  if (dec.empty()) return;
  const auto t0 = Clock::now();
  int64_t emitted = 0;
  if (options_.spec == SpecMode::Mtp) {
    SpecStepStats st = speculative_step(model_, dec, options_.draft);
    stats_.drafted += st.drafted;
    stats_.accepted += st.accepted;
    stats_.verify_steps += 1;
    emitted = st.emitted;
  } else {
    decode_plain(dec);
    emitted = int64_t(dec.size());
  }
  const double dt = seconds_since(t0);
  stats_.decode_s += dt;
  stats_.decode_tokens += emitted;
  for (Sequence* s : dec) s->stats.decode_s += dt;
  // A finished sequence's generated tokens are cached too (the next turn of a chat starts with them).
  // Without MTP only: the MTP rows of decoded positions come with hidden states not kept here.
  if (prefix_ && options_.spec == SpecMode::None)
    for (Sequence* s : dec)
      if (s->done() && s->finish != FinishReason::Cancelled) insert_prefix(*s, s->tokens, s->cache.length());
}

void Engine::prefill(std::span<Sequence* const> seqs) {
  const int64_t V = model_.config().vocab_size, D = model_.config().hidden_size;
  const bool spec = options_.spec == SpecMode::Mtp;
  std::vector<SeqChunk> chunks;
  std::vector<Sequence*> in;
  tokens_.clear();
  int64_t budget = options_.prefill_chunk;
  for (Sequence* s : seqs) {
    const int64_t take = std::min(budget, int64_t(s->request.prompt.size()) - s->prefilled);
    if (take <= 0) break;
    budget -= take;
    chunks.push_back({&s->cache, take});
    in.push_back(s);
    tokens_.insert(tokens_.end(), s->request.prompt.begin() + s->prefilled,
                   s->request.prompt.begin() + s->prefilled + take);
  }
  const int64_t m = int64_t(tokens_.size());
  logits_.resize(size_t(int64_t(chunks.size()) * V));
  if (spec) hidden_.resize(size_t(m * D));
  const auto t0 = Clock::now();
  model_.forward(tokens_, chunks, spec ? hidden_.data() : nullptr, logits_.data(),
                 {.logits = LogitRows::LastOfEachChunk});
  int64_t row = 0;
  for (size_t i = 0; i < in.size(); ++i) {
    Sequence* s = in[i];
    const int64_t take = chunks[i].n, start = s->prefilled, n = int64_t(s->request.prompt.size());
    s->prefilled += take;
    if (spec && prefix_) {  // h at each block's last position, for the blocks inserted into the prefix cache
      const int64_t B = prefix_->block_tokens();
      for (int64_t p = start; p < start + take; ++p)
        if ((p + 1) % B == 0 && int64_t(s->block_hidden.size()) == (p / B) * D)
          s->block_hidden.insert(s->block_hidden.end(), hidden_.begin() + (row + p - start) * D,
                                 hidden_.begin() + (row + p - start + 1) * D);
    }
    if (spec) {  // MTP rows (h[p], t[p+1]) of this chunk; the last prompt row waits for the sampled token
      const std::span<const int32_t> prompt(s->request.prompt);
      const int64_t known = std::min(start + take, n - 1) - start;  // rows whose t[p+1] is a prompt token
      s->mtp_pending.append_hidden(start, std::span<const float>(hidden_).subspan(size_t(row * D), size_t(take * D)));
      s->mtp_pending.append_next(start, prompt.subspan(size_t(start + 1), size_t(known)));
    }
    row += take;
    if (!s->prefilling()) {
      const float* lg = logits_.data() + int64_t(i) * V;
      const int32_t tok = s->sampler.sample(lg);
      if (spec) s->mtp_pending.append_next(n - 1, tok);
      s->emit(tok, lg, V);
    }
  }
  if (spec) {
    // Feed the MTP cache every pending row whose next token is known, except the newest row of a sequence
    // that finished its prompt (the first draft step consumes it, with its logits).
    std::vector<SeqChunk> mchunks;
    std::vector<int32_t> next;
    std::vector<float> hid;
    for (Sequence* s : in) {
      if (s->done()) continue;
      const int64_t rows = s->mtp_pending.complete() - (s->prefilling() ? 0 : 1);
      if (rows <= 0) continue;
      s->mtp_pending.take(rows, s->mtp_cache.length(), next, hid);
      mchunks.push_back({&s->mtp_cache, rows});
    }
    if (!mchunks.empty())
      model_.mtp_forward(0, next, hid.data(), mchunks, nullptr, nullptr, {.logits = LogitRows::None});
  }
  // The prompts prefilled to the end: their whole blocks go into the prefix cache.
  if (prefix_)
    for (Sequence* s : in)
      if (!s->prefilling()) insert_prefix(*s, s->request.prompt, int64_t(s->request.prompt.size()));
  const double dt = seconds_since(t0);
  stats_.prefill_s += dt;
  stats_.prefill_tokens += m;
  for (Sequence* s : in) s->stats.prefill_s += dt;
}

void Engine::decode_plain(std::span<Sequence* const> seqs) {
  const int64_t V = model_.config().vocab_size;
  std::vector<SeqChunk> chunks;
  tokens_.clear();
  for (Sequence* s : seqs) {
    tokens_.push_back(s->tokens.back());
    chunks.push_back({&s->cache, 1});
  }
  logits_.resize(seqs.size() * size_t(V));
  model_.forward(tokens_, chunks, nullptr, logits_.data(), {.logits = LogitRows::LastOfEachChunk});
  for (size_t i = 0; i < seqs.size(); ++i) {
    const float* lg = logits_.data() + int64_t(i) * V;
    seqs[i]->emit(seqs[i]->sampler.sample(lg), lg, V);
  }
}

SequenceStats run_to_completion(Engine& engine, Sequence& seq) {
  Sequence* one[] = {&seq};
  while (!seq.done()) engine.step(one);
  return seq.stats;
}

}  // namespace dsv3::runtime
