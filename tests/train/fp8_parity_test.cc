// FP8 training against BF16 at small size (the CI version of scripts/fp8_parity.sh, docs/fp8.md):
//  - one linear layer under each recipe against float64 references of what the recipe must compute
//    (quantize → dequantize → matmul in float64 for fp8, round → matmul for bf16);
//  - a tiny V3 (MLA, a dense layer, a MoE layer with a shared expert, MTP; widths multiples of 128) trained a
//    few AdamW steps in fp32, bf16 and fp8 from the same weights on the same batches: the fp8 loss must stay
//    within a small relative distance of bf16's, and must differ from fp32's (the fp8 path really runs).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "tools/init.h"
#include "train/adamw.h"
#include "train/fp8_quant.h"
#include "train/linear_grad.h"
#include "train/params.h"
#include "train/step.h"

namespace dsv3::train {
namespace {

std::vector<float> randn(int64_t n, uint32_t seed, float scale) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, scale);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = nd(rng);
  return v;
}

// Values a recipe feeds the GEMM: fp8 quantize→dequantize with the given tiles, or bf16 rounding.
std::vector<double> fp8_values(const float* x, int64_t rows, int64_t cols, int64_t tile_rows) {
  Fp8Matrix q;
  fp8_quantize(x, rows, cols, cols, {.tile_rows = tile_rows, .tile_cols = 128}, q);
  std::vector<double> v(size_t(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) v[size_t(r * cols + c)] = double(q.value(r, c));
  return v;
}
std::vector<double> transpose(const std::vector<double>& v, int64_t rows, int64_t cols) {
  std::vector<double> t(v.size());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) t[size_t(c * rows + r)] = v[size_t(r * cols + c)];
  return t;
}
// C [m, n] = A [m, k] · B [n, k]ᵀ in float64.
std::vector<double> mm_nt(const std::vector<double>& a, const std::vector<double>& b, int64_t m, int64_t n, int64_t k) {
  std::vector<double> c(size_t(m * n));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t l = 0; l < k; ++l) s += a[size_t(i * k + l)] * b[size_t(j * k + l)];
      c[size_t(i * n + j)] = s;
    }
  return c;
}
double rel_err(const std::vector<float>& got, const std::vector<double>& want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < got.size(); ++i) num += (got[i] - want[i]) * (got[i] - want[i]), den += want[i] * want[i];
  return std::sqrt(num / den);
}

TEST(Fp8Linear, ThreeGemmsMatchTheFloat64RecipeReference) {
  const int64_t m = 200, n = 136, k = 264;  // partial tiles on every axis
  const auto x = randn(m * k, 1, 1.0f), w = randn(n * k, 2, 0.02f), dy = randn(m * n, 3, 1e-3f);
  // What fp8 must compute: Fprop on x (1×128) and W (128×128); Dgrad on dy (1×128) and Wᵀ (same blocks);
  // Wgrad on dyᵀ (128×1 tiles of dy) and xᵀ re-quantized from x's FP8 tiles into 128×1.
  const auto xq = fp8_values(x.data(), m, k, 1), wq = fp8_values(w.data(), n, k, 128);
  const auto dyq = fp8_values(dy.data(), m, n, 1);
  std::vector<float> dyt(size_t(m * n)), xq_t(size_t(m * k));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) dyt[size_t(j * m + i)] = dy[size_t(i * n + j)];
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < k; ++j) xq_t[size_t(j * m + i)] = float(xq[size_t(i * k + j)]);
  const auto dytq = fp8_values(dyt.data(), n, m, 1), xtq = fp8_values(xq_t.data(), k, m, 1);
  const auto y_ref = mm_nt(xq, wq, m, n, k);
  const auto dx_ref = mm_nt(dyq, transpose(wq, n, k), m, k, n);
  const auto dw_ref = mm_nt(dytq, xtq, n, k, m);

  for (int bits : {23, 13}) {
    const LinearPrecision p{.mode = Precision::FP8, .fp8 = {.accum_bits = bits}};
    std::vector<float> y(size_t(m * n)), dx(size_t(m * k), 0.0f), dw(size_t(n * k), 0.0f);
    linear_forward(x.data(), w.data(), m, n, k, y.data(), p);
    linear_backward(dy.data(), x.data(), w.data(), m, n, k, dx.data(), dw.data(), p);
    const double tol = bits == 23 ? 1e-6 : 1e-3;  // 13 bits: the accumulator's own (small) error
    EXPECT_LT(rel_err(y, y_ref), tol) << bits;
    EXPECT_LT(rel_err(dx, dx_ref), tol) << bits;
    EXPECT_LT(rel_err(dw, dw_ref), tol) << bits;
    // ... and it is not the float32 GEMM: quantization moves the result by percent-level amounts.
    std::vector<float> y32(size_t(m * n));
    linear_forward(x.data(), w.data(), m, n, k, y32.data());
    std::vector<double> y32d(y32.begin(), y32.end());
    EXPECT_GT(rel_err(y, y32d), 1e-2);
    EXPECT_LT(rel_err(y, y32d), 1e-1);
  }

  // bf16: inputs rounded to bfloat16, products in float32.
  auto bf = [](const std::vector<float>& v) {
    std::vector<double> r(v.size());
    for (size_t i = 0; i < v.size(); ++i) r[i] = bf16_to_f32(f32_to_bf16(v[i]));
    return r;
  };
  const LinearPrecision pb{.mode = Precision::BF16};
  std::vector<float> y(size_t(m * n)), dx(size_t(m * k), 0.0f), dw(size_t(n * k), 0.0f);
  linear_forward(x.data(), w.data(), m, n, k, y.data(), pb);
  linear_backward(dy.data(), x.data(), w.data(), m, n, k, dx.data(), dw.data(), pb);
  const auto xb = bf(x), wb = bf(w), dyb = bf(dy);
  EXPECT_LT(rel_err(y, mm_nt(xb, wb, m, n, k)), 1e-6);
  EXPECT_LT(rel_err(dx, mm_nt(dyb, transpose(wb, n, k), m, k, n)), 1e-6);
  EXPECT_LT(rel_err(dw, mm_nt(transpose(dyb, m, n), transpose(xb, m, k), n, k, m)), 1e-6);
}

