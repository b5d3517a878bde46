// ModelConfig: the reference and published configs parse, parameter counts (DeepSeek-V3 = 671.0B, and exact
// agreement with the tensors of the reference checkpoints), every refused config names its key, and
// raw_json() round-trips: every field of the table, and the published configs' own keys and values.
#include "model/config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "io/safetensors.h"
#include "model/schema.h"

namespace dsv3 {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string data_path(const std::string& name) { return std::string(DSV3_TEST_SRC) + "/data/" + name; }

// A small valid V3 config to mutate in the error tests.
json tiny_v3() {
  return json::parse(R"({
    "model_type": "deepseek_v3", "vocab_size": 256, "hidden_size": 64, "intermediate_size": 128,
    "moe_intermediate_size": 32, "num_hidden_layers": 3, "num_nextn_predict_layers": 1,
    "num_attention_heads": 4, "num_key_value_heads": 4, "n_shared_experts": 1, "n_routed_experts": 16,
    "num_experts_per_tok": 4, "n_group": 4, "topk_group": 2, "routed_scaling_factor": 2.5,
    "scoring_func": "sigmoid", "topk_method": "noaux_tc", "norm_topk_prob": true, "first_k_dense_replace": 1,
    "moe_layer_freq": 1, "q_lora_rank": 32, "kv_lora_rank": 32, "qk_nope_head_dim": 16, "qk_rope_head_dim": 8,
    "v_head_dim": 16, "rope_theta": 10000.0,
    "rope_scaling": {"type": "yarn", "factor": 40, "original_max_position_embeddings": 4096, "beta_fast": 32,
                     "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 1.0},
    "rms_norm_eps": 1e-06, "max_position_embeddings": 163840, "tie_word_embeddings": false,
    "bos_token_id": 0, "eos_token_id": 1, "hidden_act": "silu", "initializer_range": 0.02,
    "torch_dtype": "bfloat16"
  })");
}

// Expects parse_config to throw a dsv3::Error whose message contains every one of `parts`.
void expect_refused(const json& j, std::initializer_list<std::string> parts) {
  try {
    parse_config(j, "test_config.json");
    ADD_FAILURE() << "accepted: " << j.dump();
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("test_config.json"), std::string::npos) << msg;
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
  }
}

json with(json j, const std::string& key, const json& value) {
  j[key] = value;
  return j;
}
json without(json j, const std::string& key) {
  j.erase(key);
  return j;
}

void expect_round_trip(const ModelConfig& c) {
  ModelConfig r = parse_config(c.raw_json(), "round trip");
  EXPECT_EQ(r.raw_json(), c.raw_json());
  EXPECT_EQ(r.model_type, c.model_type);
  EXPECT_EQ(r.q_lora_rank, c.q_lora_rank);
  EXPECT_EQ(r.n_routed_experts, c.n_routed_experts);
  EXPECT_EQ(r.n_shared_experts, c.n_shared_experts);
  EXPECT_EQ(r.num_nextn_predict_layers, c.num_nextn_predict_layers);
  EXPECT_EQ(r.first_k_dense_replace, c.first_k_dense_replace);
  EXPECT_EQ(r.scoring_func, c.scoring_func);
  EXPECT_EQ(r.topk_method, c.topk_method);
  EXPECT_EQ(r.norm_topk_prob, c.norm_topk_prob);
  EXPECT_EQ(r.rope_scaling.has_value(), c.rope_scaling.has_value());
  EXPECT_EQ(r.eos_token_ids, c.eos_token_ids);
  EXPECT_EQ(r.bos_token_id, c.bos_token_id);
  EXPECT_EQ(r.fp8, c.fp8);
  EXPECT_DOUBLE_EQ(r.softmax_scale(), c.softmax_scale());
  EXPECT_EQ(count_params(r).total_main, count_params(c).total_main);
}

// ---------------------------------------------------------------------------------------------------------
// Published configs

