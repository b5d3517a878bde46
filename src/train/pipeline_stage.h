// One pipeline stage's share of the training step (train/step.h split by layers): the forward and backward of
// decoder layers [layer_begin, layer_end) over one micro-batch, the embedding before them on the first stage,
// the final norm, head, losses and MTP modules after them on the last. The composition and its order are
// run_batch's in src/train/step.cc, so one stage holding every layer gives forward_backward's gradients bit for
// bit (tests/train/pipeline_test.cc). The executor (train/pipeline.h) moves the residual stream between stages:
// a stage's forward output is the next stage's input, its backward's input gradient the previous stage's
// output gradient.
//
// The loss gradient is fused with the head (head_cross_entropy), so the last stage's forward already holds
// ∂L/∂hn and has added the head's weight gradient; its backward starts from there.
#pragma once

#include <cstdint>
#include <vector>

#include "model/config.h"
#include "model/rope.h"
#include "train/balance.h"
#include "train/block_grad.h"
#include "train/layout.h"
#include "train/mtp_grad.h"
#include "train/step.h"

namespace dsv3::train {

struct Turn;  // train/micro_batch_turns.h

class WeightGradStore;

struct StageRange {
  int64_t layer_begin = 0, layer_end = 0;  // decoder layers [begin, end)
  bool first = false, last = false;        // embedding before / norm, head, losses, MTP after
};

// What a stage keeps between its forward and backward for one micro-batch.
struct StageActs {
  std::vector<BlockActs> blocks;
  // Last stage only:
  std::vector<float> h, hn_rstd, dhn;  // [m, hidden] final residual, [m], ∂L/∂hn
  std::vector<MtpActs> mtp;
  std::vector<std::vector<float>> dmtp_hn;
  int64_t bytes() const;  // the floats above and in the blocks' activations, in bytes (approximate)
};

// The losses one micro-batch contributes, as fractions of the call's means (last stage) and its MoE layers'
// loads (any stage): routing has one entry per MoE layer the stage ran, in step order.
struct StageLosses {
  double loss = 0, main_ce = 0, mtp_ce = 0;
  int64_t tokens = 0;
  std::vector<LayerRouting> routing;
};

struct StageStep {
  const ModelConfig& config;
  const ModelP& w;
  const ModelG& g;
  const RopeTable& rope;  // covers [0, seq_len)
  const LossOptions& opt;
  int64_t batch = 1, seq_len = 2;  // this micro-batch: B sequences of T tokens
  float grad_scale = 1.0f;         // this micro-batch's share of the step's gradient
  // Expert parallelism inside the stage (train/expert_parallel.h): the MoE layers exchange rows with the
  // stage's other EP ranks, which run the same ops at the same time. nullptr: every expert here.
  const ExpertParallel* ep = nullptr;
  // false: forward only (validation): the head gets no gradient, g is not read, no backward follows.
  bool grads = true;
};

// h [B·T, hidden]: the stage's input (ignored on the first stage, which embeds tokens [B, T]); on return its
// output (the last stage leaves the final residual, which it keeps in acts).
// turn (optional): this chunk's turn in an F&B pair (train/micro_batch_turns.h) — its EP exchanges are
// non-blocking and hand the turn to the pair's other chunk while in flight. head_wgrad (optional, last stage):
// the head's weight gradient, computed with the loss in this forward, is pushed there for the W of a B/W split
// (the store the stage's B then pushes into too) instead of computed now.
StageLosses stage_forward(const StageStep& s, const StageRange& r, const int32_t* tokens, std::vector<float>& h,
                          StageActs& acts, const Turn* turn = nullptr, WeightGradStore* head_wgrad = nullptr);

// dh [B·T, hidden]: ∂L/∂(stage output) on entry (ignored on the last stage), ∂L/∂(stage input) on return (empty
// on the first stage, which scatters it into the embedding's gradient). wgrad non-null: the big linear layers'
// weight gradients are pushed there (the B of a B/W split) instead of computed. acts are consumed.
void stage_backward(const StageStep& s, const StageRange& r, const int32_t* tokens, StageActs& acts,
                    std::vector<float>& dh, WeightGradStore* wgrad, const Turn* turn = nullptr);

}  // namespace dsv3::train
