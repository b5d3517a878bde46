// Views and re-layouts of a weight matrix in its stored format, for blocks that use part of a checkpoint
// tensor differently from the rest (MLA's absorbed kv_b: per-head row ranges, one of them transposed).
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/linear.h"

namespace dsv3::kernels {

// Rows [r0, r0 + n) of w as a WeightRef of their own, sharing w's storage. False (out untouched) when
// the format cannot express it: FP8 with r0 not on a scale block.
bool row_slice(const WeightRef& w, int64_t r0, int64_t n, WeightRef* out);

// Rows [r0, r0 + n) of w: row_slice's view where the format allows it, else a float32 copy in `copy`
// (keep it alive, unmoved).
WeightRef rows_or_copy(const WeightRef& w, int64_t r0, int64_t n, std::vector<float>& copy);

// The transpose of rows [r0, r0 + n) of w: T[j, d] = w[r0 + d, j], shape [w.k, n], exactly. Stored in w's
// dtype where the format allows (F32, BF16, F16; FP8 with r0 on a scale block, its scale grid transposed
// too), else as float32 (Int8 / Int4, whose blocks run along the other axis, and unaligned FP8). `data`
// and `scales` receive the storage the returned WeightRef points into (keep them alive, unmoved).
WeightRef transposed_rows(const WeightRef& w, int64_t r0, int64_t n, std::vector<uint8_t>& data,
                          std::vector<float>& scales);

}  // namespace dsv3::kernels
