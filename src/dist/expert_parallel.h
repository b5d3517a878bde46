// Expert parallelism for inference (DESIGN.md, scale-out; DeepSeek-V3 §3.4's deployment): the MoE layer's
// ExpertExecutor (model/expert_executor.h) over an EP communicator. Each EP rank holds the routed experts of
// its block (dist::expert_scope) and the layer's replicated rest (router gate, shared experts). One call of
// run(), made by every rank of the group in lockstep whatever its row count (0 included), is
//
//   1. counts    alltoall: how many slots (row, k) this rank sends to each rank
//   2. dispatch  one alltoallv of the slots' input rows, each tagged with its expert id ([hidden + 1]
//                floats); the shared expert runs over this rank's own rows meanwhile
//   3. compute   every received slot through its expert: rows grouped by expert in ascending order, one
//                fused SwiGLU pass over all of them in the decode regime (kernels::swiglu_experts), one FFN
//                per expert otherwise — each output a row of its own, no sums
//   4. combine   one alltoallv of the outputs back, each to the slot it came from
//   5. sum       on the source rank, in the order LocalExperts uses: out[row] += gate · y for the tasks in
//                ascending expert order, then + shared(x)
//
// so the result equals the single-process run: each expert output is computed by the same kernel over the
// same rows (bit for bit when the expert sees the same rows in the same order, as for one sequence), and
// the sums are done in the same order.
//
// Redundant experts (DeepSeek-V3 §3.4: "duplicates high-load experts"): with Redundancy::experts = K, each
// layer counts the slots routed to every expert over its first `warmup` calls, sums the counts over the
// group (one allreduce, so every rank decides alike), and gives each of the K most loaded experts one
// extra copy on the EP rank with the least expected load (an expert's load shared evenly between its
// copies; ties: the lower expert id, the lower rank). That rank binds the expert's weights then (from the
// checkpoint, through the model's ExpertBinder). From then on each source sends every slot of a duplicated
// expert to the copy whose rank it has given the fewest rows so far in this call (the rows of
// non-duplicated experts counted first; ties: the lower rank) — deterministic, and the sum order is
// unchanged.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "dist/comm.h"
#include "model/config.h"
#include "model/expert_executor.h"
#include "model/weights.h"

namespace dsv3::dist {

struct Redundancy {
  int64_t experts = 0;  // K: extra copies per MoE layer, one for each of its K most loaded experts
  int64_t warmup = 8;   // calls of each layer whose routed load decides which experts (>= 0)
};

// Routed rows one rank's executors computed, one entry per run() call in call order (the layers
// interleaved as the forwards run them, the same sequence on every rank of the group).
struct ExpertLoad {
  std::vector<int64_t> rows;        // slots received and computed by this rank
  std::vector<int64_t> layer_call;  // the call's index among its own layer's calls (0, 1, ...)
};

class EpExperts final : public ExpertExecutor {
 public:
  // `ep`: the group (it and `layer`'s weights outlive the executor); `layer.moe.experts` must hold this
  // rank's block. `bind` is needed when redundancy.experts > 0; `load` (optional) receives the statistics.
  EpExperts(Comm& ep, const ModelConfig& c, const LayerWeights& layer, const kernels::LinearOptions& lin,
            Redundancy redundancy = {}, ExpertBinder bind = {}, std::shared_ptr<ExpertLoad> load = nullptr);

  void run(std::span<const ExpertTask> tasks, const float* x, int64_t m, float* out) override;

  // The EP ranks holding expert e: its owner first, then its redundant copies (none before the plan).
  const std::vector<int>& holders(int64_t e) const { return holders_[size_t(e)]; }
  bool planned() const { return planned_; }

 private:
  void plan_redundancy();  // collective over the group
  const FfnWeights& expert(int64_t e) const;
  void compute(int64_t n_recv);  // step 3 over recv_ into y_

  Comm& ep_;
  const ModelConfig& c_;
  const MoeWeights& w_;
  int64_t layer_ = 0, hidden_ = 0;
  kernels::LinearOptions lin_;
  Redundancy red_;
  ExpertBinder bind_;
  std::shared_ptr<ExpertLoad> load_;

  std::vector<std::vector<int>> holders_;  // [E]
  std::vector<FfnWeights> extra_;          // [E]: the redundant copies this rank holds (unset elsewhere)
  std::vector<std::vector<float>> extra_owned_;
  std::vector<int64_t> seen_;  // [E] warm-up load
  bool planned_ = false;
  int64_t calls_ = 0;

  // Scratch reused across calls.
  std::vector<int64_t> send_counts_, recv_counts_, sdispl_, rdispl_, fill_, busy_;
  std::vector<int64_t> sc_, sd_, rc_, rd_;  // the same in floats
  std::vector<int> dest_;                   // [slots] destination rank
  std::vector<int64_t> pos_;                // [slots] row in the send (and combine) buffer
  std::vector<float> send_, recv_, y_, back_, shared_;
  std::vector<int64_t> ecount_, eoff_, order_;  // received rows grouped by expert
  std::vector<float> xin_, tmp_;
  std::vector<kernels::SwigluExpert> fused_;
  FfnScratch ffn_;
};

}  // namespace dsv3::dist
