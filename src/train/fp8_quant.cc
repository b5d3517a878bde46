#include "train/fp8_quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/dtype.h"
#include "core/error.h"

namespace dsv3::train {

float Fp8Matrix::value(int64_t r, int64_t c) const { return e4m3_to_f32(codes[size_t(r * cols + c)]) * scale(r, c); }

void e4m3_encode_scaled(const float* x, int64_t n, float inv, uint8_t* out) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i] * inv;
    uint32_t u;
    std::memcpy(&u, &v, 4);
    const uint32_t sign = (u >> 24) & 0x80u, a = u & 0x7fffffffu;
    // Normal range (|v| ≥ 2^−6): keep 3 mantissa bits, ties to even; saturate at 448 (code 0x7E).
    uint32_t t = (a + 0x7ffffu + ((a >> 20) & 1u)) & 0xfff00000u;
    t = t > 0x43e00000u ? 0x43e00000u : t;  // 448.0f
    const uint32_t normal = (((t >> 23) - 120u) << 3) | ((t >> 20) & 7u);
    // Subnormal range: multiples of 2^−9, rounded to nearest-even by the 2^14 addition.
    float f;
    std::memcpy(&f, &a, 4);
    f = f < 0.015625f ? f : 0.0f;  // keeps the conversion below defined where the other branch is taken
    const uint32_t sub = uint32_t(int32_t(((f + 16384.0f) - 16384.0f) * 512.0f));
    const uint32_t code = a > 0x7f800000u ? 0x7fu : (a >= 0x3c800000u ? normal : sub) | sign;
    out[i] = uint8_t(code);
  }
}

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
#pragma omp simd reduction(max : amax)
        for (int64_t c = c0; c < c1; ++c) amax = std::max(amax, std::fabs(xr[c]));
      }
      const float s = fp8_tile_scale(amax, o.scale), inv = 1.0f / s;
      q.scales[size_t(bi * ct + bj)] = s;
      for (int64_t r = r0; r < r1; ++r)
        e4m3_encode_scaled(x + r * ld + c0, c1 - c0, inv, q.codes.data() + r * cols + c0);
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
    for (int64_t c0 = 0; c0 < cols; c0 += q.tile_cols) {
      const float s = sr[c0 / q.tile_cols];
      for (int64_t c = c0; c < std::min(cols, c0 + q.tile_cols); ++c) o[c] = kE4M3ToF32[cr[c]] * s;
    }
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
