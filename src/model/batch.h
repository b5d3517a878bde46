// A forward batch: rows of one activation matrix drawn from one or more sequences. Row r is the token at
// position pos[r] of the sequence whose latent cache is cache[r]. Rows of one sequence are consecutive
// and in order, so a prefill chunk attends to its own earlier rows through the cache.
#pragma once

#include <cstdint>
#include <vector>

#include "model/kv_cache.h"

namespace dsv3 {

struct Batch {
  int64_t m = 0;
  std::vector<int64_t> pos;     // [m]
  std::vector<KvCache*> cache;  // [m]
};

}  // namespace dsv3
