// `dsv3 quantize`: converts a checkpoint (F32 / BF16 / F16 / FP8-block, one file or sharded) into the int8 /
// int4 block formats of kernels/quant.h, or into BF16, as an HF-style model directory (docs/formats.md), and
// measures what that costs in logits against the exact path.
//
// What is quantized (--type int8 | int4): every WeightRole::Linear matrix — MLA projections (q_a / q_b / q,
// kv_a, kv_b, o), dense MLP, routed and shared experts, MTP eh_proj — and the output heads (lm_head,
// MTP shared_head.head) in int8 for both types: the head sees the final hidden state directly, its error
// goes straight into the logits, and it is ~1% of a V3 token's weight traffic (llama.cpp's Q4_0 likewise
// keeps output.weight at higher precision). Kept as stored: embeddings (a row lookup, no bandwidth to
// save), the router gate (tiny; expert selection is discontinuous in its output), RMSNorm weights and
// e_score_correction_bias (vectors). kv_b is quantized too (MLA reads it in its stored dtype, kernels/weight_view.h).
// --type bf16 converts every matrix (embeddings, gate and heads included) to BF16 and keeps vectors as stored.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/transformer.h"

namespace dsv3 {

enum class QuantizeType { Int8, Int4, BF16 };
// "int8" | "int4" | "bf16"; throws on anything else.
QuantizeType parse_quantize_type(const std::string& s);

struct QuantizeOptions {
  QuantizeType type = QuantizeType::Int8;
  uint64_t max_shard_bytes = uint64_t(4) << 30;  // one model.safetensors up to this size, else shards
  // Source tensors the config does not explain (model/extra_tensors.h): refused, or warned about and dropped.
  ExtraTensors extra_tensors = ExtraTensors::Refuse;
};

struct QuantizeReport {
  int64_t tensors = 0;    // written
  int64_t quantized = 0;  // matrices converted to int8 / int4 / bf16
  int64_t dropped = 0;    // source tensors not carried over (FP8 weight_scale_inv; allowed extra tensors)
  uint64_t bytes_in = 0, bytes_out = 0;
  int64_t shards = 0;
};

// Reads `in_dir`, writes `out_dir` (created; refused when it exists and is not empty, or is in_dir):
// config.json (the source's keys with quantization_config replaced), model.safetensors or shards + index,
// and the tokenizer files (tokenizer.json, tokenizer_config.json, special_tokens_map.json,
// generation_config.json). Holds at most one output shard in memory.
QuantizeReport quantize_model(const std::string& in_dir, const std::string& out_dir, const QuantizeOptions& opt);

}  // namespace dsv3
