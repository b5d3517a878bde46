// Built-in model presets for `dsv3 plan --preset NAME`.
#pragma once

#include <string>
#include <vector>

#include "model/config.h"

namespace dsv3::plan {

// DeepSeek-V3's published architecture as pre-trained (technical report §4.2; the same numbers as
// configs/deepseek-v3-671b.json, which tests keep equal): 61 layers (3 dense), hidden 7168, 128 heads, MLA
// q_lora 1536 / kv_lora 512 / rope 64 / nope 128 / v 128, 256 routed + 1 shared experts of width 2048, top-8
// over 8 groups (top-4 groups), dense width 18432, vocab 129280, one MTP module; 4K context (before YaRN).
extern const char* const kDeepSeekV3_671B;

std::vector<std::string> preset_names();
// Throws dsv3::Error naming --preset for an unknown name.
ModelConfig preset_config(const std::string& name);

}  // namespace dsv3::plan
