// ModelConfig: HF config.json → validated architecture description, and parameter counting.
//
// Follows the configuration_deepseek.py files shipped in the deepseek-ai/DeepSeek-V3 and DeepSeek-V2 Hugging
// Face repositories: the same keys, and their defaults for optional keys (V3 and V2 differ, see kV3/kV2).
// Deliberate deviations:
//   * The architecture-defining keys (sizes, layer count, MLA dims, and the MoE sizes when there are routed
//     experts) are required rather than defaulted: a config missing them is far more likely broken than a
//     genuine DeepSeek-V3 at its defaults.
//   * DeepseekV2Config's default topk_method is the typo "gready", which HF's own MoEGate does not accept;
//     we default to "greedy" (what every published V2 config spells out).
//   * Any combination of scoring_func and topk_method is accepted (the reference Gate supports both score
//     functions with and without groups); HF's V3 remote code implements only sigmoid + noaux_tc and its V2
//     code only softmax + greedy/group_limited_greedy.
//   * model_type "kimi_k2" (Moonshot's Kimi-K2, whose config says architectures DeepseekV3ForCausalLM and
//     uses exactly the DeepSeek-V3 keys) is accepted with the V3 defaults; model_type is kept as written.
//   * rope_scaling {"type": "default"} is taken as no scaling; any type other than yarn/default is refused.
#include "model/config.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"

namespace dsv3 {

using nlohmann::json;

namespace {

// Integers above this are refused as absurd; it keeps every product in count_params inside __int128.
constexpr int64_t kMaxInt = (int64_t(1) << 31) - 1;

// HF defaults for the optional keys (DeepseekV3Config / DeepseekV2Config.__init__).
struct Defaults {
  int64_t num_nextn_predict_layers, n_shared_experts, n_routed_experts, n_group, topk_group;
  int64_t first_k_dense_replace, q_lora_rank, max_position_embeddings, bos, eos;
  double routed_scaling_factor;
  const char* topk_method;
  const char* scoring_func;
  bool norm_topk_prob;
  const char* architecture;
};
constexpr Defaults kV3 = {
    1, 1, 256, 8, 4, 3, 1536, 4096, 0, 1, 2.5, "noaux_tc", "sigmoid", true, "DeepseekV3ForCausalLM"};
// None in HF for n_shared_experts / n_routed_experts / n_group / topk_group: 0, 0, 1, 1 here.
constexpr Defaults kV2 = {
    0, 0, 0, 1, 1, 0, 1536, 2048, 100000, 100001, 1.0, "greedy", "softmax", false, "DeepseekV2ForCausalLM"};

// Typed access to the keys of one JSON object; every error names the key and the label (file).
class Keys {
 public:
  Keys(const json& j, const std::string& label, std::string prefix = "")
      : j_(j), label_(label), prefix_(std::move(prefix)) {}

  const json* find(const char* key) const {
    auto it = j_.find(key);
    return it == j_.end() ? nullptr : &*it;
  }
  std::string name(const char* key) const { return prefix_ + key; }

  [[noreturn]] void bad(const char* key, const char* want, const json& v) const {
    fail("{}: key '{}' must be {}, got {}", label_, name(key), want, describe(v));
  }
  static std::string describe(const json& v) {
    std::string s = v.dump();
    if (s.size() > 40) s = s.substr(0, 37) + "...";
    return fmt::format("{} {}", v.type_name(), s);
  }

  int64_t to_int(const char* key, const json& v) const {
    if (!v.is_number_integer()) bad(key, "an integer", v);
    if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(kMaxInt)) bad(key, "a sane integer", v);
    int64_t i = v.get<int64_t>();
    if (i > kMaxInt || i < -kMaxInt) bad(key, "a sane integer", v);
    return i;
  }
  int64_t require_int(const char* key) const {
    const json* v = find(key);
    if (!v || v->is_null()) fail("{}: missing required key '{}'", label_, name(key));
    return to_int(key, *v);
  }
  // Absent -> def; JSON null -> null_value (HF's None).
  int64_t get_int(const char* key, int64_t def, std::optional<int64_t> null_value = std::nullopt) const {
    const json* v = find(key);
    if (!v) return def;
    if (v->is_null()) {
      if (null_value) return *null_value;
      bad(key, "an integer", *v);
    }
    return to_int(key, *v);
  }
  double to_num(const char* key, const json& v) const {
    if (!v.is_number()) bad(key, "a number", v);
    double d = v.get<double>();
    if (!std::isfinite(d)) bad(key, "a finite number", v);
    return d;
  }
  double get_num(const char* key, double def) const {
    const json* v = find(key);
    return v ? to_num(key, *v) : def;
  }
  bool get_bool(const char* key, bool def) const {
    const json* v = find(key);
    if (!v) return def;
    if (!v->is_boolean()) bad(key, "true or false", *v);
    return v->get<bool>();
  }
  std::string get_str(const char* key, const std::string& def) const {
    const json* v = find(key);
    if (!v) return def;
    if (!v->is_string()) bad(key, "a string", *v);
    return v->get<std::string>();
  }
  const std::string& label() const { return label_; }

