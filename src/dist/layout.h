// How a job's ranks are arranged (DESIGN.md, dist/): N = dp × ep ranks; world rank r is EP rank r % ep of
// data-parallel replica r / ep, so the ranks of one EP group are consecutive (on one node when a hostfile
// lists nodes in order — the group that exchanges tokens at every MoE layer). Routed experts are dealt to
// the EP ranks in contiguous blocks: EP rank i owns [⌊E·i/ep⌋, ⌊E·(i+1)/ep⌋). Every rank of a group runs
// attention over its own sequences (attention data-parallel); the rest of the weights are replicated.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "dist/comm.h"
#include "model/schema.h"

namespace dsv3::dist {

struct Layout {
  int dp = 1, ep = 1;
  int ranks() const { return dp * ep; }
};

// Checks a requested layout against the world and the model: dp, ep ≥ 1, dp · ep = world size (0 for dp
// means "world size / ep"), ep ≤ n_routed_experts (ep > 1 needs a MoE model). Errors name the flag.
Layout make_layout(int world_size, int dp, int ep, int64_t n_routed_experts);

// The routed experts EP rank `ep_rank` of `ep` owns.
SchemaScope expert_scope(int64_t n_routed_experts, int ep, int ep_rank);
// The EP rank owning expert e.
int expert_owner(int64_t n_routed_experts, int ep, int64_t e);

// This rank's communicators for a layout over `world`: `ep` joins the ranks of its EP group (size
// layout.ep), `dp` the ranks holding the same experts in the other replicas (size layout.dp).
struct Groups {
  Layout layout;
  int rank = 0;  // world rank
  int ep_rank = 0, dp_rank = 0;
  std::unique_ptr<Comm> ep, dp;
};
Groups make_groups(Comm& world, const Layout& layout);

// One line for the start of a run, e.g. "4 ranks (mpi): dp 2 × ep 2; rank 1: replica 0, EP rank 1, experts
// 128-255".
std::string describe(const Groups& g, const Comm& world, int64_t n_routed_experts);

}  // namespace dsv3::dist