TEST(ConfigPublished, DeepSeekV3) {
  ModelConfig c = load_config(data_path("deepseek_v3_config.json"));
  EXPECT_EQ(c.model_type, "deepseek_v3");
  EXPECT_EQ(c.num_hidden_layers, 61);
  EXPECT_EQ(c.num_nextn_predict_layers, 1);
  EXPECT_EQ(c.q_lora_rank, 1536);
  EXPECT_EQ(c.kv_cache_values_per_token(), 576);
  EXPECT_EQ(c.scoring_func, ScoringFunc::Sigmoid);
  EXPECT_EQ(c.topk_method, TopkMethod::NoauxTc);
  EXPECT_TRUE(c.fp8);
  EXPECT_EQ(c.weight_block_n, 128);
  EXPECT_EQ(c.weight_block_k, 128);
  ASSERT_TRUE(c.rope_scaling);
  EXPECT_DOUBLE_EQ(c.rope_scaling->factor, 40);
  EXPECT_EQ(c.eos_token_ids, std::vector<int64_t>{1});
  EXPECT_FALSE(c.is_moe_layer(2));
  EXPECT_TRUE(c.is_moe_layer(3));
  EXPECT_TRUE(c.is_moe_layer(61));  // the MTP layer

  // softmax scale: 1/sqrt(192) * (0.1 * ln 40 + 1)^2
  double m = 0.1 * std::log(40.0) + 1.0;
  EXPECT_NEAR(c.softmax_scale(), m * m / std::sqrt(192.0), 1e-15);

  ParamCounts p = count_params(c);
  EXPECT_NEAR(double(p.total_main) / 1e9, 671.0, 0.05);
  EXPECT_EQ(p.total_main, 671026404352);  // hand-derived in config.cc's comment conventions
  EXPECT_NEAR(double(p.activated) / 1e9, 36.6, 0.05);
  EXPECT_EQ(p.activated, 36625603584);
  EXPECT_GE(p.mtp, 11'500'000'000);
  EXPECT_LE(p.mtp, 14'000'000'000);
  EXPECT_EQ(p.mtp, 11610067968);
  expect_round_trip(c);
}

TEST(ConfigPublished, DeepSeekR1) {
  ModelConfig c = load_config(data_path("deepseek_r1_config.json"));
  EXPECT_EQ(count_params(c).total_main, 671026404352);
}

TEST(ConfigPublished, DeepSeekV2Lite) {
  ModelConfig c = load_config(data_path("deepseek_v2_lite_config.json"));
  EXPECT_EQ(c.model_type, "deepseek_v2");
  EXPECT_EQ(c.q_lora_rank, 0);
  EXPECT_EQ(c.scoring_func, ScoringFunc::Softmax);
  EXPECT_EQ(c.topk_method, TopkMethod::Greedy);
  EXPECT_FALSE(c.norm_topk_prob);
  EXPECT_EQ(c.num_nextn_predict_layers, 0);  // V2 has no MTP
  EXPECT_FALSE(c.fp8);
  // mscale_all_dim 0.707: scale = 1/sqrt(192) * (0.0707 ln 40 + 1)^2
  double m = 0.1 * 0.707 * std::log(40.0) + 1.0;
  EXPECT_NEAR(c.softmax_scale(), m * m / std::sqrt(192.0), 1e-15);
  ParamCounts p = count_params(c);
  // DeepSeek-V2-Lite: 15.7B total, 2.4B activated (paper) -- the same no-embedding convention as V3.
  EXPECT_NEAR(double(p.total_main) / 1e9, 15.7, 0.05);
  EXPECT_NEAR(double(p.activated) / 1e9, 2.45, 0.05);
  EXPECT_EQ(p.mtp, 0);
  expect_round_trip(c);
}

TEST(ConfigPublished, KimiK2) {
  ModelConfig c = load_config(data_path("kimi_k2_instruct_config.json"));
  EXPECT_EQ(c.model_type, "kimi_k2");
  EXPECT_EQ(c.n_routed_experts, 384);
  EXPECT_EQ(c.n_group, 1);
  EXPECT_DOUBLE_EQ(c.routed_scaling_factor, 2.827);
  EXPECT_EQ(c.num_nextn_predict_layers, 0);
  ParamCounts p = count_params(c);
  // Kimi-K2: "1T total, 32B activated" (model card). Here: 1026.4B, 31.7B (32.9B with the embedding).
  EXPECT_NEAR(double(p.total_main) / 1e9, 1026.4, 0.05);
  EXPECT_NEAR(double(p.activated) / 1e9, 31.7, 0.05);
  expect_round_trip(c);
}

// ---------------------------------------------------------------------------------------------------------
// Reference checkpoints: configs parse and count_params equals the number of weights stored.

class ConfigTestdata : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::is_directory(DSV3_TESTDATA))
      GTEST_SKIP() << "reference checkpoints not found at " << DSV3_TESTDATA << " (set -DDSV3_TESTDATA=...)";
  }
  static std::string dir(const char* name) { return (fs::path(DSV3_TESTDATA) / name).string(); }

  // Sums the elements of the stored weights under the count_params conventions: no scales, no router
  // biases, MTP copies of the shared embedding / head left out; layers >= num_hidden_layers go to `mtp`.
  static ParamCounts stored(const ModelConfig& c, const std::string& d) {
    io::Checkpoint ck = io::Checkpoint::open(d);
    ParamCounts p;
    auto ends_with = [](const std::string& s, const std::string& suf) {
      return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
    };
    for (const auto& name : ck.names()) {
      if (ends_with(name, "_scale_inv") || ends_with(name, "e_score_correction_bias")) continue;
      int64_t layer = -1;
      if (name.rfind("model.layers.", 0) == 0) layer = std::stoll(name.substr(13));
      bool mtp = layer >= c.num_hidden_layers;
      if (mtp && (ends_with(name, ".embed_tokens.weight") || ends_with(name, ".shared_head.head.weight"))) continue;
      (mtp ? p.mtp : p.total_main) += ck.get(name).numel();
    }
    return p;
  }
};

TEST_F(ConfigTestdata, AllParseAndCountsMatchCheckpoints) {
  for (const char* name : {"v3_tiny", "v2lite_tiny", "v3_fp8", "v3_mtp"}) {
    SCOPED_TRACE(name);
    ModelConfig c = load_config(dir(name));  // a directory holding config.json
    ParamCounts want = stored(c, dir(name)), got = count_params(c);
    EXPECT_EQ(got.total_main, want.total_main);
    EXPECT_EQ(got.mtp, want.mtp);
    EXPECT_LT(got.activated, got.total_main);
    expect_round_trip(c);
  }
}

