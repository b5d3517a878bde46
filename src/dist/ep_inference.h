// Inference over a job of N ranks (DESIGN.md, scale-out; DeepSeek-V3 §3.4's deployment): attention
// data-parallel — every rank holds its own sequences and their latent caches — and MoE expert-parallel —
// every rank binds its block of routed experts (dist::expert_scope) and the replicated rest, and each MoE
// layer runs through dist::EpExperts. EpInference is the model's ModelParallel (model/parallel.h).
//
// Rank 0 runs the command (CLI logic, scheduler, HTTP server) unchanged; each of its Model::forward /
// mtp_forward calls becomes one step of the job:
//
//   rank 0                                        rank r ≠ 0 (follow())
//   check the call (Model::check_call): a bad
//   call throws here, before any message
//   place each new cache: sticky per KvCache,
//   the rank with the fewest live caches of
//   that kind (main / MTP; ties: the lower rank)
//   descriptor ─── send to every rank ─────────▶  releases: drop those caches
//     kind (main | MTP k | report | stop),        for its chunks: its own copy of the cache, created
//     released cache ids, logit rows, hidden?,     at first sight, cut back to `start` (rank 0's
//     per chunk: id, rank, start, n, capacity,     length: carries speculative rollbacks)
//     the tokens
//   MTP: each rank's hidden_in rows ─ send ────▶  receives its rows
//   forward_local over its own chunks             forward_local over its chunks (possibly none): every
//     ◀───── every MoE layer: EpExperts' counts / dispatch / combine all-to-all, in lockstep ─────▶
//   gatherv ◀─ hidden / logit rows ───────────────  its rows, chunk after chunk
//   the rows back in the call's order; remote
//   caches advance their length (no rows here)
//
// A KvCache rank 0 placed on another rank holds no rows on rank 0 (model/kv_cache.h), only its length.
// Destroying or replacing it queues its id; the next step's descriptor tells the holder to free it.
// A rank that fails inside a step aborts the whole job naming itself (dist::abort_job): no rank is left in
// a collective. Rank 0 ends the job with stop() (every follow() returns).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "dist/comm.h"
#include "dist/expert_parallel.h"
#include "dist/layout.h"
#include "model/parallel.h"

namespace dsv3::dist {

// --overlap: whether a step runs its rows as two micro-batches whose MoE exchanges overlap the other's
// compute (ForwardOptions::micro_batches = 2). Auto: when some rank has at least `overlap_rows` rows in the
// step (prefill); decode steps of a few rows per rank would only pay twice the exchanges' latency.
enum class Overlap { Auto, On, Off };

struct EpOptions {
  int ep = 1;  // --ep: must be the world size (attention-DP and EP over every rank)
  Redundancy redundancy = {};
  Overlap overlap = Overlap::Auto;
  int64_t overlap_rows = 32;
};

// Where the ranks' time went over the steps since the previous report (ExchangeTime per rank, seconds).
struct TimeReport {
  std::vector<ExchangeTime> ranks;
};

// Routed rows per rank over a run (the calls of each layer from `from_call` on).
struct LoadReport {
  int ranks = 0;
  int64_t calls = 0;           // MoE executor calls counted (every layer's)
  std::vector<int64_t> total;  // [ranks] routed rows each rank computed
  double imbalance = 0;        // max / mean of total
  double step_imbalance = 0;   // mean over the calls (with any routed row) of max / mean of that call's rows
};

class EpInference final : public ModelParallel {
 public:
  // Checks the layout against `world` (which must outlive this) and the model's config: --ep must equal the
  // world size and fit the routed experts (errors name --ep). Builds the EP group.
  EpInference(Comm& world, const ModelConfig& c, EpOptions options);
  ~EpInference() override;

  SchemaScope expert_scope(const ModelConfig& c) override;
  std::unique_ptr<ExpertExecutor> make_experts(const ModelConfig& c, const LayerWeights& layer,
                                               const kernels::LinearOptions& lin, const ExpertBinder& bind) override;
  bool leads() const override { return rank_ == 0; }
  void step(Model& model, const StepCall& call) override;

  // Ranks ≠ 0: runs the steps rank 0 sends, over this rank's own caches, until rank 0 calls stop(). Any
  // failure aborts the job with a message naming this rank.
  void follow(Model& model);
  // Rank 0: ends every rank's follow() (idempotent). Not called by the destructor: call it while MPI runs.
  void stop();
  // Rank 0, a step of its own: the routed rows each rank computed, from each layer's call `from_call` on.
  LoadReport load_report(int64_t from_call = 0);
  // Rank 0, a step of its own: each rank's MoE time (sync / comm / experts) since the previous time_report
  // (or the start), then zeroed.
  TimeReport time_report();

  // Rank 0: how many caches of the main model (mtp: of the MTP modules) each rank was given so far.
  std::vector<int64_t> placed(bool mtp = false) const;

  // Ranks ≠ 0: the caches this rank holds for rank 0's sequences now.
  size_t held() const { return caches_.size(); }

  int rank() const { return rank_; }
  int ranks() const { return size_; }
  const EpOptions& options() const { return opt_; }
  const Groups& groups() const { return groups_; }
  // The start-up line of this rank: dist::describe plus the weight bytes it holds.
  std::string describe(const ModelConfig& c, const std::string& model_dir) const;

  struct Registry;  // rank 0: cache ids, placements, releases (shared with the caches' placement handles)

 private:
  struct Step;
  void run_share(Model& model, const Step& s, const std::vector<KvCache*>& caches, const float* hidden_in,
                 std::vector<float>& out);
  void send_step(const Step& s);  // the descriptor to every rank ≠ 0
  std::vector<int64_t> report_share(const Step& s);
  std::vector<double> time_share();

  Comm& world_;
  EpOptions opt_;
  int rank_ = 0, size_ = 1;
  Groups groups_;
  std::shared_ptr<ExpertLoad> load_;
  std::shared_ptr<Registry> registry_;
  bool stopped_ = false;
  // Followers: this rank's copies of the caches rank 0 placed here, by id.
  std::unordered_map<int64_t, KvCache> caches_;
  // Scratch.
  std::vector<int64_t> desc_;
  std::vector<float> hidden_in_, out_, gathered_;
};

}  // namespace dsv3::dist
