#include "plan/presets.h"

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace dsv3::plan {

const char* const kDeepSeekV3_671B = R"json({
  "model_type": "deepseek_v3",
  "architectures": ["DeepseekV3ForCausalLM"],
  "vocab_size": 129280,
  "hidden_size": 7168,
  "intermediate_size": 18432,
  "moe_intermediate_size": 2048,
  "num_hidden_layers": 61,
  "num_nextn_predict_layers": 1,
  "num_attention_heads": 128,
  "num_key_value_heads": 128,
  "n_shared_experts": 1,
  "n_routed_experts": 256,
  "num_experts_per_tok": 8,
  "n_group": 8,
  "topk_group": 4,
  "routed_scaling_factor": 2.5,
  "scoring_func": "sigmoid",
  "topk_method": "noaux_tc",
  "norm_topk_prob": true,
  "first_k_dense_replace": 3,
  "moe_layer_freq": 1,
  "q_lora_rank": 1536,
  "kv_lora_rank": 512,
  "qk_nope_head_dim": 128,
  "qk_rope_head_dim": 64,
  "v_head_dim": 128,
  "rope_theta": 10000,
  "rms_norm_eps": 1e-06,
  "max_position_embeddings": 4096,
  "tie_word_embeddings": false,
  "hidden_act": "silu",
  "initializer_range": 0.006,
  "torch_dtype": "bfloat16"
}
)json";

std::vector<std::string> preset_names() { return {"deepseek-v3-671b"}; }

ModelConfig preset_config(const std::string& name) {
  if (name == "deepseek-v3-671b") return parse_config(nlohmann::json::parse(kDeepSeekV3_671B), "--preset " + name);
  fail("--preset '{}': unknown (want deepseek-v3-671b)", name);
}

}  // namespace dsv3::plan