TEST(Fp8Linear, BlockQuantizedDgradInputDiffersFromTiles) {
  // The report's negative result needs the option to actually change the Dgrad input's quantization.
  const int64_t m = 128, n = 128, k = 128;
  auto dy = randn(m * n, 5, 1e-3f);
  // Token-wise outliers, as activation gradients have: every 16th token's gradient is 10^5× larger. A 128×128
  // block shares its scale with the outlier tokens and pushes the other tokens' values into E4M3's subnormal
  // range; 1×128 tiles give every token its own scale.
  for (int64_t i = 0; i < m; i += 16)
    for (int64_t j = 0; j < n; ++j) dy[size_t(i * n + j)] *= 1e5f;
  const auto w = randn(n * k, 6, 0.02f), x = randn(m * k, 7, 1.0f);
  std::vector<float> dx_t(size_t(m * k), 0.0f), dx_b(size_t(m * k), 0.0f), dx_32(size_t(m * k), 0.0f);
  linear_backward(dy.data(), x.data(), w.data(), m, n, k, dx_t.data(), nullptr,
                  {.mode = Precision::FP8, .fp8 = {.dgrad_block_quant = false}});
  linear_backward(dy.data(), x.data(), w.data(), m, n, k, dx_b.data(), nullptr,
                  {.mode = Precision::FP8, .fp8 = {.dgrad_block_quant = true}});
  linear_backward(dy.data(), x.data(), w.data(), m, n, k, dx_32.data(), nullptr);
  // The error on the ordinary tokens' input gradients.
  std::vector<float> t, b;
  std::vector<double> ref;
  for (int64_t i = 0; i < m; ++i)
    if (i % 16 != 0)
      for (int64_t j = 0; j < k; ++j) {
        t.push_back(dx_t[size_t(i * k + j)]), b.push_back(dx_b[size_t(i * k + j)]);
        ref.push_back(dx_32[size_t(i * k + j)]);
      }
  const double e_tiles = rel_err(t, ref), e_blocks = rel_err(b, ref);
  std::printf("Dgrad relative error vs fp32 (ordinary tokens): 1x128 tiles %.4f, 128x128 blocks %.4f\n", e_tiles,
              e_blocks);
  EXPECT_LT(e_tiles, 0.1);
  EXPECT_GT(e_blocks, 3 * e_tiles);
}

// ---- a few training steps ----

ModelConfig parity_config() {
  ModelConfig c;
  c.model_type = "deepseek_v3";
  c.vocab_size = 256;
  c.hidden_size = 128;
  c.intermediate_size = 256;
  c.moe_intermediate_size = 128;
  c.num_hidden_layers = 2;
  c.num_nextn_predict_layers = 1;
  c.num_attention_heads = 2;
  c.num_key_value_heads = 2;
  c.n_shared_experts = 1;
  c.n_routed_experts = 4;
  c.num_experts_per_tok = 2;
  c.n_group = 1;
  c.topk_group = 1;
  c.first_k_dense_replace = 1;
  c.q_lora_rank = 128;
  c.kv_lora_rank = 128;
  c.qk_nope_head_dim = 32;
  c.qk_rope_head_dim = 32;
  c.v_head_dim = 64;
  c.max_position_embeddings = 64;
  return c;
}

