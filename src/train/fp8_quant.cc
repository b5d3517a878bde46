#include "train/fp8_quant.h"

#include <algorithm>
#include <cmath>

#include "core/dtype.h"
#include "core/error.h"

namespace dsv3::train {

float Fp8Matrix::value(int64_t r, int64_t c) const { return e4m3_to_f32(codes[size_t(r * cols + c)]) * scale(r, c); }

float fp8_tile_scale(float amax, Fp8ScaleFormat f) {
  if (!(amax > 0)) return 1.0f;  // all zero (or NaN: the codes carry it)
  if (std::isinf(amax)) return amax;
  const float s = f == Fp8ScaleFormat::UE8M0 ? ue8m0_to_f32(ue8m0_scale_for(amax, kE4M3Max)) : amax / kE4M3Max;
  if (!(s > 0) || !std::isfinite(1.0f / s)) return 1.0f;  // tiny tile: 1/s would overflow
  return s;
}

void fp8_quantize(const float* x, int64_t rows, int64_t cols, int64_t ld, const Fp8QuantOptions& o, Fp8Matrix& q) {
  if (rows < 0 || cols < 0 || ld < cols || o.tile_rows < 1 || o.tile_cols < 0)
    fail("fp8_quantize: bad shape rows {} cols {} ld {} tile {}x{}", rows, cols, ld, o.tile_rows, o.tile_cols);
  q.rows = rows;
  q.cols = cols;
  q.tile_rows = o.tile_rows;
  q.tile_cols = o.tile_cols == 0 ? std::max<int64_t>(cols, 1) : o.tile_cols;
  q.scale_format = o.scale;
  q.codes.resize(size_t(rows * cols));
  q.scales.resize(size_t(q.row_tiles() * q.col_tiles()));
  const int64_t rt = q.row_tiles(), ct = q.col_tiles(), TR = q.tile_rows, TC = q.tile_cols;
#pragma omp parallel for schedule(static) collapse(2) if (rows * cols > 65536)
  for (int64_t bi = 0; bi < rt; ++bi) {
    for (int64_t bj = 0; bj < ct; ++bj) {
      const int64_t r0 = bi * TR, r1 = std::min(rows, r0 + TR), c0 = bj * TC, c1 = std::min(cols, c0 + TC);
      float amax = 0.0f;
      for (int64_t r = r0; r < r1; ++r) {
        const float* xr = x + r * ld;
        for (int64_t c = c0; c < c1; ++c) amax = std::max(amax, std::fabs(xr[c]));
      }
      const float s = fp8_tile_scale(amax, o.scale), inv = 1.0f / s;
      q.scales[size_t(bi * ct + bj)] = s;
      for (int64_t r = r0; r < r1; ++r) {
        const float* xr = x + r * ld;
        uint8_t* cr = q.codes.data() + r * cols;
        for (int64_t c = c0; c < c1; ++c) cr[c] = e4m3_code_of(round_e4m3(xr[c] * inv));
      }
    }
  }
}

void fp8_quantize_transposed(const float* x, int64_t rows, int64_t cols, int64_t ld, const Fp8QuantOptions& o,
                             Fp8Matrix& out) {
  std::vector<float> t(size_t(rows * cols));
  constexpr int64_t kB = 32;  // cache blocking of the transpose
#pragma omp parallel for schedule(static) if (rows * cols > 65536)
  for (int64_t c0 = 0; c0 < cols; c0 += kB)
    for (int64_t r0 = 0; r0 < rows; r0 += kB)
      for (int64_t c = c0; c < std::min(cols, c0 + kB); ++c)
        for (int64_t r = r0; r < std::min(rows, r0 + kB); ++r) t[size_t(c * rows + r)] = x[r * ld + c];
  fp8_quantize(t.data(), cols, rows, rows, o, out);
}

void fp8_dequantize(const Fp8Matrix& q, float* out) {
  const int64_t rows = q.rows, cols = q.cols, ct = q.col_tiles();
#pragma omp parallel for schedule(static) if (rows * cols > 65536)
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* cr = q.codes.data() + r * cols;
    const float* sr = q.scales.data() + (r / q.tile_rows) * ct;
    float* o = out + r * cols;
    for (int64_t c = 0; c < cols; ++c) o[c] = e4m3_to_f32(cr[c]) * sr[c / q.tile_cols];
  }
}

void fp8_requantize_transposed(const Fp8Matrix& q, Fp8Matrix& out) {
  std::vector<float> v(size_t(q.rows * q.cols));
  fp8_dequantize(q, v.data());
  fp8_quantize_transposed(v.data(), q.rows, q.cols, q.cols,
                          {.tile_rows = 1, .tile_cols = kFp8TileK, .scale = q.scale_format}, out);
}

void fp8_transpose_blocks(const Fp8Matrix& q, Fp8Matrix& out) {
  if (q.tile_rows != q.tile_cols)
    fail("fp8_transpose_blocks: needs square blocks, got {}x{} tiles", q.tile_rows, q.tile_cols);
  out.rows = q.cols;
  out.cols = q.rows;
  out.tile_rows = out.tile_cols = q.tile_rows;
  out.scale_format = q.scale_format;
  out.codes.resize(q.codes.size());
  for (int64_t r = 0; r < q.rows; ++r)
    for (int64_t c = 0; c < q.cols; ++c) out.codes[size_t(c * q.rows + r)] = q.codes[size_t(r * q.cols + c)];
  const int64_t rt = q.row_tiles(), ct = q.col_tiles();
  out.scales.resize(q.scales.size());
  for (int64_t i = 0; i < rt; ++i)
    for (int64_t j = 0; j < ct; ++j) out.scales[size_t(j * rt + i)] = q.scales[size_t(i * ct + j)];
}

}  // namespace dsv3::train
