// What each rank of an expert-parallel layout holds of a model's weights (`dsv3 info --ep N`, and the
// start-up line of every rank): the replicated tensors (everything the schema lists outside the routed
// experts) plus its own block of routed experts (dist::expert_scope). Sizes are the stored ones: the
// checkpoint's own dtype and byte count per tensor with its scale tensor (FP8 weight_scale_inv, the int8 /
// int4 `_scale`) when a checkpoint is given, else the schema's WeightSpec numel × the dtype the config
// implies (FP8 linears with their block scales, dsv3_block int8 / int4, else torch_dtype).
#pragma once

#include <cstdint>
#include <vector>

#include "io/safetensors.h"
#include "model/config.h"

namespace dsv3::dist {

struct RankWeights {
  int64_t expert_begin = 0, expert_end = 0;  // the routed experts it owns: [begin, end)
  uint64_t replicated = 0, routed = 0;       // bytes
  uint64_t total() const { return replicated + routed; }
};

// One entry per EP rank (ep >= 1; ep = 1: everything on the one rank).
std::vector<RankWeights> rank_weight_bytes(const ModelConfig& c, int ep, const io::Checkpoint* ckpt = nullptr);

// "12.3 MiB"-style sizes for the start-up lines.
std::string human_bytes(uint64_t b);

}  // namespace dsv3::dist