 private:
  const json& j_;
  const std::string& label_;
  std::string prefix_;
};

const char* scoring_name(ScoringFunc s) { return s == ScoringFunc::Sigmoid ? "sigmoid" : "softmax"; }
const char* topk_name(TopkMethod t) {
  switch (t) {
    case TopkMethod::NoauxTc:
      return "noaux_tc";
    case TopkMethod::Greedy:
      return "greedy";
    case TopkMethod::GroupLimitedGreedy:
      return "group_limited_greedy";
  }
  return "?";
}

std::optional<YarnScaling> parse_rope_scaling(const json& v, const std::string& label) {
  if (v.is_null()) return std::nullopt;
  if (!v.is_object()) Keys(v, label).bad("rope_scaling", "an object or null", v);
  Keys k(v, label, "rope_scaling.");
  std::string type = k.get_str("type", ""), rope_type = k.get_str("rope_type", "");
  if (!type.empty() && !rope_type.empty() && type != rope_type)
    fail("{}: keys 'rope_scaling.type' ({}) and 'rope_scaling.rope_type' ({}) disagree", label, type, rope_type);
  if (type.empty()) type = rope_type;
  if (type.empty()) fail("{}: key 'rope_scaling' has neither 'type' nor 'rope_type'", label);
  if (type == "default") return std::nullopt;
  if (type != "yarn")
    fail("{}: key 'rope_scaling.type' is '{}'; only 'yarn' is supported (DeepSeek-V3's long-context RoPE)", label,
         type);
  YarnScaling y;
  const json* f = k.find("factor");
  if (!f || f->is_null()) fail("{}: missing required key 'rope_scaling.factor'", label);
  y.factor = k.to_num("factor", *f);
  if (y.factor <= 0) k.bad("factor", "a positive number", *f);
  y.original_max_position_embeddings =
      k.get_int("original_max_position_embeddings", y.original_max_position_embeddings);
  if (y.original_max_position_embeddings <= 0)
    fail("{}: key 'rope_scaling.original_max_position_embeddings' must be positive, got {}", label,
         y.original_max_position_embeddings);
  y.beta_fast = k.get_num("beta_fast", y.beta_fast);
  y.beta_slow = k.get_num("beta_slow", y.beta_slow);
  // Both enter log() in YaRN's correction range.
  if (y.beta_fast <= 0) fail("{}: key 'rope_scaling.beta_fast' must be positive, got {}", label, y.beta_fast);
  if (y.beta_slow <= 0) fail("{}: key 'rope_scaling.beta_slow' must be positive, got {}", label, y.beta_slow);
  y.mscale = k.get_num("mscale", y.mscale);
  y.mscale_all_dim = k.get_num("mscale_all_dim", y.mscale_all_dim);
  return y;
}

void parse_quantization(const json& v, ModelConfig& c, const std::string& label) {
  if (v.is_null()) return;
  if (!v.is_object()) Keys(v, label).bad("quantization_config", "an object or null", v);
  Keys k(v, label, "quantization_config.");
  std::string method = k.get_str("quant_method", "");
  if (method == "dsv3_block") {
    // `dsv3 quantize` (docs/formats.md): int8 / int4 codes with one f16 scale per 32 elements along k.
    c.block_quant = k.get_str("weight_format", "");
    if (c.block_quant != "int8" && c.block_quant != "int4")
      fail("{}: key 'quantization_config.weight_format' is '{}'; expected 'int8' or 'int4'", label, c.block_quant);
    const json* bs = k.find("block_size");
    if (!bs) fail("{}: missing required key 'quantization_config.block_size'", label);
    if (k.to_int("block_size", *bs) != 32)
      fail("{}: key 'quantization_config.block_size' is {}; only 32 is supported", label, bs->dump());
    const std::string sd = k.get_str("scale_dtype", "float16");
    if (sd != "float16") fail("{}: key 'quantization_config.scale_dtype' is '{}'; only 'float16' is supported", label, sd);
    c.block_quant_head = k.get_str("head_format", "none");
    if (c.block_quant_head != "int8" && c.block_quant_head != "int4" && c.block_quant_head != "none")
      fail("{}: key 'quantization_config.head_format' is '{}'; expected 'int8', 'int4' or 'none'", label,
           c.block_quant_head);
    return;
  }
  if (method != "fp8")
    fail(
        "{}: key 'quantization_config.quant_method' is '{}'; only 'fp8' (DeepSeek's block-scaled E4M3) and "
        "'dsv3_block' (dsv3 quantize) are supported",
        label, method);
  std::string fmt_ = k.get_str("fmt", "e4m3");
  if (fmt_ != "e4m3") fail("{}: key 'quantization_config.fmt' is '{}'; only 'e4m3' is supported", label, fmt_);
  std::string act = k.get_str("activation_scheme", "dynamic");
  if (act != "dynamic")
    fail("{}: key 'quantization_config.activation_scheme' is '{}'; only 'dynamic' is supported", label, act);
  const json* bs = k.find("weight_block_size");
  if (!bs) fail("{}: missing required key 'quantization_config.weight_block_size'", label);
  if (!bs->is_array() || bs->size() != 2) k.bad("weight_block_size", "an array [block_n, block_k]", *bs);
  c.weight_block_n = k.to_int("weight_block_size", (*bs)[0]);
  c.weight_block_k = k.to_int("weight_block_size", (*bs)[1]);
  if (c.weight_block_n <= 0 || c.weight_block_k <= 0) k.bad("weight_block_size", "two positive integers", *bs);
  c.fp8 = true;
}

void require_positive(const std::string& label, const char* key, int64_t v) {
  if (v <= 0) fail("{}: key '{}' must be positive, got {}", label, key, v);
}
void require_non_negative(const std::string& label, const char* key, int64_t v) {
  if (v < 0) fail("{}: key '{}' must not be negative, got {}", label, key, v);
}

}  // namespace

