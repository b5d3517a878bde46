// The DeepSeek-V3 transformer (reference: Transformer / Block in inference/model.py) and its MTP modules
// (V3 §2.2; DESIGN.md). Deviations from the reference, all deliberate:
//  - every position's logits can be produced (the reference returns the last position only);
//  - several sequences share one forward: rows of different sequences are stacked for the linear layers and
//    attend only to their own latent cache (continuous batching);
//  - the MTP module, dropped by the reference, is implemented: h = the main model's final hidden state after
//    model.norm; x = eh_proj(concat[enorm(embed(t[i+1])), hnorm(h[i])]) at rope position i; one decoder
//    layer with its own latent cache; logits = shared_head.head(shared_head.norm(x)).
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "model/batch.h"
#include "model/config.h"
#include "model/ffn.h"
#include "model/kv_cache.h"
#include "model/mla.h"
#include "model/moe.h"
#include "model/options.h"
#include "model/rope.h"
#include "model/weights.h"

namespace dsv3 {

// One sequence's part of a forward: n new tokens appended to `cache` at positions cache->length() ...
struct SeqChunk {
  KvCache* cache = nullptr;
  int64_t n = 0;
};

enum class LogitRows { None, All, LastOfEachChunk };

struct ForwardOptions {
  LogitRows logits = LogitRows::All;
  std::vector<RoutingRecord>* routing = nullptr;  // optional: one record per MoE layer (one micro-batch)
  // 2: the rows run as two micro-batches — the first ⌊m/2⌋ rows and the rest — interleaved layer by layer
  // so that one micro-batch's MoE exchange is in flight while the other computes (DeepSeek-V3 §3.4's
  // two-micro-batch overlap; the schedule is in transformer.cc, run_overlapped). The result equals the
  // one-batch forward up to the rounding of expert matmuls over fewer rows. Every process of a distributed
  // step must pass the same value (its MoE collectives follow the schedule).
  int micro_batches = 1;
  // Optional (V3.2): one record per layer and attention call, the indexer's selections and scores.
  std::vector<IndexRecord>* index = nullptr;
};

class Model {
 public:
  // Loads config.json and the safetensors weights of a model directory (mmap'd unless options.load_mode
  // says Read; FP8 used as stored).
  static std::unique_ptr<Model> load(const std::string& dir, const ModelOptions& options = {});
  // Builds a model over weights bound elsewhere (e.g. a trainer's buffers); `keepalive` owns their memory.
  // `bind` (optional) brings in routed experts the weights lack (options.parallel's redundant copies).
  Model(ModelConfig config, ModelWeights weights, std::shared_ptr<const void> keepalive = nullptr,
        const ModelOptions& options = {}, ExpertBinder bind = {});
  Model(const Model&) = delete;  // blocks hold references into the config and weights
  Model& operator=(const Model&) = delete;

  const ModelConfig& config() const { return config_; }
  const ModelWeights& weights() const { return weights_; }
  const ModelOptions& options() const { return options_; }
  int64_t num_mtp() const { return int64_t(mtp_.size()); }

  KvCache new_cache(int64_t capacity) const;      // main model: num_hidden_layers layers
  KvCache new_mtp_cache(int64_t capacity) const;  // MTP modules: num_nextn_predict_layers layers

  // Runs the main model over tokens [Σ chunk.n] (chunk after chunk). Each chunk's tokens are appended to
  // its cache. hidden_out (optional): [Σn, hidden] final hidden states after model.norm. logits_out:
  // [rows, vocab] where rows = Σn (All) or chunks.size() (LastOfEachChunk).
  void forward(std::span<const int32_t> tokens, std::span<const SeqChunk> chunks, float* hidden_out, float* logits_out,
               const ForwardOptions& opt = {});

  // MTP module k (0-based). Row r combines the embedding of next_tokens[r] with hidden_in[r] (for k = 0 the
  // main model's final hidden state of the row's predecessor position) and is appended to the chunk's MTP
  // cache at its next position. hidden_out (optional): [Σn, hidden] the module's output before
  // shared_head.norm (the input of module k+1). logits_out as in forward().
  void mtp_forward(int64_t k, std::span<const int32_t> next_tokens, const float* hidden_in,
                   std::span<const SeqChunk> chunks, float* hidden_out, float* logits_out,
                   const ForwardOptions& opt = {});

  // With options().parallel leading (model/parallel.h), forward and mtp_forward hand the call to it; these
  // run this process's share itself (a distributed step calls them on every process, possibly with no rows).
  void forward_local(std::span<const int32_t> tokens, std::span<const SeqChunk> chunks, float* hidden_out,
                     float* logits_out, const ForwardOptions& opt = {});
  void mtp_forward_local(int64_t k, std::span<const int32_t> next_tokens, const float* hidden_in,
                         std::span<const SeqChunk> chunks, float* hidden_out, float* logits_out,
                         const ForwardOptions& opt = {});
  // Every check forward (mtp_module < 0) or mtp_forward (module k) makes of its arguments before computing,
  // without touching the caches: a distributed step runs it before any process starts, so a bad call
  // throws here instead of leaving the other processes in a collective.
  void check_call(int64_t mtp_module, std::span<const int32_t> tokens, std::span<const SeqChunk> chunks,
                  LogitRows logits) const;

 private:
  struct Block {
    std::unique_ptr<Mla> attn;
    std::unique_ptr<Moe> moe;  // or dense:
    FfnWeights mlp;
    const LayerWeights* w = nullptr;
  };
  Block make_block(const LayerWeights& lw);
  // Validates the chunks, then fills batch_ (reused: no allocation once warmed up) and makes the caches'
  // rows exist.
  const Batch& make_batch(std::span<const SeqChunk> chunks, int64_t m, const char* what);
  void check_chunks(std::span<const SeqChunk> chunks, int64_t m, const char* what) const;
  void run_block(Block& blk, int64_t cache_layer, float* h, const Batch& b, const ForwardOptions& opt);
  // h += attn(attn_norm(h)); xn = ffn_norm(h). tmp: [m, hidden] scratch.
  void attend(Block& blk, int64_t cache_layer, float* h, const Batch& b, float* xn, float* tmp);
  // Blocks [first, first + n) (cache layers from `cache_layer`) over the rows of b as two micro-batches.
  void run_overlapped(Block* first, int64_t n, int64_t cache_layer, float* h, const Batch& b);
  void run_blocks(Block* first, int64_t n, int64_t cache_layer, float* h, const Batch& b, const ForwardOptions& opt);
  void project_logits(const float* normed, std::span<const SeqChunk> chunks, int64_t m, const kernels::WeightRef& head,
                      LogitRows which, float* logits_out);
  void embed(std::span<const int32_t> tokens, const kernels::WeightRef& table, float* out);

  ModelConfig config_;
  ModelWeights weights_;
  std::shared_ptr<const void> keepalive_;
  ModelOptions options_;
  ExpertBinder bind_;
  kernels::LinearOptions lin_;  // options_.linear(): every matmul but the MoE router gate
  RopeTable rope_;
  std::vector<Block> blocks_;
  std::vector<Block> mtp_;
  // Scratch reused across forwards.
  Batch batch_;
  IndexShare share_;  // batch_'s (V3.2 indexer_types "shared" layers)
  std::vector<float> h_, xn_, tmp_, cat_, sel_;
  struct MicroBatch {
    Batch batch;
    IndexShare share;
    std::vector<float> xn, tmp;
  };
  MicroBatch micro_[2];
  FfnScratch ffn_;
};

}  // namespace dsv3
