// DeepSeek-V3.2 (DSA) through `dsv3 generate`: MTP speculative decoding of a `deepseek_v32` model whose
// sequences outgrow index_topk prints exactly the tokens of plain greedy decoding — the drafts' rows in both
// caches (latent and index keys, main model and MTP module) are rolled back when rejected.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "test_models.h"

namespace dsv3 {
namespace {

using namespace dsv3::testing_models;

struct Result {
  int status = -1;
  std::string out, err;
};

Result dsv3(const std::string& args) {
  static int n = 0;
  const std::string base = temp_dir("dsa_cli") + "/run" + std::to_string(n++);
  const std::string cmd = std::string(DSV3_BIN) + " " + args + " > " + base + ".out 2> " + base + ".err < /dev/null";
  Result r;
  const int st = std::system(cmd.c_str());
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  auto slurp = [](const std::string& p) {
    std::ifstream f(p);
    return std::string(std::istreambuf_iterator<char>(f), {});
  };
  r.out = slurp(base + ".out");
  r.err = slurp(base + ".err");
  return r;
}

TEST(DsaGenerate, MtpSpeculationMatchesPlainPastIndexTopk) {
  auto c = tiny_mtp_config();
  c["model_type"] = "deepseek_v32";
  c["architectures"] = {"DeepseekV32ForCausalLM"};
  c["index_n_heads"] = 4;
  c["index_head_dim"] = 128;
  c["index_topk"] = 8;  // the 5-token prompt + 40 tokens run well past it
  const std::string dir = write_draftable_model(temp_dir("dsa_model"), 0.5, 5, c);
  const std::string common = "generate --model " + dir + " --ids '0 5 9 33 7' -n 40 --temp 0 --print-ids --ignore-eos";
  const Result plain = dsv3(common);
  ASSERT_EQ(plain.status, 0) << plain.err;
  for (int depth : {1, 2, 3}) {
    const Result spec = dsv3(common + " --spec mtp --draft " + std::to_string(depth) + " --stats");
    ASSERT_EQ(spec.status, 0) << spec.err;
    EXPECT_EQ(spec.out, plain.out) << "draft " << depth;
    EXPECT_NE(spec.err.find("acceptance"), std::string::npos) << spec.err;
  }
}

}  // namespace
}  // namespace dsv3
