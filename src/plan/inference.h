// Inference deployments: per-device memory and tokens/s for a prefill or a decode deployment.
//
// Layout (DeepSeek-V3 §3.4): attention data-parallel over the devices, optionally tensor-parallel over
// `attention_tp` of them (its weights split, its sequences shared); routed experts expert-parallel over `ep`
// devices with `redundant_experts` extra copies (⌈(E + redundant) / EP⌉ experts per device and MoE layer);
// decode may treat the shared expert as routed (one more slot per token, its copies among the redundant ones).
//
// Roofline per step on one device: compute = FLOPs / (mfu × peak); memory = the weights it touches + its KV
// cache reads / memory bandwidth; communication = dispatch + combine of its tokens (comm.h) per MoE layer.
// With DeepSeek's two-micro-batch overlap a step takes max(compute, memory, communication), without it
// max(compute, memory) + communication. Weights: linear layers at `weight_bytes` per parameter (FP8 = 1), the
// embedding and head in BF16; KV cache (kv_lora + rope values per token and layer) at `kv_bytes` per value.
#pragma once

#include <cstdint>

#include "model/config.h"
#include "plan/cluster.h"
#include "plan/comm.h"
#include "plan/hardware.h"

namespace dsv3::plan {

enum class Phase { Prefill, Decode };

struct InferenceOptions {
  Phase phase = Phase::Prefill;
  int attention_tp = 1;
  int redundant_experts = 0;
  bool shared_as_routed = false;
  int64_t batch = 1;        // sequences per attention data-parallel group per step
  int64_t prompt = 4096;    // prefill: tokens per sequence
  int64_t context = 4096;   // decode: cached tokens per sequence
  double weight_bytes = 1;  // per linear-layer parameter
  double kv_bytes = 2;      // per cached value (BF16)
  double mfu = 0.45;
  bool overlap = true;
  Wire wire = Wire::Fp8Bf16;
  int max_nodes = 4;
};

struct InferencePlan {
  double weights = 0, kv_cache = 0;  // bytes per device
  double total() const { return weights + kv_cache; }
  int64_t max_batch = 0;                               // sequences per attention group that fit beside the weights
  double tokens_per_step = 0;                          // per device
  double compute = 0, memory = 0, comm = 0, step = 0;  // seconds per step
  double tokens_per_s_device = 0, tokens_per_s_node = 0, tokens_per_s = 0;
  double flops_per_token = 0;
};

// Validates like training (k.pp must be 1); throws dsv3::Error naming the flag.
InferencePlan plan_inference(const ModelConfig& c, const Cluster& k, const Hardware& hw, const InferenceOptions& o);

}  // namespace dsv3::plan
