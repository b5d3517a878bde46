// Element-wise and row-wise kernels. No model knowledge: shapes and constants come in as arguments.
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
// scratch must hold t floats.
void latent_attention(const float* q, int64_t h, const float* kv, int64_t t, int64_t ld, int64_t c,
                      int64_t r, float scale, float* o, float* scratch);

}  // namespace dsv3::kernels
