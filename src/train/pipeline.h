// The pipeline-parallel training step (DeepSeek-V3 §3.2.1): the decoder layers split into stages, a schedule
// (train/pipeline_schedule.h: 1F1B, DualPipe, DualPipeV) run op by op on each pipeline rank over non-blocking
// point-to-point messages, the residual stream sent forward and its gradient backward, the B/W split of the
// backward (train/weight_grad_store.h) where the schedule asks for it. docs/scale-out.md "Pipeline parallelism".
//
// Stages: 1F1B and DualPipe cut the model into P stages, DualPipeV into 2P. Stage 0 also embeds the tokens;
// the last stage also runs the final norm, the head, the losses and the MTP modules (which read the embedding:
// the last stage's rank holds it too). DualPipe's rank r runs stage r for micro-batches 0 … m/2 − 1 and stage
// P − 1 − r for the rest (two copies of every stage, on mirrored ranks); DualPipeV's rank r runs stage r and
// 2P − 1 − r. A rank's Params hold either the whole model (only its stages' tensors are read and get
// gradients; the step's gradient is the sum over the pipeline ranks, allreduce_pipeline_grads, adding zeros
// elsewhere) or only its stages' tensors (pipeline_scope; reduce_pipeline_grads sums each tensor over the ranks
// holding it: DualPipe's mirrored copies and the embedding's two users).
//
// Messages: tag ((direction · S + stage) · m + micro-batch) · 2 + (0 forward | 1 backward), naming the sending
// stage. Before an op the executor posts the receives of that op and of the next one (irecv), then waits for the
// first; outputs leave by isend, waited on at the end of the step. An F&B pair posts both receives before, runs
// the forward then the whole backward one after the other (a CPU has no second stream to overlap them on) — or,
// with EP and ep->overlap, as two chunks taking turns at every EP exchange (train/micro_batch_turns.h), so one's
// all-to-all is in flight while the other computes — and sends both results after. Consecutive stages on one
// rank (DualPipeV's turn) hand over in memory.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "dist/comm.h"
#include "model/config.h"
#include "train/params.h"
#include "train/pipeline_schedule.h"
#include "train/pipeline_sim.h"
#include "train/pipeline_stage.h"
#include "train/step.h"

