// `dsv3 schedule` end to end: the JSON of each kind (the bubble against the paper's formula, activations
// and parameters per rank as Table 2 gives them), the PNG (gnuplot) and the Chrome trace it writes, and the
// refusals of impossible sizes naming the flag.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "binary.h"

namespace {

namespace fs = std::filesystem;
using dsv3::testing::run_dsv3;

std::string tmp(const std::string& name) {
  const std::string d = ::testing::TempDir() + "dsv3_schedule_" + std::to_string(::getpid());
  fs::create_directories(d);
  return d + "/" + name;
}

TEST(CliSchedule, EveryKindAgainstThePaper) {
  const auto r = run_dsv3("schedule --pp 8 --micro 20 --json --f 1 --b 1 --w 0.5 --fb 2");
  ASSERT_EQ(r.status, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j.size(), 3u);
  for (const auto& k : j) {
    SCOPED_TRACE(k["kind"].get<std::string>());
    EXPECT_EQ(k["bubble_per_rank"].size(), 8u);
    EXPECT_GT(k["makespan"].get<double>(), 20 * 2.5 - 1e-9);  // at least one rank's work
    if (k["kind"] == "1f1b") {
      EXPECT_DOUBLE_EQ(k["bubble_max"].get<double>(), 7 * (1 + 1));  // (PP − 1)(F + B)
      EXPECT_DOUBLE_EQ(k["paper_bubble"].get<double>(), 14);
      EXPECT_EQ(k["activations_1f1b_units"], 8);  // PP
      EXPECT_EQ(k["parameters_1f1b_units"], 1);
    } else if (k["kind"] == "dualpipe") {
      EXPECT_DOUBLE_EQ(k["paper_bubble"].get<double>(), 3 * (2 + 1 - 1.5));  // (PP/2 − 1)(F&B + B − 3W)
      EXPECT_DOUBLE_EQ(k["bubble_min"].get<double>(), k["paper_bubble"].get<double>());
      EXPECT_EQ(k["activations_1f1b_units"], 9);  // PP + 1
      EXPECT_EQ(k["parameters_1f1b_units"], 2);
    } else {
      EXPECT_EQ(k["kind"], "dualpipev");
      EXPECT_FALSE(k.contains("paper_bubble"));
      EXPECT_EQ(k["parameters_1f1b_units"], 1);
    }
  }
  // DualPipe's bubble is below 1F1B's.
  EXPECT_LT(j[1]["bubble_max"].get<double>(), j[0]["bubble_max"].get<double>());
}

TEST(CliSchedule, PngAndChromeTrace) {
  const std::string png = tmp("s.png"), trace = tmp("s.json");
  const auto r = run_dsv3("schedule --pp 4 --micro 10 --png " + png + " --trace " + trace);
  ASSERT_EQ(r.status, 0) << r.out;
  std::ifstream f(png, std::ios::binary);
  std::string magic(8, '\0');
  f.read(magic.data(), 8);
  EXPECT_EQ(magic, "\x89PNG\r\n\x1a\n");
  EXPECT_GT(fs::file_size(png), 10000u);
  std::ifstream t(trace);
  const auto j = nlohmann::json::parse(t);
  size_t slices = 0;
  for (const auto& e : j["traceEvents"]) slices += e["ph"] == "X";
  EXPECT_EQ(slices, 4u * 10u * 2u);  // 1F1B: an F and a BW per micro-batch on each of the 4 ranks
}

// --from-trace reads what --trace (and dsv3 grad / train --pp --trace) writes: the same ranks, micro-batches
// and idle time; a file that is not such a trace is refused naming it.
TEST(CliSchedule, FromTraceReadsATimelineBack) {
  const std::string trace = tmp("dp.json"), png = tmp("dp.png");
  auto r = run_dsv3("schedule --pp 4 --micro 8 --kind dualpipe --f 1 --b 1 --w 0.5 --fb 2 --json --trace " + trace);
  ASSERT_EQ(r.status, 0) << r.out;
  const auto sim = nlohmann::json::parse(r.out);
  r = run_dsv3("schedule --from-trace " + trace + " --json --png " + png);
  ASSERT_EQ(r.status, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["schedule"], "dualpipe");
  EXPECT_EQ(j["pp"], 4);
  EXPECT_EQ(j["micro"], 8);
  // Simulated time units read back as seconds, printed in ms.
  EXPECT_NEAR(j["makespan_ms"].get<double>(), 1e3 * sim["makespan"].get<double>(), 1e-6);
  EXPECT_NEAR(j["bubble_fraction"].get<double>(), sim["bubble_fraction"].get<double>(), 1e-9);
  EXPECT_EQ(j["peak_activations_per_rank"], sim["peak_activations_per_rank"]);
  EXPECT_NEAR(j["costs_ms"]["fb"].get<double>(), 2e3, 1e-6);
  std::ifstream f(png, std::ios::binary);
  std::string magic(8, '\0');
  f.read(magic.data(), 8);
  EXPECT_EQ(magic, "\x89PNG\r\n\x1a\n");

  const std::string bad = tmp("bad.json"), empty = tmp("empty.json");
  std::ofstream(bad) << "{not json";
  std::ofstream(empty) << R"({"traceEvents": []})";
  for (const std::string& t : {tmp("missing.json"), bad, empty}) {
    r = run_dsv3("schedule --from-trace " + t + " --png " + tmp("never.png"));
    EXPECT_NE(r.status, 0) << t;
    EXPECT_NE(r.out.find("--from-trace " + t), std::string::npos) << r.out;
    EXPECT_FALSE(fs::exists(tmp("never.png")));
  }
}

TEST(CliSchedule, ImpossibleSizesNameTheFlag) {
  for (const auto& [args, what] :
       std::vector<std::pair<std::string, std::string>>{{"--pp 3 --micro 12 --kind dualpipe", "--pp 3"},
                                                        {"--pp 4 --micro 6 --kind dualpipe", "--micro 6"},
                                                        {"--pp 4 --micro 5 --kind dualpipev", "--micro 5"},
                                                        {"--pp 0 --micro 4 --kind 1f1b", "--pp 0"},
                                                        {"--pp 4 --micro 8 --kind gpipe", "--kind gpipe"},
                                                        {"--pp 4 --micro 8 --w -1", "--w"}}) {
    const auto r = run_dsv3("schedule " + args);
    EXPECT_NE(r.status, 0) << args;
    EXPECT_NE(r.out.find(what), std::string::npos) << args << ": " << r.out;
  }
}

}  // namespace
