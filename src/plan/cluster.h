// The layout a plan describes: nodes × devices per node = PP × DP × EP devices, the pipeline schedule, and how
// the decoder layers fall into pipeline stages.
//
// As in dist/layout.h, the EP ranks of a pipeline stage are consecutive (so an EP group spans ⌈EP / G⌉ nodes)
// and attention runs data-parallel over all DP × EP ranks of a stage; DP counts the replicas of the expert
// layout. DeepSeek-V3's 2048 H800s are PP 16 × DP 2 × EP 64 (EP64 over 8 nodes, 128-way ZeRO-1 data parallelism
// for everything but the routed experts).
#pragma once

#include <string>
#include <vector>

#include "model/config.h"

namespace dsv3::plan {

enum class Schedule { OneFOneB, ZB1P, DualPipe, DualPipeV };
Schedule parse_schedule(const std::string& s);  // "1f1b" | "zb1p" | "dualpipe" | "dualpipev"; throws naming --schedule
const char* schedule_name(Schedule s);

struct Cluster {
  int nodes = 1, gpus_per_node = 1;
  int pp = 1, ep = 1, dp = 1;
  int world() const { return nodes * gpus_per_node; }
  int ep_nodes() const { return (ep + gpus_per_node - 1) / gpus_per_node; }  // nodes one EP group spans
};

// Throws dsv3::Error naming the flag: pp × ep × dp ≠ nodes × gpus-per-node, EP above the routed experts,
// more pipeline stages than decoder layers, DualPipe with an odd PP. `expert_copies`: routed experts plus the
// redundant copies an inference deployment adds (0: the routed experts).
void validate(const ModelConfig& c, const Cluster& k, Schedule s, int64_t expert_copies = 0);

// A pipeline stage: decoder layers [first_layer, first_layer + n_layers); the first stage holds the
// embedding, the last the final norm, the head and the MTP modules.
struct Stage {
  int64_t first_layer = 0, n_layers = 0;
  bool embedding = false, head = false;
};

// Stages of the model: PP for 1F1B / ZB1P / DualPipe, 2·PP chunks for DualPipeV (each device holds two, in a V).
int stage_count(Schedule s, int pp);
// The contiguous split of the decoder layers into n_stages stages (each at least one layer) that minimises the
// largest stage's training FLOPs per token at sequence length `seq` (flops.h), the last stage's including the
// head and the MTP modules: the balance the issue asks of the real split, computed instead of measured.
std::vector<Stage> split_stages(const ModelConfig& c, int n_stages, int64_t seq);
// The stages pipeline device d (0 ≤ d < pp) holds: 1F1B / ZB1P {d}; DualPipe {d, pp−1−d} (the mirrored stage of
// the reverse direction: 2× parameters, DeepSeek-V3 Table 2); DualPipeV {d, 2·pp−1−d}.
std::vector<int> device_stages(Schedule s, int pp, int d);

}  // namespace dsv3::plan
