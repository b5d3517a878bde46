// `dsv3 plan` end to end: the 671B preset's JSON, the sweep, inference modes, a CPU cluster from a cpu:FILE,
// and bad input (each error names its flag or key, exit status non-zero).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

namespace {

struct Result {
  int status = -1;
  std::string out;  // stdout and stderr together
};

Result run(const std::string& args) {
  Result r;
  std::string cmd = std::string(DSV3_BIN) + " " + args + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  int st = ::pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

const std::string kPaper = "plan --preset deepseek-v3-671b --nodes 256 --gpus-per-node 8 --pp 16 --ep 64 --dp 2";
std::string machine() { return std::string("cpu:") + DSV3_TEST_SRC + "/../configs/hardware/this-machine.json"; }

void expect_error(const std::string& args, const std::string& needle) {
  Result r = run(args);
  EXPECT_NE(r.status, 0) << args << "\n" << r.out;
  EXPECT_NE(r.out.find("error"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(needle), std::string::npos) << "'" << needle << "' not in:\n" << r.out;
}

TEST(PlanCli, PaperLayoutJson) {
  Result r = run(kPaper + " --hardware h800 --json");
  ASSERT_EQ(r.status, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  for (const char* k : {"memory_per_device_bytes", "bubble_fraction", "step_seconds", "gpu_hours_per_trillion_tokens"})
    ASSERT_TRUE(j.contains(k)) << k;
  EXPECT_NEAR(j["gpu_hours_per_trillion_tokens"].get<double>() / 180e3, 1.0, 0.20);
  EXPECT_LE(j["memory_per_device_bytes"].get<double>(), 80e9);
  EXPECT_TRUE(j["fits"].get<bool>());
  EXPECT_EQ(j["micro_batches"].get<int64_t>(), 120);
  // The same numbers from a config file read by the model's own loader.
  Result f = run("plan --config " + std::string(DSV3_TEST_SRC) +
                 "/data/deepseek_v3_config.json --nodes 256 --pp 16 --ep 64 --dp 2 --json");
  ASSERT_EQ(f.status, 0) << f.out;
  EXPECT_DOUBLE_EQ(nlohmann::json::parse(f.out)["step_seconds"].get<double>(), j["step_seconds"].get<double>());
  // Text output names the schedule and the verdict.
  Result t = run(kPaper + " --schedule 1f1b");
  ASSERT_EQ(t.status, 0) << t.out;
  EXPECT_NE(t.out.find("1f1b"), std::string::npos) << t.out;
}

TEST(PlanCli, Sweep) {
  Result r = run("plan --preset deepseek-v3-671b --nodes 256 --sweep --json");
  ASSERT_EQ(r.status, 0) << r.out;
  auto rows = nlohmann::json::parse(r.out)["sweep"];
  ASSERT_EQ(rows.size(), 6u);
  bool paper_fits = false;
  for (const auto& row : rows)
    if (row["pp"] == 16 && row["ep"] == 64) paper_fits = row["fits"].get<bool>();
  EXPECT_TRUE(paper_fits);
}

TEST(PlanCli, InferenceAndCpuCluster) {
  Result p =
      run("plan --preset deepseek-v3-671b --nodes 4 --ep 32 --mode prefill --attention-tp 4 "
          "--redundant-experts 32 --batch-size 16 --json");
  ASSERT_EQ(p.status, 0) << p.out;
  EXPECT_GT(nlohmann::json::parse(p.out)["tokens_per_s"].get<double>(), 0);
  Result d =
      run("plan --preset deepseek-v3-671b --nodes 40 --ep 320 --mode decode --attention-tp 4 "
          "--redundant-experts 64 --shared-as-routed --batch-size 192 --json");
  ASSERT_EQ(d.status, 0) << d.out;
  EXPECT_TRUE(nlohmann::json::parse(d.out)["fits"].get<bool>());
  Result c = run("plan --config " + std::string(DSV3_TEST_SRC) + "/../configs/v3-demo.json --hardware " + machine() +
                 " --nodes 2 --gpus-per-node 1 --ep 2 --mode decode --batch-size 4 --weight-dtype bf16 --json");
  ASSERT_EQ(c.status, 0) << c.out;
  EXPECT_GT(nlohmann::json::parse(c.out)["tokens_per_s"].get<double>(), 0);
}

TEST(PlanCli, BadInput) {
  expect_error("plan --preset deepseek-v4 --nodes 1", "--preset 'deepseek-v4'");
  expect_error("plan --nodes 1", "--config");
  expect_error(kPaper.substr(0, kPaper.size() - 1) + "4", "--pp 16 × --ep 64 × --dp 4");
  expect_error("plan --preset deepseek-v3-671b --nodes 64 --pp 64 --ep 8", "--pp 64");
  expect_error("plan --preset deepseek-v3-671b --nodes 24 --pp 3 --ep 64", "even PP");
  expect_error(kPaper + " --hardware a100", "--hardware 'a100'");
  expect_error(kPaper + " --schedule gpipe", "--schedule 'gpipe'");
  expect_error(kPaper + " --batch-size 1000", "--batch-size 1000");
  const std::string dir = ::testing::TempDir();
  std::ofstream(dir + "/plan_bad.json") << "{\"cores\": 2,";
  expect_error(kPaper + " --hardware cpu:" + dir + "/plan_bad.json", "not JSON");
  std::ofstream(dir + "/plan_unknown.json") << R"({"cores": 2, "memory_bytes": 1e9, "memory_bandwidth_bytes_per_s": 1e9,
    "gemm_flops_per_s": 1e9, "alltoall_bandwidth_bytes_per_s": 1e9, "alltoall_latency_s": 1e-6, "gpus": 8})";
  expect_error(kPaper + " --hardware cpu:" + dir + "/plan_unknown.json", "unknown key 'gpus'");
}

}  // namespace