TEST_F(ConfigTestdata, Fields) {
  ModelConfig t = load_config(dir("v3_tiny") + "/config.json");
  EXPECT_EQ(t.q_lora_rank, 32);
  EXPECT_EQ(t.n_group, 4);
  EXPECT_EQ(t.topk_group, 2);
  EXPECT_EQ(t.num_nextn_predict_layers, 0);
  EXPECT_FALSE(t.is_moe_layer(0));
  EXPECT_TRUE(t.is_moe_layer(1));

  ModelConfig v2 = load_config(dir("v2lite_tiny"));
  EXPECT_EQ(v2.q_lora_rank, 0);
  EXPECT_FALSE(v2.rope_scaling);
  EXPECT_DOUBLE_EQ(v2.softmax_scale(), 1.0 / std::sqrt(24.0));
  EXPECT_EQ(v2.n_shared_experts, 2);

  ModelConfig f = load_config(dir("v3_fp8"));
  EXPECT_TRUE(f.fp8);
  EXPECT_EQ(f.hidden_size, 320);

  ModelConfig m = load_config(dir("v3_mtp"));
  EXPECT_EQ(m.num_nextn_predict_layers, 1);
  EXPECT_TRUE(m.is_moe_layer(3));
}

// ---------------------------------------------------------------------------------------------------------
// Defaults (HF configuration_deepseek.py) and accepted variants

TEST(ConfigDefaults, V3AndV2) {
  json v3 = tiny_v3();
  for (const char* k : {"num_nextn_predict_layers",
                        "n_shared_experts",
                        "n_group",
                        "topk_group",
                        "routed_scaling_factor",
                        "scoring_func",
                        "topk_method",
                        "norm_topk_prob",
                        "first_k_dense_replace",
                        "moe_layer_freq",
                        "q_lora_rank",
                        "rope_theta",
                        "rope_scaling",
                        "rms_norm_eps",
                        "max_position_embeddings",
                        "tie_word_embeddings",
                        "bos_token_id",
                        "eos_token_id",
                        "hidden_act",
                        "initializer_range",
                        "num_key_value_heads",
                        "torch_dtype"})
    v3.erase(k);
  v3["n_routed_experts"] = 256;  // the V3 defaults n_group 8 / topk_group 4 need it
  ModelConfig c = parse_config(v3);
  EXPECT_EQ(c.num_nextn_predict_layers, 1);
  EXPECT_EQ(c.n_shared_experts, 1);
  EXPECT_EQ(c.n_group, 8);
  EXPECT_EQ(c.topk_group, 4);
  EXPECT_DOUBLE_EQ(c.routed_scaling_factor, 2.5);
  EXPECT_EQ(c.scoring_func, ScoringFunc::Sigmoid);
  EXPECT_EQ(c.topk_method, TopkMethod::NoauxTc);
  EXPECT_TRUE(c.norm_topk_prob);
  EXPECT_EQ(c.first_k_dense_replace, 3);
  EXPECT_EQ(c.q_lora_rank, 1536);
  EXPECT_EQ(c.max_position_embeddings, 4096);
  EXPECT_EQ(c.num_key_value_heads, 4);
  EXPECT_EQ(c.bos_token_id, 0);
  EXPECT_EQ(c.eos_token_ids, std::vector<int64_t>{1});
  EXPECT_FALSE(c.rope_scaling);
  EXPECT_DOUBLE_EQ(c.softmax_scale(), 1.0 / std::sqrt(24.0));

  json v2 = v3;
  v2["model_type"] = "deepseek_v2";
  v2.erase("n_routed_experts");  // None in DeepseekV2Config: a dense model
  ModelConfig d = parse_config(v2);
  EXPECT_EQ(d.n_routed_experts, 0);
  EXPECT_EQ(d.n_shared_experts, 0);
  EXPECT_EQ(d.num_nextn_predict_layers, 0);
  EXPECT_EQ(d.scoring_func, ScoringFunc::Softmax);
  EXPECT_EQ(d.topk_method, TopkMethod::Greedy);
  EXPECT_FALSE(d.norm_topk_prob);
  EXPECT_EQ(d.first_k_dense_replace, 0);
  EXPECT_EQ(d.bos_token_id, 100000);
  EXPECT_FALSE(d.is_moe_layer(1));
  expect_round_trip(d);
}

