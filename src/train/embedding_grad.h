// Token embedding (reference: ParallelEmbedding): out[i] = table[tokens[i]]; backward scatters
// dtable[tokens[i]] += dout[i].
#pragma once

#include <cstdint>

namespace dsv3::train {

// table [vocab, d]; tokens [n] (already validated) → out [n, d].
void embedding_forward(const float* table, const int32_t* tokens, int64_t n, int64_t d, float* out);
// dtable [vocab, d] += scatter of dout [n, d] (rows in token order: deterministic).
void embedding_backward(const float* dout, const int32_t* tokens, int64_t n, int64_t d, float* dtable);

}  // namespace dsv3::train