ModelConfig parse_config(const json& j, const std::string& label) {
  if (!j.is_object()) fail("{}: config must be a JSON object, got {}", label, j.type_name());
  Keys k(j, label);
  ModelConfig c;

  const json* mt = k.find("model_type");
  if (!mt) fail("{}: missing required key 'model_type'", label);
  if (!mt->is_string()) k.bad("model_type", "a string", *mt);
  c.model_type = mt->get<std::string>();
  const bool v2 = c.model_type == "deepseek_v2";
  if (!v2 && c.model_type != "deepseek_v3" && c.model_type != "kimi_k2")
    fail("{}: key 'model_type' is '{}'; supported: deepseek_v3, deepseek_v2, kimi_k2", label, c.model_type);
  const Defaults& d = v2 ? kV2 : kV3;

  c.vocab_size = k.require_int("vocab_size");
  c.hidden_size = k.require_int("hidden_size");
  c.intermediate_size = k.require_int("intermediate_size");
  c.num_hidden_layers = k.require_int("num_hidden_layers");
  c.num_attention_heads = k.require_int("num_attention_heads");
  c.kv_lora_rank = k.require_int("kv_lora_rank");
  c.qk_nope_head_dim = k.require_int("qk_nope_head_dim");
  c.qk_rope_head_dim = k.require_int("qk_rope_head_dim");
  c.v_head_dim = k.require_int("v_head_dim");
  c.q_lora_rank = k.get_int("q_lora_rank", d.q_lora_rank, 0);
  c.num_key_value_heads = k.get_int("num_key_value_heads", c.num_attention_heads, c.num_attention_heads);
  c.num_nextn_predict_layers = k.get_int("num_nextn_predict_layers", d.num_nextn_predict_layers, 0);

  c.n_routed_experts = k.get_int("n_routed_experts", d.n_routed_experts, 0);
  c.n_shared_experts = k.get_int("n_shared_experts", d.n_shared_experts, 0);
  c.n_group = k.get_int("n_group", d.n_group, 1);
  c.topk_group = k.get_int("topk_group", d.topk_group, 1);
  c.first_k_dense_replace = k.get_int("first_k_dense_replace", d.first_k_dense_replace);
  c.moe_layer_freq = k.get_int("moe_layer_freq", 1);
  c.routed_scaling_factor = k.get_num("routed_scaling_factor", d.routed_scaling_factor);
  c.norm_topk_prob = k.get_bool("norm_topk_prob", d.norm_topk_prob);
  if (c.n_routed_experts > 0) {
    c.moe_intermediate_size = k.require_int("moe_intermediate_size");
    c.num_experts_per_tok = k.require_int("num_experts_per_tok");
  } else {
    c.moe_intermediate_size = k.get_int("moe_intermediate_size", 0, 0);
    c.num_experts_per_tok = k.get_int("num_experts_per_tok", 0, 0);
  }
  std::string scoring = k.get_str("scoring_func", d.scoring_func);
  if (scoring == "sigmoid")
    c.scoring_func = ScoringFunc::Sigmoid;
  else if (scoring == "softmax")
    c.scoring_func = ScoringFunc::Softmax;
  else
    fail("{}: key 'scoring_func' is '{}'; supported: sigmoid, softmax", label, scoring);
  std::string topk = k.get_str("topk_method", d.topk_method);
  if (topk == "noaux_tc")
    c.topk_method = TopkMethod::NoauxTc;
  else if (topk == "greedy")
    c.topk_method = TopkMethod::Greedy;
  else if (topk == "group_limited_greedy")
    c.topk_method = TopkMethod::GroupLimitedGreedy;
  else
    fail("{}: key 'topk_method' is '{}'; supported: noaux_tc, greedy, group_limited_greedy", label, topk);

  c.rope_theta = k.get_num("rope_theta", 10000.0);
  if (const json* rs = k.find("rope_scaling")) c.rope_scaling = parse_rope_scaling(*rs, label);
  c.rms_norm_eps = k.get_num("rms_norm_eps", 1e-6);
  c.max_position_embeddings = k.get_int("max_position_embeddings", d.max_position_embeddings);
  c.tie_word_embeddings = k.get_bool("tie_word_embeddings", false);
  c.hidden_act = k.get_str("hidden_act", "silu");
  if (c.hidden_act != "silu")
    fail("{}: key 'hidden_act' is '{}'; DeepSeek's SwiGLU experts need 'silu'", label, c.hidden_act);
  c.initializer_range = k.get_num("initializer_range", 0.02);

  if (const json* b = k.find("bos_token_id")) {
    if (!b->is_null()) c.bos_token_id = k.to_int("bos_token_id", *b);
  } else {
    c.bos_token_id = d.bos;
  }
  if (const json* e = k.find("eos_token_id")) {
    if (e->is_array()) {
      for (const json& x : *e) c.eos_token_ids.push_back(k.to_int("eos_token_id", x));
    } else if (!e->is_null()) {
      c.eos_token_ids.push_back(k.to_int("eos_token_id", *e));
    }
  } else {
    c.eos_token_ids.push_back(d.eos);
  }
  // transformers >= 4.56 writes "dtype"; older versions "torch_dtype".
  for (const char* key : {"torch_dtype", "dtype"}) {
    const json* t = k.find(key);
    if (!t || t->is_null()) continue;
    if (!t->is_string()) k.bad(key, "a string", *t);
    c.torch_dtype = t->get<std::string>();
    break;
  }
  if (const json* q = k.find("quantization_config")) parse_quantization(*q, c, label);

  // ---- ranges
  require_positive(label, "vocab_size", c.vocab_size);
  require_positive(label, "hidden_size", c.hidden_size);
  require_positive(label, "intermediate_size", c.intermediate_size);
  require_positive(label, "num_hidden_layers", c.num_hidden_layers);
  require_positive(label, "num_attention_heads", c.num_attention_heads);
  require_positive(label, "num_key_value_heads", c.num_key_value_heads);
  require_positive(label, "kv_lora_rank", c.kv_lora_rank);
  require_positive(label, "qk_nope_head_dim", c.qk_nope_head_dim);
  require_positive(label, "qk_rope_head_dim", c.qk_rope_head_dim);
  require_positive(label, "v_head_dim", c.v_head_dim);
  require_positive(label, "max_position_embeddings", c.max_position_embeddings);
  require_positive(label, "moe_layer_freq", c.moe_layer_freq);
  require_non_negative(label, "q_lora_rank", c.q_lora_rank);
  require_non_negative(label, "num_nextn_predict_layers", c.num_nextn_predict_layers);
  require_non_negative(label, "n_routed_experts", c.n_routed_experts);
  require_non_negative(label, "n_shared_experts", c.n_shared_experts);
  require_non_negative(label, "first_k_dense_replace", c.first_k_dense_replace);
  require_non_negative(label, "moe_intermediate_size", c.moe_intermediate_size);
  require_non_negative(label, "num_experts_per_tok", c.num_experts_per_tok);
  if (c.qk_rope_head_dim % 2 != 0)
    fail("{}: key 'qk_rope_head_dim' must be even (RoPE rotates pairs), got {}", label, c.qk_rope_head_dim);
  if (c.first_k_dense_replace > c.num_hidden_layers)
    fail("{}: key 'first_k_dense_replace' ({}) exceeds 'num_hidden_layers' ({})", label, c.first_k_dense_replace,
         c.num_hidden_layers);
  if (!(c.rms_norm_eps > 0)) fail("{}: key 'rms_norm_eps' must be positive, got {}", label, c.rms_norm_eps);
  if (!(c.rope_theta > 0)) fail("{}: key 'rope_theta' must be positive, got {}", label, c.rope_theta);
  if (!(c.routed_scaling_factor > 0))
    fail("{}: key 'routed_scaling_factor' must be positive, got {}", label, c.routed_scaling_factor);
  if (c.initializer_range < 0)
    fail("{}: key 'initializer_range' must not be negative, got {}", label, c.initializer_range);
  if (c.bos_token_id && *c.bos_token_id < 0) fail("{}: key 'bos_token_id' must not be negative", label);
  for (int64_t e : c.eos_token_ids)
    if (e < 0) fail("{}: key 'eos_token_id' must not be negative, got {}", label, e);

  // ---- MoE consistency
  if (c.n_routed_experts > 0) {
    require_positive(label, "moe_intermediate_size", c.moe_intermediate_size);
    require_positive(label, "num_experts_per_tok", c.num_experts_per_tok);
    require_positive(label, "n_group", c.n_group);
    require_positive(label, "topk_group", c.topk_group);
    if (c.n_routed_experts % c.n_group != 0)
      fail("{}: key 'n_routed_experts' ({}) is not divisible by 'n_group' ({})", label, c.n_routed_experts, c.n_group);
    if (c.topk_group > c.n_group)
      fail("{}: key 'topk_group' ({}) exceeds 'n_group' ({})", label, c.topk_group, c.n_group);
    if (c.num_experts_per_tok > c.n_routed_experts)
      fail("{}: key 'num_experts_per_tok' ({}) exceeds 'n_routed_experts' ({})", label, c.num_experts_per_tok,
           c.n_routed_experts);
    const int64_t per_group = c.n_routed_experts / c.n_group;
    if (c.num_experts_per_tok > c.topk_group * per_group)
      fail(
          "{}: key 'num_experts_per_tok' ({}) exceeds what 'topk_group' ({}) groups of 'n_routed_experts' / "
          "'n_group' = {} experts hold",
          label, c.num_experts_per_tok, c.topk_group, per_group);
    // noaux_tc scores a group by the sum of its top-2 experts.
    if (c.topk_method == TopkMethod::NoauxTc && c.n_group > 1 && per_group < 2)
      fail(
          "{}: 'topk_method' noaux_tc needs at least 2 experts per group; 'n_routed_experts' ({}) / 'n_group' "
          "({}) = {}",
          label, c.n_routed_experts, c.n_group, per_group);
  }
  return c;
}

