// Trainable parameters ↔ Hugging Face model directories.
//   load_params: every tensor Params holds, decoded to float32 from its stored dtype (F32, BF16, F16 exactly;
//                F8_E4M3 / F8_E5M2 times its 128×128 weight_scale_inv block). The MTP module's copies of the
//                embedding and head (layers.N+k.embed_tokens / shared_head.head), when present, are not
//                separate parameters: the module shares the main model's (as in the paper), so they are
//                ignored.
//   save_params:  config.json + safetensors in HF layout (model/init.h's encoder and writer; sharded above
//                4 GiB), atomically per file. F32 storage round-trips exactly through load_params.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "model/config.h"
#include "model/extra_tensors.h"
#include "tools/init.h"
#include "train/params.h"

namespace dsv3::train {

// Errors name the tensor and the directory (missing tensor, wrong shape, unsupported dtype, FP8 without scales).
// With a scope, only its routed experts are read (Params(c, scope): an expert-parallel rank's share). Tensors
// the config does not explain are refused (`extra`: model/extra_tensors.h), as every load path does; a resumed
// training checkpoint is always checked strictly (dsv3 wrote it with the run's config).
Params load_params(const ModelConfig& c, const io::Checkpoint& ckpt, const SchemaScope& scope = {},
                   ExtraTensors extra = ExtraTensors::Refuse);
Params load_params(const std::string& dir);  // config.json + checkpoint of a model directory; config via load_config

// dtype: F32 (exact, the default), BF16 (matrices rounded to nearest even; norms and biases stay F32) or FP8.
void save_params(const std::string& dir, const ModelConfig& c, const Params& p, InitDType dtype = InitDType::F32);

// One float32 safetensors file (atomic) of the tensors of p with only[i] set (all when empty): a shard of a
// distributed checkpoint. Returns the bytes of tensor data written.
uint64_t save_params_file(const std::string& path, const Params& p, const std::vector<char>& only = {});
// The config.json save_params writes beside float32 tensors (torch_dtype float32, no quantization_config).
void save_config_json(const std::string& dir, ModelConfig c);

}  // namespace dsv3::train
