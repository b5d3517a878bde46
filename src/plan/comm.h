// Communication model: the MoE dispatch / combine all-to-all per token and layer, and the data-parallel
// gradient traffic per step.
//
// Wire formats:
//   Fp8Bf16 (DeepSeek-V3 §3.2.2, §3.3.2): dispatch sends FP8 rows (1 byte per value + one FP32 scale per 128),
//     combine returns BF16 rows; node-limited routing sends a token to at most M nodes (M = 4), once per node
//     over InfiniBand, and the receiving GPU forwards it over NVLink to the GPUs holding its experts; IB and
//     NVLink run concurrently, so a token costs the longer of its two transfers.
//   F32 (what dsv3 sends today, docs/scale-out.md): one float32 row per (token, expert) slot to the expert's
//     owner, (hidden + 1) × 4 bytes out and hidden × 4 back, no two-hop forwarding.
#pragma once

#include "model/config.h"
#include "plan/cluster.h"
#include "plan/hardware.h"

namespace dsv3::plan {

enum class Wire { Fp8Bf16, F32 };

struct AllToAll {
  double dispatch_bytes_per_slot = 0, combine_bytes_per_slot = 0;
  double remote_nodes_per_token = 0;  // expected destination nodes other than the token's own
  // Per token and MoE layer, dispatch + combine of one forward (the backward moves the same again):
  double inter_node_bytes = 0;  // InfiniBand (CPU: network)
  double intra_node_bytes = 0;  // NVLink (CPU: shared memory)
  double seconds_per_token = 0;
  double latency_per_layer = 0;  // two exchanges (dispatch, combine) per MoE layer and pass
};

// Routing a token to num_experts_per_tok experts of an EP group of `k.ep` ranks over k.ep_nodes() nodes, at most
// `max_nodes` of them (the destination nodes taken as uniformly spread; the token's own node among them with
// probability M / nodes). `extra_slots` adds always-selected slots (decode's shared expert treated as routed).
AllToAll moe_all_to_all(const ModelConfig& c, const Cluster& k, const Hardware& hw, Wire wire, int max_nodes,
                        int extra_slots = 0);

// Seconds per training step of the ZeRO-1 data-parallel exchange on one device: gradients reduce-scattered
// (FP32) and updated weights all-gathered (BF16 for Fp8Bf16, FP32 for F32) over the devices holding each
// tensor — `replicated` parameters over `replicated_group` devices, `experts` over `expert_group` — ring
// algorithm over InfiniBand (CPU: the network, or shared memory on one node).
double zero1_seconds(double replicated, double replicated_group, double experts, double expert_group, const Cluster& k,
                     const Hardware& hw, Wire wire);

}  // namespace dsv3::plan
