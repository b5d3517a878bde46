// Per-device training memory: weights, gradients, optimizer state and activations, as DeepSeek-V3 trains.
//
// Assumptions (DeepSeek-V3 technical report §3.2.3 and §3.3):
//   weights      BF16, 2 bytes per parameter held (FP8 copies for the GEMMs are made per tile on the fly);
//   gradients    FP32, 4 bytes ("master weights ... and gradients (used for batch size accumulation) are still
//                retained in FP32");
//   optimizer    FP32 master weights (4) + AdamW first and second moments in BF16 (2 + 2) = 8 bytes per
//                parameter, ZeRO-1-sharded over every device holding a copy of the tensor: the DP × EP ranks
//                for non-expert tensors, the DP ranks for routed experts, × 2 under DualPipe (both mirror
//                devices hold the stage); the EMA of the parameters lives in CPU memory (§3.2.3): 0 bytes here;
//   routed experts  ⌈E / EP⌉ experts per MoE layer on each device;
//   activations  per token and layer, what the backward needs after the paper's choices:
//                  the inputs of both RMSNorms (BF16; the norms and what follows them are recomputed),
//                  MLA's compressed q (q_a output) and kv_a output (BF16; the up-projections are recomputed),
//                  o_proj's input = the attention output, in E5M6 (1.5 bytes), and the softmax LSE (FP32 per head),
//                  the router's scores (FP32 per routed expert),
//                  for every activated expert (top-k routed + shared; the dense MLP likewise): its FP8 input
//                  (the dispatched tokens, + one FP32 scale per 128) and its SwiGLU input (gate and up outputs,
//                  FP8 + scales; the SwiGLU output is recomputed),
//                the last stage adds the final norm's and each MTP module's inputs; logits are not kept (the
//                cross-entropy runs fused with the head in chunks);
//                in flight: PP micro-batches of a stage for 1F1B / ZB1P, PP + 1 for DualPipe (Table 2),
//                2·PP + 1 chunks for DualPipeV, each counted at the device's largest stage.
#pragma once

#include <vector>

#include "model/config.h"
#include "plan/cluster.h"

namespace dsv3::plan {

double attention_params(const ModelConfig& c);  // one layer's MLA + its two layer norms
double expert_params(const ModelConfig& c);     // one routed (or shared) expert: gate, up, down

struct StageParams {
  double replicated =
      0;  // every parameter but the routed experts (embedding, MLA, norms, dense, gates, shared, head, MTP)
  double experts = 0;  // this device's routed experts
  double total() const { return replicated + experts; }
};
// Parameters of `stage` on one device of an EP group of `ep` ranks (the MTP module's embedding and head are
// the main model's, counted once).
StageParams stage_params(const ModelConfig& c, const Stage& stage, int ep);

// Saved activation bytes per token of decoder layer `layer`, and of the last stage's final norm + MTP modules.
double layer_activation_bytes(const ModelConfig& c, int64_t layer);
double head_activation_bytes(const ModelConfig& c);
double stage_activation_bytes_per_token(const ModelConfig& c, const Stage& stage);

// Micro-batches (chunks) whose activations one device keeps at its peak (the Activation column of Table 2).
double activations_in_flight(Schedule s, int pp);

struct TrainingMemory {
  int device = 0;  // the pipeline device with the most memory (its numbers below)
  double params = 0, expert_params = 0;
  double weights = 0, gradients = 0, optimizer = 0, activations = 0;
  double activation_per_microbatch = 0;  // bytes of one micro-batch through the device's largest stage
  double in_flight = 0;
  double total() const { return weights + gradients + optimizer + activations; }
};

// A micro-batch of `micro_batch` sequences of `seq` tokens; the stages as split_stages(c, ·, seq) cuts them.
TrainingMemory training_memory(const ModelConfig& c, const Cluster& k, Schedule s, int64_t seq, int64_t micro_batch);

}  // namespace dsv3::plan
