// What each of DeepSeek-V3.2's indexer-training stages (train/indexer_grad.h) updates, as AdamW learning-rate
// multipliers (AdamW::set_lr_scale): the indexer's tensors (WeightSpec::indexer) at indexer_lr / lr (the run's
// schedule, scaled), every other tensor at 1 in the sparse stage and 0 (frozen: no update, no decay) in the
// dense warm-up (report §2.1: "freezing all model parameters except for the lightning indexer").
#pragma once

#include <vector>

#include "train/params.h"
#include "train/step_context.h"

namespace dsv3::train {

// indexer_lr < 0: the run's lr (multiplier 1).
std::vector<double> dsa_lr_scale(const Params& p, DsaStage stage, double lr, double indexer_lr);

}  // namespace dsv3::train