json ModelConfig::raw_json() const {
  const bool v2 = model_type == "deepseek_v2";
  json j = json::object();
  j["architectures"] = {v2 ? kV2.architecture : kV3.architecture};
  j["model_type"] = model_type;
  j["vocab_size"] = vocab_size;
  j["hidden_size"] = hidden_size;
  j["intermediate_size"] = intermediate_size;
  j["moe_intermediate_size"] = moe_intermediate_size;
  j["num_hidden_layers"] = num_hidden_layers;
  j["num_nextn_predict_layers"] = num_nextn_predict_layers;
  j["num_attention_heads"] = num_attention_heads;
  j["num_key_value_heads"] = num_key_value_heads;
  // HF tests these against None: 0 is written as null so that transformers builds the same model.
  j["n_shared_experts"] = n_shared_experts > 0 ? json(n_shared_experts) : json(nullptr);
  j["n_routed_experts"] = n_routed_experts > 0 ? json(n_routed_experts) : json(nullptr);
  j["num_experts_per_tok"] = n_routed_experts > 0 ? json(num_experts_per_tok) : json(nullptr);
  j["n_group"] = n_group;
  j["topk_group"] = topk_group;
  j["routed_scaling_factor"] = routed_scaling_factor;
  j["scoring_func"] = scoring_name(scoring_func);
  j["topk_method"] = topk_name(topk_method);
  j["norm_topk_prob"] = norm_topk_prob;
  j["first_k_dense_replace"] = first_k_dense_replace;
  j["moe_layer_freq"] = moe_layer_freq;
  j["q_lora_rank"] = q_lora_rank > 0 ? json(q_lora_rank) : json(nullptr);
  j["kv_lora_rank"] = kv_lora_rank;
  j["qk_nope_head_dim"] = qk_nope_head_dim;
  j["qk_rope_head_dim"] = qk_rope_head_dim;
  j["v_head_dim"] = v_head_dim;
  j["rope_theta"] = rope_theta;
  if (rope_scaling) {
    j["rope_scaling"] = {{"type", "yarn"},
                         {"factor", rope_scaling->factor},
                         {"original_max_position_embeddings", rope_scaling->original_max_position_embeddings},
                         {"beta_fast", rope_scaling->beta_fast},
                         {"beta_slow", rope_scaling->beta_slow},
                         {"mscale", rope_scaling->mscale},
                         {"mscale_all_dim", rope_scaling->mscale_all_dim}};
  } else {
    j["rope_scaling"] = nullptr;
  }
  j["rms_norm_eps"] = rms_norm_eps;
  j["max_position_embeddings"] = max_position_embeddings;
  j["tie_word_embeddings"] = tie_word_embeddings;
  j["bos_token_id"] = bos_token_id ? json(*bos_token_id) : json(nullptr);
  if (eos_token_ids.empty())
    j["eos_token_id"] = nullptr;
  else if (eos_token_ids.size() == 1)
    j["eos_token_id"] = eos_token_ids[0];
  else
    j["eos_token_id"] = eos_token_ids;
  j["hidden_act"] = hidden_act;
  j["initializer_range"] = initializer_range;
  if (!torch_dtype.empty()) j["torch_dtype"] = torch_dtype;
  if (!block_quant.empty()) {
    j["quantization_config"] = block_quant_json();
  } else if (fp8) {
    j["quantization_config"] = {{"activation_scheme", "dynamic"},
                                {"fmt", "e4m3"},
                                {"quant_method", "fp8"},
                                {"weight_block_size", {weight_block_n, weight_block_k}}};
  }
  return j;
}

