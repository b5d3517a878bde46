// Element-wise and row-wise kernels. No model knowledge: shapes and constants come in as arguments.
// Each has a plain scalar reference (`*_ref`, the lead's original loops) that the SIMD paths
// (kernels/isa.h chooses) are tested against; the SIMD paths differ from it only in summation order
// and in exp (≤ 2 ulp, vmath.h).
#pragma once

#include <cstdint>

namespace dsv3::kernels {

// y[i, :] = x[i, :] / sqrt(mean(x[i, :]^2) + eps) * w   for rows i < m of width n. y may alias x.
void rmsnorm(const float* x, const float* w, int64_t m, int64_t n, float eps, float* y);

// out[i] = silu(gate[i]) * up[i], silu(g) = g / (1 + exp(-g)). out may alias gate or up.
void silu_mul(const float* gate, const float* up, int64_t n, float* out);

// In-place softmax over x[0, n).
void softmax(float* x, int64_t n);

// Rotary embedding on adjacent pairs (x[2i], x[2i+1]) of a d-wide vector (d even), DeepSeek's layout:
// (a, b) <- (a cos θ_i − b sin θ_i, a sin θ_i + b cos θ_i) with θ_i = pos · inv_freq[i].
// cos_sin holds [d/2] pairs (cos θ_i, sin θ_i) for one position.
void rope_pairs(float* x, int64_t d, const float* cos_sin);

// Absorbed multi-head latent attention of one query row over a latent cache (the CPU analogue of FlashMLA):
//   q:  [h, c + r]   per head: the latent-space query (q_nope absorbed through W_UK) ++ the rotated q_pe
//   kv: [t, ld]      per cached token: c latent values ++ r rope-key values (ld >= c + r, the row stride)
//   o:  [h, c]       per head: Σ_t softmax_t(scale · q·kv_t) · kv_t[0, c)
// scratch must hold t floats (used by the reference; the SIMD paths need none of it).
// The SIMD paths read the cache once for all heads (flash-decoding style, online softmax over tiles of
// 32 rows; attention_avx512.cc) and split the heads across threads.
void latent_attention(const float* q, int64_t h, const float* kv, int64_t t, int64_t ld, int64_t c, int64_t r,
                      float scale, float* o, float* scratch);

// y[i] = exp(x[i]) (≤ 2 ulp; exp(-inf) = 0, overflow gives inf, NaN stays NaN). y may alias x.
void exp_vec(const float* x, int64_t n, float* y);

// The indices of the k largest values of x[0, n), largest first; equal values: lower index first.
// 0 <= k <= n; x must not hold NaN.
void top_k(const float* x, int64_t n, int64_t k, int32_t* idx);

// ---- scalar references ----
void rmsnorm_ref(const float* x, const float* w, int64_t m, int64_t n, float eps, float* y);
void silu_mul_ref(const float* gate, const float* up, int64_t n, float* out);
void softmax_ref(float* x, int64_t n);
void rope_pairs_ref(float* x, int64_t d, const float* cos_sin);
void latent_attention_ref(const float* q, int64_t h, const float* kv, int64_t t, int64_t ld, int64_t c, int64_t r,
                          float scale, float* o, float* scratch);

}  // namespace dsv3::kernels
