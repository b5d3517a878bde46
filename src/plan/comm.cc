#include "plan/comm.h"

#include <algorithm>

namespace dsv3::plan {

AllToAll moe_all_to_all(const ModelConfig& c, const Cluster& k, const Hardware& hw, Wire wire, int max_nodes,
                        int extra_slots) {
  AllToAll a;
  const double h = double(c.hidden_size);
  const double slots = double(c.num_experts_per_tok + extra_slots);
  const double G = std::min(k.gpus_per_node, k.ep), nodes = k.ep_nodes();
  if (wire == Wire::Fp8Bf16) {
    a.dispatch_bytes_per_slot = h + 4 * h / 128;
    a.combine_bytes_per_slot = 2 * h;
    const double dest = std::min<double>(max_nodes, nodes);
    a.remote_nodes_per_token = nodes > 1 ? dest * (1 - 1 / nodes) : 0;
    const double per_row = a.dispatch_bytes_per_slot + a.combine_bytes_per_slot;
    a.inter_node_bytes = a.remote_nodes_per_token * per_row;  // one copy per destination node
    a.intra_node_bytes = slots * (1 - 1 / G) * per_row;       // forwarded unless the relay GPU holds the expert
  } else {
    a.dispatch_bytes_per_slot = 4 * (h + 1);
    a.combine_bytes_per_slot = 4 * h;
    const double per_row = a.dispatch_bytes_per_slot + a.combine_bytes_per_slot;
    const double ep = k.ep;
    a.remote_nodes_per_token = nodes > 1 ? std::min<double>(slots, nodes) * (1 - 1 / nodes) : 0;
    a.intra_node_bytes = slots * (G - 1) / ep * per_row;  // slots owned by another rank of the same node
    a.inter_node_bytes = slots * (ep - G) / ep * per_row;
  }
  a.seconds_per_token =
      std::max(a.inter_node_bytes / hw.inter_node_bandwidth, a.intra_node_bytes / hw.intra_node_bandwidth);
  a.latency_per_layer = k.ep > 1 ? 2 * hw.link_latency : 0;
  return a;
}

double zero1_seconds(double replicated, double replicated_group, double experts, double expert_group, const Cluster& k,
                     const Hardware& hw, Wire wire) {
  const double gather_bytes = wire == Wire::Fp8Bf16 ? 2 : 4;
  auto ring = [&](double params, double n) {
    if (n <= 1) return 0.0;
    return params * (4 + gather_bytes) * (n - 1) / n;  // reduce-scatter + all-gather, each (n-1)/n of the data
  };
  const double bw = k.nodes > 1 ? hw.inter_node_bandwidth : hw.intra_node_bandwidth;
  return (ring(replicated, replicated_group) + ring(experts, expert_group)) / bw;
}

}  // namespace dsv3::plan
