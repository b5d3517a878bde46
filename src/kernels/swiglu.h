// Fused SwiGLU feed-forward over a set of experts, for the decode regime (few rows per expert):
//   out[rows[i], :] += gates[i] · W2 (silu(W1 x_i) ⊙ W3 x_i)        for every expert and each of its rows i
// in one parallel region instead of three linear() calls and a silu_mul per expert. The gate and up
// projections of every expert are one pool of work (chunks of their output rows, W1 and W3 side by side,
// SiLU applied to each chunk as it is finished), then the down projections of every expert are another
// (chunks of the hidden dimension, each chunk summing all experts into `out`). A token's six or eight
// experts then cost two joins of the threads, not twenty-four — at decode the joins, not the arithmetic,
// were what separated the threads' share of the weights from the memory bandwidth.
//
// Same kernels as linear() (the GEMV regime, exact fp32 products for float weights, int8 / int4 with x
// quantized per block as linear() does), and the same order of sums: for each out row the experts are
// added in the order given, so the result is bit-identical to running linear() per expert and adding up.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "kernels/linear.h"

namespace dsv3::kernels {

struct SwigluExpert {
  WeightRef w1, w3, w2;           // gate [inter, d], up [inter, d], down [d, inter]
  const float* x = nullptr;       // [m, d] input rows
  int64_t m = 0;                  // rows (<= swiglu_max_rows())
  const int64_t* rows = nullptr;  // row of `out` for each input row (nullptr: 0, 1, .., m-1)
  const float* gates = nullptr;   // multiplier of each row's output (nullptr: 1)
};

// Scratch kept across calls (grows, never shrinks: steady-state calls allocate nothing). Move-only.
class SwigluScratch {
 public:
  SwigluScratch();
  ~SwigluScratch();
  SwigluScratch(SwigluScratch&&) noexcept;
  SwigluScratch& operator=(SwigluScratch&&) noexcept;
  struct Impl;
  Impl& impl() { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

// Rows per expert up to which swiglu_experts applies (the GEMV regime of linear()).
int64_t swiglu_max_rows();

// out [*, d] += the experts' outputs as above. Every expert's m <= swiglu_max_rows() and its weights'
// shapes consistent with d (checked by the caller: model/ffn.cc, model/expert_executor.cc). `opt` as
// linear()'s (the caller's model options; {} = exact): with bf16_activations, BF16 experts multiply
// bf16-rounded x and h.
void swiglu_experts(std::span<const SwigluExpert> experts, int64_t d, float* out, SwigluScratch& s,
                    const LinearOptions& opt = {});

// The reference: per expert linear_qact_ref where linear() quantizes x (else linear_ref) and silu_mul_ref, the same
// accumulation into out.
void swiglu_experts_ref(std::span<const SwigluExpert> experts, int64_t d, float* out);

}  // namespace dsv3::kernels
