// Data parallelism for the trainer (DESIGN.md, dist/; docs/scale-out-training-dp.md): N = dp × ep ranks each
// run forward_backward over their own share of the step's sequences; the gradients are summed in buckets
// that start while the backward is still running; the AdamW moments are sharded ZeRO-1 style.
//
// Who holds what (dist/layout.h): every tensor but the routed experts is replicated on all N ranks; routed
// expert e lives on the dp ranks of EP rank expert_owner(e) (one per replica).
//   gradients  each rank computes its sequences' gradient with grad_scale = its rows / all rows, so the sum
//              over the ranks holding a tensor is the single-process gradient of the whole batch: non-expert
//              tensors are summed over the world, routed-expert tensors over the DP group (expert gradients
//              already hold every EP rank's tokens, train/expert_parallel.h).
//   buckets    the trainable tensors in the order the backward finishes them (MTP modules, layers last to
//              first, then embedding / norm / head: StepHooks::grads_ready), packed into buckets of about
//              bucket_bytes per communicator (dist/bucket_allreduce.h); a bucket's iallreduce starts when
//              grads_ready has reported all its layers, and finish_grads waits before the optimizer.
//   ZeRO-1     every tensor has one owner among the ranks replicating it: a greedy whole-tensor partition
//              balancing floats (largest first onto the least-loaded rank, ties to the lower rank) — each EP
//              rank's experts over its DP group first, then the non-expert tensors over the world starting
//              from those loads. The owner alone keeps the tensor's moments and runs its AdamW update; then
//              sync_params all-gathers the updated tensors to the replicas (one allgatherv over the world,
//              one over the DP group). The owner also writes the tensor into distributed checkpoints.
//   norm       the global gradient norm sums each owner's squares over its owned tensors (every unique
//              tensor counted once), gathered and added in rank order: the same bits on every rank.
// Reductions of scalars (losses, norms) are gathered and summed in rank order so every rank holds the same
// bits; integer loads are summed exactly. With one rank everything degenerates to the single-process
// arithmetic (a sum 0 + x), so a run without mpirun is bit-identical to the trainer without this file.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "dist/bucket_allreduce.h"
#include "dist/comm.h"
#include "dist/layout.h"
#include "model/config.h"
#include "train/params.h"
#include "train/step.h"

namespace dsv3::train {

// The ZeRO-1 owner (rank of the stage group: the world rank when pp = 1) of every tensor of the model (every
// routed expert included) that `stage` holds — its decoder layers, embedding, tail (pipeline_scope; its expert
// range is ignored: every expert is partitioned over its EP rank's DP group) — and the floats each rank owns.
// A function of the config, the layout's dp × ep and the stage's tensors only: every rank computes the same.
struct ZeroPartition {
  std::unordered_map<std::string, int> owner;
  std::vector<int64_t> floats;            // [stage ranks] parameter floats owned (trainable or not)
  std::vector<int64_t> trainable_floats;  // [stage ranks] of them, trainable ones (2 moments each)
};
ZeroPartition zero_partition(const ModelConfig& c, const dist::Layout& layout, const SchemaScope& stage = {});

// Pipeline parallelism (train/pipeline.h) over a pp × dp × ep layout: the DataParallel of one pipeline rank
// runs over its stage group (the dp × ep ranks holding its stages' tensors); `pp` is the rank's lane over the
// pipeline ranks, and `counted[i]` marks the tensors whose gradient this pipeline rank counts in the global
// norm (the lowest holder of a tensor held by several pipeline ranks: DualPipe's mirrored stages, the
// embedding on the first and last stage), so every unique tensor is counted once.
struct PipelineShare {
  dist::Comm* pp = nullptr;
  std::vector<char> counted;  // per tensor of params
};

struct DataParallelOptions {
  size_t bucket_bytes = size_t(4) << 20;
  PipelineShare pipeline;  // pp null: no pipeline
};

class DataParallel {
 public:
  // params / grads: this rank's tensors (Params(c, expert scope of its EP rank), with pipeline parallelism
  // intersected with its stages' pipeline_scope); grads must outlive this. world: the ranks of the dp × ep
  // layout (the stage group, groups.stage, under pipeline parallelism; the world otherwise).
  DataParallel(const ModelConfig& c, dist::Comm& world, const dist::Groups& groups, const Params& params, Params& grads,
               const DataParallelOptions& o);

  int ranks() const { return world_.size(); }
  int rank() const { return world_.rank(); }
  // Per tensor of params: this rank is its ZeRO-1 owner.
  const std::vector<char>& owned() const { return owned_; }
  const ZeroPartition& partition() const { return part_; }

  // Before the step's first micro-batch.
  void begin_step();
  // Hooks for the step's LAST micro-batch: each finished layer starts its buckets.
  StepHooks hooks();
  // After the last micro-batch: the remaining buckets, then wait; grads hold the whole batch's gradient.
  void finish_grads();
  // Buckets started by grads_ready before finish_grads in the last step, and the total.
  size_t buckets_overlapped() const;
  size_t buckets_total() const;

  // Global gradient norm over the unique trainable tensors (each counted once; summed over the stage groups
  // under pipeline parallelism), and clipping as torch.nn.utils.clip_grad_norm_ of the owned tensors (the
  // only ones the optimizer reads). Returns the norm.
  double clip(Params& grads, double max_norm) const;
  // After the owners' optimizer update: every replica gets the owners' values.
  void sync_params(Params& params) const;

  // Sums over the world in rank order (identical bits everywhere; one rank: 0 + x).
  std::vector<double> sum(const std::vector<double>& v) const;
  void sum_exact(std::vector<int64_t>& v) const;

  // "rank r: ..." line: tensors owned, optimizer bytes with and without ZeRO-1.
  std::string describe_partition(int64_t optimizer_bytes, int64_t unsharded_optimizer_bytes) const;

 private:
  struct Group {
    dist::Comm* comm = nullptr;
    std::vector<size_t> tensors;  // local indices, packed by owner (rank in comm), then index
    std::vector<int64_t> counts, displs;
    std::unique_ptr<dist::BucketedAllreduce> reduce;
  };
  void build(Group& g, dist::Comm& comm, bool experts, Params& grads, size_t bucket_bytes,
             const std::vector<int>& comm_owner);

  dist::Comm& world_;
  PipelineShare pipeline_;
  ZeroPartition part_;
  std::vector<char> owned_;
  std::vector<int> owner_;  // per local tensor: world rank
  Group replicated_, experts_;
};

}  // namespace dsv3::train
