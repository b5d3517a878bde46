// A forward batch: rows of one activation matrix drawn from one or more sequences. Row r is the token at
// position pos[r] of the sequence whose latent cache is cache[r]. Rows of one sequence are consecutive
// and in order, so a prefill chunk attends to its own earlier rows through the cache.
#pragma once

#include <cstdint>
#include <vector>

#include "model/kv_cache.h"

namespace dsv3 {

struct IndexShare;  // model/indexer.h

struct Batch {
  int64_t m = 0;
  std::vector<int64_t> pos;     // [m]
  std::vector<KvCache*> cache;  // [m]
  // V3.2 with "shared" layers in indexer_types: where a full layer leaves its rows' selections for the shared
  // layers below it (one store per batch, so that two micro-batches never see each other's). Owned by the model.
  IndexShare* index_share = nullptr;
};

}  // namespace dsv3