TEST(ConfigDefaults, NullsAndVariants) {
  json j = tiny_v3();
  j["q_lora_rank"] = nullptr;
  j["rope_scaling"] = nullptr;
  j["eos_token_id"] = {1, 7};
  j["bos_token_id"] = nullptr;
  j["num_key_value_heads"] = nullptr;
  ModelConfig c = parse_config(j);
  EXPECT_EQ(c.q_lora_rank, 0);
  EXPECT_FALSE(c.rope_scaling);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{1, 7}));
  EXPECT_FALSE(c.bos_token_id);
  EXPECT_EQ(c.num_key_value_heads, 4);
  expect_round_trip(c);

  j["n_routed_experts"] = nullptr;  // explicit None: dense, MoE keys no longer needed
  j.erase("moe_intermediate_size");
  j.erase("num_experts_per_tok");
  ModelConfig dense = parse_config(j);
  EXPECT_EQ(dense.n_routed_experts, 0);
  for (int64_t l = 0; l < 4; ++l) EXPECT_FALSE(dense.is_moe_layer(l));
  expect_round_trip(dense);

  json r = tiny_v3();
  r["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};  // newer spelling; other keys default
  ModelConfig y = parse_config(r);
  ASSERT_TRUE(y.rope_scaling);
  EXPECT_EQ(y.rope_scaling->original_max_position_embeddings, 4096);
  EXPECT_DOUBLE_EQ(y.rope_scaling->mscale_all_dim, 0.0);
  EXPECT_DOUBLE_EQ(y.softmax_scale(), 1.0 / std::sqrt(24.0));  // mscale_all_dim 0: no mscale
  r["rope_scaling"] = {{"type", "default"}};
  EXPECT_FALSE(parse_config(r).rope_scaling);

  json k = tiny_v3();
  k["model_type"] = "kimi_k2";
  k["torch_dtype"] = nullptr;
  k["dtype"] = "bfloat16";  // transformers >= 4.56 spelling
  ModelConfig kc = parse_config(k);
  EXPECT_EQ(kc.model_type, "kimi_k2");
  EXPECT_EQ(kc.torch_dtype, "bfloat16");
  expect_round_trip(kc);

  json s = tiny_v3();
  s["scoring_func"] = "softmax";  // with noaux_tc: allowed (the reference Gate supports it)
  s["moe_layer_freq"] = 2;
  ModelConfig sc = parse_config(s);
  EXPECT_EQ(sc.scoring_func, ScoringFunc::Softmax);
  EXPECT_FALSE(sc.is_moe_layer(1));
  EXPECT_TRUE(sc.is_moe_layer(2));
}

TEST(ConfigDefaults, TiedEmbeddingsCountedOnce) {
  json j = tiny_v3();
  ParamCounts untied = count_params(parse_config(j));
  j["tie_word_embeddings"] = true;
  ParamCounts tied = count_params(parse_config(j));
  EXPECT_EQ(untied.total_main - tied.total_main, 256 * 64);
  EXPECT_EQ(untied.activated, tied.activated);
}

