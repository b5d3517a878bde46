// Prefix caching across requests: the cache rows of prompts already computed, kept in a radix tree keyed by
// token ids, so a request that starts with a cached prefix copies those rows instead of prefilling them.
//
// Granularity: fixed blocks of `block_tokens` tokens (default 16, docs/serving.md "Prefix cache" has the
// measurement). Block j of a path holds everything the engine needs for positions [jB, (j+1)B) of a sequence
// whose first (j+1)B tokens are the path's:
//   - the main latent rows of every layer (c_KV ‖ k_pe, model/kv_cache.h), and with V3.2 (DSA) the
//     index-key bytes and scales of every index slot;
//   - with MTP speculation, the MTP cache rows. MTP row p pairs h[p] with t[p+1] (runtime/sequence.h), so it
//     depends on the tokens up to p+1: block j holds MTP rows [jB−1, (j+1)B−1) (block 0: [0, B−1)), each of
//     which is fixed by the block's path alone — a cached MTP row is never paired with a token other than the
//     one it was computed with. Block j also keeps h[(j+1)B−1], the main model's final hidden state at its
//     last position: the MTP row that position starts is completed by the prompt's next token, which the
//     cached path does not know.
// Every block's content is thus a function of its path's tokens (and the model): equal paths, equal rows.
//
// The tree is compressed: a node's edge is a run of blocks (their tokens and rows), children are keyed by
// their first block's tokens, and an insert that diverges inside an edge splits it at the block boundary.
// Blocks are immutable once built and shared read-only (std::shared_ptr<const PrefixBlock>): a lookup hands
// the caller references, so evicting a block a sequence is still copying from only drops the tree's
// reference. The sequence's own KvCache stays contiguous (the attention kernels read contiguous rows): a hit
// copies the matched blocks' rows into it (a memcpy per layer and block, far cheaper than prefill) and only
// the rest of the prompt is prefilled.
//
// Memory: bytes() counts the blocks the tree holds; inserting evicts least-recently-used blocks from the ends
// of leaf edges until bytes() <= max_bytes. One PrefixCache belongs to one Engine (one model and one
// speculation setting); it is not thread-safe: the engine thread owns it, others read EngineStats.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "model/kv_cache.h"

namespace dsv3::runtime {

// The shape of what a block stores (from the model and engine options).
struct PrefixLayout {
  int64_t block_tokens = 16;
  // Main cache: layers × width floats per row; index keys: index_layers × (index_dim bytes + 1 float).
  int64_t layers = 0, width = 0, index_dim = 0, index_layers = 0;
  // MTP cache (mtp_layers = 0: speculation off, no MTP rows or hidden states kept).
  int64_t mtp_layers = 0, mtp_index_dim = 0, mtp_index_layers = 0, hidden = 0;
};

// One block's rows: immutable once inserted.
struct PrefixBlock {
  std::vector<float> rows;          // [layers, B, width]
  std::vector<uint8_t> index_keys;  // [index_layers, B, index_dim]
  std::vector<float> index_scales;  // [index_layers, B]
  std::vector<float> mtp_rows;      // [mtp_layers, Bm, width], Bm = B − 1 for block 0 else B
  std::vector<uint8_t> mtp_index_keys;
  std::vector<float> mtp_index_scales;
  std::vector<float> hidden;  // [hidden]: h at the block's last position (MTP only)
  size_t bytes() const;
};
using BlockRef = std::shared_ptr<const PrefixBlock>;

struct PrefixCacheStats {
  int64_t lookups = 0;        // lookups made (one per admitted request)
  int64_t lookup_tokens = 0;  // prompt tokens those lookups could have matched
  int64_t hit_tokens = 0;     // of which found in the cache (copied, not prefilled)
  int64_t hits = 0;           // lookups that found at least one block
  int64_t inserted_blocks = 0, evicted_blocks = 0;
  int64_t blocks = 0;  // held now
  int64_t bytes = 0;   // held now (<= max_bytes)
  int64_t max_bytes = 0;
};

class PrefixCache {
 public:
  // max_bytes >= 1; layout.block_tokens >= 1.
  PrefixCache(PrefixLayout layout, int64_t max_bytes);
  ~PrefixCache();
  PrefixCache(const PrefixCache&) = delete;
  PrefixCache& operator=(const PrefixCache&) = delete;

  const PrefixLayout& layout() const { return layout_; }
  int64_t block_tokens() const { return layout_.block_tokens; }
  const PrefixCacheStats& stats() const { return stats_; }
  size_t bytes() const { return bytes_; }

  // The longest cached path of whole blocks that `tokens` starts with, at most max_blocks blocks: block i of
  // the result covers tokens [iB, (i+1)B). Marks them used (LRU) and counts the lookup in stats().
  std::vector<BlockRef> lookup(std::span<const int32_t> tokens, int64_t max_blocks);

  // Adds the whole blocks of `tokens` (floor(size / B) of them, at most max_blocks) that are not cached yet;
  // make(j) builds block j of the path (called only for missing blocks, in order). Then evicts LRU blocks
  // until bytes() <= max_bytes (the new path is the most recently used, so others go first).
  void insert(std::span<const int32_t> tokens, int64_t max_blocks, const std::function<PrefixBlock(int64_t)>& make);

  // Drops every block (the tree's references; blocks a caller still holds stay valid).
  void clear();

  // Block j of a sequence, from its caches (after a forward wrote those rows): `hidden` is h at position
  // (j+1)B − 1 ([hidden] floats; null without MTP).
  PrefixBlock make_block(int64_t j, KvCache& cache, KvCache* mtp_cache, const float* hidden) const;
  // Writes blocks [0, blocks.size()) into empty caches (rows allocated here) and advances them: the main
  // cache to nB tokens, the MTP cache (when given) to nB − 1.
  void copy_in(std::span<const BlockRef> blocks, KvCache& cache, KvCache* mtp_cache) const;

 private:
  struct Node;
  void touch(Node* n);
  void evict_to(size_t limit);
  Node* oldest_leaf();

  PrefixLayout layout_;
  size_t max_bytes_ = 0, bytes_ = 0;
  std::unique_ptr<Node> root_;
  uint64_t tick_ = 0;
  PrefixCacheStats stats_;
};

// "2GiB", "512MiB", "100MB", "1.5G", "4096" (bytes); binary (Ki/Mi/Gi/Ti, K/M/G/T alone = binary too) or
// decimal (kB/MB/GB/TB) units; "0" disables. Throws dsv3::Error naming `flag` and the value otherwise.
int64_t parse_byte_size(const std::string& s, const char* flag);

}  // namespace dsv3::runtime
