#include "kernels/weight_view.h"

#include <cstring>

#include "kernels/quant.h"

namespace dsv3::kernels {

namespace {

bool is_fp8(const WeightRef& w) { return w.quant == Quant::None && w.dtype == DType::F8_E4M3; }
int64_t scale_cols(const WeightRef& w) { return (w.k + w.block_k - 1) / w.block_k; }

}  // namespace

bool row_slice(const WeightRef& w, int64_t r0, int64_t n, WeightRef* out) {
  WeightRef s = w;
  s.n = n;
  const auto* base = static_cast<const uint8_t*>(w.data);
  if (w.quant != Quant::None) {
    s.data = base + r0 * qrow_bytes(w.quant, w.k);
    s.qscale = w.qscale + r0 * qblocks(w.k);
  } else if (is_fp8(w)) {
    if (r0 % w.block_n != 0) return false;
    s.data = base + r0 * w.k;
    s.scale_inv = w.scale_inv + (r0 / w.block_n) * scale_cols(w);
  } else {
    s.data = base + r0 * w.k * int64_t(dtype_size(w.dtype));
  }
  *out = s;
  return true;
}

WeightRef rows_or_copy(const WeightRef& w, int64_t r0, int64_t n, std::vector<float>& copy) {
  WeightRef s;
  copy.clear();
  if (row_slice(w, r0, n, &s)) return s;
  copy.resize(size_t(n * w.k));
  for (int64_t i = 0; i < n; ++i) weight_row(w, r0 + i, copy.data() + i * w.k);
  return {.dtype = DType::F32, .data = copy.data(), .n = n, .k = w.k};
}

WeightRef transposed_rows(const WeightRef& w, int64_t r0, int64_t n, std::vector<uint8_t>& data,
                          std::vector<float>& scales) {
  const bool fp8 = is_fp8(w);
  const bool same = w.quant == Quant::None && (!fp8 || r0 % w.block_n == 0);
  const DType dt = same ? w.dtype : DType::F32;
  const size_t es = dtype_size(dt);
  const int64_t k = w.k;
  data.assign(size_t(k * n) * es, 0);
  if (same) {
    const auto* src = static_cast<const uint8_t*>(w.data);
    for (int64_t d = 0; d < n; ++d)
      for (int64_t j = 0; j < k; ++j)
        std::memcpy(data.data() + size_t(j * n + d) * es, src + size_t((r0 + d) * k + j) * es, es);
  } else {
    std::vector<float> row(static_cast<size_t>(k));
    for (int64_t d = 0; d < n; ++d) {
      weight_row(w, r0 + d, row.data());
      for (int64_t j = 0; j < k; ++j) std::memcpy(data.data() + size_t(j * n + d) * es, &row[size_t(j)], es);
    }
  }
  WeightRef t{.dtype = dt, .data = data.data(), .n = k, .k = n};
  scales.clear();
  if (same && fp8) {
    // Block (jb, db) of T is block (r0 / block_n + db, jb) of w: T's blocks are block_k rows × block_n columns.
    const int64_t rows_b = (k + w.block_k - 1) / w.block_k, cols_b = (n + w.block_n - 1) / w.block_n;
    scales.resize(size_t(rows_b * cols_b));
    for (int64_t jb = 0; jb < rows_b; ++jb)
      for (int64_t db = 0; db < cols_b; ++db)
        scales[size_t(jb * cols_b + db)] = w.scale_inv[(r0 / w.block_n + db) * scale_cols(w) + jb];
    t.scale_inv = scales.data();
    t.block_n = w.block_k;
    t.block_k = w.block_n;
  }
  return t;
}

}  // namespace dsv3::kernels
