// runtime::ModelBundle: the one loader of a servable model directory (model + tokenizer + chat template +
// eos ids), over the runtime tests' tiny models.
#include "runtime/model_bundle.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "test_models.h"

namespace dsv3::runtime {
namespace {

using namespace dsv3::testing_models;
namespace fs = std::filesystem;

// Rewrites dir/config.json's eos_token_id.
void set_eos(const std::string& dir, const nlohmann::json& eos) {
  const std::string path = dir + "/config.json";
  std::ifstream in(path);
  nlohmann::json j = nlohmann::json::parse(in);
  j["eos_token_id"] = eos;
  std::ofstream(path) << j.dump(2);
}

// Expects ModelBundle::load(dir) to throw a dsv3::Error whose message holds every one of `parts`.
void expect_load_error(const std::string& dir, std::initializer_list<std::string> parts) {
  try {
    ModelBundle::load(dir);
    ADD_FAILURE() << dir << ": expected a dsv3::Error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
  }
}

TEST(ModelBundle, LoadsEverythingAndMergesEosIds) {
  // config.json lists 9 and 1 (1 twice); the tokenizer's eos token is id 1: {1, 9}, sorted, once each.
  const std::string dir = write_chat_model(temp_dir("bundle_full"), 0.5, 7);
  set_eos(dir, {9, 1, 9});
  ModelBundle b = ModelBundle::load(dir, {.bf16_activations = true, .load_mode = io::LoadMode::Read});
  EXPECT_EQ(b.dir, dir);
  ASSERT_NE(b.model, nullptr);
  EXPECT_EQ(b.model->config().eos_token_ids, (std::vector<int64_t>{9, 1, 9}));
  ASSERT_TRUE(b.tokenizer.has_value());
  ASSERT_EQ(b.tokenizer->eos_id(), std::optional<int32_t>(1));
  ASSERT_TRUE(b.chat_prompt.has_value());  // tokenizer_config.json's template, rendered as Jinja
  EXPECT_EQ(b.chat_prompt->renderer(), io::PromptRenderer::kJinja);
  EXPECT_EQ(b.chat_prompt->template_source(), io::kDeepSeekV3ChatTemplateJinja);
  EXPECT_EQ(b.eos_ids, (std::vector<int32_t>{1, 9}));
  // The options reached the model.
  EXPECT_TRUE(b.model->options().bf16_activations);
  EXPECT_EQ(b.model->options().load_mode, io::LoadMode::Read);
  // Default options: exact, mapped.
  ModelBundle d = ModelBundle::load(dir);
  EXPECT_FALSE(d.model->options().bf16_activations);
  EXPECT_EQ(d.model->options().load_mode, io::LoadMode::Mmap);
  fs::remove_all(dir);
}

TEST(ModelBundle, TokenizerEosAddedToConfigIds) {
  // An eos id only the tokenizer names is added, in order.
  const std::string dir = write_chat_model(temp_dir("bundle_tok_eos"), 0.5, 7);
  set_eos(dir, {5, 3});
  ModelBundle b = ModelBundle::load(dir);
  EXPECT_EQ(b.eos_ids, (std::vector<int32_t>{1, 3, 5}));
  fs::remove_all(dir);
}

TEST(ModelBundle, WithoutTokenizer) {
  // Weights and config only: no tokenizer, no template, config.json's eos ids alone.
  const std::string dir = write_draftable_model(temp_dir("bundle_no_tok"), 0.5, 7);
  ASSERT_FALSE(fs::exists(dir + "/tokenizer.json"));
  ModelBundle b = ModelBundle::load(dir);
  ASSERT_NE(b.model, nullptr);
  EXPECT_FALSE(b.tokenizer.has_value());
  EXPECT_FALSE(b.chat_prompt.has_value());
  EXPECT_EQ(b.eos_ids, (std::vector<int32_t>{1}));
  set_eos(dir, nullptr);  // no eos at all in config.json
  EXPECT_TRUE(ModelBundle::load(dir).eos_ids.empty());
  fs::remove_all(dir);
}

TEST(ModelBundle, WithoutChatTemplate) {
  // tokenizer.json without tokenizer_config.json: the tokenizer (its eos by its well-known name), no template.
  const std::string dir = write_chat_model(temp_dir("bundle_no_tmpl"), 0.5, 7);
  fs::remove(dir + "/tokenizer_config.json");
  ModelBundle b = ModelBundle::load(dir);
  ASSERT_TRUE(b.tokenizer.has_value());
  ASSERT_TRUE(b.chat_prompt.has_value());  // no template: the built-in DeepSeek-V3 renderer
  EXPECT_EQ(b.chat_prompt->renderer(), io::PromptRenderer::kBuiltin);
  std::vector<int32_t> want{1};
  if (b.tokenizer->eos_id() && *b.tokenizer->eos_id() != 1) want.push_back(*b.tokenizer->eos_id());
  std::sort(want.begin(), want.end());
  EXPECT_EQ(b.eos_ids, want);
  fs::remove_all(dir);
}

TEST(ModelBundle, BadDirectoryNamesThePath) {
  const std::string base = temp_dir("bundle_bad");
  expect_load_error(base + "/no_such_model", {base + "/no_such_model", "no such directory"});
  std::ofstream(base + "/a_file") << "x";
  expect_load_error(base + "/a_file", {base + "/a_file", "not a directory"});
  fs::create_directories(base + "/empty");
  expect_load_error(base + "/empty", {base + "/empty/config.json"});
  // A template that does not parse is the template file's error (naming it and the line), not a silent
  // default.
  const std::string dir = write_chat_model(base + "/bad_template", 0.5, 7);
  std::ofstream(dir + "/tokenizer_config.json") << R"({"chat_template": "hello\n{% if %}"})";
  expect_load_error(dir, {"tokenizer_config.json", ":2"});
  fs::remove_all(base);
}

}  // namespace
}  // namespace dsv3::runtime
