// `dsv3 info` and `dsv3 logits` on the DeepSeek-V3.2 reference checkpoints (DSA): the index-key cache is
// reported beside the latent cache, and the binary's logits are DeepSeek's (1e-5). The same logits over 2
// and 4 expert-parallel ranks are checked in ep_cli_test.cc.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "binary.h"

namespace {

namespace fs = std::filesystem;

using Result = dsv3::testing::BinaryResult;

Result run(const std::string& args) { return dsv3::testing::run_dsv3(args); }

std::vector<float> read_f32(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::vector<float> v(bytes.size() / 4);
  std::memcpy(v.data(), bytes.data(), v.size() * 4);
  return v;
}

double rel_err(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return INFINITY;
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    den += double(b[i]) * b[i];
  }
  return std::sqrt(num / den);
}

bool have(const std::string& name) { return fs::exists(std::string(DSV3_TESTDATA) + "/" + name + "/config.json"); }

TEST(DsaCli, InfoReportsTheIndexCache) {
  if (!have("v32_fp8")) GTEST_SKIP() << "v32_fp8 absent from " << DSV3_TESTDATA;
  const std::string dir = std::string(DSV3_TESTDATA) + "/v32_fp8";
  Result r = run("info --model '" + dir + "'");
  ASSERT_EQ(r.status, 0) << r.out;
  for (const char* s : {"deepseek_v32", "index-key cache 132 bytes/token/layer", "x 2 layers = 264 bytes/token",
                        "top-8 keys", "rotate-half", "ue8m0", "1152 bytes fp32"})
    EXPECT_NE(r.out.find(s), std::string::npos) << s << " not in:\n" << r.out;
  Result j = run("info --json --model '" + dir + "'");
  ASSERT_EQ(j.status, 0) << j.out;
  const auto js = nlohmann::json::parse(j.out);
  EXPECT_EQ(js["index_cache"]["bytes_per_token_per_layer"], 132);
  EXPECT_EQ(js["index_cache"]["bytes_per_token"], 264);
  EXPECT_EQ(js["index_cache"]["index_topk"], 8);
}

TEST(DsaCli, LogitsOfTheReferenceCases) {
  int ran = 0;
  for (const char* name : {"v32_tiny", "v32_fp8"}) {
    if (!have(name)) continue;
    const std::string dir = std::string(DSV3_TESTDATA) + "/" + name;
    std::ifstream f(dir + "/ids.txt");
    std::string line;
    for (int k = 0; std::getline(f, line); ++k) {
      if (line.empty()) continue;
      const std::string out = (fs::temp_directory_path() / ("dsv3_dsa_cli_" + std::to_string(::getpid()) + "_" + name +
                                                            "_" + std::to_string(k) + ".f32"))
                                  .string();
      Result r = run("logits --model '" + dir + "' --ids '" + line + "' --out '" + out + "'");
      ASSERT_EQ(r.status, 0) << r.out;
      EXPECT_LE(rel_err(read_f32(out), read_f32(dir + "/logits_" + std::to_string(k) + ".f32")), 1e-5)
          << name << " sequence " << k;
      fs::remove(out);
      ++ran;
    }
  }
  if (ran == 0) GTEST_SKIP() << "v32 reference cases absent from " << DSV3_TESTDATA;
}

}  // namespace
