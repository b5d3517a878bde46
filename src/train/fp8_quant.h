// Fine-grained FP8 quantization for training (DeepSeek-V3 §3.3.2, Fig. 7a): a matrix is cut into tiles along
// its rows and its reduction dimension K, and every tile gets its own scale from its online max-abs, so one
// outlier only costs precision to the 128 values that share its tile:
//   activations and output gradients  1×128 tiles   (one token, 128 channels)        tile_rows = 1
//   weights                           128×128 blocks (128 outputs × 128 inputs)      tile_rows = 128
// Every GEMM operand is stored K-contiguous (row-major [rows, K]), the layout FP8 tensor cores take; an
// operand needed along the other dimension (Wgrad: reduction over tokens) is quantized transposed, which for
// activations is the report's "1×128 → 128×1" re-quantization.
//
// Scale of a tile with max-abs a: s = a/448 (float32, V3) or s = 2^ceil(log2(a/448)) (UE8M0, V3.1); the
// stored code of x is E4M3(x · (1/s)), rounded to nearest-even and saturated to ±448. An all-zero tile gets
// s = 1, as does a tile so small (a < ~1e-36) that 1/s would overflow (its values round to zero either way).
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

#include "train/fp8_recipe.h"

namespace dsv3::train {

inline constexpr int64_t kFp8TileK = 128;  // tile width along K
inline constexpr float kE4M3Max = 448.0f;

// x rounded to the nearest E4M3 value (round-to-nearest-even, saturating to ±448, NaN stays NaN), as a
// float: bit for bit e4m3_to_f32(f32_to_e4m3(x)) (core/dtype.h), with bit arithmetic instead of frexp.
inline float round_e4m3(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  const uint32_t sign = u & 0x80000000u, a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return x;  // NaN
  float r;
  if (a >= 0x3c800000u) {  // |x| ≥ 2^−6, E4M3's normal range: keep 3 mantissa bits, ties to even
    uint32_t t = a + 0x7ffffu + ((a >> 20) & 1u);
    t &= 0xfff00000u;  // may reach +inf for |x| near FLT_MAX; saturated below
    std::memcpy(&r, &t, 4);
    r = r < kE4M3Max ? r : kE4M3Max;
  } else {  // subnormal E4M3: multiples of 2^−9; adding 2^14 rounds to that quantum (nearest-even)
    float f;
    std::memcpy(&f, &a, 4);
    r = (f + 16384.0f) - 16384.0f;
  }
  uint32_t ru;
  std::memcpy(&ru, &r, 4);
  ru |= sign;
  std::memcpy(&r, &ru, 4);
  return r;
}

// The E4M3 byte of a value that already is an E4M3 value (round_e4m3's output); NaN → 0x7F.
inline uint8_t e4m3_code_of(float r) {
  uint32_t u;
  std::memcpy(&u, &r, 4);
  const uint8_t sign = uint8_t((u >> 24) & 0x80u);
  const uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return 0x7f;
  if (a >= 0x3c800000u) return uint8_t(sign | (((a >> 23) - 120u) << 3) | ((a >> 20) & 7u));
  float f;
  std::memcpy(&f, &a, 4);
  return uint8_t(sign | uint8_t(f * 512.0f));  // m · 2^−9, m < 8
}

// out[i] = E4M3 code of round_e4m3(x[i] · inv), for n values: the same bits as e4m3_code_of(round_e4m3(·)),
// branch-free so that it vectorises (NaN → 0x7F).
void e4m3_encode_scaled(const float* x, int64_t n, float inv, uint8_t* out);

// A matrix [rows, cols] (row-major; cols is the GEMM reduction dimension K) as E4M3 codes with one scale per
// tile of tile_rows × tile_cols (edge tiles partial):
//   value(r, c) = e4m3(codes[r·cols + c]) · scales[(r / tile_rows) · col_tiles() + c / tile_cols]
// tile_cols is 128, or cols for scales that are constant along K (per-tensor / per-row quantization).
struct Fp8Matrix {
  int64_t rows = 0, cols = 0;
  int64_t tile_rows = 1, tile_cols = kFp8TileK;
  Fp8ScaleFormat scale_format = Fp8ScaleFormat::F32;
  std::vector<uint8_t> codes;  // [rows, cols]
  std::vector<float> scales;   // [row_tiles, col_tiles]; powers of two for UE8M0

  int64_t row_tiles() const { return (rows + tile_rows - 1) / tile_rows; }
  int64_t col_tiles() const { return (cols + tile_cols - 1) / tile_cols; }
  float scale(int64_t r, int64_t c) const { return scales[size_t((r / tile_rows) * col_tiles() + c / tile_cols)]; }
  float value(int64_t r, int64_t c) const;
};

struct Fp8QuantOptions {
  int64_t tile_rows = 1;          // 1 (1×128 tiles) or 128 (128×128 blocks); any value ≥ 1 works
  int64_t tile_cols = kFp8TileK;  // 0 = the whole row (no tiling along K)
  Fp8ScaleFormat scale = Fp8ScaleFormat::F32;
};

// The scale of a tile whose max-abs is `amax` (see the header comment).
float fp8_tile_scale(float amax, Fp8ScaleFormat f);

// x [rows, cols] with row stride ld → out.
void fp8_quantize(const float* x, int64_t rows, int64_t cols, int64_t ld, const Fp8QuantOptions& o, Fp8Matrix& out);
// xᵀ: x [rows, cols] (row stride ld) → out [cols, rows], i.e. x quantized in (tile_cols × tile_rows) tiles
// and stored transposed (K = rows contiguous).
void fp8_quantize_transposed(const float* x, int64_t rows, int64_t cols, int64_t ld, const Fp8QuantOptions& o,
                             Fp8Matrix& out);
// out [rows, cols] = the values of q.
void fp8_dequantize(const Fp8Matrix& q, float* out);
// The report's backward re-quantization: q's values (e.g. an activation cached in 1×128 tiles) transposed
// and quantized again in 1×128 tiles of the transposed matrix (= 128×1 tiles of the original).
void fp8_requantize_transposed(const Fp8Matrix& q, Fp8Matrix& out);
// Square blocks (tile_rows == tile_cols) transpose exactly: the codes and the scale grid are transposed and
// no value changes (a weight quantized once serves Fprop as W and Dgrad as Wᵀ).
void fp8_transpose_blocks(const Fp8Matrix& q, Fp8Matrix& out);

}  // namespace dsv3::train
