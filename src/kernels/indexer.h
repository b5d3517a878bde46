// Kernels of DeepSeek Sparse Attention's lightning indexer (DeepSeek-V3.2; model/indexer.h holds the model
// logic). No model knowledge: sizes come in as arguments. Follows the arithmetic of the official V3.2-Exp
// kernels (inference/kernel.py act_quant / fp8_index, fast_hadamard_transform) as the testdata README
// spells it out; each kernel has a plain scalar reference the dispatched paths are tested against.
#pragma once

#include <cstdint>

namespace dsv3::kernels {

// FP8 E4M3 quantization of x[0, n) in blocks of 128 consecutive values (the last block may be shorter),
// DeepSeek's act_quant: amax = max(max |v|, 1e-4), t = amax · fl32(1/448), scale s = t, or with `ue8m0` the
// smallest power of two >= t; code e = E4M3(clamp(v / s, −448, 448)) rounded to nearest even. The value it
// stands for is e · s. codes[n], scales[ceil(n / 128)].
constexpr int64_t kFp8Block = 128;
void fp8_quantize(const float* x, int64_t n, bool ue8m0, uint8_t* codes, float* scales);
// y = the dequantized fp8_quantize(x): every value replaced by e · s (y may alias x). What the official
// code's FP8 activations and its simulated FP8 latent cache compute with.
void fp8_roundtrip(const float* x, int64_t n, bool ue8m0, float* y);

// In place: x[0, n) ← (x · H) / √n with H the Sylvester Hadamard matrix H[i][j] = (−1)^popcount(i & j)
// (n a power of two): the fast Walsh–Hadamard transform, n log n additions.
void hadamard(float* x, int64_t n);
// The reference: the matrix product itself, n² terms.
void hadamard_ref(float* x, int64_t n);

// Rotary embedding in the rotate-half ("NeoX") layout on a d-wide vector: for i < d/2
//   (x[i], x[i + d/2]) ← (x[i] cos θ_i − x[i + d/2] sin θ_i, x[i] sin θ_i + x[i + d/2] cos θ_i)
// cos_sin holds [d/2] pairs (cos θ_i, sin θ_i), the table ops.h's rope_pairs reads.
void rope_half(float* x, int64_t d, const float* cos_sin);

// The index scores of one query against t cached keys (fp8_index):
//   out[s] = ks[s] · Σ_h w[h] · max(0, Σ_j q[h, j] · e4m3(k[s, j]))        s < t
// q: [h, d] the query heads' E4M3 values as float (unscaled), w: [h] head weights (their scales folded in),
// k: [t, d] E4M3 key bytes, ks: [t] key scales. Single-threaded (callers split rows and key ranges).
void index_scores(const float* q, const float* w, int64_t h, const uint8_t* k, const float* ks, int64_t t, int64_t d,
                  float* out);
void index_scores_ref(const float* q, const float* w, int64_t h, const uint8_t* k, const float* ks, int64_t t,
                      int64_t d, float* out);

}  // namespace dsv3::kernels
