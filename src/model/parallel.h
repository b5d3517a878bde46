// How a Model takes part in a multi-process job (DESIGN.md, scale-out: attention data-parallel, MoE
// expert-parallel). The seams are declared here so that model/ knows no MPI; src/dist/ implements them
// (dist/ep_inference.h). A model gets one through ModelOptions::parallel; without it the model runs in this
// process alone, exactly as before.
//
//   expert_scope  the routed experts this process binds: Model::load binds only those (SchemaScope), so an
//                 mmap'd checkpoint never pages the others in
//   make_experts  the ExpertExecutor of each MoE layer (expert parallelism: dispatch / combine all-to-all);
//                 `bind` brings in further routed experts of the layer from the checkpoint (redundant copies)
//   leads / step  on the process that drives the model (rank 0: CLI logic, scheduler, HTTP), every
//                 Model::forward / mtp_forward call is handed to step(), which makes it one collective step
//                 of the job; each process runs its share through forward_local / mtp_forward_local (the
//                 others from their own loop, dist::EpInference::follow)
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "model/config.h"
#include "model/expert_executor.h"
#include "model/schema.h"
#include "model/transformer.h"
#include "model/weights.h"

namespace dsv3 {

// One Model::forward (mtp_module < 0) or mtp_forward (module k) call, as the model received it.
struct StepCall {
  int64_t mtp_module = -1;
  std::span<const int32_t> tokens = {};  // [m]: the tokens (MTP: the next tokens)
  const float* hidden_in = nullptr;      // MTP: [m, hidden]
  std::span<const SeqChunk> chunks = {};
  float* hidden_out = nullptr;  // optional [m, hidden]
  float* logits_out = nullptr;  // optional, rows as `logits` says
  LogitRows logits = LogitRows::All;
};

class ModelParallel {
 public:
  virtual ~ModelParallel() = default;
  // The routed experts this process binds (throws naming the flag when the layout cannot hold the model).
  virtual SchemaScope expert_scope(const ModelConfig& c) = 0;
  // The executor of a MoE layer over its weights `layer.moe` (which outlive it); nullptr = LocalExperts.
  // `bind` is empty when the weights do not come from a checkpoint.
  virtual std::unique_ptr<ExpertExecutor> make_experts(const ModelConfig& c, const LayerWeights& layer,
                                                       const kernels::LinearOptions& lin, const ExpertBinder& bind) = 0;
  // True on the process whose forward calls become collective steps.
  virtual bool leads() const = 0;
  // Runs one call as a step of the job (only called when leads()).
  virtual void step(Model& model, const StepCall& call) = 0;
};

}  // namespace dsv3