// ---------------------------------------------------------------------------------------------------------
// The field table: parse_config reads exactly what raw_json() writes, key for key, in HF's spelling.

}  // namespace
// gtest prints a config as its JSON.
void PrintTo(const ModelConfig& c, std::ostream* os) { *os << c.raw_json().dump(); }
namespace {

json read_json(const std::string& path) {
  std::ifstream in(path);
  return json::parse(in);
}

std::set<std::string> keys_of(const json& j) {
  std::set<std::string> k;
  for (auto it = j.begin(); it != j.end(); ++it) k.insert(it.key());
  return k;
}

// Keys of the published configs that dsv3 neither reads nor writes: HF bookkeeping (auto_map, use_cache,
// transformers_version), options of HF's modelling code that DeepSeek's architecture fixes (attention_bias,
// attention_dropout), and training or parallelism settings of DeepSeek's own trainer (aux_loss_alpha,
// seq_aux, ep_size).
const std::set<std::string> kNotRead = {"attention_bias",       "attention_dropout", "auto_map",
                                        "aux_loss_alpha",       "ep_size",           "seq_aux",
                                        "transformers_version", "use_cache"};

TEST(ConfigTable, PublishedConfigsWriteBackTheirOwnKeysAndValues) {
  for (const char* name : {"deepseek_v3_config.json", "deepseek_r1_config.json", "kimi_k2_instruct_config.json",
                           "deepseek_v2_lite_config.json"}) {
    SCOPED_TRACE(name);
    const json file = read_json(data_path(name));
    const json written = parse_config(file, name).raw_json();
    for (auto it = file.begin(); it != file.end(); ++it) {
      if (kNotRead.count(it.key())) {
        EXPECT_FALSE(written.contains(it.key())) << it.key();
        continue;
      }
      ASSERT_TRUE(written.contains(it.key())) << "not written: " << it.key();
      EXPECT_EQ(written[it.key()], it.value()) << it.key();  // numbers compare by value: 10000 == 10000.0
    }
    // Nothing beyond the file's keys, but the one that V2 configs leave to its default (V2 has no MTP).
    std::set<std::string> extra;
    for (const std::string& k : keys_of(written))
      if (!file.contains(k)) extra.insert(k);
    if (std::string(name) == "deepseek_v2_lite_config.json") {
      EXPECT_EQ(extra, std::set<std::string>{"num_nextn_predict_layers"});
      EXPECT_EQ(written["num_nextn_predict_layers"], 0);
    } else {
      EXPECT_EQ(extra, std::set<std::string>{});
    }
  }
}

// A config whose every key differs from what a V3 config of only the required keys reads (hidden_act aside:
// silu is the one value accepted).
ModelConfig unusual_config() {
  ModelConfig c;
  c.model_type = "deepseek_v2";
  c.vocab_size = 300, c.hidden_size = 48, c.intermediate_size = 96, c.moe_intermediate_size = 24;
  c.num_hidden_layers = 4, c.num_nextn_predict_layers = 2;
  c.num_attention_heads = 3, c.num_key_value_heads = 1;
  c.n_shared_experts = 2, c.n_routed_experts = 12, c.num_experts_per_tok = 3, c.n_group = 3, c.topk_group = 2;
  c.routed_scaling_factor = 1.5, c.scoring_func = ScoringFunc::Softmax;
  c.topk_method = TopkMethod::GroupLimitedGreedy, c.norm_topk_prob = false;
  c.first_k_dense_replace = 2, c.moe_layer_freq = 2;
  c.q_lora_rank = 24, c.kv_lora_rank = 40, c.qk_nope_head_dim = 12, c.qk_rope_head_dim = 6, c.v_head_dim = 10;
  c.rope_theta = 5e5;
  c.rope_scaling = YarnScaling{.factor = 8,
                               .original_max_position_embeddings = 2048,
                               .beta_fast = 16,
                               .beta_slow = 2,
                               .mscale = 0.9,
                               .mscale_all_dim = 0.8};
  c.rms_norm_eps = 1e-5, c.max_position_embeddings = 8192, c.tie_word_embeddings = true;
  c.bos_token_id = 7, c.eos_token_ids = {2, 3};
  c.initializer_range = 0.01, c.torch_dtype = "float16";
  c.fp8 = true, c.weight_block_n = 64, c.weight_block_k = 32;
  return c;
}

TEST(ConfigTable, EveryFieldRoundTrips) {
  const ModelConfig x = unusual_config();
  const json written = x.raw_json();
  EXPECT_EQ(parse_config(written, "round trip"), x);

  // Every key is written: the published V3 config's keys, less the ones dsv3 does not read.
  std::set<std::string> want;
  for (const std::string& k : keys_of(read_json(data_path("deepseek_v3_config.json"))))
    if (!kNotRead.count(k)) want.insert(k);
  EXPECT_EQ(keys_of(written), want);

  // ... and x differs in every one of them from the defaults, so each row's read and write were exercised.
  const json base = parse_config(json::parse(R"({
    "model_type": "deepseek_v3", "vocab_size": 256, "hidden_size": 64, "intermediate_size": 128,
    "moe_intermediate_size": 32, "num_hidden_layers": 3, "num_attention_heads": 4, "num_experts_per_tok": 4,
    "kv_lora_rank": 32, "qk_nope_head_dim": 16, "qk_rope_head_dim": 8, "v_head_dim": 16})"))
                        .raw_json();
  for (const std::string& k : keys_of(written)) {
    if (k == "hidden_act") continue;
    EXPECT_NE(written[k], base.contains(k) ? base[k] : json()) << k;
  }

  // The other forms of the keys with several: block quantization, no routed experts, nulls, one EOS.
  ModelConfig q = x;
  q.fp8 = false, q.weight_block_n = q.weight_block_k = 128;
  q.block_quant = "int4", q.block_quant_head = "int8";
  EXPECT_EQ(parse_config(q.raw_json()), q);
  EXPECT_EQ(q.raw_json()["quantization_config"], q.block_quant_json());

  ModelConfig d = x;
  d.model_type = "kimi_k2";
  d.n_routed_experts = d.n_shared_experts = d.num_experts_per_tok = 0;
  d.q_lora_rank = 0, d.rope_scaling.reset(), d.bos_token_id.reset(), d.eos_token_ids.clear();
  d.torch_dtype.clear(), d.fp8 = false, d.weight_block_n = d.weight_block_k = 128;
  const json dj = d.raw_json();
  for (const char* k : {"n_routed_experts", "n_shared_experts", "num_experts_per_tok", "q_lora_rank", "rope_scaling",
                        "bos_token_id", "eos_token_id"})
    EXPECT_TRUE(dj[k].is_null()) << k;
  EXPECT_FALSE(dj.contains("torch_dtype"));
  EXPECT_FALSE(dj.contains("quantization_config"));
  EXPECT_EQ(dj["architectures"], json::array({"DeepseekV3ForCausalLM"}));
  EXPECT_EQ(parse_config(dj), d);

  d.eos_token_ids = {5};
  EXPECT_EQ(d.raw_json()["eos_token_id"], 5);
  EXPECT_EQ(parse_config(d.raw_json()), d);
}

// ---------------------------------------------------------------------------------------------------------
// Refusals: each names the key.

TEST(ConfigErrors, NotAnObject) {
  expect_refused(json::array({1, 2}), {"object"});
  expect_refused(json(5), {"object"});
}

TEST(ConfigErrors, ModelType) {
  expect_refused(without(tiny_v3(), "model_type"), {"model_type"});
  expect_refused(with(tiny_v3(), "model_type", "llama"), {"model_type", "llama"});
  expect_refused(with(tiny_v3(), "model_type", 3), {"model_type"});
}

TEST(ConfigErrors, WhatDsv3DoesNotComputeIsRefused) {
  // HF honours these for the DeepSeek classes; dsv3 computes only DeepSeek's values, so others are refused.
  expect_refused(with(tiny_v3(), "attention_bias", true), {"attention_bias", "true"});
  expect_refused(with(tiny_v3(), "rope_interleave", false), {"rope_interleave", "false"});
  expect_refused(with(tiny_v3(), "attention_bias", "no"), {"attention_bias"});
  EXPECT_NO_THROW(parse_config(with(with(tiny_v3(), "attention_bias", false), "rope_interleave", true), "t"));
  // architectures must name the class of the model_type.
  expect_refused(with(tiny_v3(), "architectures", json::array({"LlamaForCausalLM"})),
                 {"architectures", "LlamaForCausalLM", "DeepseekV3ForCausalLM"});
  expect_refused(with(tiny_v3(), "architectures", json::array({"DeepseekV2ForCausalLM"})),
                 {"architectures", "DeepseekV2ForCausalLM"});
  expect_refused(with(tiny_v3(), "architectures", "DeepseekV3ForCausalLM"), {"architectures", "array"});
  expect_refused(with(tiny_v3(), "architectures", json::array()), {"architectures"});
  EXPECT_NO_THROW(parse_config(with(tiny_v3(), "architectures", json::array({"DeepseekV3ForCausalLM"})), "t"));
}

TEST(ConfigErrors, MissingRequired) {
  for (const char* k :
       {"vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "kv_lora_rank",
        "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim", "moe_intermediate_size", "num_experts_per_tok"}) {
    SCOPED_TRACE(k);
    expect_refused(without(tiny_v3(), k), {k, "missing"});
    expect_refused(with(tiny_v3(), k, nullptr), {k});
  }
}

TEST(ConfigErrors, WrongTypes) {
  struct Case {
    const char* key;
    json value;
  } cases[] = {
      {"hidden_size", "64"},
      {"hidden_size", 64.5},
      {"hidden_size", true},
      {"num_hidden_layers", json::array({3})},
      {"vocab_size", json::object()},
      {"n_routed_experts", "16"},
      {"q_lora_rank", 32.0},
      {"routed_scaling_factor", "2.5"},
      {"rope_theta", false},
      {"norm_topk_prob", 1},
      {"scoring_func", 1},
      {"topk_method", nullptr},
      {"eos_token_id", "1"},
      {"eos_token_id", {1, "2"}},
      {"bos_token_id", 0.5},
      {"tie_word_embeddings", "no"},
      {"rms_norm_eps", "1e-6"},
      {"max_position_embeddings", 1e6},
      {"hidden_size", 1e30},
      {"vocab_size", 99999999999999},
      {"torch_dtype", 16},
      {"rope_scaling", "yarn"},
      {"quantization_config", "fp8"},
      {"first_k_dense_replace", nullptr},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(std::string(c.key) + " = " + c.value.dump());
    expect_refused(with(tiny_v3(), c.key, c.value), {c.key});
  }
}

TEST(ConfigErrors, NonPositiveSizes) {
  for (const char* k : {"vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                        "num_key_value_heads", "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim",
                        "moe_intermediate_size", "num_experts_per_tok", "max_position_embeddings", "moe_layer_freq",
                        "n_group", "topk_group"}) {
    SCOPED_TRACE(k);
    expect_refused(with(tiny_v3(), k, 0), {k});
    expect_refused(with(tiny_v3(), k, -4), {k});
  }
  for (const char* k :
       {"q_lora_rank", "num_nextn_predict_layers", "n_routed_experts", "n_shared_experts", "first_k_dense_replace"}) {
    SCOPED_TRACE(k);
    expect_refused(with(tiny_v3(), k, -1), {k});
  }
  for (const char* k : {"rms_norm_eps", "rope_theta", "routed_scaling_factor"}) {
    SCOPED_TRACE(k);
    expect_refused(with(tiny_v3(), k, 0.0), {k});
  }
}

TEST(ConfigErrors, Contradictions) {
  json j = tiny_v3();
  expect_refused(with(j, "n_group", 3), {"n_routed_experts", "n_group"});  // 16 % 3
  expect_refused(with(j, "topk_group", 5), {"topk_group", "n_group"});     // 5 > 4
  expect_refused(with(j, "num_experts_per_tok", 17), {"num_experts_per_tok", "n_routed_experts"});
  expect_refused(with(j, "num_experts_per_tok", 9), {"num_experts_per_tok", "topk_group"});  // 2 groups of 4
  expect_refused(with(j, "first_k_dense_replace", 4), {"first_k_dense_replace", "num_hidden_layers"});
  expect_refused(with(j, "qk_rope_head_dim", 7), {"qk_rope_head_dim"});
  json g = with(with(with(j, "n_group", 16), "topk_group", 4), "num_experts_per_tok", 4);  // 1 expert per group
  expect_refused(g, {"noaux_tc", "n_routed_experts", "n_group"});
  g["topk_method"] = "group_limited_greedy";  // max-of-group scoring: fine
  EXPECT_NO_THROW(parse_config(g));
  EXPECT_NO_THROW(parse_config(with(j, "first_k_dense_replace", 3)));  // all dense is allowed
}

TEST(ConfigErrors, Enums) {
  expect_refused(with(tiny_v3(), "scoring_func", "relu"), {"scoring_func", "relu"});
  expect_refused(with(tiny_v3(), "topk_method", "gready"), {"topk_method", "gready"});
  expect_refused(with(tiny_v3(), "hidden_act", "gelu"), {"hidden_act", "gelu"});
}

TEST(ConfigErrors, RopeScaling) {
  auto rs = [](json r) { return with(tiny_v3(), "rope_scaling", r); };
  expect_refused(rs({{"type", "linear"}, {"factor", 2}}), {"rope_scaling.type", "linear"});
  expect_refused(rs({{"rope_type", "dynamic"}, {"factor", 2}}), {"rope_scaling", "dynamic"});
  expect_refused(rs({{"type", "yarn"}, {"rope_type", "linear"}, {"factor", 2}}), {"rope_scaling.type", "rope_type"});
  expect_refused(rs({{"factor", 2}}), {"rope_scaling", "type"});
  expect_refused(rs({{"type", "yarn"}}), {"rope_scaling.factor"});
  expect_refused(rs({{"type", "yarn"}, {"factor", "40"}}), {"rope_scaling.factor"});
  expect_refused(rs({{"type", "yarn"}, {"factor", -1}}), {"rope_scaling.factor"});
  expect_refused(rs({{"type", "yarn"}, {"factor", 4}, {"beta_fast", 0}}), {"rope_scaling.beta_fast"});
  expect_refused(rs({{"type", "yarn"}, {"factor", 4}, {"beta_slow", "1"}}), {"rope_scaling.beta_slow"});
  expect_refused(rs({{"type", "yarn"}, {"factor", 4}, {"mscale_all_dim", nullptr}}), {"rope_scaling.mscale_all_dim"});
  expect_refused(rs({{"type", "yarn"}, {"factor", 4}, {"original_max_position_embeddings", 0}}),
                 {"rope_scaling.original_max_position_embeddings"});
  expect_refused(rs({{"type", 3}}), {"rope_scaling.type"});
}

TEST(ConfigErrors, Quantization) {
  auto q = [](json r) { return with(tiny_v3(), "quantization_config", r); };
  json ok = {{"quant_method", "fp8"}, {"fmt", "e4m3"}, {"weight_block_size", {128, 128}}};
  EXPECT_TRUE(parse_config(q(ok)).fp8);
  EXPECT_FALSE(parse_config(q(nullptr)).fp8);
  expect_refused(q(with(ok, "quant_method", "awq")), {"quantization_config.quant_method", "awq"});
  expect_refused(q(with(ok, "quant_method", "compressed-tensors")), {"quantization_config.quant_method"});
  expect_refused(q(without(ok, "quant_method")), {"quantization_config.quant_method"});
  expect_refused(q(with(ok, "fmt", "e5m2")), {"quantization_config.fmt", "e5m2"});
  expect_refused(q(with(ok, "activation_scheme", "static")), {"quantization_config.activation_scheme"});
  expect_refused(q(without(ok, "weight_block_size")), {"quantization_config.weight_block_size"});
  expect_refused(q(with(ok, "weight_block_size", json::array({128}))), {"quantization_config.weight_block_size"});
  expect_refused(q(with(ok, "weight_block_size", {128, 0})), {"quantization_config.weight_block_size"});
  expect_refused(q(with(ok, "weight_block_size", {128, "128"})), {"quantization_config.weight_block_size"});
}

TEST(ConfigErrors, LoadConfig) {
  try {
    load_config("/nonexistent/dir");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/dir"), std::string::npos) << e.what();
  }
  std::string p = (fs::temp_directory_path() / fmt::format("dsv3_bad_config_{}.json", ::getpid())).string();
  {
    std::ofstream out(p);
    out << "{\"model_type\": ";
  }
  try {
    load_config(p);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("JSON"), std::string::npos) << e.what();
  }
  fs::remove(p);
}