struct Curve {
  std::vector<double> loss;
  std::vector<float> grad0;  // a linear layer's gradient at step 0
};

Curve train(const ModelConfig& c, Precision prec, int steps) {
  Params p(c), g(c);
  const auto init = init_weights_f32(c, {.seed = 1, .std = 0.02, .dtype = InitDType::F32});
  for (size_t i = 0; i < init.size(); ++i) std::copy(init[i].second.begin(), init[i].second.end(), p.value(i).begin());
  AdamW opt(p, {.weight_decay = 0.1, .bf16_moments = prec != Precision::FP32});
  LossOptions lo;
  lo.mtp_lambda = 0.3;
  lo.balance_alpha = 1e-4;
  lo.linear.mode = prec;
  const int64_t B = 4, T = 32;
  // One batch, fitted for a few steps (deterministic, so the loss falls every step): arithmetic progressions
  // with random starts and strides and a little noise.
  std::mt19937 rng(9);
  std::vector<int32_t> tok(size_t(B * T));
  for (int64_t b = 0; b < B; ++b) {
    const int32_t start = int32_t(rng() % 256), stride = int32_t(1 + rng() % 3);
    for (int64_t t = 0; t < T; ++t)
      tok[size_t(b * T + t)] = rng() % 16 == 0 ? int32_t(rng() % 256) : int32_t((start + stride * t) % 256);
  }
  Curve out;
  for (int s = 0; s < steps; ++s) {
    for (size_t i = 0; i < g.size(); ++i) std::fill(g.value(i).begin(), g.value(i).end(), 0.0f);
    const StepResult r = forward_backward(c, p, tok.data(), B, T, lo, g);
    out.loss.push_back(r.loss);
    if (s == 0) out.grad0 = g.value(g.index("model.layers.0.mlp.down_proj.weight"));
    clip_grad_norm(g, 1.0);
    opt.step(p, g, 1e-3);
  }
  return out;
}

TEST(Fp8Parity, ShortRunStaysWithinTheBoundOfBf16AndDiffersFromFp32) {
  const ModelConfig c = parity_config();
  const int steps = 8;
  const Curve f32 = train(c, Precision::FP32, steps), b16 = train(c, Precision::BF16, steps),
              f8 = train(c, Precision::FP8, steps);
  double max_rel_bf16 = 0, max_rel_fp32 = 0;
  for (int s = 0; s < steps; ++s) {
    const double rb = std::fabs(f8.loss[size_t(s)] - b16.loss[size_t(s)]) / b16.loss[size_t(s)];
    const double rf = std::fabs(f8.loss[size_t(s)] - f32.loss[size_t(s)]) / f32.loss[size_t(s)];
    std::printf("step %d: fp32 %.6f bf16 %.6f fp8 %.6f  |fp8-bf16|/bf16 %.2e\n", s, f32.loss[size_t(s)],
                b16.loss[size_t(s)], f8.loss[size_t(s)], rb);
    max_rel_bf16 = std::max(max_rel_bf16, rb);
    max_rel_fp32 = std::max(max_rel_fp32, rf);
  }
  // Over these few fast steps on one batch fp8 trails bf16 by up to ~0.6% (also with a float32 accumulator:
  // it is the E4M3 rounding noise in the gradients, which Adam's sign-like early updates feel); the
  // report's 0.25% is for the end of a run, which scripts/fp8_parity.sh measures (docs/fp8.md).
  EXPECT_LT(f8.loss.back(), f8.loss.front() - 0.3);  // it trains
  EXPECT_LT(max_rel_bf16, 1e-2);
  EXPECT_GT(max_rel_fp32, 1e-4);   // the fp8 path changes the numbers
  for (int s = 0; s < steps; ++s)  // bf16 is close to fp32
    EXPECT_LT(std::fabs(b16.loss[size_t(s)] - f32.loss[size_t(s)]) / f32.loss[size_t(s)], 1e-3) << s;
  // Step-0 gradient of the dense MLP's down_proj: fp8 is a perturbation of fp32 of the size E4M3 rounding
  // explains (3 mantissa bits: a few percent per GEMM, compounded over the layers; bf16 is ~16× smaller),
  // neither zero nor garbage. (Routed experts differ more: tokens near a routing boundary change experts.)
  double num = 0, den = 0;
  for (size_t i = 0; i < f32.grad0.size(); ++i) {
    const double d = double(f8.grad0[i]) - double(f32.grad0[i]);
    num += d * d, den += double(f32.grad0[i]) * double(f32.grad0[i]);
  }
  const double gerr = std::sqrt(num / den);
  std::printf("step-0 gradient relative error fp8 vs fp32: %.4f\n", gerr);
  EXPECT_GT(gerr, 0.02);
  EXPECT_LT(gerr, 0.2);
}

}  // namespace
}  // namespace dsv3::train
