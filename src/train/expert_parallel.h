// Expert parallelism in the training step (DESIGN.md, scale-out; docs/scale-out-training-ep.md). The ranks of
// an EP group each hold every weight except the routed experts, of which each holds its contiguous block
// (dist/layout.h expert_scope). Every rank runs embedding, attention, norms, dense MLPs, routers, shared
// experts, head and losses over ITS OWN sequences (attention data-parallel); a MoE layer's routed experts run
// on their owners over the rows every rank routed to them:
//
//   forward   dispatch  counts (all-to-all), then x of each slot (alltoallv) source → owner
//             owner     ffn_forward per owned expert over all rows it received (activations saved there)
//             combine   y of each slot (alltoallv) owner → source; the source gates and sums as without EP
//   backward  dispatch  dy = g_k · dout of each slot source → owner
//             owner     ffn_backward per owned expert: the expert's weight gradients accumulate ON THE OWNER,
//                       over every rank's tokens; dx of each slot back owner → source
//             source    router / gate-weight gradients from its own slots, exactly as without EP
//
// Row order on the owner is (expert, source EP rank, source slot), so with the sequences of a batch split
// over the EP ranks in order an expert sees the same rows in the same order as the single-process step.
// Every EP rank must run the same MoE layers in the same order (same MTP modules, all forward_backward or
// all evaluate): train/step.cc checks that up front, before the first exchange.
//
// Two-micro-batch overlap (ExpertParallel::overlap, train/micro_batch_turns.h): the step runs a call's
// sequences as two micro-batches that take turns; every exchange is posted non-blocking (ialltoallv) and the
// micro-batch hands the turn to the other one until it needs the rows — so one micro-batch's dispatch or
// combine is in flight while the other computes its attention, router, shared expert or experts (and the
// same with the transposes in backward). The schedule is in docs/scale-out-training-ep.md.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "dist/comm.h"
#include "model/config.h"
#include "model/schema.h"
#include "train/ffn_grad.h"
#include "train/layout.h"
#include "train/params.h"
#include "train/step_context.h"

namespace dsv3::train {

struct ExpertParallel {
  dist::Comm* ep = nullptr;  // the EP group (dist::Groups::ep): its ranks exchange rows at every MoE layer
  int64_t n_experts = 0;     // routed experts of the model
  SchemaScope scope;         // the experts this rank owns: dist::expert_scope(n_experts, ep->size(), ep->rank())
  // Two-micro-batch overlap: forward_backward / evaluate split each call's sequences into two micro-batches
  // whose exchanges overlap each other's compute. Used only when every EP rank of the call asks for it and
  // has at least 2 sequences, and not with BalanceMode::AuxLoss (its loss is over the call's whole batch);
  // the step decides from its up-front allgather, so all ranks agree. Results equal the one-batch step up to
  // the order of the gradient sums (weights' gradients are summed over the two micro-batches).
  bool overlap = false;

  // The context of EP rank ep.rank() of ep.size() for a MoE model (errors: not a MoE model, more EP ranks
  // than experts).
  static ExpertParallel make(const ModelConfig& c, dist::Comm& ep);
  int size() const { return ep->size(); }
};

// Where a step's EP exchanges spent their time on this rank (train/step.h StepResult::comm). With the step's
// wall time t, compute = t − post_s − wait_s.
struct CommTimes {
  double post_s = 0.0;       // posting non-blocking exchanges (ialltoallv): communication issue
  double wait_s = 0.0;       // inside blocking exchanges and wait(): waiting for the peers and the copies
  double in_flight_s = 0.0;  // between post and wait, while the other micro-batch ran (overlap window)
  int64_t exchanges = 0;     // all-to-alls: counts, dispatch and combine per MoE layer, the transposes
  int64_t bytes_sent = 0;    // payload this rank sent to the other EP ranks
  CommTimes& operator+=(const CommTimes& o);
};

// What one MoE layer's exchange saved in the forward for its backward.
struct EpActs {
  // Source side (this rank's tokens).
  std::vector<int64_t> send_slots;  // [S] local slots r·K + k in wire order: by owner, then expert, then slot
  std::vector<int64_t> send_rows;   // [ep] rows sent to each EP rank
  std::vector<int64_t> recv_rows;   // [ep] rows received from each EP rank
  // Owner side (the rows every rank routed to this rank's experts).
  std::vector<int64_t> expert_rows;  // [owned + 1] offsets of each owned expert's rows in x
  std::vector<int64_t> wire_pos;     // [R] position in x of the i-th row received (wire order)
  std::vector<float> x;              // [R, hidden] received rows, by owned expert, then source rank, then slot
  std::vector<FfnActs> acts;         // [owned] each owned expert's saved activations over its rows
};

// The routed experts of one MoE layer under EP. slots[e]: this rank's slots (r·K + k, ascending) routed to
// expert e (all E experts); x [m, hidden]: this rank's ffn_norm'ed rows; experts: the layer's routed expert
// weights (bound for the owned ones). Writes yslot [m·K, hidden] (expert output of each slot, before its gate)
// and saves what the backward needs in a. `meanwhile` (if set) runs once while the counts are in flight (the
// layer's shared expert). With ctx.turn the exchanges are non-blocking and the turn goes to the other
// micro-batch while they are in flight; ctx.comm_times (if set) gets their times. Collective over ep.ep.
void ep_experts_forward(const StepContext& ctx, const ExpertParallel& ep, const std::vector<FfnP>& experts,
                        const float* x, const std::vector<std::vector<int64_t>>& slots, int64_t top_k, float* yslot,
                        EpActs& a, const std::function<void()>& meanwhile = {});

// The transpose: dout [m, hidden], gates [m·K]; dy of slot (r, k) = gates[r·K + k] · dout[r]. The owned
// experts' weight gradients accumulate into gexperts; dxslot [m·K, hidden] gets ∂L/∂x of every slot
// (overwritten). `meanwhile` (if set) runs once while dy is in flight (the shared expert's backward).
// ctx.turn and ctx.comm_times as in the forward. Collective over ep.ep.
void ep_experts_backward(const StepContext& ctx, const ExpertParallel& ep, const std::vector<FfnP>& experts,
                         const std::vector<FfnG>& gexperts, const EpActs& a, const float* gates, const float* dout,
                         int64_t top_k, float* dxslot, const std::function<void()>& meanwhile = {});

// Gradient reduction of an EP (× DP) step whose ranks each called forward_backward over their own sequences
// with grad_scale = (their rows) / (all rows): every tensor but the routed experts is summed over `world`
// (every replica and EP rank holds it), the routed experts over `dp` (the ranks holding the same experts).
// Afterwards each rank holds the gradient of the whole batch for the tensors it holds. Blocking; for overlap
// with the backward see StepHooks (train/step.h).
void allreduce_ep_grads(Params& grads, dist::Comm& world, dist::Comm& dp);

// EP rank `root` assembles the full tensor set (every routed expert: Params(c)) from the EP ranks' shares
// (each rank's `share` holds exactly the tensors of Params(c, ep.scope)); the others get nullopt. Tensors
// other than routed experts come from root's share. Collective over ep.ep (one gatherv).
std::optional<Params> gather_experts(const ModelConfig& c, const Params& share, const ExpertParallel& ep, int root);

}  // namespace dsv3::train
