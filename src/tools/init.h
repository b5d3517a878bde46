// Random initialisation of a DeepSeek-V3-family checkpoint from its config, driven by enumerate_weights:
// matrices ~ N(0, std²) (std = initializer_range unless overridden), RMSNorm weights = 1, expert-bias = 0.
// Deterministic for a seed: every tensor draws from its own generator seeded by (seed, tensor index), with
// a hand-rolled Box–Muller so results do not depend on the standard library's distributions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "model/config.h"
#include "model/weights.h"

namespace dsv3 {

enum class InitDType { F32, BF16, FP8 };  // FP8: linear weights as E4M3 + 128×128 weight_scale_inv

struct InitOptions {
  uint64_t seed = 0;
  double std = -1.0;  // < 0: the config's initializer_range
  InitDType dtype = InitDType::BF16;
};

struct InitTensor {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};

// float32 values of every weight (name order of enumerate_weights; optional MTP copies omitted).
std::vector<std::pair<WeightSpec, std::vector<float>>> init_weights_f32(const ModelConfig& c, const InitOptions& o);

// Encodes float32 weights for storage: F32 / BF16, or E4M3 with block scales (scale = amax / 448 per
// 128×128 block; with ue8m0 its power-of-two ceiling, as DeepSeek-V3.1 / V3.2 ship for scale_fmt "ue8m0") for
// Linear-role weights under FP8. Norms and biases stay F32.
std::vector<InitTensor> encode_for_storage(const std::vector<std::pair<WeightSpec, std::vector<float>>>& w,
                                           InitDType dtype, int64_t block = 128, bool ue8m0 = false);

// Writes config.json (with quantization_config for FP8) and the safetensors into `dir` (created if missing).
void write_model_dir(const std::string& dir, ModelConfig c, const std::vector<InitTensor>& tensors, InitDType dtype);

}  // namespace dsv3