nlohmann::json ModelConfig::block_quant_json() const {
  return {{"quant_method", "dsv3_block"},
          {"weight_format", block_quant},
          {"block_size", 32},
          {"scale_dtype", "float16"},
          {"head_format", block_quant_head},
          {"not_quantized", {"model.embed_tokens", "*norm*", "mlp.gate", "mlp.gate.e_score_correction_bias"}}};
}

bool ModelConfig::is_moe_layer(int64_t layer) const {
  return n_routed_experts > 0 && layer >= first_k_dense_replace && layer % moe_layer_freq == 0;
}

double ModelConfig::softmax_scale() const {
  double s = 1.0 / std::sqrt(double(qk_head_dim()));
  // HF DeepseekV3Attention / the reference MLA: yarn_get_mscale(factor, mscale_all_dim)^2.
  if (rope_scaling && rope_scaling->mscale_all_dim > 0 && rope_scaling->factor > 1) {
    double m = 0.1 * rope_scaling->mscale_all_dim * std::log(rope_scaling->factor) + 1.0;
    s *= m * m;
  }
  return s;
}

ModelConfig load_config(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  std::string file = fs::is_directory(path, ec) ? (fs::path(path) / "config.json").string() : path;
  std::ifstream in(file, std::ios::binary);
  if (!in) fail("{}: cannot open config: {}", file, std::strerror(errno));
  std::stringstream ss;
  ss << in.rdbuf();
  json j;
  try {
    j = json::parse(ss.str());
  } catch (const json::exception& e) {
    fail("{}: not valid JSON: {}", file, e.what());
  }
  return parse_config(j, file);
}

}  // namespace dsv3
