#include "train/fp8_linear.h"

#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "kernels/matmul.h"
#include "train/fp8_gemm.h"
#include "train/fp8_quant.h"

namespace dsv3::train {

namespace {

std::vector<float> to_bf16(const float* x, int64_t n) {
  std::vector<float> r(static_cast<size_t>(n));
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) r[size_t(i)] = bf16_to_f32(f32_to_bf16(x[i]));
  return r;
}

Fp8QuantOptions tiles(const Fp8Recipe& r) { return {.tile_rows = 1, .tile_cols = kFp8TileK, .scale = r.scale}; }
Fp8QuantOptions blocks(const Fp8Recipe& r) {
  return {.tile_rows = kFp8TileK, .tile_cols = kFp8TileK, .scale = r.scale};
}
Fp8GemmOptions gemm_options(const Fp8Recipe& r, bool accumulate) {
  return {.accum_bits = r.accum_bits, .promote_every = r.promote_every, .accumulate = accumulate};
}

}  // namespace

void lowp_linear_forward(const float* x, const float* w, int64_t m, int64_t n, int64_t k, float* y,
                         const LinearPrecision& p) {
  if (p.mode == Precision::BF16) {
    const std::vector<float> xb = to_bf16(x, m * k), wb = to_bf16(w, n * k);
    kernels::matmul_nt(xb.data(), wb.data(), m, n, k, y);
    return;
  }
  if (p.mode != Precision::FP8) fail("lowp_linear_forward: precision {} is not bf16 or fp8", precision_name(p.mode));
  Fp8Matrix qx, qw;
  fp8_quantize(x, m, k, k, tiles(p.fp8), qx);
  fp8_quantize(w, n, k, k, blocks(p.fp8), qw);
  fp8_gemm(qx, qw, y, n, gemm_options(p.fp8, false));
}

void lowp_linear_backward(const float* dy, const float* x, const float* w, int64_t m, int64_t n, int64_t k, float* dx,
                          float* dw, const LinearPrecision& p) {
  if (p.mode == Precision::BF16) {
    const std::vector<float> dyb = to_bf16(dy, m * n);
    if (dx) {
      const std::vector<float> wb = to_bf16(w, n * k);
      kernels::matmul_nn(dyb.data(), wb.data(), m, k, n, dx, 1.0f);
    }
    if (dw) {
      const std::vector<float> xb = to_bf16(x, m * k);
      kernels::matmul_tn(dyb.data(), xb.data(), n, k, m, dw, 1.0f);
    }
    return;
  }
  if (p.mode != Precision::FP8) fail("lowp_linear_backward: precision {} is not bf16 or fp8", precision_name(p.mode));
  if (dx) {  // Dgrad: dx [m, k] += dy [m, n] · (Wᵀ [k, n])ᵀ
    Fp8Matrix qdy, qw, qwt;
    fp8_quantize(dy, m, n, n, p.fp8.dgrad_block_quant ? blocks(p.fp8) : tiles(p.fp8), qdy);
    fp8_quantize(w, n, k, k, blocks(p.fp8), qw);
    fp8_transpose_blocks(qw, qwt);
    fp8_gemm(qdy, qwt, dx, k, gemm_options(p.fp8, true));
  }
  if (dw) {  // Wgrad: dW [n, k] += dyᵀ [n, m] · (xᵀ [k, m])ᵀ, reduction over the m tokens
    Fp8Matrix qdyt, qx, qxt;
    fp8_quantize_transposed(dy, m, n, n, tiles(p.fp8), qdyt);
    fp8_quantize(x, m, k, k, tiles(p.fp8), qx);  // the forward's 1×128 tiles ...
    fp8_requantize_transposed(qx, qxt);          // ... re-quantized as 128×1
    fp8_gemm(qdyt, qxt, dw, k, gemm_options(p.fp8, true));
  }
}

}  // namespace dsv3::train
