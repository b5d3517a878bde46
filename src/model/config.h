// ModelConfig: the HF config.json of a DeepSeek-V3-family model (model_type deepseek_v3 / deepseek_v2 /
// deepseek_v32),
// validated in one place. Names follow the HF keys; the reference's names are noted where they differ.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

namespace dsv3 {

enum class ScoringFunc { Sigmoid, Softmax };
enum class TopkMethod { NoauxTc, Greedy, GroupLimitedGreedy };

struct YarnScaling {
  double factor = 1.0;                              // reference: rope_factor
  int64_t original_max_position_embeddings = 4096;  // reference: original_seq_len
  double beta_fast = 32, beta_slow = 1;
  double mscale = 1.0, mscale_all_dim = 0.0;
  bool operator==(const YarnScaling&) const = default;
};

struct ModelConfig {
  std::string model_type;  // "deepseek_v3" | "deepseek_v2" | "kimi_k2" (V3 architecture, V3 defaults) |
                           // "deepseek_v32" (V3 plus DeepSeek Sparse Attention, V3 defaults)
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;            // reference: dim
  int64_t intermediate_size = 0;      // dense MLP width (inter_dim)
  int64_t moe_intermediate_size = 0;  // per-expert width (moe_inter_dim)
  int64_t num_hidden_layers = 0;
  int64_t num_nextn_predict_layers = 0;  // MTP modules, stored as layers num_hidden_layers + k
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;  // informational; MLA has no GQA
  int64_t n_shared_experts = 0;
  int64_t n_routed_experts = 0;  // 0 = a dense model
  int64_t num_experts_per_tok = 0;
  int64_t n_group = 1, topk_group = 1;
  double routed_scaling_factor = 1.0;
  ScoringFunc scoring_func = ScoringFunc::Sigmoid;
  TopkMethod topk_method = TopkMethod::NoauxTc;
  bool norm_topk_prob = true;
  int64_t first_k_dense_replace = 0;
  int64_t moe_layer_freq = 1;
  int64_t q_lora_rank = 0;  // 0 (null in JSON) = plain q_proj
  int64_t kv_lora_rank = 0;
  int64_t qk_nope_head_dim = 0, qk_rope_head_dim = 0, v_head_dim = 0;
  double rope_theta = 10000.0;
  std::optional<YarnScaling> rope_scaling;  // only "yarn" is supported
  double rms_norm_eps = 1e-6;
  int64_t max_position_embeddings = 0;
  bool tie_word_embeddings = false;
  std::optional<int64_t> bos_token_id;
  std::vector<int64_t> eos_token_ids;  // eos_token_id may be an int or a list
  std::string hidden_act = "silu";
  double initializer_range = 0.02;
  std::string torch_dtype;  // informational
  // quantization_config {quant_method: fp8, fmt: e4m3, weight_block_size}
  bool fp8 = false;
  int64_t weight_block_n = 128, weight_block_k = 128;
  // quantization_config {quant_method: dsv3_block, weight_format, block_size: 32, scale_dtype: float16,
  // head_format} written by `dsv3 quantize` (docs/formats.md): "int8" / "int4" for the linear weights
  // (empty when absent), and the head's format ("int8", "int4" or "none" = as stored).
  std::string block_quant, block_quant_head = "none";
  // quantization_config.scale_fmt: "" (float32 block scales amax / 448) or "ue8m0" (the smallest power of two
  // >= amax / 448, DeepSeek-V3.1 / V3.2). For deepseek_v32 it also sets how activations are quantized: the
  // indexer's q and k, the latent cache, and the input of every FP8 linear (model/indexer.h).
  std::string scale_fmt;
  // DeepSeek Sparse Attention (deepseek_v32 only; 0 elsewhere): the lightning indexer of every layer scores
  // each cached token for each query, and MLA attends to the index_topk best (model/indexer.h).
  int64_t index_n_heads = 0;   // H_I (64 in V3.2)
  int64_t index_head_dim = 0;  // D_I (128 in V3.2: one FP8 quantization block per index head)
  int64_t index_topk = 0;      // k (2048 in V3.2); sequences up to k tokens attend densely
  // The indexer's RoPE layout (vLLM's key): false = rotate-half over its first qk_rope_head_dim values
  // (DeepSeek V3.2 since 2025-11-17), true = adjacent pairs like MLA (GLM-5.x).
  bool indexer_rope_interleave = false;
  // `indexer_types` (GLM-5.x's IndexShare; deepseek_v32 only): per main-model layer, "full" (its own indexer)
  // or "shared": no indexer and no index-key cache of its own; the layer attends to the keys that the nearest
  // full layer above it selected for the same rows. Stored as shared flags, [num_hidden_layers] or empty (every
  // layer full, DeepSeek's V3.2); layer 0 must be full. MTP layers always have their own indexer.
  std::vector<bool> index_shared;

  nlohmann::json raw_json() const;          // the validated config re-serialised with HF keys (parse_config's table)
  nlohmann::json block_quant_json() const;  // the dsv3_block quantization_config (block_quant non-empty)

  // Derived
  int64_t qk_head_dim() const { return qk_nope_head_dim + qk_rope_head_dim; }
  bool is_moe_layer(int64_t layer) const;  // HF rule: routed experts, >= first_k_dense_replace, % freq
  int64_t kv_cache_values_per_token() const { return kv_lora_rank + qk_rope_head_dim; }
  bool has_indexer() const { return index_topk > 0; }
  // The index-key cache beside the latent cache, per token and layer: D_I E4M3 bytes + one float32 scale.
  int64_t index_cache_bytes_per_token() const { return has_indexer() ? index_head_dim + 4 : 0; }
  // Whether HF layer l (MTP layers: >= num_hidden_layers) has its own indexer (index_shared above).
  bool layer_has_indexer(int64_t l) const {
    return has_indexer() && (l >= num_hidden_layers || index_shared.empty() || !index_shared[size_t(l)]);
  }
  // Whether main-model layer l reuses the selection of the full layer above it.
  bool layer_shares_index(int64_t l) const { return has_indexer() && l < num_hidden_layers && !layer_has_indexer(l); }
  // The main model's index-key cache layers (its full layers) and main-model full layer l's slot among them.
  int64_t index_cache_layers() const;
  int64_t index_slot(int64_t l) const;
  // Whether FP8 linears quantize their input to E4M3 per 128 channels first (DeepSeek's act_quant): what the
  // V3.2 reference computes; the V3 references decode FP8 weights and keep x in float32.
  bool fp8_quantized_inputs() const { return fp8 && model_type == "deepseek_v32"; }
  bool ue8m0_scales() const { return scale_fmt == "ue8m0"; }
  // Softmax scale 1/sqrt(qk_head_dim), times mscale^2 with YaRN (mscale = 0.1 * mscale_all_dim * ln(factor) + 1).
  double softmax_scale() const;

  bool operator==(const ModelConfig&) const = default;  // every field (parse_config(c.raw_json()) == c)
};

// Parses and validates; throws dsv3::Error naming the key (and `label`, typically the file path) on missing,
// mistyped or contradictory keys, and refuses unknown model_type. Strict: every key (nested ones included) is a
// field of the table, a known-harmless key whose value is checked (config.cc harmless_keys()), or refused by
// name (docs/models.md).
ModelConfig parse_config(const nlohmann::json& j, const std::string& label = "config.json");
ModelConfig load_config(const std::string& path);  // a config.json file, or a directory holding one

// Parameter counts: count_params in model/schema.h (the weight schema knows every tensor).

}  // namespace dsv3
