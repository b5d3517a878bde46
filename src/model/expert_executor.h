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

  // The same work as run() in four stages over a slot (0 or 1), so that a model can keep two micro-batches
  // in flight (DeepSeek-V3 §3.4's two-micro-batch overlap; Model's ForwardOptions::micro_batches): for each
  // slot begin → compute → combine → end, in this order, the other slot's stages interleaved between them
  // in any order that is the same on every process of a distributed step. `tasks` and `x` stay valid until
  // end(slot); `out` (zeroed by the caller) receives what run() would write. An executor that communicates
  // starts its exchanges in begin (dispatch) and combine and waits for them in compute and end, so the other
  // slot's work runs while they travel. The defaults keep the arguments and do run() in end().
  virtual void begin(int slot, std::span<const ExpertTask> tasks, const float* x, int64_t m);
  virtual void compute(int slot) { (void)slot; }
  virtual void combine(int slot) { (void)slot; }
  virtual void end(int slot, float* out);

 private:
  struct Staged {
    std::span<const ExpertTask> tasks;
    const float* x = nullptr;
    int64_t m = 0;
  };
  Staged staged_[2];
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
