// deepseek_v32 configs and the indexer's tensors: the keys parse, round-trip and are refused with the key
// named when wrong; the weight schema names the indexer's tensors; a checkpoint missing one is refused
// with its name.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "core/error.h"
#include "model/config.h"
#include "model/schema.h"
#include "model/weights.h"
#include "testdata.h"

namespace dsv3 {
namespace {

using nlohmann::json;

json v32_json() {
  std::ifstream f(testing::testdata_dir() + "/v32_tiny/config.json");
  return json::parse(f);
}

std::string error_of(const json& j) {
  try {
    parse_config(j, "cfg");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(DsaConfig, KeysParseAndRoundTrip) {
  DSV3_REQUIRE_CASE("v32_tiny");
  const ModelConfig c = parse_config(v32_json());
  EXPECT_EQ(c.index_n_heads, 4);
  EXPECT_EQ(c.index_head_dim, 128);
  EXPECT_EQ(c.index_topk, 16);
  EXPECT_FALSE(c.indexer_rope_interleave);
  EXPECT_TRUE(c.scale_fmt.empty());
  EXPECT_FALSE(c.fp8_quantized_inputs());
  const json back = c.raw_json();
  EXPECT_EQ(back["index_topk"], 16);
  EXPECT_FALSE(back.contains("indexer_rope_interleave"));  // the default is left out
  EXPECT_EQ(parse_config(back), c);
  json g = v32_json();
  g["indexer_rope_interleave"] = true;  // GLM-5.x's layout
  const ModelConfig gc = parse_config(g);
  EXPECT_TRUE(gc.indexer_rope_interleave);
  EXPECT_EQ(parse_config(gc.raw_json()), gc);

  DSV3_REQUIRE_CASE("v32_fp8");
  const ModelConfig f = load_config(testing::testdata_dir() + "/v32_fp8");
  EXPECT_EQ(f.scale_fmt, "ue8m0");
  EXPECT_TRUE(f.fp8_quantized_inputs());
  EXPECT_EQ(f.raw_json()["quantization_config"]["scale_fmt"], "ue8m0");
  EXPECT_EQ(parse_config(f.raw_json()), f);
}

TEST(DsaConfig, BadIndexerKeysAreRefusedByName) {
  DSV3_REQUIRE_CASE("v32_tiny");
  auto with = [](const char* key, json v) {
    json j = v32_json();
    if (v.is_discarded())
      j.erase(key);
    else
      j[key] = v;
    return error_of(j);
  };
  EXPECT_EQ(with("index_topk", json(json::value_t::discarded)), "cfg: missing required key 'index_topk'");
  EXPECT_EQ(with("index_n_heads", 0), "cfg: key 'index_n_heads' must be positive, got 0");
  EXPECT_EQ(with("index_head_dim", "128"), "cfg: key 'index_head_dim' must be an integer, got string \"128\"");
  EXPECT_NE(with("index_head_dim", 64).find("key 'index_head_dim' is 64"), std::string::npos);
  EXPECT_NE(with("indexer_rope_interleave", 1).find("indexer_rope_interleave"), std::string::npos);
  EXPECT_NE(with("q_lora_rank", nullptr).find("needs 'q_lora_rank' > 0"), std::string::npos);
  json q = v32_json();
  q["quantization_config"] = {{"quant_method", "fp8"}, {"weight_block_size", {128, 128}}, {"scale_fmt", "e8m0"}};
  EXPECT_EQ(error_of(q), "cfg: key 'quantization_config.scale_fmt' is 'e8m0'; supported: ue8m0 (or null)");
  // Indexer keys on a model without an indexer are refused, not ignored.
  json v3 = v32_json();
  v3["model_type"] = "deepseek_v3";
  v3["architectures"] = {"DeepseekV3ForCausalLM"};
  EXPECT_NE(error_of(v3).find("key 'index_n_heads' is for model_type deepseek_v32"), std::string::npos);
}

TEST(DsaConfig, SchemaNamesTheIndexerTensors) {
  DSV3_REQUIRE_CASE("v32_tiny");
  const ModelConfig c = parse_config(v32_json());
  int found = 0;
  for (const WeightSpec& s : enumerate_weights(c)) {
    if (s.name.find(".indexer.") == std::string::npos) continue;
    ++found;
    if (s.name.ends_with("wq_b.weight")) EXPECT_EQ(s.shape, (std::vector<int64_t>{4 * 128, 64}));
    if (s.name.ends_with("wk.weight")) EXPECT_EQ(s.shape, (std::vector<int64_t>{128, 128}));
    if (s.name.ends_with("weights_proj.weight")) EXPECT_EQ(s.role, WeightRole::Projection);
    if (s.name.ends_with("k_norm.bias")) EXPECT_EQ(s.role, WeightRole::NormBias);
  }
  EXPECT_EQ(found, 5 * 3);  // five tensors in each of the three layers
}

TEST(DsaConfig, MissingIndexerTensorIsNamed) {
  DSV3_REQUIRE_CASE("v32_tiny");
  const std::string dir = testing::testdata_dir() + "/v32_tiny";
  const ModelConfig c = load_config(dir);
  auto ck = io::Checkpoint::open(dir);
  const std::string gone = "model.layers.2.self_attn.indexer.k_norm.bias";
  const TensorLookup lookup = [&](const std::string& n) { return n == gone ? nullptr : ck.find(n); };
  try {
    bind_weights(c, lookup, dir);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing tensor " + gone), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace dsv3
