// How a job's ranks are arranged (DESIGN.md, dist/): N = pp × dp × ep ranks, EP innermost, then DP, then PP
// (Megatron's order): world rank r = (pp_rank · dp + dp_rank) · ep + ep_rank. So the ranks of one EP group
// are consecutive (on one node when a hostfile lists nodes in order — the group that exchanges tokens at
// every MoE layer), a pipeline stage's dp × ep ranks (its "stage group") are the next block, and the pipeline
// ranks of one lane (dp_rank, ep_rank) are dp · ep apart (the point-to-point neighbours, the least traffic).
// Routed experts are dealt to the EP ranks in contiguous blocks: EP rank i owns [⌊E·i/ep⌋, ⌊E·(i+1)/ep⌋).
// Every rank of a group runs attention over its own sequences (attention data-parallel); the rest of a
// stage's weights are replicated over its stage group. Without pipeline parallelism (pp = 1) the stage
// group is the world.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "dist/comm.h"
#include "model/schema.h"

namespace dsv3::dist {

struct Layout {
  int dp = 1, ep = 1, pp = 1;
  int ranks() const { return pp * dp * ep; }
  int stage_ranks() const { return dp * ep; }  // the ranks of one pipeline stage (one pp rank)
};

// Checks a requested layout against the world and the model: pp, dp, ep ≥ 1, pp · dp · ep = world size (0
// for dp means "world size / (pp · ep)"), ep ≤ n_routed_experts (ep > 1 needs a MoE model). Errors name the
// flag.
Layout make_layout(int world_size, int dp, int ep, int64_t n_routed_experts, int pp = 1);

// The routed experts EP rank `ep_rank` of `ep` owns.
SchemaScope expert_scope(int64_t n_routed_experts, int ep, int ep_rank);
// The EP rank owning expert e.
int expert_owner(int64_t n_routed_experts, int ep, int64_t e);

// This rank's communicators for a layout over `world`: `ep` joins the ranks of its EP group (size
// layout.ep), `dp` the ranks of its pipeline stage holding the same experts in the other replicas (size
// layout.dp), `stage` the dp × ep ranks of its pipeline stage (rank = dp_rank · ep + ep_rank, the lane),
// `pp` the ranks of its lane over the pipeline stages (size layout.pp, rank = pp_rank).
struct Groups {
  Layout layout;
  int rank = 0;  // world rank
  int ep_rank = 0, dp_rank = 0, pp_rank = 0;
  int lane() const { return dp_rank * layout.ep + ep_rank; }
  std::unique_ptr<Comm> ep, dp, stage, pp;
};
Groups make_groups(Comm& world, const Layout& layout);

// One line for the start of a run, e.g. "4 ranks (mpi): dp 2 × ep 2; rank 1: replica 0, EP rank 1, experts
// 128-255" (with pp > 1: "pp 2 × dp 2 × ep 2; rank 5: pipeline rank 1, replica 0, ...").
std::string describe(const Groups& g, const Comm& world, int64_t n_routed_experts);

}  // namespace dsv3::dist
