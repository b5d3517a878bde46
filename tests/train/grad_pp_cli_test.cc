// `mpirun -np P dsv3 grad --pp P --schedule 1f1b|dualpipe|dualpipev` (cli/cmd_grad.cc, train/pipeline.h): the
// gradient file of a pipelined step equals DeepSeek's reference gradients (../shared/testdata, 1e-4 per tensor
// as the single-process reference test) and the single-process `dsv3 grad` file (1e-5): --pp 2 with 1F1B and
// DualPipe on the 3-layer reference models (the reference sequence repeated: the loss is a mean over rows), and
// --pp 2 / --pp 4 with every schedule the sizes allow on an 8-layer random model (`dsv3 init`) with 8 distinct
// sequences; --pp 2 with --ep 2 / --dp 2 (4 ranks) on the reference models, DualPipe's F&B pairs with their EP
// exchanges overlapped (--overlap on) too. The measured errors are printed; a measured
// DualPipe timeline is drawn (dsv3 schedule --from-trace). Errors name the flag and end the job (mpirun --timeout).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>  // before testdata.h, which uses std::memcpy
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "../model/testdata.h"
#include "io/safetensors.h"

namespace dsv3 {
namespace {

namespace fs = std::filesystem;
using dsv3::testing::rel_err;

std::string case_dir(const std::string& name) { return dsv3::testing::testdata_dir() + "/" + name; }

std::string tmp_dir() {
  const std::string d = (fs::temp_directory_path() / ("dsv3_grad_pp_" + std::to_string(::getpid()))).string();
  fs::create_directories(d);
  return d;
}

std::string ids_text(const std::vector<int32_t>& ids) {
  std::ostringstream s;
  for (size_t i = 0; i < ids.size(); ++i) s << (i ? " " : "") << ids[i];
  return s.str();
}

struct CmdRun {
  int status = -1;
  std::string log;
};

CmdRun sh(const std::string& cmd) {
  const std::string log = tmp_dir() + "/cmd.log";
  CmdRun r;
  r.status = std::system((cmd + " > " + log + " 2>&1").c_str());
  std::ifstream f(log);
  std::stringstream ss;
  ss << f.rdbuf();
  r.log = ss.str();
  return r;
}

CmdRun grad(int np, const std::string& model, const std::vector<std::vector<int32_t>>& batch, const std::string& flags,
            const std::string& out) {
  std::string cmd = np > 0 ? std::string(DSV3_MPIRUN) + " -np " + std::to_string(np) + " " : std::string();
  cmd += std::string(DSV3_BIN) + " grad --model " + model + " --out " + out + " " + flags;
  for (const auto& s : batch) cmd += " --ids \"" + ids_text(s) + "\"";
  return sh(cmd);
}

// Worst ‖a − b‖ / ‖b‖ over b's tensors (all in a, same shapes; a has no others).
double worst_diff(const std::string& a_path, const std::string& b_path, double tol, const std::string& label) {
  const auto pa = io::SafetensorsFile::open(a_path), pb = io::SafetensorsFile::open(b_path);
  const io::SafetensorsFile &a = *pa, &b = *pb;
  double worst = 0.0;
  EXPECT_EQ(a.tensors().size(), b.tensors().size()) << label;
  for (const auto& [name, t] : b.tensors()) {
    const TensorView* g = a.find(name);
    if (!g || g->shape != t.shape) {
      ADD_FAILURE() << label << ": " << name << " missing or of another shape";
      continue;
    }
    const double e = rel_err(g->as<float>(), t.as<float>(), size_t(t.numel()));
    EXPECT_LE(e, tol) << label << ": " << name;
    worst = std::max(worst, e);
  }
  return worst;
}

struct Layout {
  int np;
  std::string flags;
};

TEST(GradPpCli, ReferenceModelsMatchTheReferenceAndOneProcess) {
  for (const char* name : {"v3_mtp", "v3_tiny", "v2lite_tiny"}) {
    if (!dsv3::testing::have_case(name)) GTEST_SKIP() << "no testdata at " << dsv3::testing::testdata_dir();
    const std::vector<int32_t> seq = dsv3::testing::read_ids(case_dir(name) + "/ids.txt")[0];
    const std::vector<std::vector<int32_t>> batch(4, seq);
    const std::string d = tmp_dir(), one = d + "/one.safetensors";
    CmdRun r = grad(0, case_dir(name), batch, "", one);
    ASSERT_EQ(r.status, 0) << r.log;
    for (const Layout& l : {Layout{2, "--pp 2 --schedule 1f1b"}, Layout{2, "--pp 2 --schedule 1f1b --micro 2"},
                            Layout{2, "--pp 2 --schedule dualpipe"}, Layout{2, "--pp 2 --split measured"}}) {
      const std::string out = d + "/pp.safetensors", label = std::string(name) + " " + l.flags;
      r = grad(l.np, case_dir(name), batch, l.flags, out);
      ASSERT_EQ(r.status, 0) << label << "\n" << r.log;
      const double vs_ref = worst_diff(out, case_dir(name) + "/grads.safetensors", 1e-4, label + " vs reference");
      const double vs_one = worst_diff(out, one, 1e-5, label + " vs one process");
      std::printf("%s: vs reference %.2e, vs one process %.2e\n", label.c_str(), vs_ref, vs_one);
    }
  }
}

// pp × dp × ep (4 ranks, dist/layout.h): each lane (dp_rank, ep_rank) runs its share of the 8 sequences
// through the pipeline, the MoE layers exchanging rows over the stage's EP group; the file equals the reference.
// One reference model over the 4-rank layouts (a test per model: each is four 4-rank runs).
void expect_pp_with_ep_or_dp_matches(const char* name) {
  if (!dsv3::testing::have_case(name)) GTEST_SKIP() << "no testdata at " << dsv3::testing::testdata_dir();
  const std::vector<int32_t> seq = dsv3::testing::read_ids(case_dir(name) + "/ids.txt")[0];
  const std::vector<std::vector<int32_t>> batch(8, seq);
  const std::string d = tmp_dir();
  for (const Layout& l : {Layout{4, "--pp 2 --ep 2 --schedule 1f1b"}, Layout{4, "--pp 2 --ep 2 --schedule dualpipe"},
                          Layout{4, "--pp 2 --ep 2 --schedule dualpipe --overlap on"},
                          Layout{4, "--pp 2 --dp 2 --schedule 1f1b --micro 2"}}) {
    const std::string out = d + "/ppep.safetensors", label = std::string(name) + " " + l.flags;
    const CmdRun r = grad(l.np, case_dir(name), batch, l.flags, out);
    ASSERT_EQ(r.status, 0) << label << "\n" << r.log;
    const double vs_ref = worst_diff(out, case_dir(name) + "/grads.safetensors", 1e-4, label + " vs reference");
    std::printf("%s: vs reference %.2e\n", label.c_str(), vs_ref);
    EXPECT_NE(r.log.find("pp 2 × dp"), std::string::npos) << r.log;
  }
}

TEST(GradPpCli, PpWithEpOrDpMatchesTheReferenceV3Mtp) { expect_pp_with_ep_or_dp_matches("v3_mtp"); }
TEST(GradPpCli, PpWithEpOrDpMatchesTheReferenceV3Tiny) { expect_pp_with_ep_or_dp_matches("v3_tiny"); }
TEST(GradPpCli, PpWithEpOrDpMatchesTheReferenceV2LiteTiny) { expect_pp_with_ep_or_dp_matches("v2lite_tiny"); }

// An 8-layer model (1 dense + 7 MoE, MTP), random (dsv3 init): --pp 4 has room for DualPipeV's 8 stages.
std::string init_model() {
  const std::string dir = tmp_dir() + "/deep";
  if (fs::exists(dir + "/model/config.json")) return dir + "/model";
  fs::create_directories(dir);
  std::ifstream in(case_dir("v3_mtp") + "/config.json");
  std::stringstream ss;
  ss << in.rdbuf();
  std::string c = ss.str();
  const std::string key = "\"num_hidden_layers\": 3";
  const size_t at = c.find(key);
  EXPECT_NE(at, std::string::npos);
  c.replace(at, key.size(), "\"num_hidden_layers\": 8");
  std::ofstream(dir + "/config.json") << c;
  const CmdRun r =
      sh(std::string(DSV3_BIN) + " init --config " + dir + "/config.json --out " + dir + "/model --seed 5");
  EXPECT_EQ(r.status, 0) << r.log;
  return dir + "/model";
}

TEST(GradPpCli, EverySchedulePp2AndPp4MatchesOneProcess) {
  if (!dsv3::testing::have_case("v3_mtp")) GTEST_SKIP() << "no testdata";
  const std::string model = init_model(), d = tmp_dir(), one = d + "/deep_one.safetensors";
  std::mt19937 rng(3);
  std::vector<std::vector<int32_t>> batch(8, std::vector<int32_t>(10));
  for (auto& s : batch)
    for (auto& t : s) t = int32_t(rng() % 256);
  CmdRun r = grad(0, model, batch, "", one);
  ASSERT_EQ(r.status, 0) << r.log;
  for (const Layout& l : {Layout{2, "--pp 2 --schedule dualpipev"}, Layout{4, "--pp 4 --schedule 1f1b"},
                          Layout{4, "--pp 4 --schedule dualpipe"}, Layout{4, "--pp 4 --schedule dualpipev"},
                          Layout{4, "--pp 4 --schedule 1f1b --micro 4"}}) {
    const std::string out = d + "/deep_pp.safetensors", trace = d + "/trace.json";
    r = grad(l.np, model, batch, l.flags + " --trace " + trace, out);
    ASSERT_EQ(r.status, 0) << l.flags << "\n" << r.log;
    const double e = worst_diff(out, one, 1e-5, l.flags);
    std::printf("deep %s: vs one process %.2e\n", l.flags.c_str(), e);
    EXPECT_NE(r.log.find("bubble fraction measured"), std::string::npos) << r.log;
    std::ifstream t(trace);
    std::stringstream ts;
    ts << t.rdbuf();
    EXPECT_NE(ts.str().find("\"traceEvents\""), std::string::npos);
    EXPECT_NE(ts.str().find("rank " + std::to_string(l.np - 1)), std::string::npos);
    if (l.flags == "--pp 4 --schedule dualpipe") {  // the measured timeline drawn (dsv3 schedule --from-trace)
      const std::string png = d + "/measured.png";
      const CmdRun s = sh(std::string(DSV3_BIN) + " schedule --from-trace " + trace + " --png " + png);
      ASSERT_EQ(s.status, 0) << s.log;
      EXPECT_NE(s.log.find("measured dualpipe --pp 4 --micro 8"), std::string::npos) << s.log;
      std::ifstream f(png, std::ios::binary);
      std::string magic(8, '\0');
      f.read(magic.data(), 8);
      EXPECT_EQ(magic, "\x89PNG\r\n\x1a\n");
    }
  }
}

// --pp 4 combined with --ep 2 / --dp 2: 8 ranks (4 stages × 2 lanes) on the 8-layer model, 16 sequences.
TEST(GradPpCli, Pp4WithEpOrDpMatchesOneProcess) {
  if (!dsv3::testing::have_case("v3_mtp")) GTEST_SKIP() << "no testdata";
  const std::string model = init_model(), d = tmp_dir(), one = d + "/deep16_one.safetensors";
  std::mt19937 rng(11);
  std::vector<std::vector<int32_t>> batch(16, std::vector<int32_t>(10));
  for (auto& s : batch)
    for (auto& t : s) t = int32_t(rng() % 256);
  CmdRun r = grad(0, model, batch, "", one);
  ASSERT_EQ(r.status, 0) << r.log;
  for (const Layout& l : {Layout{8, "--pp 4 --ep 2 --schedule 1f1b"}, Layout{8, "--pp 4 --dp 2 --schedule 1f1b"},
                          Layout{8, "--pp 4 --ep 2 --schedule dualpipe --overlap on"}}) {
    const std::string out = d + "/deep16_pp.safetensors";
    r = grad(l.np, model, batch, l.flags, out);
    ASSERT_EQ(r.status, 0) << l.flags << "\n" << r.log;
    const double e = worst_diff(out, one, 1e-5, l.flags);
    std::printf("deep %s (8 ranks): vs one process %.2e\n", l.flags.c_str(), e);
    EXPECT_NE(r.log.find("pp 4 × dp"), std::string::npos) << r.log;
  }
}

TEST(GradPpCli, BadLayoutsNameTheFlag) {
  if (!dsv3::testing::have_case("v3_mtp")) GTEST_SKIP() << "no testdata";
  const std::vector<int32_t> seq = dsv3::testing::read_ids(case_dir("v3_mtp") + "/ids.txt")[0];
  const std::vector<std::vector<int32_t>> four(4, seq), three(3, seq);
  const std::string out = tmp_dir() + "/bad.safetensors";
  struct Bad {
    int np;
    std::string flags;
    const std::vector<std::vector<int32_t>>* batch;
    std::string names;
  };
  for (const Bad& b :
       {Bad{2, "--pp 3", &four, "--pp"},                          // not the job's ranks
        Bad{4, "--pp 4", &four, "--pp"},                          // 4 stages, 3 layers
        Bad{2, "--pp 2 --schedule dualpipev", &four, "--pp"},     // 4 stages, 3 layers
        Bad{2, "--pp 2 --schedule dualpipe", &three, "--micro"},  // odd micro-batch count
        Bad{2, "--pp 2 --micro 3", &four, "--micro"},             // 4 sequences, 3 micro-batches
        Bad{2, "--pp 2 --schedule zigzag", &four, "--schedule"}, Bad{2, "--pp 2 --ep 2", &four, "--pp"},
        Bad{4, "--pp 2 --ep 2", &three, "--ids"},                                     // 3 sequences over 2 lanes
        Bad{4, "--pp 2 --dp 2 --schedule dualpipe", &four, "--micro"},                // 2 per lane: DualPipe needs 4
        Bad{2, "--pp 2 --schedule dualpipe --overlap on", &four, "--overlap"},        // no EP exchanges to overlap
        Bad{4, "--pp 2 --ep 2 --schedule 1f1b --overlap on", &four, "--overlap"}}) {  // no F&B pairs
    const CmdRun r = grad(b.np, case_dir("v3_mtp"), *b.batch, b.flags, out);
    EXPECT_NE(r.status, 0) << b.flags << "\n" << r.log;
    EXPECT_NE(r.log.find(b.names), std::string::npos) << b.flags << "\n" << r.log;
    EXPECT_NE(r.log.find("error"), std::string::npos) << b.flags << "\n" << r.log;
  }
}

}  // namespace
}  // namespace dsv3