namespace dsv3::train {

// Forward FLOPs per token of HF layer `layer` (num_hidden_layers + k: MTP module k's decoder layer, with its
// eh_proj) at sequence length T: MLA projections + causal attention (T/2 keys on average) + dense MLP or
// MoE (top-k routed + shared experts + router). The backward is about twice the forward for every term, so the
// forward alone ranks stages.
double layer_flops(const ModelConfig& c, int64_t layer, int64_t seq_len);

struct StageSplit {
  std::vector<StageRange> stages;
  std::vector<double> cost;  // [stage] its cost (the split's unit: FLOPs per token or seconds), extras in
};

// What the layer split minimises: a cost per decoder layer, plus the first stage's and the last stage's extras
// (embedding; final norm, head, losses, MTP modules). FLOPs per token (stage_flop_costs) or measured seconds
// (train/stage_cost.h).
struct StageCosts {
  std::vector<double> layer;  // [num_hidden_layers]
  double first = 0, last = 0;
};

// layer_flops per layer; the first stage adds the embedding (hidden per token), the last the head
// (2 · hidden · vocab) and, when mtp (λ > 0), every MTP module (its layer, eh_proj and another head).
StageCosts stage_flop_costs(const ModelConfig& c, int64_t seq_len, bool mtp);

// Contiguous decoder layers per stage minimising the most expensive stage (exact, by dynamic programming over
// the cuts): stage cost = Σ layer costs + the first / last stage's extra. Errors name `what` (--pp) when there
// are more stages than decoder layers.
StageSplit split_by_cost(const StageCosts& costs, int stages, const char* what = "--pp");
// split_by_cost over stage_flop_costs.
StageSplit split_stages(const ModelConfig& c, int stages, int64_t seq_len, bool mtp, const char* what = "--pp");

// One rank's record of a step: each op's start and end (seconds from the step's start), and what it held.
struct PipeRecord {
  std::vector<TimedOp> ops;
  double seconds = 0;
  int peak_held = 0;           // most (stage, micro-batch) activations held at once
  int64_t peak_act_bytes = 0;  // their bytes + the deferred W's copies, at the peak
  int64_t param_floats = 0;    // floats of the tensors this rank's stages read (the embedding once)
};

struct PipelineStepResult {
  StepResult step;  // the whole step's losses and loads (every rank holds the same)
  PipeRecord record;
};

// The step over the whole batch tokens [batch, seq_len] (every pipeline rank passes the same), split into
// sched.micro micro-batches of batch / micro consecutive sequences. Collective over pp (size sched.ranks).
// grads accumulate this rank's stages' contributions scaled by grad_scale (callers zero them and then call
// allreduce_pipeline_grads). Errors (name --micro / --pp) are raised before any message, identically on all ranks.
// The losses and loads returned are the batch's (means over its rows, loads of its tokens).
//
// With ep (a pp × dp × ep layout, dist/layout.h): pp is this rank's lane — the pipeline ranks of one
// (dp_rank, ep_rank) — and tokens are the lane's own sequences; the MoE layers of this rank's stages exchange
// rows with the other EP ranks of its stage (ep->ep), which run the same schedule over their own lanes'
// sequences: params and grads hold only ep->scope's routed experts, whose gradients then cover every EP
// rank's rows (train/expert_parallel.h; give every lane grad_scale = its share of the batch). ep->overlap:
// the F&B pairs' two chunks take turns at the exchanges (the same results, bit for bit).
PipelineStepResult pipeline_forward_backward(const ModelConfig& c, const Params& params, const int32_t* tokens,
                                             int64_t batch, int64_t seq_len, const LossOptions& opt, Params& grads,
                                             float grad_scale, dist::Comm& pp, const PipeSchedule& sched,
                                             const StageSplit& split, const ExpertParallel* ep = nullptr);

// Forward only (validation) over tokens [batch, seq_len] as one micro-batch, stage after stage on the ranks
// the schedule gives micro-batch 0 (blocking messages along the chain). Returns the losses (every rank of pp
// holds the same; loads and balance losses of every stage). Collective over pp (and ep as above).
StepResult pipeline_evaluate(const ModelConfig& c, const Params& params, const int32_t* tokens, int64_t batch,
                             int64_t seq_len, const LossOptions& opt, dist::Comm& pp, const PipeSchedule& sched,
                             const StageSplit& split, const ExpertParallel* ep = nullptr);

// Sums every gradient tensor over the pipeline ranks (in place; Params holding the whole model).
void allreduce_pipeline_grads(Params& grads, dist::Comm& pp);

// The tensors pipeline rank `rank` reads: the decoder layers of its stages (sched.stages_of), the embedding on
// the first and last stage (the MTP modules and a tied head read it), the final norm, head and MTP modules on
// the last. Params(c, pipeline_scope(...)) allocates only those.
SchemaScope pipeline_scope(const ModelConfig& c, const PipeSchedule& sched, const StageSplit& split, int rank);

// Per rank-held tensors (Params over pipeline_scope): each tensor's gradient summed over the ranks holding it
// (DualPipe's mirrored copies, the embedding's two ends), in rank order at the lowest holder, which sends the
// sum back; no message for a tensor one rank holds. Collective over pp (every rank walks the same tensor order).
// Routed experts outside grads.scope()'s expert range are skipped (every rank of a lane has the same range).
void reduce_pipeline_grads(const ModelConfig& c, Params& grads, dist::Comm& pp, const PipeSchedule& sched,
                           const StageSplit& split);

// Per tensor of `mine` (Params over pipeline_scope on pipeline rank `rank`): whether `rank` is the lowest
// pipeline rank holding it — the copy that counts once in a gradient norm and is written to a checkpoint.
std::vector<char> lowest_pipeline_holder(const ModelConfig& c, const Params& mine, const PipeSchedule& sched,
                                         const StageSplit& split, int rank);

// The whole model's tensors (the routed experts of mine.scope()'s range: Params(c, that range)) gathered at
// `root` from their lowest holders (to write a gradient file); nullopt on the other ranks. Collective over pp.
std::optional<Params> gather_pipeline_params(const ModelConfig& c, const Params& mine, dist::Comm& pp,
                                             const PipeSchedule& sched, const StageSplit& split, int root = 0);

// Rank records gathered on every rank as a timeline (for the Chrome trace and the bubble).
PipeTimeline gather_timeline(const PipeRecord& mine, dist::Comm& pp);

// The mean measured duration of each op kind over a timeline: f (F), b (B, or the whole BW when the schedule
// has no B/W split, w then 0), w (W), fb (F&B pairs; -1 when none).
OpCosts measured_costs(const PipeTimeline& t);

// Lines for stderr: the measured makespan, each rank's busy time, the bubble fraction Σ idle / (P · makespan),
// the mean F / B / W / F&B, the paper's bubble (Table 2) with those costs and the simulator's prediction.
std::string bubble_report(const PipeSchedule& s, const PipeTimeline& t);

}  // namespace dsv3::train
