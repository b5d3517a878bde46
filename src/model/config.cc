// ModelConfig: HF config.json → validated architecture description, and parameter counting.
//
// Follows the configuration_deepseek.py files shipped in the deepseek-ai/DeepSeek-V3 and DeepSeek-V2 Hugging
// Face repositories: the same keys, and their defaults for optional keys (V3 and V2 differ: the v3 / v2 columns of
// model_fields(), the one table that both parse_config and raw_json() walk).
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
//   * Every key is read, known to be harmless (harmless_keys(): HF bookkeeping and training-only switches,
//     each checked for a value that would matter) or refused by name; HF ignores keys it does not know.
//   * Mistral checkpoints (Mistral Large 3: DeepSeek-V3's architecture in Mistral's format) are refused with
//     the reason (mistral_refusal()).
//   * model_type "deepseek_v32" (DeepseekV32ForCausalLM) takes the V3 defaults; its indexer keys
//     index_n_heads / index_head_dim / index_topk are required (no sensible default for an architecture
//     size) and refused on other model types.
#include "model/config.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <type_traits>
#include <variant>
#include <vector>

#include "core/error.h"

namespace dsv3 {

using nlohmann::json;

namespace {

// Integers above this are refused as absurd; it keeps every product in count_params inside __int128.
constexpr int64_t kMaxInt = (int64_t(1) << 31) - 1;

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
  [[noreturn]] void missing(const char* key) const { fail("{}: missing required key '{}'", label_, name(key)); }
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
  double to_num(const char* key, const json& v) const {
    if (!v.is_number()) bad(key, "a number", v);
    double d = v.get<double>();
    if (!std::isfinite(d)) bad(key, "a finite number", v);
    return d;
  }
  bool to_bool(const char* key, const json& v) const {
    if (!v.is_boolean()) bad(key, "true or false", v);
    return v.get<bool>();
  }
  std::string to_str(const char* key, const json& v) const {
    if (!v.is_string()) bad(key, "a string", v);
    return v.get<std::string>();
  }
  std::string get_str(const char* key, const std::string& def) const {
    const json* v = find(key);
    return v ? to_str(key, *v) : def;
  }
  const std::string& label() const { return label_; }

