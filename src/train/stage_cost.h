// Measured stage costs for the pipeline's layer split (`--split measured`, train/pipeline.h split_by_cost):
// instead of the FLOP estimate, each decoder layer's forward + backward is timed on this machine over one
// micro-batch, and so are the first stage's embedding and the last stage's final norm, head, losses and MTP
// modules. FLOPs miss what a CPU pays besides GEMMs — the MoE router and dispatch bookkeeping, the softmax and
// the cross-entropy over the vocabulary, memory traffic of small tensors — so on small models the FLOP split
// over-loads the last stage.
//
// Calibration: one layer at a time (a Params holding only that layer, random weights: std 0.02 for matrices,
// norms 1, biases 0 — timing does not need the trained values), a random residual stream of rows × hidden and
// random tokens; one untimed run, then the minimum of `reps` timed forward + backward runs (the least
// disturbed by other processes). Every rank of `comm` measures every part and the maximum over the ranks is
// taken (one allreduce), so all ranks agree on the split bit for bit. Memory: one layer's weights and
// gradients and one micro-batch's activations at a time.
#pragma once

#include <cstdint>

#include "dist/comm.h"
#include "model/config.h"
#include "train/pipeline.h"
#include "train/step.h"

namespace dsv3::train {

// Seconds per part for a micro-batch of `batch` sequences of seq_len tokens under `opt` (its mtp_lambda
// decides whether the MTP modules run). Collective over comm.
StageCosts measure_stage_costs(const ModelConfig& c, int64_t batch, int64_t seq_len, const LossOptions& opt,
                               dist::Comm& comm, int reps = 3);

// "flops" → the FLOP estimate, "measured" → measure_stage_costs; anything else fails naming `what` (--split).
// The split is split_by_cost over them.
StageSplit choose_split(const std::string& how, const ModelConfig& c, int stages, int64_t batch, int64_t seq_len,
                        const LossOptions& opt, dist::Comm& comm, const char* what = "--split");

}  // namespace dsv3::train
