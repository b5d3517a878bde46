// Warm start: a new training run's parameters taken from an existing model directory (`dsv3 train
// --init-from DIR`), e.g. DeepSeek-V3.2's continued pre-training, which starts from a dense checkpoint and adds
// freshly initialised indexers. Every tensor of the run's model that DIR holds under the same name is copied
// (decoded to float32 as load_params does); its shape must match. Tensors DIR lacks keep their random init and
// are counted in the result; tensors of DIR the model lacks are ignored. At least one tensor must match.
#pragma once

#include <string>
#include <vector>

#include "train/params.h"

namespace dsv3::train {

struct InitFromResult {
  size_t copied = 0;
  std::vector<std::string> kept;  // the run's tensors DIR does not hold (random init kept)
};

InitFromResult init_from_model_dir(const std::string& dir, Params& params);

}  // namespace dsv3::train
