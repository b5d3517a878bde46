#include "model/transformer.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "kernels/linear.h"
#include "kernels/ops.h"
#include "model/parallel.h"

namespace dsv3 {

std::unique_ptr<Model> Model::load(const std::string& dir, const ModelOptions& options) {
  ModelConfig config = load_config(dir);
  // A process of an expert-parallel job binds only its own routed experts (the others stay unmapped).
  const SchemaScope scope = options.parallel ? options.parallel->expert_scope(config) : SchemaScope{};
  auto ckpt = std::make_shared<io::Checkpoint>(io::Checkpoint::open(dir, options.load_mode));
  check_extra_tensors(config, *ckpt, options.extra_tensors);
  ModelWeights w = bind_weights(config, *ckpt, scope);
  ExpertBinder bind = [ckpt, config](int64_t layer, int64_t expert, std::vector<std::vector<float>>& owned) {
    return bind_expert(config, *ckpt, layer, expert, owned);
  };
  return std::make_unique<Model>(std::move(config), std::move(w), ckpt, options, std::move(bind));
}

Model::Model(ModelConfig config, ModelWeights weights, std::shared_ptr<const void> keepalive,
             const ModelOptions& options, ExpertBinder bind)
    : config_(std::move(config)),
      weights_(std::move(weights)),
      keepalive_(std::move(keepalive)),
      options_(options),
      bind_(std::move(bind)),
      lin_(options.linear()),
      rope_(config_) {
  // V3.2's FP8 checkpoints quantize every FP8 linear's input as DeepSeek's code does (config.h).
  if (config_.fp8_quantized_inputs())
    lin_.fp8_input = config_.ue8m0_scales() ? kernels::LinearOptions::Fp8Input::QuantizedUe8m0
                                            : kernels::LinearOptions::Fp8Input::Quantized;
  for (const LayerWeights& lw : weights_.layers) blocks_.push_back(make_block(lw));
  for (const MtpWeights& mw : weights_.mtp) mtp_.push_back(make_block(mw.layer));
}

Model::Block Model::make_block(const LayerWeights& lw) {
  Block b;
  b.w = &lw;
  b.attn = std::make_unique<Mla>(config_, lw.attn, lin_, options_.sparse_attention, lw.index);
  if (lw.is_moe) {
    std::unique_ptr<ExpertExecutor> experts;  // null: LocalExperts
    if (options_.parallel) experts = options_.parallel->make_experts(config_, lw, lin_, bind_);
    b.moe = std::make_unique<Moe>(config_, lw.moe, std::move(experts), lin_);
  } else {
    b.mlp = lw.mlp;
  }
  return b;
}

KvCache Model::new_cache(int64_t capacity) const {
  return KvCache(config_.num_hidden_layers, config_.kv_cache_values_per_token(), capacity, config_.index_head_dim,
                 config_.index_cache_layers());
}
KvCache Model::new_mtp_cache(int64_t capacity) const {
  return KvCache(std::max<int64_t>(config_.num_nextn_predict_layers, 1), config_.kv_cache_values_per_token(), capacity,
                 config_.index_head_dim);
}

void Model::check_chunks(std::span<const SeqChunk> chunks, int64_t m, const char* what) const {
  int64_t total = 0;
  for (size_t i = 0; i < chunks.size(); ++i) {
    const SeqChunk& ch = chunks[i];
    if (!ch.cache) fail("{}: a chunk has no cache", what);
    for (size_t j = 0; j < i; ++j)
      if (chunks[j].cache == ch.cache) fail("{}: one cache appears in two chunks of a batch", what);
    if (ch.cache->width() != config_.kv_cache_values_per_token())
      fail("{}: cache rows hold {} values, the model needs {}", what, ch.cache->width(),
           config_.kv_cache_values_per_token());
    if (ch.cache->index_dim() != config_.index_head_dim)
      fail("{}: the cache's index keys hold {} values, the model's indexer needs {} (make caches with new_cache)", what,
           ch.cache->index_dim(), config_.index_head_dim);
    if (ch.n < 0) fail("{}: negative chunk length", what);
    const int64_t start = ch.cache->length();
    if (start + ch.n > config_.max_position_embeddings)
      fail("{}: position {} exceeds max_position_embeddings = {}", what, start + ch.n - 1,
           config_.max_position_embeddings);
    total += ch.n;
  }
  if (total != m) fail("{}: chunks cover {} tokens but {} were given", what, total, m);
}

void Model::check_call(int64_t mtp_module, std::span<const int32_t> tokens, std::span<const SeqChunk> chunks,
                       LogitRows logits) const {
  const bool mtp = mtp_module >= 0;
  const char* what = mtp ? "mtp_forward" : "forward";
  if (mtp && mtp_module >= num_mtp()) fail("MTP module {} requested but the model has {}", mtp_module, num_mtp());
  check_chunks(chunks, int64_t(tokens.size()), what);
  for (const SeqChunk& ch : chunks) {
    if (!mtp && ch.cache->layers() != int64_t(blocks_.size()))
      fail("forward: the cache has {} layers, the model {}", ch.cache->layers(), blocks_.size());
    if (mtp && ch.cache->layers() <= mtp_module)
      fail("mtp_forward: the MTP cache has {} layers, module {} needs more", ch.cache->layers(), mtp_module);
    if (logits == LogitRows::LastOfEachChunk && ch.n == 0)
      fail("forward: LastOfEachChunk needs every chunk to hold a token");
  }
  for (size_t i = 0; i < tokens.size(); ++i)
    if (tokens[i] < 0 || tokens[i] >= config_.vocab_size)
      fail("token id {} at index {} is outside [0, {})", tokens[i], i, config_.vocab_size);
}

const Batch& Model::make_batch(std::span<const SeqChunk> chunks, int64_t m, const char* what) {
  check_chunks(chunks, m, what);
  Batch& b = batch_;
  b.m = m;
  b.pos.clear();
  b.cache.clear();
  share_.m = -1;
  b.index_share = &share_;
  int64_t max_pos = 0;
  for (const SeqChunk& ch : chunks) {
    const int64_t start = ch.cache->length();
    ch.cache->ensure(start + ch.n);
    for (int64_t k = 0; k < ch.n; ++k) {
      b.pos.push_back(start + k);
      b.cache.push_back(ch.cache);
    }
    max_pos = std::max(max_pos, start + ch.n);
  }
  rope_.ensure(max_pos);
  return b;
}

void Model::embed(std::span<const int32_t> tokens, const kernels::WeightRef& table, float* out) {
  const int64_t D = config_.hidden_size;
  for (size_t i = 0; i < tokens.size(); ++i) {
    const int32_t t = tokens[i];
    if (t < 0 || t >= config_.vocab_size) fail("token id {} at index {} is outside [0, {})", t, i, config_.vocab_size);
    kernels::weight_row(table, t, out + int64_t(i) * D);
  }
}

void Model::attend(Block& blk, int64_t cache_layer, float* h, const Batch& b, float* xn, float* tmp) {
  const int64_t m = b.m, D = config_.hidden_size;
  const float eps = float(config_.rms_norm_eps);
  // x = x + attn(attn_norm(x))
  kernels::rmsnorm(h, blk.w->attn_norm, m, D, eps, xn);
  blk.attn->forward(xn, b, cache_layer, rope_, tmp);
  for (int64_t i = 0; i < m * D; ++i) h[i] += tmp[i];
  kernels::rmsnorm(h, blk.w->ffn_norm, m, D, eps, xn);
}

void Model::run_block(Block& blk, int64_t cache_layer, float* h, const Batch& b, const ForwardOptions& opt) {
  const int64_t m = b.m, D = config_.hidden_size;
  xn_.resize(size_t(m * D));
  tmp_.resize(size_t(m * D));
  attend(blk, cache_layer, h, b, xn_.data(), tmp_.data());
  // x = x + ffn(ffn_norm(x))
  if (blk.moe) {
    RoutingRecord* rec = nullptr;
    if (opt.routing) rec = &opt.routing->emplace_back();
    blk.moe->forward(xn_.data(), m, tmp_.data(), rec);
  } else {
    ffn_forward(blk.mlp, xn_.data(), m, tmp_.data(), ffn_, lin_);
  }
  for (int64_t i = 0; i < m * D; ++i) h[i] += tmp_[size_t(i)];
}

// Two micro-batches A (rows [0, m/2)) and B (the rest) through the blocks, so that at every point one of
// them computes while the other's MoE exchange travels (EpExperts: dispatch posted in begin, combine in
// combine; completed in compute and end). Per MoE layer:
//
//   computes                          in flight
//   attention(A), route(A)            combine(B) of the previous MoE layer
//   end(B, previous layer)            dispatch(A)
//   attention(B), route(B)            dispatch(A)
//   shared(A), experts(A)             dispatch(B)
//   shared(B), experts(B)             combine(A)
//   end(A)                            combine(B) → the next layer's attention(A)
//
// A's rows of a sequence come before B's (rows of one sequence are consecutive and in order), so B's
// attention at a layer reads the cache rows A wrote at that layer, and A never needs B's. A dense layer
// runs A then B with nothing in flight.
void Model::run_overlapped(Block* first, int64_t n, int64_t cache_layer, float* h, const Batch& b) {
  const int64_t D = config_.hidden_size, split = b.m / 2;
  const int64_t rows[2] = {split, b.m - split};
  float* hs[2] = {h, h + split * D};
  for (int s = 0; s < 2; ++s) {
    MicroBatch& mb = micro_[s];
    const int64_t from = s == 0 ? 0 : split;
    mb.batch.m = rows[s];
    mb.batch.pos.assign(b.pos.begin() + from, b.pos.begin() + from + rows[s]);
    mb.batch.cache.assign(b.cache.begin() + from, b.cache.begin() + from + rows[s]);
    mb.share.m = -1;
    mb.batch.index_share = &mb.share;
    mb.xn.resize(size_t(rows[s] * D));
    mb.tmp.resize(size_t(rows[s] * D));
  }
  auto add = [&](int s) {
    float* hh = hs[s];
    const float* t = micro_[s].tmp.data();
    for (int64_t i = 0; i < rows[s] * D; ++i) hh[i] += t[i];
  };
  Moe* pending = nullptr;  // a MoE layer whose micro-batch B is still combining
  auto land = [&] {
    if (!pending) return;
    pending->end(1, micro_[1].tmp.data());
    add(1);
    pending = nullptr;
  };
  for (int64_t i = 0; i < n; ++i) {
    Block& blk = first[i];
    const int64_t layer = cache_layer + i;
    if (!blk.moe) {
      land();
      for (int s = 0; s < 2; ++s) {
        MicroBatch& mb = micro_[s];
        attend(blk, layer, hs[s], mb.batch, mb.xn.data(), mb.tmp.data());
        ffn_forward(blk.mlp, mb.xn.data(), rows[s], mb.tmp.data(), ffn_, lin_);
        add(s);
      }
      continue;
    }
    Moe& moe = *blk.moe;
    attend(blk, layer, hs[0], micro_[0].batch, micro_[0].xn.data(), micro_[0].tmp.data());
    moe.begin(0, micro_[0].xn.data(), rows[0]);
    land();
    attend(blk, layer, hs[1], micro_[1].batch, micro_[1].xn.data(), micro_[1].tmp.data());
    moe.begin(1, micro_[1].xn.data(), rows[1]);
    moe.compute(0);
    moe.combine(0);
    moe.compute(1);
    moe.combine(1);
    moe.end(0, micro_[0].tmp.data());
    add(0);
    pending = &moe;
  }
  land();
}

void Model::run_blocks(Block* first, int64_t n, int64_t cache_layer, float* h, const Batch& b,
                       const ForwardOptions& opt) {
  if (opt.micro_batches != 1 && opt.micro_batches != 2) fail("forward: {} micro-batches (1 or 2)", opt.micro_batches);
  if (opt.micro_batches == 2) {
    if (opt.routing) fail("forward: routing records are collected with one micro-batch");
    run_overlapped(first, n, cache_layer, h, b);
    return;
  }
  for (int64_t i = 0; i < n; ++i) run_block(first[i], cache_layer + i, h, b, opt);
}

void Model::project_logits(const float* normed, std::span<const SeqChunk> chunks, int64_t m,
                           const kernels::WeightRef& head, LogitRows which, float* logits_out) {
  if (which == LogitRows::None || !logits_out) return;
  const int64_t D = config_.hidden_size;
  if (which == LogitRows::All) {
    kernels::linear(normed, m, head, logits_out, lin_);
    return;
  }
  sel_.resize(chunks.size() * size_t(D));
  int64_t row = 0;
  for (size_t c = 0; c < chunks.size(); ++c) {
    row += chunks[c].n;
    if (chunks[c].n == 0) fail("forward: LastOfEachChunk needs every chunk to hold a token");
    std::memcpy(sel_.data() + c * size_t(D), normed + (row - 1) * D, size_t(D) * sizeof(float));
  }
  kernels::linear(sel_.data(), int64_t(chunks.size()), head, logits_out, lin_);
}

void Model::forward(std::span<const int32_t> tokens, std::span<const SeqChunk> chunks, float* hidden_out,
                    float* logits_out, const ForwardOptions& opt) {
  if (options_.parallel && options_.parallel->leads()) {
    if (opt.routing) fail("forward: routing records are not collected by a distributed forward");
    options_.parallel->step(*this, StepCall{.mtp_module = -1,
                                            .tokens = tokens,
                                            .chunks = chunks,
                                            .hidden_out = hidden_out,
                                            .logits_out = logits_out,
                                            .logits = opt.logits});
    return;
  }
  forward_local(tokens, chunks, hidden_out, logits_out, opt);
}

void Model::forward_local(std::span<const int32_t> tokens, std::span<const SeqChunk> chunks, float* hidden_out,
                          float* logits_out, const ForwardOptions& opt) {
  const int64_t m = int64_t(tokens.size()), D = config_.hidden_size;
  const Batch& b = make_batch(chunks, m, "forward");
  for (const SeqChunk& ch : chunks)
    if (ch.cache->layers() != int64_t(blocks_.size()))
      fail("forward: the cache has {} layers, the model {}", ch.cache->layers(), blocks_.size());
  h_.resize(size_t(m * D));
  embed(tokens, weights_.embed, h_.data());
  for (Block& blk : blocks_) blk.attn->record_index(opt.index);  // V3.2: the indexer's picks, when asked
  run_blocks(blocks_.data(), int64_t(blocks_.size()), 0, h_.data(), b, opt);
  for (const SeqChunk& ch : chunks) ch.cache->advance(ch.n);
  // Final norm (in place), then the head.
  kernels::rmsnorm(h_.data(), weights_.norm, m, D, float(config_.rms_norm_eps), h_.data());
  if (hidden_out) std::memcpy(hidden_out, h_.data(), size_t(m * D) * sizeof(float));
  project_logits(h_.data(), chunks, m, weights_.head, opt.logits, logits_out);
}

void Model::mtp_forward(int64_t k, std::span<const int32_t> next_tokens, const float* hidden_in,
                        std::span<const SeqChunk> chunks, float* hidden_out, float* logits_out,
                        const ForwardOptions& opt) {
  if (k < 0 || k >= num_mtp()) fail("MTP module {} requested but the model has {}", k, num_mtp());
  if (options_.parallel && options_.parallel->leads()) {
    if (opt.routing) fail("mtp_forward: routing records are not collected by a distributed forward");
    options_.parallel->step(*this, StepCall{.mtp_module = k,
                                            .tokens = next_tokens,
                                            .hidden_in = hidden_in,
                                            .chunks = chunks,
                                            .hidden_out = hidden_out,
                                            .logits_out = logits_out,
                                            .logits = opt.logits});
    return;
  }
  mtp_forward_local(k, next_tokens, hidden_in, chunks, hidden_out, logits_out, opt);
}

void Model::mtp_forward_local(int64_t k, std::span<const int32_t> next_tokens, const float* hidden_in,
                              std::span<const SeqChunk> chunks, float* hidden_out, float* logits_out,
                              const ForwardOptions& opt) {
  if (k < 0 || k >= num_mtp()) fail("MTP module {} requested but the model has {}", k, num_mtp());
  const MtpWeights& mw = weights_.mtp[size_t(k)];
  const int64_t m = int64_t(next_tokens.size()), D = config_.hidden_size;
  const float eps = float(config_.rms_norm_eps);
  const Batch& b = make_batch(chunks, m, "mtp_forward");
  for (const SeqChunk& ch : chunks)
    if (ch.cache->layers() <= k)
      fail("mtp_forward: the MTP cache has {} layers, module {} needs more", ch.cache->layers(), k);
  // cat = [enorm(embed(t[i+1])), hnorm(h[i])]  [m, 2D]
  cat_.resize(size_t(m * 2 * D));
  tmp_.resize(size_t(m * D));
  embed(next_tokens, mw.embed, tmp_.data());
  for (int64_t r = 0; r < m; ++r) {
    kernels::rmsnorm(tmp_.data() + r * D, mw.enorm, 1, D, eps, cat_.data() + r * 2 * D);
    kernels::rmsnorm(hidden_in + r * D, mw.hnorm, 1, D, eps, cat_.data() + r * 2 * D + D);
  }
  h_.resize(size_t(m * D));
  kernels::linear(cat_.data(), m, mw.eh_proj, h_.data(), lin_);
  mtp_[size_t(k)].attn->record_index(opt.index);
  run_blocks(&mtp_[size_t(k)], 1, k, h_.data(), b, opt);
  for (const SeqChunk& ch : chunks) ch.cache->advance(ch.n);
  if (hidden_out) std::memcpy(hidden_out, h_.data(), size_t(m * D) * sizeof(float));
  kernels::rmsnorm(h_.data(), mw.head_norm, m, D, eps, h_.data());
  project_logits(h_.data(), chunks, m, mw.head, opt.logits, logits_out);
}

}  // namespace dsv3
