// AdamW (Loshchilov & Hutter, decoupled weight decay) over the trainer's float32 master parameters, as
// DeepSeek-V3 §4.2 trains: β1 = 0.9, β2 = 0.95, weight_decay = 0.1, gradients clipped to global norm 1.0.
// The update is PyTorch's torch.optim.AdamW (bias-corrected moments, eps added to the corrected √v):
//   p ← p · (1 − lr·wd)                 (only tensors that decay, see decays())
//   m ← β1 m + (1 − β1) g,   v ← β2 v + (1 − β2) g²
//   p ← p − lr/(1 − β1^t) · m / (√v / √(1 − β2^t) + eps)
// Weight decay follows common practice (GPT-2/nanoGPT, Megatron-LM, llm.c): every matrix decays — linear
// layers, the router, the embedding and the output head — while one-dimensional tensors (RMSNorm weights)
// do not. e_score_correction_bias is not trained by gradient at all (the balancer moves it), so the optimizer
// skips it. Moments are float32, or — with bf16_moments, as DeepSeek-V3 §3.3.4 trains with FP8 — rounded to
// bfloat16 (nearest-even) after every update, the update itself using the rounded moments (what a BF16 state
// tensor gives); they stay in float32 vectors, so checkpoints hold them exactly. Per-element arithmetic is in
// double and rounded once, and nothing depends on the thread count, so a resumed run is bit-identical.
#pragma once

#include <cstdint>
#include <vector>

#include "model/weights.h"
#include "train/params.h"

namespace dsv3::train {

struct AdamWOptions {
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8;
  double weight_decay = 0.1;
  bool bf16_moments = false;  // keep exp_avg / exp_avg_sq at bfloat16 precision
};

// Whether a tensor of this role is updated by the optimizer (all but the routing bias).
bool trainable(WeightRole r);
// Whether decoupled weight decay applies (matrices: Linear, Gate, Embedding, Head).
bool decays(WeightRole r);

class AdamW {
 public:
  // held: per tensor of params, whether this optimizer keeps its moments and updates it (ZeRO-1: the tensors
  // this rank owns, train/data_parallel.h); empty = every trainable tensor.
  AdamW(const Params& params, const AdamWOptions& o, const std::vector<char>& held = {});

  // One update with learning rate `lr` of the held tensors (the others are left alone); increments steps().
  void step(Params& params, const Params& grads, double lr);
  // Per-tensor learning-rate multipliers (empty: 1 for every tensor). 0 freezes a tensor: step() leaves it,
  // its moments and its weight decay alone (DeepSeek-V3.2's dense warm-up trains only the indexer).
  void set_lr_scale(std::vector<double> scale);
  // Whether tensor i's moments are here.
  bool holds(size_t i) const { return held_[i] != 0; }
  // Bytes of the moments held here (2 × 4 per element).
  int64_t state_bytes() const;

  const AdamWOptions& options() const { return o_; }
  int64_t steps() const { return t_; }
  void set_steps(int64_t t) { t_ = t; }
  // First / second moments, same layout as Params (empty vectors for tensors not trainable or not held).
  std::vector<float>& exp_avg(size_t i) { return m_[i]; }
  std::vector<float>& exp_avg_sq(size_t i) { return v_[i]; }
  const std::vector<float>& exp_avg(size_t i) const { return m_[i]; }
  const std::vector<float>& exp_avg_sq(size_t i) const { return v_[i]; }

 private:
  AdamWOptions o_;
  int64_t t_ = 0;
  std::vector<char> held_;
  std::vector<double> lr_scale_;
  std::vector<std::vector<float>> m_, v_;
};

// √Σ g² over the trainable tensors, in double, summed in a fixed order (independent of the thread count).
double grad_global_norm(const Params& grads);
// Σ g² (before the square root) over the trainable tensors with only[i] set (all when empty), same order.
double grad_sq_sum(const Params& grads, const std::vector<char>& only = {});
// g ← c · g for the trainable tensors with only[i] set (all when empty).
void scale_grads(Params& grads, float c, const std::vector<char>& only = {});

// torch.nn.utils.clip_grad_norm_: when the global norm exceeds max_norm, every gradient is multiplied by
// max_norm / (norm + 1e-6). Returns the norm before clipping. max_norm ≤ 0 disables clipping.
double clip_grad_norm(Params& grads, double max_norm);

}  // namespace dsv3::train
