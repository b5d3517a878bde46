// The tensors of a checkpoint that its config does not explain. The weight schema (model/schema.h) names every
// tensor a config implies; a checkpoint may hold those, an FP8 tensor's `<name>_scale_inv` and a block-quantized
// tensor's `<name>_scale` (kernels/quant.h), and nothing else. Anything more means the config describes another
// model than the file holds (an MTP layer the config does not count, routed experts beyond n_routed_experts, an
// lm_head with tie_word_embeddings, attention biases, another family's names), so every load path refuses it,
// listing the tensors; `--allow-extra-tensors` (ExtraTensors::Warn) loads anyway, ignoring them, with a warning.
#pragma once

#include <string>
#include <vector>

#include "io/safetensors.h"
#include "model/config.h"

namespace dsv3 {

enum class ExtraTensors { Refuse, Warn };

// The checkpoint's tensors the config does not explain, sorted. The whole schema is the measure (not an
// expert-parallel rank's or a pipeline stage's share of it).
std::vector<std::string> unexplained_tensors(const ModelConfig& c, const io::Checkpoint& ckpt);

// Refuse: throws naming the directory, the first few such tensors and their count; Warn: the same on stderr
// as a warning. Nothing when every tensor is explained.
void check_extra_tensors(const ModelConfig& c, const io::Checkpoint& ckpt, ExtraTensors policy);

}  // namespace dsv3
