// Training step time and GPU-hours from a roofline: every device computes at mfu × its peak (hardware.cc says
// why 0.45), the pipeline adds its bubble (bubble.h) with F, B, W from the same roofline, the MoE all-to-all
// (comm.h) is hidden under the other chunk's compute by DualPipe / DualPipeV (exposed where it exceeds it) and
// fully exposed under 1F1B / ZB1P, and the ZeRO-1 gradient / weight exchange at the end of a step is exposed.
// Not modelled: pipeline point-to-point sends (one hidden × BF16 row per token and stage boundary, overlapped),
// the optimizer's elementwise update, load imbalance between experts, the batch-size warm-up.
#pragma once

#include <cstdint>

#include "model/config.h"
#include "plan/bubble.h"
#include "plan/cluster.h"
#include "plan/comm.h"
#include "plan/hardware.h"
#include "plan/memory.h"

namespace dsv3::plan {

struct TrainOptions {
  int64_t seq = 4096;       // tokens per sequence
  int64_t batch = 15360;    // sequences per optimizer step (DeepSeek-V3 §4.2: 15360 after the warm-up)
  int64_t micro_batch = 1;  // sequences per micro-batch on one device
  double tokens = 14.8e12;  // training tokens the GPU-hours are for
  double mfu = 0.45;        // fraction of peak_flops achieved while computing
  Schedule schedule = Schedule::DualPipe;
  Wire wire = Wire::Fp8Bf16;
  int max_nodes = 4;  // node-limited routing, M
};

struct StepTime {
  int64_t micro_batches = 0;                 // per pipeline and step (both directions together under DualPipe)
  double micro_tokens = 0;                   // tokens per micro-batch
  ChunkTimes chunk;                          // the slowest device's mean chunk
  double a2a_forward = 0, a2a_backward = 0;  // all-to-all seconds per micro-batch and chunk
  double compute = 0;                        // per step: micro-batches × (F + B) on the slowest device
  double exposed_a2a = 0;                    // per step
  double bubble = 0;
  double zero1 = 0;  // ZeRO-1 exchange per step
  double step = 0;   // seconds
  double tokens_per_step = 0;
  double bubble_fraction() const { return step > 0 ? bubble / step : 0; }
  double device_hours_per_trillion_tokens = 0;
  double device_hours = 0;     // for opts.tokens
  double achieved_mfu = 0;     // model FLOPs (3 × forward, no recompute) per device-second / peak
  double flops_per_token = 0;  // training FLOPs per token (3 × forward + recompute)
};

// Throws dsv3::Error naming the flag when the batch does not split into micro-batches over the DP × EP ranks,
// or DualPipe gets fewer than 2 × PP micro-batches.
StepTime training_step(const ModelConfig& c, const Cluster& k, const Hardware& hw, const TrainOptions& o);

}  // namespace dsv3::plan
