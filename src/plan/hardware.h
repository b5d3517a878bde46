// Hardware descriptions for the planner: one accelerator (H800, H100, B200) or one CPU server, and the links
// between devices. Every number is a per-device rate (a GPU; for a CPU server, one rank's share of the node,
// see share_of_node) and cites its source in hardware.cc.
#pragma once

#include <string>

namespace dsv3::plan {

struct Hardware {
  std::string name;
  bool cpu = false;  // a CPU server (cpu:FILE): rates are per node, shared by the ranks on it
  double peak_flops =
      0;  // what the roofline counts FLOPs against: dense BF16 peak (CPU: measured fp32 GEMM rate), FLOP/s
  double fp8_flops = 0;             // dense FP8 tensor-core peak, FLOP/s (0: none)
  double memory_bytes = 0;          // HBM (CPU: RAM) per device
  double memory_bandwidth = 0;      // HBM (CPU: RAM read) bytes/s per device
  double intra_node_bandwidth = 0;  // NVLink (CPU: the ranks' shared-memory all-to-all) bytes/s per device, one way
  double inter_node_bandwidth = 0;  // InfiniBand (CPU: the node's network) bytes/s per device, one way
  double link_latency = 0;          // seconds per all-to-all exchange (start-up cost)
  int cores = 0;                    // CPU: cores of the node (0 for GPUs)
  double mfu = 0.45;                // default model-FLOPs utilisation of peak_flops while computing (the --mfu default)
};

// "h800" | "h100" | "b200" | "cpu:FILE"; anything else throws dsv3::Error naming --hardware.
Hardware parse_hardware(const std::string& spec);

// A cpu:FILE description (docs/scale-out.md "Planning a cluster" lists its keys). Throws dsv3::Error naming
// the file and the key on a missing, mistyped, non-positive or unknown key.
Hardware load_cpu_hardware(const std::string& path);

// One rank's share of a node that runs `ranks_per_node` ranks: for a CPU server the node's compute, memory,
// memory bandwidth and network are divided among its ranks; a GPU is its own device (returned unchanged).
Hardware share_of_node(const Hardware& node, int ranks_per_node);

}  // namespace dsv3::plan
