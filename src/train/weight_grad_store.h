// Deferred weight gradients for zero-bubble pipeline schedules (DeepSeek-V3 §3.2.1; DualPipe's
// WeightGradStore): the backward of a pipeline stage is split into B, the gradient of the stage's input
// (what the previous stage waits for), and W, the weight gradients of its big linear layers, which the
// schedule runs later to fill bubbles. With a store in StepContext::wgrad, linear_backward (train/linear_grad.h)
// computes dx at once and pushes dW += dyᵀ·x here instead — the MLA projections, dense / shared / routed expert
// FFNs and the MTP module's eh_proj. Everything else (norms, router, embedding, the head fused with the loss)
// stays in B. run() then does the pushed GEMMs in push order with the same kernel and inputs, so B followed by
// W gives the combined backward's gradients bit for bit (each weight tensor receives one GEMM per backward).
// Each entry owns copies of dy and x (dy is usually a temporary of the backward, x often a gathered or
// recomputed buffer), so a stage's activations may be freed after B; the cost is those copies' memory until W.
#pragma once

#include <cstdint>
#include <mutex>
#include <vector>

#include "train/fp8_recipe.h"

namespace dsv3::train {

class WeightGradStore {
 public:
  // dw [n, k] += dyᵀ [n, m] · x [m, k] under p, later (dy and x are copied). w [n, k]: the layer's weight, not
  // read by the weight-gradient GEMM but passed on to linear_backward; dw must stay alive until run().
  // Thread-safe (the routed experts' backwards push from a parallel loop: they touch distinct tensors).
  void push(const float* dy, const float* x, const float* w, int64_t m, int64_t n, int64_t k, float* dw,
            const LinearPrecision& p);
  // Runs every pushed GEMM in push order and empties the store.
  void run();
  size_t pending() const { return items_.size(); }
  int64_t bytes() const;  // floats held by the pending entries, in bytes

 private:
  struct Item {
    std::vector<float> dy, x;  // [m, n], [m, k]
    const float* w;
    int64_t m, n, k;
    float* dw;
    LinearPrecision p;
  };
  std::mutex mu_;
  std::vector<Item> items_;
};

}  // namespace dsv3::train
