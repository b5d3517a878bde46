// bind_params / bind_grads (train/layout.h) walk the weight schema over Params: each field must be the
// buffer of the tensor the model code reads through it, named here by hand.
#include "train/layout.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "core/error.h"
#include "model/config.h"
#include "train/params.h"

namespace dsv3::train {
namespace {

std::string case_dir(const char* name) { return std::string(DSV3_TESTDATA) + "/" + name; }

TEST(Layout, FieldsAreTheNamedBuffers) {
  const std::string dir = case_dir("v3_mtp");
  if (!std::filesystem::exists(dir + "/config.json")) GTEST_SKIP() << dir << " absent";
  const ModelConfig c = load_config(dir);
  Params params(c), grads(c);
  const ModelP p = bind_params(c, params);
  const ModelG g = bind_grads(c, grads);
  const int64_t last = c.num_hidden_layers - 1, e = c.n_routed_experts - 1;
  const std::string L = "model.layers." + std::to_string(last) + ".";
  const std::string X = L + "mlp.experts." + std::to_string(e) + ".";
  EXPECT_EQ(p.embed, params.data("model.embed_tokens.weight"));
  EXPECT_EQ(p.layers[0].attn.wkv_a, params.data("model.layers.0.self_attn.kv_a_proj_with_mqa.weight"));
  EXPECT_EQ(g.layers[0].attn.kv_norm, grads.data("model.layers.0.self_attn.kv_a_layernorm.weight"));
  EXPECT_EQ(g.layers[0].attn_norm, grads.data("model.layers.0.input_layernorm.weight"));
  EXPECT_EQ(g.layers[0].ffn_norm, grads.data("model.layers.0.post_attention_layernorm.weight"));
  ASSERT_TRUE(p.layers[size_t(last)].is_moe);
  EXPECT_EQ(p.layers[size_t(last)].moe.experts[size_t(e)].w1, params.data(X + "gate_proj.weight"));
  EXPECT_EQ(g.layers[size_t(last)].moe.experts[size_t(e)].w2, grads.data(X + "down_proj.weight"));
  EXPECT_EQ(p.layers[size_t(last)].moe.experts[size_t(e)].w3, params.data(X + "up_proj.weight"));
  EXPECT_EQ(p.layers[size_t(last)].moe.experts[size_t(e)].inter, c.moe_intermediate_size);
  EXPECT_EQ(p.layers[size_t(last)].moe.bias, params.data(L + "mlp.gate.e_score_correction_bias"));
  EXPECT_EQ(p.norm, params.data("model.norm.weight"));
  EXPECT_EQ(p.head, params.data("lm_head.weight"));
  ASSERT_EQ(p.mtp.size(), 1u);
  const std::string M = "model.layers." + std::to_string(c.num_hidden_layers) + ".";
  EXPECT_EQ(p.mtp[0].eh_proj, params.data(M + "eh_proj.weight"));
  EXPECT_EQ(g.mtp[0].layer.attn.wo, grads.data(M + "self_attn.o_proj.weight"));
  EXPECT_EQ(p.mtp[0].head_norm, params.data(M + "shared_head.norm.weight"));
  EXPECT_EQ(p.mtp[0].embed, p.embed);  // shared with the main model (Params holds no copies)
  EXPECT_EQ(g.mtp[0].head, g.head);
}

// A scoped Params (an expert-parallel rank's share) holds only the experts of its range; bind leaves the
// others empty and everything else is as in the full Params.
TEST(Layout, ScopeHoldsOnlyItsExperts) {
  const std::string dir = case_dir("v3_mtp");
  if (!std::filesystem::exists(dir + "/config.json")) GTEST_SKIP() << dir << " absent";
  const ModelConfig c = load_config(dir);
  const int64_t E = c.n_routed_experts;
  ASSERT_GE(E, 2);
  const SchemaScope scope{.expert_begin = 1, .expert_end = E / 2 + 1};
  Params full(c), part(c, scope);
  const int64_t held = scope.expert_end - scope.expert_begin;
  int64_t moe_layers = 0;
  for (int64_t l = 0; l < c.num_hidden_layers + c.num_nextn_predict_layers; ++l) moe_layers += c.is_moe_layer(l);
  EXPECT_EQ(full.size() - part.size(), size_t(moe_layers * (E - held) * 3));
  EXPECT_EQ(full.total() - part.total(), moe_layers * (E - held) * 3 * c.hidden_size * c.moe_intermediate_size);
  const ModelP p = bind_params(c, part);
  const ModelG g = bind_grads(c, part);
  for (size_t l = 0; l < p.layers.size(); ++l) {
    if (!p.layers[l].is_moe) continue;
    const std::string L = "model.layers." + std::to_string(l) + ".mlp.experts.";
    for (int64_t e = 0; e < E; ++e) {
      const std::string X = L + std::to_string(e) + ".gate_proj.weight";
      if (scope.has(e)) {
        EXPECT_EQ(p.layers[l].moe.experts[size_t(e)].w1, part.data(X));
        EXPECT_EQ(g.layers[l].moe.experts[size_t(e)].w1, part.data(X));
      } else {
        EXPECT_EQ(p.layers[l].moe.experts[size_t(e)].w1, nullptr);
        EXPECT_THROW(part.index(X), Error);
      }
    }
    EXPECT_EQ(p.layers[l].moe.gate, part.data("model.layers." + std::to_string(l) + ".mlp.gate.weight"));
  }
  ASSERT_EQ(p.mtp.size(), 1u);
  EXPECT_EQ(p.mtp[0].layer.moe.experts[0].w1, nullptr);
  EXPECT_NE(p.mtp[0].layer.moe.experts[1].w1, nullptr);
  EXPECT_EQ(p.mtp[0].embed, p.embed);
  EXPECT_EQ(part.scope().expert_begin, 1);
}

}  // namespace
}  // namespace dsv3::train