 private:
  const json& j_;
  const std::string& label_;
  std::string prefix_;
};

// Refuses a key of the object `v` (at `prefix`, e.g. "rope_scaling.") that is not in `known`: a nested key
// dsv3 does not read would otherwise be silently ignored.
void refuse_unknown(const json& v, std::initializer_list<const char*> known, const std::string& label,
                    const std::string& prefix, const std::string& what) {
  for (auto it = v.begin(); it != v.end(); ++it) {
    bool ok = false;
    for (const char* k : known) ok = ok || it.key() == k;
    if (ok) continue;
    std::string list;
    for (const char* k : known) list += (list.empty() ? "" : ", ") + std::string(k);
    fail("{}: key '{}{}' is not one dsv3 reads in {} (refused rather than ignored; known: {})", label, prefix, it.key(),
         what, list);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Field tables: one row per key, read by parse_config and written by raw_json(), so a key is spelled once.
//
// A row names the HF key and the member it fills, then how it is read:
//   need      Required: absent or null is an error ("missing required key"); RequiredWithExperts: the same
//             when the config has routed experts.
//   v3, v2    the default when the key is absent: HF's DeepseekV3Config.__init__ (also kimi_k2's) and, where
//             it differs, DeepseekV2Config's. No default: the member keeps its initial value.
//   null_as   what JSON null reads as (HF's None); without it null is refused like any other wrong type.
//   check     the range, checked once every key is read (then `validate`, then check_consistency's rules
//             across keys).
//   null_unless_positive  written as null when not positive (HF tests these against None).
//   read / write / validate  hooks for keys whose JSON form is not the member's: enums, lists, nested
//             objects. read gets the value, the default when absent, or nullptr (absent, no default);
//             write returns nullopt to leave the key out.

enum class Need { Optional, Required, RequiredWithExperts };
enum class Check { None, Positive, NonNegative, PositiveNumber, PositiveWithExperts, SizeWithExperts };

template <class S>
struct Field {
  using Member = std::variant<std::monostate, int64_t S::*, double S::*, bool S::*, std::string S::*>;
  const char* key;
  Member at = {};
  Need need = Need::Optional;
  std::optional<json> v3 = {}, v2 = {};
  std::optional<json> null_as = {};
  Check check = Check::None;
  bool null_unless_positive = false;
  std::function<void(const Keys&, const json* v, S&)> read = {};
  std::function<std::optional<json>(const S&)> write = {};
  std::function<void(const Keys&, const S&)> validate = {};
};

template <class S>
bool v2_family(const S& s) {
  if constexpr (std::is_same_v<S, ModelConfig>) return s.model_type == "deepseek_v2";
  return false;
}
template <class S>
bool v32_family(const S& s) {
  if constexpr (std::is_same_v<S, ModelConfig>) return s.model_type == "deepseek_v32";
  return false;
}
template <class S>
bool with_experts(const S& s) {
  if constexpr (std::is_same_v<S, ModelConfig>) return s.n_routed_experts > 0;
  return false;
}

// Reads every row in order: presence, default, null, type (and the hooks' own spelling checks).
template <class S>
void read_fields(const std::vector<Field<S>>& fields, const Keys& k, S& s) {
  for (const Field<S>& f : fields) {
    const json* v = k.find(f.key);
    const bool required = f.need == Need::Required || (f.need == Need::RequiredWithExperts && with_experts(s));
    if (required && (!v || v->is_null())) k.missing(f.key);
    if (!v) {
      const std::optional<json>& def = v2_family(s) && f.v2 ? f.v2 : f.v3;
      v = def ? &*def : nullptr;
    } else if (v->is_null() && f.null_as) {
      v = &*f.null_as;
    }
    if (f.read) {
      f.read(k, v, s);
      continue;
    }
    if (!v) continue;
    std::visit(
        [&](auto m) {
          using M = decltype(m);
          if constexpr (std::is_same_v<M, int64_t S::*>) s.*m = k.to_int(f.key, *v);
          if constexpr (std::is_same_v<M, double S::*>) s.*m = k.to_num(f.key, *v);
          if constexpr (std::is_same_v<M, bool S::*>) s.*m = k.to_bool(f.key, *v);
          if constexpr (std::is_same_v<M, std::string S::*>) s.*m = k.to_str(f.key, *v);
        },
        f.at);
  }
}

template <class S, class T>
void check_range(const Field<S>& f, const Keys& k, const S& s, T v) {
  const bool positive = v > 0;
  switch (f.check) {
    case Check::None:
      return;
    case Check::Positive:
    case Check::PositiveWithExperts:
      if (!positive && (f.check == Check::Positive || with_experts(s)))
        fail("{}: key '{}' must be positive, got {}", k.label(), k.name(f.key), v);
      return;
    case Check::SizeWithExperts:  // non-negative; positive with routed experts
      if (v < 0) fail("{}: key '{}' must not be negative, got {}", k.label(), k.name(f.key), v);
      if (with_experts(s) && !positive) fail("{}: key '{}' must be positive, got {}", k.label(), k.name(f.key), v);
      return;
    case Check::NonNegative:
      if (v < 0) fail("{}: key '{}' must not be negative, got {}", k.label(), k.name(f.key), v);
      return;
    case Check::PositiveNumber:  // the message of a mistyped value
      if (!positive) {
        const json* given = k.find(f.key);
        k.bad(f.key, "a positive number", given ? *given : json(v));
      }
      return;
  }
}

// Checks every row's range, in table order.
template <class S>
void check_fields(const std::vector<Field<S>>& fields, const Keys& k, const S& s) {
  for (const Field<S>& f : fields) {
    std::visit(
        [&](auto m) {
          using M = decltype(m);
          if constexpr (std::is_same_v<M, int64_t S::*> || std::is_same_v<M, double S::*>) check_range(f, k, s, s.*m);
        },
        f.at);
    if (f.validate) f.validate(k, s);
  }
}

template <class S>
json write_fields(const std::vector<Field<S>>& fields, const S& s) {
  json j = json::object();
  for (const Field<S>& f : fields) {
    std::optional<json> v;
    if (f.write) {
      v = f.write(s);
    } else {
      std::visit(
          [&](auto m) {
            using M = decltype(m);
            if constexpr (!std::is_same_v<M, std::monostate>) v = json(s.*m);
            if constexpr (std::is_same_v<M, int64_t S::*>) {
              if (f.null_unless_positive && s.*m <= 0) v = json(nullptr);
            }
          },
          f.at);
    }
    if (v) j[f.key] = std::move(*v);
  }
  return j;
}

// A string key naming an enumerator: names[i] spells E(i). Unknown names are refused with the list.
template <class S, class E, size_t N>
Field<S> enumerated(Field<S> f, E S::*m, const std::array<const char*, N>& names) {
  const char* key = f.key;
  f.read = [key, m, &names](const Keys& k, const json* v, S& s) {
    const std::string name = k.to_str(key, *v);
    for (size_t i = 0; i < N; ++i)
      if (name == names[i]) {
        s.*m = E(i);
        return;
      }
    std::string supported;
    for (const char* n : names) supported += (supported.empty() ? "" : ", ") + std::string(n);
    fail("{}: key '{}' is '{}'; supported: {}", k.label(), k.name(key), name, supported);
  };
  f.write = [m, &names](const S& s) -> std::optional<json> { return json(names[size_t(s.*m)]); };
  return f;
}

constexpr std::array<const char*, 2> kScoringNames = {"sigmoid", "softmax"};  // ScoringFunc's order
constexpr std::array<const char*, 3> kTopkNames = {"noaux_tc", "greedy", "group_limited_greedy"};  // TopkMethod's

// rope_scaling {type: yarn, ...}; "type" (or "rope_type") selects the scaling and is read and written around
// the table.
const std::vector<Field<YarnScaling>>& yarn_fields() {
  using Y = YarnScaling;
  static const std::vector<Field<Y>> table = {
      {.key = "factor", .at = &Y::factor, .need = Need::Required, .check = Check::PositiveNumber},  // rope_factor
      {.key = "original_max_position_embeddings", .at = &Y::original_max_position_embeddings, .check = Check::Positive},
      // Both betas enter log() in YaRN's correction range.
      {.key = "beta_fast", .at = &Y::beta_fast, .check = Check::Positive},
      {.key = "beta_slow", .at = &Y::beta_slow, .check = Check::Positive},
      {.key = "mscale", .at = &Y::mscale},
      {.key = "mscale_all_dim", .at = &Y::mscale_all_dim},
  };
  return table;
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
  if (type == "default") {
    refuse_unknown(v, {"type", "rope_type"}, label, "rope_scaling.", "rope_scaling of type default");
    return std::nullopt;
  }
  if (type != "yarn")
    fail("{}: key 'rope_scaling.type' is '{}'; only 'yarn' is supported (DeepSeek-V3's long-context RoPE)", label,
         type);
  refuse_unknown(v,
                 {"type", "rope_type", "factor", "original_max_position_embeddings", "beta_fast", "beta_slow", "mscale",
                  "mscale_all_dim"},
                 label, "rope_scaling.", "a yarn rope_scaling");
  YarnScaling y;
  read_fields(yarn_fields(), k, y);
  check_fields(yarn_fields(), k, y);
  return y;
}

json rope_scaling_json(const std::optional<YarnScaling>& y) {
  if (!y) return nullptr;
  json j = write_fields(yarn_fields(), *y);
  j["type"] = "yarn";
  return j;
}

// quantization_config: its keys depend on quant_method and do not map one to one onto members (fp8's
// weight_block_size is two of them), so it is one row with hooks: parse_quantization and quantization_json.
// scale_fmt: absent or null (float32 scales) or "ue8m0".
void parse_scale_fmt(const Keys& k, ModelConfig& c) {
  const json* sf = k.find("scale_fmt");
  if (!sf || sf->is_null()) return;
  c.scale_fmt = k.to_str("scale_fmt", *sf);
  if (c.scale_fmt != "ue8m0")
    fail("{}: key 'quantization_config.scale_fmt' is '{}'; supported: ue8m0 (or null)", k.label(), c.scale_fmt);
}

void parse_quantization(const json& v, ModelConfig& c, const std::string& label) {
  if (v.is_null()) return;
  if (!v.is_object()) Keys(v, label).bad("quantization_config", "an object or null", v);
  Keys k(v, label, "quantization_config.");
  std::string method = k.get_str("quant_method", "");
  if (method == "dsv3_block") {
    // `dsv3 quantize` (docs/formats.md): int8 / int4 codes with one f16 scale per 32 elements along k.
    // not_quantized is informational (the tensors left as stored; binding goes by each tensor's dtype).
    refuse_unknown(
        v, {"quant_method", "weight_format", "block_size", "scale_dtype", "head_format", "not_quantized", "scale_fmt"},
        label, "quantization_config.", "a dsv3_block quantization_config");
    c.block_quant = k.get_str("weight_format", "");
    if (c.block_quant != "int8" && c.block_quant != "int4")
      fail("{}: key 'quantization_config.weight_format' is '{}'; expected 'int8' or 'int4'", label, c.block_quant);
    const json* bs = k.find("block_size");
    if (!bs) fail("{}: missing required key 'quantization_config.block_size'", label);
    if (k.to_int("block_size", *bs) != 32)
      fail("{}: key 'quantization_config.block_size' is {}; only 32 is supported", label, bs->dump());
    const std::string sd = k.get_str("scale_dtype", "float16");
    if (sd != "float16")
      fail("{}: key 'quantization_config.scale_dtype' is '{}'; only 'float16' is supported", label, sd);
    parse_scale_fmt(k, c);  // kept from the FP8 original (the indexer's activation quantization)
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
  refuse_unknown(v, {"quant_method", "fmt", "activation_scheme", "weight_block_size", "scale_fmt"}, label,
                 "quantization_config.", "an fp8 quantization_config");
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
  parse_scale_fmt(k, c);
  c.fp8 = true;
}

std::optional<json> quantization_json(const ModelConfig& c) {
  if (!c.block_quant.empty()) return c.block_quant_json();
  if (!c.fp8) return std::nullopt;
  json q{{"activation_scheme", "dynamic"},
         {"fmt", "e4m3"},
         {"quant_method", "fp8"},
         {"weight_block_size", {c.weight_block_n, c.weight_block_k}}};
  if (!c.scale_fmt.empty()) q["scale_fmt"] = c.scale_fmt;
  return q;
}

// Mistral Large 3 is DeepSeek-V3's architecture, but not its checkpoint: Mistral ships params.json (no HF
// DeepseekV3 config.json), its own tensor names (layers.L.attention.wq_a, feed_forward.w1, experts.E.w1,
// tok_embeddings, output; vLLM's mistral_large_3.py renames them one to one), per-tensor FP8 scales with
// static activation scales (qscale_weight / qscale_act, not DeepSeek's 128x128 weight_scale_inv) and a
// vision encoder. The names would map cleanly; the FP8 scheme and the multimodal model do not, so it is
// refused rather than half-loaded.
std::string mistral_refusal() {
  return "Mistral checkpoints (Mistral Large 3) are refused: params.json, Mistral tensor names, per-tensor FP8 "
         "scales (qscale_weight / qscale_act) and a vision encoder are not DeepSeek's HF layout (docs/models.md)";
}

// An indexer size: required and positive for deepseek_v32, refused for the other model types.
Field<ModelConfig> indexer_size(const char* key, int64_t ModelConfig::*m) {
  using C = ModelConfig;
  return {.key = key,
          .at = m,
          .read =
              [key, m](const Keys& k, const json* v, C& c) {
                if (!v32_family(c)) {
                  if (v && !v->is_null())
                    fail("{}: key '{}' is for model_type deepseek_v32 (the sparse-attention indexer), not '{}'",
                         k.label(), key, c.model_type);
                  return;
                }
                if (!v || v->is_null()) k.missing(key);
                c.*m = k.to_int(key, *v);
                if (c.*m <= 0) fail("{}: key '{}' must be positive, got {}", k.label(), key, c.*m);
              },
          .write = [m](const C& c) -> std::optional<json> {
            if (!v32_family(c)) return std::nullopt;
            return json(c.*m);
          }};
}

// The config.json keys, in the order they are read (model_type first: it selects the defaults).
const std::vector<Field<ModelConfig>>& model_fields() {
  using C = ModelConfig;
  using Hook = std::optional<json>;
  static const std::vector<Field<C>> table = {
      {.key = "model_type",
       .at = &C::model_type,
       .read =
           [](const Keys& k, const json* v, C& c) {
             if (!v) k.missing("model_type");
             c.model_type = k.to_str("model_type", *v);
             if (c.model_type.find("istral") != std::string::npos) fail("{}: {}", k.label(), mistral_refusal());
             if (c.model_type != "deepseek_v3" && c.model_type != "deepseek_v2" && c.model_type != "kimi_k2" &&
                 c.model_type != "deepseek_v32")
               fail("{}: key 'model_type' is '{}'; supported: deepseek_v3, deepseek_v2, kimi_k2, deepseek_v32",
                    k.label(), c.model_type);
           }},
      // The model_type decides the computation; architectures, when given, must name the same DeepSeek class
      // (an unknown class, e.g. a config of another model family with DeepSeek's keys, is refused). Written for
      // transformers.
      {.key = "architectures",
       .read =
           [](const Keys& k, const json* v, C& c) {
             if (!v || v->is_null()) return;
             if (!v->is_array() || v->empty()) k.bad("architectures", "a non-empty array of class names", *v);
             const char* want = c.model_type == "deepseek_v32"  ? "DeepseekV32ForCausalLM"
                                : c.model_type == "deepseek_v2" ? "DeepseekV2ForCausalLM"
                                                                : "DeepseekV3ForCausalLM";
             for (const json& a : *v) {
               const std::string name = k.to_str("architectures", a);
               if (name != want)
                 fail("{}: key 'architectures' names '{}'; model_type '{}' is {} (dsv3 runs no other class)", k.label(),
                      name, c.model_type, want);
             }
           },
       .write = [](const C& c) -> Hook {
         if (v32_family(c)) return json::array({"DeepseekV32ForCausalLM"});
         return json::array({v2_family(c) ? "DeepseekV2ForCausalLM" : "DeepseekV3ForCausalLM"});
       }},
      {.key = "vocab_size", .at = &C::vocab_size, .need = Need::Required, .check = Check::Positive},
      {.key = "hidden_size", .at = &C::hidden_size, .need = Need::Required, .check = Check::Positive},
      {.key = "intermediate_size", .at = &C::intermediate_size, .need = Need::Required, .check = Check::Positive},
      {.key = "num_hidden_layers", .at = &C::num_hidden_layers, .need = Need::Required, .check = Check::Positive},
      {.key = "num_attention_heads", .at = &C::num_attention_heads, .need = Need::Required, .check = Check::Positive},
      {.key = "kv_lora_rank", .at = &C::kv_lora_rank, .need = Need::Required, .check = Check::Positive},
      {.key = "qk_nope_head_dim", .at = &C::qk_nope_head_dim, .need = Need::Required, .check = Check::Positive},
      {.key = "qk_rope_head_dim",
       .at = &C::qk_rope_head_dim,
       .need = Need::Required,
       .check = Check::Positive,
       .validate =
           [](const Keys& k, const C& c) {
             if (c.qk_rope_head_dim % 2 != 0)
               fail("{}: key 'qk_rope_head_dim' must be even (RoPE rotates pairs), got {}", k.label(),
                    c.qk_rope_head_dim);
           }},
      {.key = "v_head_dim", .at = &C::v_head_dim, .need = Need::Required, .check = Check::Positive},
      {.key = "q_lora_rank",
       .at = &C::q_lora_rank,
       .v3 = 1536,
       .null_as = 0,
       .check = Check::NonNegative,
       .null_unless_positive = true},
      // Absent or null: num_attention_heads.
      {.key = "num_key_value_heads",
       .at = &C::num_key_value_heads,
       .check = Check::Positive,
       .read =
           [](const Keys& k, const json* v, C& c) {
             c.num_key_value_heads = v && !v->is_null() ? k.to_int("num_key_value_heads", *v) : c.num_attention_heads;
           }},
      {.key = "num_nextn_predict_layers",
       .at = &C::num_nextn_predict_layers,
       .v3 = 1,
       .v2 = 0,
       .null_as = 0,
       .check = Check::NonNegative},
      // None in HF for n_routed_experts / n_shared_experts / n_group / topk_group: 0, 0, 1, 1 here.
      {.key = "n_routed_experts",
       .at = &C::n_routed_experts,
       .v3 = 256,
       .v2 = 0,
       .null_as = 0,
       .check = Check::NonNegative,
       .null_unless_positive = true},
      {.key = "n_shared_experts",
       .at = &C::n_shared_experts,
       .v3 = 1,
       .v2 = 0,
       .null_as = 0,
       .check = Check::NonNegative,
       .null_unless_positive = true},
      {.key = "n_group", .at = &C::n_group, .v3 = 8, .v2 = 1, .null_as = 1, .check = Check::PositiveWithExperts},
      {.key = "topk_group", .at = &C::topk_group, .v3 = 4, .v2 = 1, .null_as = 1, .check = Check::PositiveWithExperts},
      {.key = "first_k_dense_replace", .at = &C::first_k_dense_replace, .v3 = 3, .v2 = 0, .check = Check::NonNegative},
      {.key = "moe_layer_freq", .at = &C::moe_layer_freq, .v3 = 1, .check = Check::Positive},
      {.key = "routed_scaling_factor", .at = &C::routed_scaling_factor, .v3 = 2.5, .v2 = 1.0, .check = Check::Positive},
      {.key = "norm_topk_prob", .at = &C::norm_topk_prob, .v3 = true, .v2 = false},
      {.key = "moe_intermediate_size",
       .at = &C::moe_intermediate_size,
       .need = Need::RequiredWithExperts,
       .v3 = 0,
       .null_as = 0,
       .check = Check::SizeWithExperts},
      // Written as null for a dense model.
      {.key = "num_experts_per_tok",
       .at = &C::num_experts_per_tok,
       .need = Need::RequiredWithExperts,
       .v3 = 0,
       .null_as = 0,
       .check = Check::SizeWithExperts,
       .write = [](const C& c) -> Hook {
         return c.n_routed_experts > 0 ? json(c.num_experts_per_tok) : json(nullptr);
       }},
      enumerated<C>({.key = "scoring_func", .v3 = "sigmoid", .v2 = "softmax"}, &C::scoring_func, kScoringNames),
      enumerated<C>({.key = "topk_method", .v3 = "noaux_tc", .v2 = "greedy"}, &C::topk_method, kTopkNames),
      {.key = "rope_theta", .at = &C::rope_theta, .v3 = 10000.0, .check = Check::Positive},
      {.key = "rope_scaling",
       .read =
           [](const Keys& k, const json* v, C& c) {
             if (v) c.rope_scaling = parse_rope_scaling(*v, k.label());
           },
       .write = [](const C& c) -> Hook { return rope_scaling_json(c.rope_scaling); }},
      {.key = "rms_norm_eps", .at = &C::rms_norm_eps, .v3 = 1e-6, .check = Check::Positive},
      {.key = "max_position_embeddings",
       .at = &C::max_position_embeddings,
       .v3 = 4096,
       .v2 = 2048,
       .check = Check::Positive},
      {.key = "tie_word_embeddings", .at = &C::tie_word_embeddings, .v3 = false},
      // HF's DeepseekV3/V2 classes honour both: biases on the attention projections, and MLA's RoPE pairs laid out
      // interleaved (true) or as halves. Every DeepSeek checkpoint has no biases and interleaved pairs, and that
      // is what dsv3 computes; the other values are refused rather than silently ignored.
      {.key = "attention_bias",
       .read =
           [](const Keys& k, const json* v, C&) {
             if (v && !v->is_null() && k.to_bool("attention_bias", *v))
               fail("{}: key 'attention_bias' is true: dsv3 implements DeepSeek's bias-free attention projections",
                    k.label());
           },
       .write = [](const C&) -> Hook { return std::nullopt; }},
      {.key = "rope_interleave",
       .read =
           [](const Keys& k, const json* v, C&) {
             if (v && !v->is_null() && !k.to_bool("rope_interleave", *v))
               fail(
                   "{}: key 'rope_interleave' is false: dsv3 implements MLA's interleaved RoPE pairs (DeepSeek's "
                   "layout) only",
                   k.label());
           },
       .write = [](const C&) -> Hook { return std::nullopt; }},
      {.key = "hidden_act",
       .at = &C::hidden_act,
       .v3 = "silu",
       .validate =
           [](const Keys& k, const C& c) {
             if (c.hidden_act != "silu")
               fail("{}: key 'hidden_act' is '{}'; DeepSeek's SwiGLU experts need 'silu'", k.label(), c.hidden_act);
           }},
      {.key = "initializer_range", .at = &C::initializer_range, .v3 = 0.02, .check = Check::NonNegative},
      // null: no BOS.
      {.key = "bos_token_id",
       .v3 = 0,
       .v2 = 100000,
       .read =
           [](const Keys& k, const json* v, C& c) {
             if (!v->is_null()) c.bos_token_id = k.to_int("bos_token_id", *v);
           },
       .write = [](const C& c) -> Hook { return c.bos_token_id ? json(*c.bos_token_id) : json(nullptr); },
       .validate =
           [](const Keys& k, const C& c) {
             if (c.bos_token_id && *c.bos_token_id < 0) fail("{}: key 'bos_token_id' must not be negative", k.label());
           }},
      // An integer or a list of them; null: none.
      {.key = "eos_token_id",
       .v3 = 1,
       .v2 = 100001,
       .read =
           [](const Keys& k, const json* v, C& c) {
             if (v->is_array()) {
               for (const json& x : *v) c.eos_token_ids.push_back(k.to_int("eos_token_id", x));
             } else if (!v->is_null()) {
               c.eos_token_ids.push_back(k.to_int("eos_token_id", *v));
             }
           },
       .write = [](const C& c) -> Hook {
         if (c.eos_token_ids.empty()) return json(nullptr);
         if (c.eos_token_ids.size() == 1) return json(c.eos_token_ids[0]);
         return json(c.eos_token_ids);
       },
       .validate =
           [](const Keys& k, const C& c) {
             for (int64_t e : c.eos_token_ids)
               if (e < 0) fail("{}: key 'eos_token_id' must not be negative, got {}", k.label(), e);
           }},
      // Informational. transformers >= 4.56 writes "dtype"; older versions "torch_dtype". Left out when empty.
      {.key = "torch_dtype",
       .read =
           [](const Keys& k, const json*, C& c) {
             for (const char* key : {"torch_dtype", "dtype"}) {
               const json* t = k.find(key);
               if (!t || t->is_null()) continue;
               c.torch_dtype = k.to_str(key, *t);
               break;
             }
           },
       .write = [](const C& c) -> Hook {
         if (c.torch_dtype.empty()) return std::nullopt;
         return json(c.torch_dtype);
       }},
      {.key = "quantization_config",
       .read =
           [](const Keys& k, const json* v, C& c) {
             if (v) parse_quantization(*v, c, k.label());
           },
       .write = quantization_json},
      // DeepSeek Sparse Attention (deepseek_v32): required there, refused elsewhere; written only there.
      indexer_size("index_n_heads", &C::index_n_heads),
      indexer_size("index_head_dim", &C::index_head_dim),
      indexer_size("index_topk", &C::index_topk),
      {.key = "indexer_rope_interleave",
       .at = &C::indexer_rope_interleave,
       .read =
           [](const Keys& k, const json* v, C& c) {
             if (!v || v->is_null()) return;
             if (!v32_family(c))
               fail(
                   "{}: key 'indexer_rope_interleave' is for model_type deepseek_v32 (the sparse-attention "
                   "indexer), not '{}'",
                   k.label(), c.model_type);
             c.indexer_rope_interleave = k.to_bool("indexer_rope_interleave", *v);
           },
       .write = [](const C& c) -> Hook {
         if (!v32_family(c) || !c.indexer_rope_interleave) return std::nullopt;
         return json(true);
       }},
      // GLM-5.x's IndexShare: "full" / "shared" per main-model layer (config.h).
      {.key = "indexer_types",
       .read =
           [](const Keys& k, const json* v, C& c) {
             if (!v || v->is_null()) return;
             if (!v32_family(c))
               fail("{}: key 'indexer_types' is for model_type deepseek_v32 (the sparse-attention indexer), not '{}'",
                    k.label(), c.model_type);
             if (!v->is_array() || int64_t(v->size()) != c.num_hidden_layers) {
               const std::string want = fmt::format("an array of num_hidden_layers ({}) strings", c.num_hidden_layers);
               k.bad("indexer_types", want.c_str(), *v);
             }
             c.index_shared.clear();
             for (size_t l = 0; l < v->size(); ++l) {
               const std::string t = k.to_str("indexer_types", (*v)[l]);
               if (t != "full" && t != "shared")
                 fail("{}: key 'indexer_types' entry {} is '{}'; each layer is \"full\" or \"shared\"", k.label(), l,
                      t);
               c.index_shared.push_back(t == "shared");
             }
             if (c.index_shared[0])
               fail(
                   "{}: key 'indexer_types' entry 0 is \"shared\"; the first layer must be \"full\" (a shared layer "
                   "reuses the selection of the full layer above it)",
                   k.label());
             if (std::find(c.index_shared.begin(), c.index_shared.end(), true) == c.index_shared.end())
               c.index_shared.clear();  // every layer full: DeepSeek's V3.2
           },
       .write = [](const C& c) -> Hook {
         if (c.index_shared.empty()) return std::nullopt;
         json a = json::array();
         for (bool s : c.index_shared) a.push_back(s ? "shared" : "full");
         return a;
       }},
  };
  return table;
}

// Keys outside the field table that published DeepSeek-family configs (or transformers, writing one) carry and
// that do not change what dsv3 computes, each with the reason. `check` refuses a value that would change it
// (or is mistyped). Any other key is refused naming it: an ignored key could silently mean another model.
struct HarmlessKey {
  const char* key;
  const char* why;
  std::function<void(const Keys&, const json&, const ModelConfig&)> check = {};
};

const std::vector<HarmlessKey>& harmless_keys() {
  using C = ModelConfig;
  static const std::vector<HarmlessKey> table = {
      {"transformers_version", "the transformers release that wrote the file",
       [](const Keys& k, const json& v, const C&) { (void)k.to_str("transformers_version", v); }},
      {"_name_or_path", "where transformers read the config from",
       [](const Keys& k, const json& v, const C&) { (void)k.to_str("_name_or_path", v); }},
      {"auto_map", "the remote-code classes transformers imports; dsv3 computes from the keys, not that code",
       [](const Keys& k, const json& v, const C&) {
         if (!v.is_object()) k.bad("auto_map", "an object", v);
       }},
      {"dtype", "transformers >= 4.56's name for torch_dtype: the stored dtype, informational (read with it)",
       [](const Keys& k, const json& v, const C&) {
         if (!v.is_null()) (void)k.to_str("dtype", v);
       }},
      {"use_cache", "whether transformers' forward returns its KV cache; dsv3 always keeps one (same logits)",
       [](const Keys& k, const json& v, const C&) { (void)k.to_bool("use_cache", v); }},
      {"pad_token_id", "the id batches are padded with; no real token's logits depend on it",
       [](const Keys& k, const json& v, const C&) {
         if (!v.is_null() && k.to_int("pad_token_id", v) < 0) k.bad("pad_token_id", "a non-negative id or null", v);
       }},
      {"ep_size", "the expert-parallel degree of DeepSeek's remote code; dsv3's is --ep, with the same sums",
       [](const Keys& k, const json& v, const C&) {
         if (k.to_int("ep_size", v) < 1) k.bad("ep_size", "a positive integer", v);
       }},
      {"pretraining_tp", "HF slices the MLP matmuls into this many parts and sums them: the same product",
       [](const Keys& k, const json& v, const C&) {
         if (k.to_int("pretraining_tp", v) < 1) k.bad("pretraining_tp", "a positive integer", v);
       }},
      {"aux_loss_alpha",
       "the weight of HF MoEGate's training auxiliary loss; inference never computes it and dsv3 train takes its "
       "balance loss from training.balance",
       [](const Keys& k, const json& v, const C&) {
         if (k.to_num("aux_loss_alpha", v) < 0) k.bad("aux_loss_alpha", "a non-negative number", v);
       }},
      {"seq_aux", "whether that training loss is per sequence (as aux_loss_alpha)",
       [](const Keys& k, const json& v, const C&) { (void)k.to_bool("seq_aux", v); }},
      {"attention_dropout", "dropout on attention weights in HF training; dsv3 trains without dropout: 0 only",
       [](const Keys& k, const json& v, const C&) {
         if (k.to_num("attention_dropout", v) != 0.0)
           fail("{}: key 'attention_dropout' is {}: dsv3 applies no dropout (only 0 is accepted)", k.label(), v.dump());
       }},
      {"head_dim", "transformers' DeepseekV3Config repeats qk_rope_head_dim under this name: must equal it",
       [](const Keys& k, const json& v, const C& c) {
         if (k.to_int("head_dim", v) != c.qk_rope_head_dim)
           fail("{}: key 'head_dim' is {}, but transformers writes qk_rope_head_dim ({}) there", k.label(), v.dump(),
                c.qk_rope_head_dim);
       }},
      {"qk_head_dim", "transformers' DeepseekV3Config writes qk_nope_head_dim + qk_rope_head_dim: must equal it",
       [](const Keys& k, const json& v, const C& c) {
         if (k.to_int("qk_head_dim", v) != c.qk_head_dim())
           fail("{}: key 'qk_head_dim' is {}, but qk_nope_head_dim + qk_rope_head_dim = {}", k.label(), v.dump(),
                c.qk_head_dim());
       }},
  };
  return table;
}

// Every key of config.json is a row of the field table or a harmless key (checked); others are refused.
void refuse_unknown_keys(const json& j, const Keys& k, const ModelConfig& c) {
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& key = it.key();
    bool known = false;
    for (const Field<ModelConfig>& f : model_fields()) known = known || key == f.key;
    if (known) continue;
    for (const HarmlessKey& h : harmless_keys())
      if (key == h.key) {
        h.check(k, it.value(), c);
        known = true;
      }
    if (!known)
      fail(
          "{}: key '{}' is not one dsv3 knows; refused rather than ignored, as it may change the computation "
          "(docs/models.md lists the keys dsv3 honours and those it knows to be harmless)",
          k.label(), key);
  }
}

// The rules that span keys, after every row's own check.
void check_consistency(const ModelConfig& c, const std::string& label) {
  if (c.first_k_dense_replace > c.num_hidden_layers)
    fail("{}: key 'first_k_dense_replace' ({}) exceeds 'num_hidden_layers' ({})", label, c.first_k_dense_replace,
         c.num_hidden_layers);
  if (c.has_indexer()) {
    // DeepSeek's Indexer: one FP8 block of 128 per index head, [rope | nope] split of each head, the query
    // from MLA's q latent.
    if (c.index_head_dim != 128)
      fail(
          "{}: key 'index_head_dim' is {}; the indexer quantizes each index head as one FP8 block of 128 "
          "(DeepSeek's code supports only 128)",
          label, c.index_head_dim);
    if (c.qk_rope_head_dim >= c.index_head_dim)
      fail("{}: key 'index_head_dim' ({}) must exceed 'qk_rope_head_dim' ({}): each index head is [rope | nope]", label,
           c.index_head_dim, c.qk_rope_head_dim);
    if (c.q_lora_rank <= 0)
      fail("{}: model_type deepseek_v32 needs 'q_lora_rank' > 0 (the indexer's query comes from MLA's q latent)",
           label);
  }
  if (c.n_routed_experts == 0) return;
  // MoE consistency
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

}  // namespace

ModelConfig parse_config(const json& j, const std::string& label) {
  if (!j.is_object()) fail("{}: config must be a JSON object, got {}", label, j.type_name());
  Keys k(j, label);
  ModelConfig c;
  read_fields(model_fields(), k, c);
  check_fields(model_fields(), k, c);
  refuse_unknown_keys(j, k, c);
  check_consistency(c, label);
  return c;
}

json ModelConfig::raw_json() const { return write_fields(model_fields(), *this); }

nlohmann::json ModelConfig::block_quant_json() const {
  json q{{"quant_method", "dsv3_block"},
         {"weight_format", block_quant},
         {"block_size", 32},
         {"scale_dtype", "float16"},
         {"head_format", block_quant_head},
         {"not_quantized", {"model.embed_tokens", "*norm*", "mlp.gate", "mlp.gate.e_score_correction_bias"}}};
  if (has_indexer()) q["not_quantized"].push_back("self_attn.indexer.weights_proj");
  if (!scale_fmt.empty()) q["scale_fmt"] = scale_fmt;
  return q;
}

int64_t ModelConfig::index_cache_layers() const {
  if (!has_indexer()) return 0;
  return num_hidden_layers - int64_t(std::count(index_shared.begin(), index_shared.end(), true));
}

int64_t ModelConfig::index_slot(int64_t l) const {
  if (!layer_has_indexer(l) || l >= num_hidden_layers) fail("index_slot: layer {} has no main-model indexer", l);
  if (index_shared.empty()) return l;
  return l - int64_t(std::count(index_shared.begin(), index_shared.begin() + l, true));
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
  if (fs::is_directory(path, ec) && !fs::exists(file, ec) && fs::exists(fs::path(path) / "params.json", ec))
    fail("{}: no config.json but a params.json: {}", path, mistral_refusal());
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