// ---- Strict keys: every key is a row of the field table, a known-harmless key (checked), or refused by name.

TEST(ConfigStrict, UnknownKeysAreRefusedNamingKeyAndFile) {
  // Keys of other models that would change the computation if honoured, a transformers v5 spelling, a typo.
  for (const char* key : {"qk_layernorm", "sliding_window", "mlp_bias", "rope_parameters", "n_routed_expert",
                          "num_experts", "o_lora_rank", "swiglu_limit", "text_config"}) {
    SCOPED_TRACE(key);
    expect_refused(with(tiny_v3(), key, 1), {std::string("'") + key + "'", "not one dsv3 knows"});
  }
}

TEST(ConfigStrict, HarmlessKeysLoad) {
  json j = tiny_v3();
  j["transformers_version"] = "4.46.3";
  j["_name_or_path"] = "deepseek-ai/DeepSeek-V3";
  j["auto_map"] = {{"AutoConfig", "configuration_deepseek.DeepseekV3Config"}};
  j["dtype"] = "bfloat16";
  j["use_cache"] = true;
  j["pad_token_id"] = 2;
  j["ep_size"] = 8;
  j["pretraining_tp"] = 2;
  j["aux_loss_alpha"] = 0.001;
  j["seq_aux"] = true;
  j["attention_dropout"] = 0.0;
  j["head_dim"] = 8;      // qk_rope_head_dim
  j["qk_head_dim"] = 24;  // qk_nope_head_dim + qk_rope_head_dim
  const ModelConfig c = parse_config(j, "t");
  EXPECT_EQ(c, parse_config(tiny_v3(), "t"));  // none of them changes the model
  j["pad_token_id"] = nullptr;
  EXPECT_NO_THROW(parse_config(j, "t"));
}

