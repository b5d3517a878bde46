// Generation: prefill and decode over one or many sequences (continuous batching), optionally with MTP
// speculative decoding (speculative.h). The engine is synchronous and single-threaded by design: the model
// keeps scratch buffers across forwards, so exactly one thread drives an Engine (the CLI's, or the
// scheduler's engine thread).
//
// A step = (a) one forward over prompt chunks of the sequences still prefilling (at most prefill_chunk
// tokens in all, so long prompts do not stall the others), then (b) one decode step over the sequences that
// were decoding when the step began: plain (one token each, one batched forward) or speculative.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "runtime/prefix_cache.h"
#include "runtime/sampler.h"
#include "runtime/sequence.h"

namespace dsv3 {
class Model;
}

namespace dsv3::runtime {

enum class SpecMode { None, Mtp };
SpecMode parse_spec_mode(const std::string& s);  // "none" | "mtp"; throws naming the value

struct EngineOptions {
  SpecMode spec = SpecMode::None;
  int64_t draft = 1;            // MTP draft depth (>= 1); depth > 1 chains the module on its own output
  int64_t prefill_chunk = 512;  // prompt tokens per step over all prefilling sequences
  int64_t max_context = 0;      // 0 = max_position_embeddings
  // Prefix caching across sequences (prefix_cache.h): the most bytes of cache rows kept (0: off) and the
  // block size in tokens. Off under a distributed forward (the driving process holds no rows).
  int64_t prefix_cache_bytes = 0;
  int64_t prefix_block = 16;
};

struct EngineStats {
  int64_t prefill_tokens = 0, decode_tokens = 0;
  double prefill_s = 0, decode_s = 0;
  int64_t drafted = 0, accepted = 0, verify_steps = 0, steps = 0;
  PrefixCacheStats prefix;  // all zero when the prefix cache is off
};

class Engine {
 public:
  // Throws dsv3::Error when spec = Mtp and the model has no MTP module, or an option is out of range.
  Engine(Model& model, EngineOptions options);

  Model& model() { return model_; }
  const EngineOptions& options() const { return options_; }
  int64_t max_context() const { return max_context_; }
  const EngineStats& stats() const { return stats_; }
  // The prefix cache (null when off). Engine thread only.
  PrefixCache* prefix_cache() { return prefix_.get(); }

  // A new sequence; throws dsv3::Error (naming the problem) for an empty prompt, token ids outside the
  // vocabulary, a prompt that does not fit the context, or bad sampling parameters. `reuse`: a finished
  // sequence whose caches (common prefix with the new prompt) are taken over, as multi-turn chat does.
  std::unique_ptr<Sequence> start(GenerationRequest request, TokenCallback callback, Sequence* reuse = nullptr) const;

  // Advances every sequence of `seqs` that is not done (cancelled ones are finished without work).
  void step(std::span<Sequence* const> seqs);

 private:
  void prefill(std::span<Sequence* const> seqs);
  void decode_plain(std::span<Sequence* const> seqs);
  // Prefix cache: copies the longest cached prefix of a new sequence's prompt into its caches (before its
  // first prefill); adds a sequence's whole blocks once their rows are computed.
  void lookup_prefix(Sequence& s);
  void insert_prefix(Sequence& s, std::span<const int32_t> tokens, int64_t max_blocks);

  Model& model_;
  EngineOptions options_;
  int64_t max_context_ = 0;
  EngineStats stats_;
  std::unique_ptr<PrefixCache> prefix_;
  std::vector<float> logits_, hidden_;
  std::vector<int32_t> tokens_;
};

// Runs one sequence to the end (the CLI path) and returns its stats.
SequenceStats run_to_completion(Engine& engine, Sequence& seq);

}  // namespace dsv3::runtime
