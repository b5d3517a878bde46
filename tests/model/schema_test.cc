// The weight schema (model/schema.h) drives enumerate, inference bind, training bind and counting; these
// tests prove the four agree for every config we ship in tests/data and every reference checkpoint in
// ../shared/testdata, and that the checkpoints DeepSeek's code wrote hold exactly the tensors it names.
#include "model/schema.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/safetensors.h"
#include "model/weights.h"
#include "testdata.h"

namespace dsv3 {
namespace {

namespace fs = std::filesystem;

std::string data_path(const char* name) { return std::string(DSV3_TEST_SRC) + "/data/" + name; }

// Every config the tests have: the published ones in tests/data and the reference checkpoints' (the V3.2
// cases are left out until deepseek_v32 is a known model_type).
std::vector<std::pair<std::string, ModelConfig>> all_configs() {
  std::vector<std::pair<std::string, ModelConfig>> out;
  for (const char* f : {"deepseek_v3_config.json", "deepseek_r1_config.json", "deepseek_v2_lite_config.json",
                        "kimi_k2_instruct_config.json"})
    out.emplace_back(f, load_config(data_path(f)));
  if (fs::is_directory(testing::testdata_dir()))
    for (const auto& e : fs::directory_iterator(testing::testdata_dir())) {
      if (!fs::exists(e.path() / "config.json")) continue;
      try {
        out.emplace_back(e.path().filename().string(), load_config(e.path().string()));
      } catch (const Error& err) {
        EXPECT_NE(std::string(err.what()).find("deepseek_v32"), std::string::npos) << err.what();
      }
    }
  return out;
}

bool ends_with(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

TEST(Schema, EnumerateBindAndCountAgreeForEveryConfig) {
  const auto configs = all_configs();
  ASSERT_GE(configs.size(), 4u);
  alignas(64) static const float dummy[16] = {};
  for (const auto& [label, c] : configs) {
    SCOPED_TRACE(label);
    const std::vector<WeightSpec> specs = enumerate_weights(c);
    std::map<std::string, const WeightSpec*> by_name;
    for (const WeightSpec& s : specs) EXPECT_TRUE(by_name.emplace(s.name, &s).second) << "twice: " << s.name;

    // Inference bind asks for exactly the enumerated names (never reading the data: F32 views over a dummy).
    std::map<std::string, TensorView> views;
    for (const WeightSpec& s : specs)
      views[s.name] = TensorView{DType::F32, s.shape, reinterpret_cast<const std::byte*>(dummy)};
    std::set<std::string> asked;
    ModelWeights w = bind_weights(
        c,
        [&](const std::string& n) -> const TensorView* {
          asked.insert(n);
          auto it = views.find(n);
          return it == views.end() ? nullptr : &it->second;
        },
        label);
    std::set<std::string> names;
    for (const WeightSpec& s : specs) names.insert(s.name);
    EXPECT_EQ(asked, names);
    EXPECT_EQ(int64_t(w.layers.size()), c.num_hidden_layers);
    EXPECT_EQ(int64_t(w.mtp.size()), c.num_nextn_predict_layers);

    // count_params (one expert walked per layer kind, multiplied) equals the sums over the full enumeration.
    int64_t total = 0, mtp = 0, embed = 0, idle_experts = 0;
    for (const WeightSpec& s : specs) {
      if (s.role == WeightRole::Bias || s.optional) continue;
      (s.mtp ? mtp : total) += s.numel();
      if (s.role == WeightRole::Embedding && !s.mtp) embed += s.numel();
      if (!s.mtp && s.expert >= c.num_experts_per_tok) idle_experts += s.numel();
    }
    const ParamCounts p = count_params(c);
    EXPECT_EQ(p.total_main, total);
    EXPECT_EQ(p.mtp, mtp);
    const int64_t head = c.tie_word_embeddings ? embed : 0;  // a tied head is counted once in total
    EXPECT_EQ(p.activated, total - embed - idle_experts + head);
  }
}

// The checkpoints written by DeepSeek's side hold exactly the schema's tensors (plus FP8 scales), and
// binding them puts each tensor where the model reads it.
TEST(Schema, ReferenceCheckpointsHoldExactlyTheSchemasTensors) {
  int cases = 0;
  for (const char* name : {"v3_tiny", "v2lite_tiny", "v3_fp8", "v3_mtp"}) {
    if (!testing::have_case(name)) continue;
    SCOPED_TRACE(name);
    ++cases;
    const std::string dir = testing::testdata_dir() + "/" + name;
    const ModelConfig c = load_config(dir);
    io::Checkpoint ck = io::Checkpoint::open(dir);
    std::set<std::string> stored, required, optional;
    for (const std::string& n : ck.names())
      if (!ends_with(n, "_scale_inv")) stored.insert(n);
    for (const WeightSpec& s : enumerate_weights(c)) (s.optional ? optional : required).insert(s.name);
    for (const std::string& n : required) EXPECT_TRUE(stored.count(n)) << "missing " << n;
    for (const std::string& n : stored) EXPECT_TRUE(required.count(n) || optional.count(n)) << "unknown " << n;

    const ModelWeights w = bind_weights(c, ck);
    auto data = [&](const std::string& n) { return static_cast<const void*>(ck.get(n).data); };
    EXPECT_EQ(w.embed.data, data("model.embed_tokens.weight"));
    const int64_t last = c.num_hidden_layers - 1;
    const std::string p = "model.layers." + std::to_string(last) + ".";
    EXPECT_EQ(w.layers[size_t(last)].attn.wkv_b.data, data(p + "self_attn.kv_b_proj.weight"));
    EXPECT_EQ(w.layers[size_t(last)].attn.wo.data, data(p + "self_attn.o_proj.weight"));
    ASSERT_TRUE(w.layers[size_t(last)].is_moe);
    const auto& moe = w.layers[size_t(last)].moe;
    const int64_t e = c.n_routed_experts - 1;
    EXPECT_EQ(moe.experts[size_t(e)].w1.data, data(p + "mlp.experts." + std::to_string(e) + ".gate_proj.weight"));
    EXPECT_EQ(moe.experts[size_t(e)].w2.data, data(p + "mlp.experts." + std::to_string(e) + ".down_proj.weight"));
    EXPECT_EQ(moe.experts[size_t(e)].w3.data, data(p + "mlp.experts." + std::to_string(e) + ".up_proj.weight"));
    EXPECT_EQ(moe.gate.data, data(p + "mlp.gate.weight"));
    EXPECT_EQ(w.head.data, data("lm_head.weight"));
    for (const MtpWeights& m : w.mtp) {  // absent copies fall back to the main model's
      const std::string q = "model.layers." + std::to_string(c.num_hidden_layers) + ".";
      EXPECT_EQ(m.eh_proj.data, data(q + "eh_proj.weight"));
      EXPECT_EQ(m.embed.data, ck.find(q + "embed_tokens.weight") ? data(q + "embed_tokens.weight") : w.embed.data);
    }
  }
  if (cases == 0) GTEST_SKIP() << "reference vectors absent from " << testing::testdata_dir();
}

// A scope binds a share of the routed experts (expert parallelism): only those names are visited, the
// others stay empty, everything else is whole.
TEST(Schema, ScopeVisitsOnlyItsExperts) {
  const ModelConfig c = load_config(data_path("deepseek_v3_config.json"));
  const std::vector<WeightSpec> all = enumerate_weights(c);
  const std::vector<WeightSpec> part = enumerate_weights(c, {.expert_begin = 64, .expert_end = 128});
  int64_t experts_all = 0, experts_part = 0;
  for (const WeightSpec& s : all) experts_all += s.expert >= 0;
  for (const WeightSpec& s : part) {
    if (s.expert < 0) continue;
    ++experts_part;
    EXPECT_GE(s.expert, 64);
    EXPECT_LT(s.expert, 128);
    EXPECT_NE(s.name.find(".mlp.experts." + std::to_string(s.expert) + "."), std::string::npos) << s.name;
  }
  // 58 MoE layers + 1 MTP layer, 256 experts, 3 matrices each; a quarter of them in the scope.
  EXPECT_EQ(experts_all, (58 + 1) * 256 * 3);
  EXPECT_EQ(experts_part, experts_all / 4);
  EXPECT_EQ(int64_t(all.size()) - experts_all, int64_t(part.size()) - experts_part);
}

// Names and shapes as DeepSeek publishes them, spelled out by hand for one MoE layer of DeepSeek-V3.
TEST(Schema, DeepSeekV3NamesAndShapes) {
  const ModelConfig c = load_config(data_path("deepseek_v3_config.json"));
  std::map<std::string, std::vector<int64_t>> got;
  for (const WeightSpec& s : enumerate_weights(c)) got[s.name] = s.shape;
  const std::map<std::string, std::vector<int64_t>> want = {
      {"model.embed_tokens.weight", {129280, 7168}},
      {"model.layers.3.input_layernorm.weight", {7168}},
      {"model.layers.3.self_attn.q_a_proj.weight", {1536, 7168}},
      {"model.layers.3.self_attn.q_a_layernorm.weight", {1536}},
      {"model.layers.3.self_attn.q_b_proj.weight", {128 * 192, 1536}},
      {"model.layers.3.self_attn.kv_a_proj_with_mqa.weight", {576, 7168}},
      {"model.layers.3.self_attn.kv_a_layernorm.weight", {512}},
      {"model.layers.3.self_attn.kv_b_proj.weight", {128 * 256, 512}},
      {"model.layers.3.self_attn.o_proj.weight", {7168, 128 * 128}},
      {"model.layers.3.post_attention_layernorm.weight", {7168}},
      {"model.layers.3.mlp.gate.weight", {256, 7168}},
      {"model.layers.3.mlp.gate.e_score_correction_bias", {256}},
      {"model.layers.3.mlp.experts.255.gate_proj.weight", {2048, 7168}},
      {"model.layers.3.mlp.experts.255.up_proj.weight", {2048, 7168}},
      {"model.layers.3.mlp.experts.255.down_proj.weight", {7168, 2048}},
      {"model.layers.3.mlp.shared_experts.down_proj.weight", {7168, 2048}},
      {"model.layers.2.mlp.gate_proj.weight", {18432, 7168}},
      {"model.norm.weight", {7168}},
      {"lm_head.weight", {129280, 7168}},
      {"model.layers.61.eh_proj.weight", {7168, 14336}},
      {"model.layers.61.shared_head.head.weight", {129280, 7168}},
  };
  for (const auto& [name, shape] : want) {
    auto it = got.find(name);
    ASSERT_NE(it, got.end()) << name;
    EXPECT_EQ(it->second, shape) << name;
  }
  EXPECT_EQ(got.count("model.layers.2.mlp.gate.weight"), 0u);  // a dense layer
  EXPECT_EQ(got.count("model.layers.62.input_layernorm.weight"), 0u);
  // 1 embedding + 3 dense layers x (9 + 3) + 58 MoE layers x (9 + 2 + 768 + 3) + norm + head, MTP:
  // enorm, hnorm, eh_proj, one MoE layer, shared_head.norm, embed_tokens, shared_head.head.
  EXPECT_EQ(got.size(), size_t(1 + 3 * 12 + 58 * 782 + 2 + 3 + 782 + 3));
}

}  // namespace
}  // namespace dsv3