// Each harmless key with a value that would change the computation, or of the wrong type, refused one by one.
TEST(ConfigStrict, HarmlessKeysWithBadValuesAreRefused) {
  const std::vector<std::pair<const char*, json>> bad = {
      {"attention_dropout", 0.1},  // dsv3 applies no dropout
      {"head_dim", 16},            // not qk_rope_head_dim (8)
      {"qk_head_dim", 16},         // not qk_nope + qk_rope (24)
      {"transformers_version", 4},
      {"_name_or_path", 1},
      {"auto_map", "configuration_deepseek"},
      {"dtype", 16},
      {"use_cache", "yes"},
      {"pad_token_id", -1},
      {"pad_token_id", "0"},
      {"ep_size", 0},
      {"pretraining_tp", 0},
      {"aux_loss_alpha", -0.5},
      {"seq_aux", 1},
      {"attention_dropout", "0"},
  };
  for (const auto& [key, value] : bad) {
    SCOPED_TRACE(std::string(key) + " = " + value.dump());
    expect_refused(with(tiny_v3(), key, value), {std::string("'") + key + "'"});
  }
}

TEST(ConfigStrict, NestedUnknownKeysAreRefused) {
  json yarn = tiny_v3()["rope_scaling"];
  expect_refused(with(tiny_v3(), "rope_scaling", with(yarn, "rope_theta", 10000)),
                 {"'rope_scaling.rope_theta'", "yarn"});
  expect_refused(with(tiny_v3(), "rope_scaling", with(yarn, "attention_factor", 1.0)),
                 {"'rope_scaling.attention_factor'"});
  expect_refused(with(tiny_v3(), "rope_scaling", {{"type", "default"}, {"factor", 2}}), {"'rope_scaling.factor'"});
  const json fp8 = {{"quant_method", "fp8"}, {"fmt", "e4m3"}, {"weight_block_size", {128, 128}}};
  EXPECT_NO_THROW(parse_config(with(tiny_v3(), "quantization_config", with(fp8, "scale_fmt", "ue8m0")), "t"));
  expect_refused(with(tiny_v3(), "quantization_config", with(fp8, "ignored_layers", json::array({"lm_head"}))),
                 {"'quantization_config.ignored_layers'", "fp8"});
  expect_refused(with(tiny_v3(), "quantization_config", with(fp8, "modules_to_not_convert", nullptr)),
                 {"'quantization_config.modules_to_not_convert'"});
  const json block = {{"quant_method", "dsv3_block"}, {"weight_format", "int8"}, {"block_size", 32},
                      {"scale_dtype", "float16"},     {"head_format", "int8"},   {"not_quantized", {"*norm*"}}};
  EXPECT_NO_THROW(parse_config(with(tiny_v3(), "quantization_config", block), "t"));
  expect_refused(with(tiny_v3(), "quantization_config", with(block, "group_size", 32)),
                 {"'quantization_config.group_size'", "dsv3_block"});
}

