// --allow-extra-tensors, end to end: a checkpoint holding a tensor its config.json does not explain is refused by
// every command that loads weights, naming the tensor and the flag, and loads with the flag and a warning.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "binary.h"
#include "io/safetensors.h"

namespace {

namespace fs = std::filesystem;

std::string quoted(const std::string& s) { return "'" + s + "'"; }

TEST(CliExtraTensors, EveryLoadingCommandRefusesOrWarns) {
  const std::string base = ::testing::TempDir() + "dsv3_extra_cli_" + std::to_string(::getpid());
  fs::remove_all(base);
  const std::string clean = base + "/clean", dir = base + "/extra";
  const auto init =
      dsv3::testing::run_dsv3("init --config " + quoted(std::string(DSV3_TEST_SRC) + "/data/family/moonlight.json") +
                              " --out " + quoted(clean) + " --dtype f32");
  ASSERT_EQ(init.status, 0) << init.out;
  {
    const dsv3::io::Checkpoint ck = dsv3::io::Checkpoint::open(clean);
    std::vector<dsv3::io::TensorToWrite> ts;
    for (const std::string& n : ck.names()) {
      const dsv3::TensorView& t = ck.get(n);
      ts.push_back({n, t.dtype, t.shape, t.data});
    }
    static const float zeros[64] = {};
    ts.push_back({"model.layers.0.self_attn.o_proj.bias", dsv3::DType::F32, {64}, zeros});
    fs::create_directories(dir);
    dsv3::io::write_safetensors(dir + "/model.safetensors", ts);
    fs::copy_file(clean + "/config.json", dir + "/config.json");
  }
  const std::string d = quoted(dir);
  const std::vector<std::string> commands = {
      "info --model " + d,
      "info --check --model " + d,
      "logits --model " + d + " --ids '1 2 3' --out " + quoted(base + "/logits.f32"),
      "generate --model " + d + " --ids '1 2 3' -n 2 --temp 0 --print-ids",
      "divergence --model " + d + " --ref " + quoted(clean) + " --sequences 1 --length 4",
      "grad --model " + d + " --ids '1 2 3 4' --out " + quoted(base + "/grads.safetensors"),
      "quantize --type int8 --model " + d + " --out " + quoted(base + "/q"),
  };
  for (const std::string& cmd : commands) {
    SCOPED_TRACE(cmd);
    const auto refused = dsv3::testing::run_dsv3(cmd);
    EXPECT_NE(refused.status, 0) << refused.out;
    EXPECT_NE(refused.out.find("model.layers.0.self_attn.o_proj.bias"), std::string::npos) << refused.out;
    EXPECT_NE(refused.out.find("--allow-extra-tensors"), std::string::npos) << refused.out;
    const auto allowed = dsv3::testing::run_dsv3(cmd + " --allow-extra-tensors");
    EXPECT_EQ(allowed.status, 0) << allowed.out;
    EXPECT_NE(allowed.out.find("warning:"), std::string::npos) << allowed.out;
  }
  fs::remove_all(base);
}

}  // namespace
