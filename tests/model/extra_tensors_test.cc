// Checkpoint tensors the config does not explain (model/extra_tensors.h): each kind refused one by one, naming
// the tensors; ExtraTensors::Warn (--allow-extra-tensors) loads the same model as without them.
#include "model/extra_tensors.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/safetensors.h"
#include "model/transformer.h"
#include "tools/init.h"
#include "tools/quantize.h"

namespace dsv3 {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string temp_dir(const std::string& name) {
  const std::string d = ::testing::TempDir() + "dsv3_extra_" + std::to_string(::getpid()) + "_" + name;
  fs::remove_all(d);
  return d;
}

json small_config() {
  return json::parse(R"({
    "model_type": "deepseek_v3", "architectures": ["DeepseekV3ForCausalLM"], "vocab_size": 96, "hidden_size": 32,
    "intermediate_size": 48, "moe_intermediate_size": 16, "num_hidden_layers": 2, "num_nextn_predict_layers": 0,
    "num_attention_heads": 2, "n_shared_experts": 1, "n_routed_experts": 4, "num_experts_per_tok": 2,
    "n_group": 1, "topk_group": 1, "first_k_dense_replace": 1, "q_lora_rank": 16, "kv_lora_rank": 16,
    "qk_nope_head_dim": 8, "qk_rope_head_dim": 4, "v_head_dim": 8, "max_position_embeddings": 64,
    "torch_dtype": "bfloat16"
  })");
}

// A random model of `cfg`, its tensors edited by `edit` before writing (the extra ones' bytes kept in `keep`).
using Edit = std::function<void(std::vector<InitTensor>&)>;
std::string write_model(const std::string& name, const json& cfg, InitDType dtype, const Edit& edit = {}) {
  const std::string dir = temp_dir(name);
  const ModelConfig c = parse_config(cfg, name);
  std::vector<InitTensor> ts = encode_for_storage(init_weights_f32(c, {.seed = 9, .dtype = dtype}), dtype);
  if (edit) edit(ts);
  write_model_dir(dir, c, ts, dtype);
  io::write_file_atomic(dir + "/config.json", cfg.dump());
  return dir;
}

InitTensor f32_tensor(const std::string& name, std::vector<int64_t> shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return {name, DType::F32, std::move(shape), std::vector<uint8_t>(size_t(n) * 4, 0)};
}

void expect_refused(const std::string& dir, std::initializer_list<std::string> parts) {
  try {
    Model::load(dir);
    ADD_FAILURE() << dir << " loaded";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(dir), std::string::npos) << what;
    EXPECT_NE(what.find("--allow-extra-tensors"), std::string::npos) << what;
    for (const std::string& p : parts) EXPECT_NE(what.find(p), std::string::npos) << "'" << p << "' not in " << what;
  }
}

std::vector<float> logits_of(Model& m) {
  const std::vector<int32_t> ids = {3, 17, 42, 5};
  KvCache cache = m.new_cache(4);
  std::vector<float> out(size_t(4 * m.config().vocab_size));
  SeqChunk ch{&cache, 4};
  m.forward(ids, {&ch, 1}, nullptr, out.data());
  return out;
}

TEST(ExtraTensors, AWellFormedCheckpointHasNone) {
  for (InitDType dt : {InitDType::F32, InitDType::BF16, InitDType::FP8}) {
    json cfg = small_config();
    if (dt == InitDType::FP8)
      cfg["quantization_config"] = {{"quant_method", "fp8"}, {"fmt", "e4m3"}, {"weight_block_size", {128, 128}}};
    const std::string dir = write_model("clean" + std::to_string(int(dt)), cfg, dt);
    EXPECT_TRUE(unexplained_tensors(parse_config(cfg), io::Checkpoint::open(dir)).empty());
    EXPECT_NO_THROW(Model::load(dir));
  }
}

TEST(ExtraTensors, AttentionBiasesAreRefused) {
  const std::string dir = write_model("bias", small_config(), InitDType::BF16, [](auto& ts) {
    ts.push_back(f32_tensor("model.layers.0.self_attn.o_proj.bias", {32}));
  });
  expect_refused(dir, {"1 tensor ", "model.layers.0.self_attn.o_proj.bias"});
}

TEST(ExtraTensors, AnLmHeadBesideTiedEmbeddingsIsRefused) {
  json tied = small_config();
  tied["tie_word_embeddings"] = true;
  const std::string dir = write_model("tied", tied, InitDType::BF16, [](auto& ts) {
    ts.push_back(f32_tensor("lm_head.weight", {96, 32}));
  });
  expect_refused(dir, {"lm_head.weight"});
}

TEST(ExtraTensors, AScaleBesideAnUnquantizedTensorIsRefused) {
  const std::string dir = write_model("scale", small_config(), InitDType::BF16, [](auto& ts) {
    ts.push_back(f32_tensor("model.layers.0.mlp.up_proj.weight_scale_inv", {1, 1}));
  });
  expect_refused(dir, {"model.layers.0.mlp.up_proj.weight_scale_inv"});
}

TEST(ExtraTensors, ExpertsBeyondNRoutedExpertsAreRefusedFirstFewListed) {
  const std::string dir = write_model("experts", small_config(), InitDType::BF16, [](auto& ts) {
    for (int e = 4; e < 7; ++e)
      for (const char* w : {"gate_proj", "up_proj", "down_proj"})
        ts.push_back(f32_tensor(fmt::format("model.layers.1.mlp.experts.{}.{}.weight", e, w), {16, 32}));
  });
  expect_refused(dir, {"9 tensors", "model.layers.1.mlp.experts.4.down_proj.weight", ", ..."});
  EXPECT_EQ(unexplained_tensors(parse_config(small_config()), io::Checkpoint::open(dir)).size(), 9u);
}

TEST(ExtraTensors, WarnLoadsTheSameModelIgnoringThem) {
  const std::string clean = write_model("warn_clean", small_config(), InitDType::BF16);
  const std::string dir = write_model("warn", small_config(), InitDType::BF16, [](auto& ts) {
    ts.push_back(f32_tensor("model.layers.0.self_attn.q_a_proj.bias", {16}));
  });
  ::testing::internal::CaptureStderr();
  auto m = Model::load(dir, {.extra_tensors = ExtraTensors::Warn});
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("warning:"), std::string::npos) << err;
  EXPECT_NE(err.find("model.layers.0.self_attn.q_a_proj.bias"), std::string::npos) << err;
  const std::vector<float> got = logits_of(*m), want = logits_of(*Model::load(clean));
  EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0);
}

TEST(ExtraTensors, QuantizeRefusesThemOrDropsThemWhenAllowed) {
  const std::string dir = write_model("quant", small_config(), InitDType::BF16, [](auto& ts) {
    ts.push_back(f32_tensor("model.layers.0.self_attn.o_proj.bias", {32}));
  });
  const std::string out = temp_dir("quant.out");
  EXPECT_THROW(quantize_model(dir, out, {.type = QuantizeType::Int8}), Error);
  EXPECT_FALSE(fs::exists(out));
  ::testing::internal::CaptureStderr();
  const QuantizeReport r = quantize_model(dir, out, {.type = QuantizeType::Int8, .extra_tensors = ExtraTensors::Warn});
  EXPECT_NE(::testing::internal::GetCapturedStderr().find("o_proj.bias"), std::string::npos);
  EXPECT_EQ(r.dropped, 1);
  EXPECT_NO_THROW(Model::load(out));  // the copy holds only what its config explains
}

}  // namespace
}  // namespace dsv3