// What dsv3 writes loads back: init / training (raw_json), quantize (the source's keys + a dsv3_block
// quantization_config), for every published config.
TEST(ConfigStrict, WhatDsv3WritesLoads) {
  for (const char* name : {"deepseek_v3_config.json", "deepseek_r1_config.json", "kimi_k2_instruct_config.json",
                           "deepseek_v2_lite_config.json"}) {
    SCOPED_TRACE(name);
    const json file = read_json(data_path(name));
    ModelConfig c = parse_config(file, name);
    EXPECT_EQ(parse_config(c.raw_json(), "raw"), c);
    json q = file;
    c.block_quant = "int4";
    q["quantization_config"] = c.block_quant_json();
    EXPECT_EQ(parse_config(q, "quantized").block_quant, "int4");
  }
}

TEST(ConfigStrict, EveryPublishedAndFamilyConfigLoads) {
  int n = 0;
  for (const auto& dir : {data_path(""), data_path("family")})
    for (const auto& e : fs::directory_iterator(dir)) {
      if (e.path().extension() != ".json" || e.path().filename() == "chat_template_cases.json") continue;
      SCOPED_TRACE(e.path().string());
      EXPECT_NO_THROW(load_config(e.path().string()));
      ++n;
    }
  EXPECT_GE(n, 15);
}

// Mistral Large 3 is DeepSeek-V3's architecture in Mistral's own format: refused, saying why.
TEST(ConfigStrict, MistralCheckpointsAreRefused) {
  expect_refused(with(tiny_v3(), "model_type", "mistral3"), {"Mistral Large 3", "qscale_weight"});
  expect_refused(with(tiny_v3(), "architectures", json::array({"MistralLarge3ForCausalLM"})),
                 {"architectures", "MistralLarge3ForCausalLM"});
  const fs::path dir = fs::temp_directory_path() / fmt::format("dsv3_mistral_{}", ::getpid());
  fs::create_directories(dir);
  { std::ofstream(dir / "params.json") << R"({"dim": 7168, "n_layers": 61})"; }
  try {
    load_config(dir.string());
    ADD_FAILURE() << "a Mistral-format directory loaded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("params.json"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("Mistral Large 3"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace dsv3
