// The MoE layer's expert-execution seam (DESIGN.md, model/moe): the layer routes and groups its rows by
// expert, then asks an ExpertExecutor to run the work. LocalExperts runs every expert in this process (the
// fused SwiGLU pass in the decode regime, one FFN per expert otherwise); expert parallelism (src/dist/)
// plugs in an executor that dispatches each task to the rank owning its expert and combines the results,
// without MLA or routing knowing.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "model/ffn.h"
#include "model/weights.h"

namespace dsv3 {

// One routed expert's share of a forward: the rows that chose it, gathered.
struct ExpertTask {
  int64_t expert = 0;        // routed expert index, 0 .. n_routed_experts-1
  const float* x = nullptr;  // [m, hidden] its input rows
  int64_t m = 0;
  const int64_t* rows = nullptr;  // [m] the output row of each input row
  const float* gates = nullptr;   // [m] the gate weight of each
};

class ExpertExecutor {
 public:
  virtual ~ExpertExecutor() = default;
  // out [m, hidden] (zeroed by the caller) receives, for the tasks in the order given (ascending expert),
  // out[rows[i]] += gates[i] · expert(x[i]), then + shared(x) when the layer has shared experts; x [m, hidden]
  // is the layer's input. The order of these sums is fixed, so every executor gives the same bits.
  virtual void run(std::span<const ExpertTask> tasks, const float* x, int64_t m, float* out) = 0;
};

// Every expert of the layer, here. Reads the weights through `w` (which must outlive it). `lin`: the options
// of the experts' matmuls (the model's, model/options.h; {} = exact).
class LocalExperts final : public ExpertExecutor {
 public:
  LocalExperts(const MoeWeights& w, int64_t hidden, const kernels::LinearOptions& lin = {});
  void run(std::span<const ExpertTask> tasks, const float* x, int64_t m, float* out) override;

 private:
  const MoeWeights& w_;
  int64_t hidden_;
  kernels::LinearOptions lin_;
  std::vector<kernels::SwigluExpert> fused_;
  std::vector<float> yout_, shared_out_;
  FfnScratch ffn_;
};

}  // namespace dsv3
