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

// Where one rank's MoE time went, summed over its executors' calls (seconds of steady_clock):
//   sync     the counts all-to-all that opens every call: mostly waiting for the slowest rank of the group
//            to reach this layer (its attention, its share of the previous layer's experts)
//   comm     posting the dispatch and combine all-to-alls and waiting for them to complete: the transfers
//            not hidden behind other work
//   experts  the routed experts over the rows received, and the shared expert over this rank's own rows
struct ExchangeTime {
  double sync = 0, comm = 0, experts = 0;
  int64_t calls = 0;
};

// Routed rows one rank's executors computed, one entry per call in call order (a call: run(), or one
// micro-batch's begin … end; the layers interleaved as the forwards run them, the same sequence on every
// rank of the group), and the times.
struct ExpertLoad {
  std::vector<int64_t> rows;        // slots received and computed by this rank
  std::vector<int64_t> layer_call;  // the call's index among its own layer's calls (0, 1, ...)
  ExchangeTime time;
};

class EpExperts final : public ExpertExecutor {
 public:
  // `ep`: the group (it and `layer`'s weights outlive the executor); `layer.moe.experts` must hold this
  // rank's block. `bind` is needed when redundancy.experts > 0; `load` (optional) receives the statistics.
  EpExperts(Comm& ep, const ModelConfig& c, const LayerWeights& layer, const kernels::LinearOptions& lin,
            Redundancy redundancy = {}, ExpertBinder bind = {}, std::shared_ptr<ExpertLoad> load = nullptr);

  void run(std::span<const ExpertTask> tasks, const float* x, int64_t m, float* out) override;
  // Two micro-batches in flight (model/expert_executor.h): begin posts the slot's dispatch, compute runs
  // the shared expert, waits for the rows and runs the routed experts, combine posts the outputs back, end
  // waits for them and sums. While a slot computes, the other slot's exchange is polled between experts
  // (MPI advances a non-blocking collective only inside MPI calls).
  void begin(int slot, std::span<const ExpertTask> tasks, const float* x, int64_t m) override;
  void compute(int slot) override;
  void combine(int slot) override;
  void end(int slot, float* out) override;

  // The EP ranks holding expert e: its owner first, then its redundant copies (none before the plan).
  const std::vector<int>& holders(int64_t e) const { return holders_[size_t(e)]; }
  bool planned() const { return planned_; }

 private:
  void plan_redundancy();  // collective over the group
  const FfnWeights& expert(int64_t e) const;
  // One call's exchange (a slot): its tasks, destinations and buffers, alive from begin to end.
  struct Flight {
    std::span<const ExpertTask> tasks;
    const float* x = nullptr;
    int64_t m = 0, slots = 0, n_recv = 0;
    int stage = 0;  // 0 idle, 1 dispatching, 2 computed, 3 combining
    std::vector<int64_t> send_counts, recv_counts, sdispl, rdispl;
    std::vector<int> dest;     // [slots] destination rank
    std::vector<int64_t> pos;  // [slots] row in the send (and combine) buffer
    std::vector<float> send, recv, y, back, shared;
    RequestPtr req;
  };
  Flight& flight(int slot, int stage, const char* what);
  void run_experts(Flight& f, int other);  // step 3 over f.recv into f.y; polls slot `other` between experts
  void poke(int slot);                     // progress for the slot's exchange in flight, if any
  // Posts rows of `width` floats source → owner (to_owner: the dispatch) or back (the combine).
  RequestPtr post_rows(const Flight& f, bool to_owner, int64_t width, const float* send, float* recv);

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

  Flight flights_[2];
  // Scratch reused across calls.
  std::vector<int64_t> fill_, busy_, sc_, sd_, rc_, rd_;
  std::vector<int64_t> ecount_, eoff_, order_;  // received rows grouped by expert
  std::vector<float> xin_, tmp_;
  std::vector<kernels::SwigluExpert> fused_;
  FfnScratch ffn_;
};

}  // namespace dsv3::dist
