// `dsv3 info` end to end: runs the built binary (DSV3_BIN) on a published config, a reference checkpoint
// directory, and a directory that does not exist.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "binary.h"

namespace {

namespace fs = std::filesystem;

using Result = dsv3::testing::BinaryResult;

Result run(const std::string& args) { return dsv3::testing::run_dsv3(args); }

std::string quoted(const std::string& s) { return "'" + s + "'"; }

TEST(CliInfo, DeepSeekV3Config) {
  Result r = run("info --model " + quoted(std::string(DSV3_TEST_SRC) + "/data/deepseek_v3_config.json"));
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("671.0B"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("671026404352"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("36.6B"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("deepseek_v3"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("3 dense + 58 MoE"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("YaRN"), std::string::npos) << r.out;
  // 576 values x (61 + 1 MTP) layers x 4 bytes
  EXPECT_NE(r.out.find("142848 bytes fp32"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("no weights"), std::string::npos) << r.out;
}

TEST(CliInfo, Json) {
  Result r = run("info --json --model " + quoted(std::string(DSV3_TEST_SRC) + "/data/deepseek_v3_config.json"));
  ASSERT_EQ(r.status, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["params"]["total_main"].get<int64_t>(), 671026404352);
  EXPECT_EQ(j["kv_cache"]["values_per_token_per_layer"].get<int64_t>(), 576);
  EXPECT_EQ(j["layers"]["moe"].get<int64_t>(), 58);
  EXPECT_TRUE(j["weights"].is_null());
  EXPECT_EQ(j["config"]["model_type"], "deepseek_v3");
}

TEST(CliInfo, TestdataDirectoryListsDtypes) {
  if (!fs::is_directory(DSV3_TESTDATA)) GTEST_SKIP() << "reference checkpoints not found at " << DSV3_TESTDATA;
  Result r = run("info --model " + quoted(std::string(DSV3_TESTDATA) + "/v3_fp8"));
  ASSERT_EQ(r.status, 0) << r.out;
  for (const char* s : {"F8_E4M3", "BF16", "F32", "93 tensors", "fp8 e4m3"})
    EXPECT_NE(r.out.find(s), std::string::npos) << s << " not in:\n" << r.out;

  Result j = run("info --json --model " + quoted(std::string(DSV3_TESTDATA) + "/v2lite_tiny"));
  ASSERT_EQ(j.status, 0) << j.out;
  auto js = nlohmann::json::parse(j.out);
  EXPECT_EQ(js["weights"]["dtypes"].size(), 1u);
  EXPECT_TRUE(js["weights"]["dtypes"].contains("F32"));
  EXPECT_EQ(js["weights"]["tensors"].get<int64_t>(), 131);
}

TEST(CliInfo, MissingDirectory) {
  Result r = run("info --model /nonexistent/dsv3/model");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.out.find("/nonexistent/dsv3/model"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("error"), std::string::npos) << r.out;
}

// --check scans every floating-point weight: a clean reference checkpoint passes; the same checkpoint with one
// NaN written into lm_head.weight (its first BF16 value, located through the safetensors header) fails naming
// the tensor; a config without weights is refused.
TEST(CliInfo, CheckFindsNonFiniteWeights) {
  const std::string src = std::string(DSV3_TESTDATA) + "/v3_tiny";
  if (!fs::exists(src + "/model.safetensors")) GTEST_SKIP() << "no " << src;
  Result ok = run("info --check --model " + quoted(src));
  EXPECT_EQ(ok.status, 0) << ok.out;
  EXPECT_NE(ok.out.find("every value finite"), std::string::npos) << ok.out;

  const std::string dir = ::testing::TempDir() + "dsv3_info_nan_" + std::to_string(::getpid());
  fs::create_directories(dir);
  for (const char* f : {"config.json", "model.safetensors"})
    fs::copy_file(src + "/" + f, dir + "/" + f, fs::copy_options::overwrite_existing);
  {
    std::fstream st(dir + "/model.safetensors", std::ios::in | std::ios::out | std::ios::binary);
    uint64_t n = 0;
    st.read(reinterpret_cast<char*>(&n), 8);
    std::string header(n, '\0');
    st.read(header.data(), std::streamsize(n));
    const auto h = nlohmann::json::parse(header);
    ASSERT_EQ(h["lm_head.weight"]["dtype"], "BF16");
    const uint64_t at = 8 + n + h["lm_head.weight"]["data_offsets"][0].get<uint64_t>();
    st.seekp(std::streamoff(at));
    const unsigned char nan_bf16[2] = {0xc0, 0x7f};
    st.write(reinterpret_cast<const char*>(nan_bf16), 2);
  }
  Result bad = run("info --check --model " + quoted(dir));
  EXPECT_EQ(bad.status, 1) << bad.out;
  EXPECT_NE(bad.out.find("lm_head.weight: 1 non-finite value"), std::string::npos) << bad.out;
  Result j = run("info --check --json --model " + quoted(dir));
  EXPECT_EQ(j.status, 1) << j.out;
  const auto parsed = nlohmann::json::parse(j.out);
  ASSERT_EQ(parsed["bad"].size(), 1u);
  EXPECT_EQ(parsed["bad"][0]["tensor"], "lm_head.weight");
  // Generation from it stops instead of emitting a token.
  Result gen = run("generate --model " + quoted(dir) + " --ids '1 2 3' -n 2 --temp 0 --print-ids");
  EXPECT_EQ(gen.status, 1) << gen.out;
  EXPECT_NE(gen.out.find("non-finite"), std::string::npos) << gen.out;
  fs::remove_all(dir);

  Result none = run("info --check --model " + quoted(std::string(DSV3_TEST_SRC) + "/data/deepseek_v3_config.json"));
  EXPECT_NE(none.status, 0);
  EXPECT_NE(none.out.find("--check"), std::string::npos) << none.out;
}

}  // namespace
