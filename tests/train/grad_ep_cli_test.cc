// `mpirun -np N dsv3 grad --ep E [--dp D]` (cli/cmd_grad.cc, train/expert_parallel.h): the gradient file an
// expert-parallel job writes equals DeepSeek's reference gradients (../shared/testdata, 1e-4 relative per
// tensor, the single-process reference test's tolerance) and the single-process `dsv3 grad` file (1e-5), for
// ep 2 on 2 ranks, ep 4 and dp 2 × ep 2 on 4 ranks. The reference batch is sequence 0 repeated once per
// rank (the loss is a mean over rows, so the gradient is sequence 0's), or twice per rank with the
// two-micro-batch overlap on and off; a batch of distinct sequences is compared with the single-process
// command. The per-rank time split on stderr adds up. Errors: a bad --ep, a batch that does not split, a rank failing
// alone (the job is aborted, naming the rank). Every mpirun has --timeout (DSV3_MPIRUN).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>  // before testdata.h, which uses std::memcpy
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "../model/testdata.h"
#include "io/safetensors.h"

namespace dsv3 {
namespace {

using dsv3::testing::read_ids;
using dsv3::testing::rel_err;

std::string case_dir(const std::string& name) { return dsv3::testing::testdata_dir() + "/" + name; }

std::string ids_text(const std::vector<int32_t>& ids) {
  std::ostringstream s;
  for (size_t i = 0; i < ids.size(); ++i) s << (i ? " " : "") << ids[i];
  return s.str();
}

struct GradRun {
  int status = -1;
  std::string log;  // stdout + stderr
};

// Runs `prefix dsv3 grad ...` with the batch's sequences; the gradients go to `out`.
GradRun grad(const std::string& prefix, const std::string& dir, const std::vector<std::vector<int32_t>>& batch,
             const std::string& flags, const std::string& out) {
  const std::string log = out + ".log";
  std::string cmd = prefix + std::string(DSV3_BIN) + " grad --model " + dir + " --out " + out + " " + flags;
  for (const auto& s : batch) cmd += " --ids \"" + ids_text(s) + "\"";
  cmd += " > " + log + " 2>&1";
  GradRun r;
  r.status = std::system(cmd.c_str());
  std::ifstream f(log);
  std::stringstream ss;
  ss << f.rdbuf();
  r.log = ss.str();
  std::filesystem::remove(log);
  return r;
}

std::string mpirun(int np) { return std::string(DSV3_MPIRUN) + " -np " + std::to_string(np) + " "; }

double loss_of(const std::string& log) {
  const size_t at = log.find("loss ");
  return at == std::string::npos ? NAN : std::atof(log.c_str() + at + 5);
}

// Worst ‖a − b‖ / ‖b‖ over b's tensors (all must be in a, same shapes), and a has no others.
double worst_diff(const io::SafetensorsFile& a, const io::SafetensorsFile& b, double tol, const std::string& label) {
  double worst = 0.0;
  EXPECT_EQ(a.tensors().size(), b.tensors().size()) << label;
  for (const auto& [name, t] : b.tensors()) {
    const TensorView* g = a.find(name);
    if (!g) {
      ADD_FAILURE() << label << ": lacks " << name;
      continue;
    }
    EXPECT_EQ(g->dtype, DType::F32) << name;
    if (g->shape != t.shape) {
      ADD_FAILURE() << label << ": " << name << " has another shape";
      continue;
    }
    const double e = rel_err(g->as<float>(), t.as<float>(), size_t(t.numel()));
    EXPECT_LE(e, tol) << label << ": " << name;
    worst = std::max(worst, e);
  }
  return worst;
}

double read_loss(const std::string& dir) {
  std::ifstream f(dir + "/loss.txt");
  double v = NAN;
  f >> v;
  return v;
}

struct Layout {
  int np;
  std::string flags;
  int per_rank = 1;  // copies of the reference sequence per rank (>= 2: the two-micro-batch overlap runs)
  bool overlapped = false;
};
const Layout kLayouts[] = {{2, "--ep 2"},
                           {4, "--ep 4"},
                           {4, "--dp 2 --ep 2"},
                           {2, "--ep 2 --overlap on", 2, true},
                           {2, "--ep 2 --overlap off", 2, false},
                           {4, "--dp 2 --ep 2 --overlap on", 2, true}};

// The per-rank split dsv3 grad prints under EP names the overlap and adds up.
void expect_split(const std::string& log, int np, bool overlapped, const std::string& label) {
  for (int q = 0; q < np; ++q) {
    const size_t at = log.find("rank " + std::to_string(q) + ": step ");
    ASSERT_NE(at, std::string::npos) << label << "\n" << log;
    const std::string line = log.substr(at, log.find('\n', at) - at);
    EXPECT_NE(line.find(overlapped ? "overlap on" : "overlap off"), std::string::npos) << label << ": " << line;
    double step = 0, compute = 0, post = 0, wait = 0;
    ASSERT_EQ(std::sscanf(line.c_str(), "rank %*d: step %lf s = compute %lf + all-to-all post %lf + wait %lf", &step,
                          &compute, &post, &wait),
              4)
        << line;
    EXPECT_NEAR(compute + post + wait, step, 2e-3) << line;
    EXPECT_GE(wait, 0.0) << line;
  }
}

class GradEpCli : public ::testing::TestWithParam<std::string> {};

TEST_P(GradEpCli, ReproducesTheReferenceAndTheSingleProcessFile) {
  DSV3_REQUIRE_CASE(GetParam());
  const std::string dir = case_dir(GetParam()), tmp = ::testing::TempDir() + "/dsv3_grad_ep_" + GetParam();
  const auto s0 = read_ids(dir + "/ids.txt")[0];
  const GradRun single = grad("", dir, {s0}, "", tmp + "_1.safetensors");
  ASSERT_EQ(single.status, 0) << single.log;
  auto ref = io::SafetensorsFile::open(dir + "/grads.safetensors");
  auto one = io::SafetensorsFile::open(tmp + "_1.safetensors");
  for (const Layout& l : kLayouts) {
    const std::string label = GetParam() + " -np " + std::to_string(l.np) + " " + l.flags;
    const std::string out = tmp + "_np" + std::to_string(l.np) + ".safetensors";
    std::filesystem::remove(out);
    const GradRun r =
        grad(mpirun(l.np), dir, std::vector<std::vector<int32_t>>(size_t(l.np * l.per_rank), s0), l.flags, out);
    ASSERT_EQ(r.status, 0) << label << "\n" << r.log;
    expect_split(r.log, l.np, l.overlapped, label);
    EXPECT_NEAR(loss_of(r.log), read_loss(dir), 1e-5) << label << "\n" << r.log;
    auto got = io::SafetensorsFile::open(out);
    const double to_ref = worst_diff(*got, *ref, 1e-4, label + " vs reference");
    const double to_one = worst_diff(*got, *one, 1e-5, label + " vs single process");
    std::printf("[ %s ] worst relative error: %.3g to the reference, %.3g to the single-process file\n", label.c_str(),
                to_ref, to_one);
    std::filesystem::remove(out);
  }
  std::filesystem::remove(tmp + "_1.safetensors");
}

INSTANTIATE_TEST_SUITE_P(Cases, GradEpCli, ::testing::Values("v3_tiny", "v2lite_tiny", "v3_mtp"));

// Eight distinct sequences (cut to one length): each rank gets its own (2 or 4, so --overlap on runs), and
// the EP file equals the single-process file of the same batch.
TEST(GradEpCli, DistinctSequencesSplitOverTheRanks) {
  DSV3_REQUIRE_CASE("v3_mtp");
  const std::string dir = case_dir("v3_mtp"), tmp = ::testing::TempDir() + "/dsv3_grad_ep_batch";
  const auto seqs = read_ids(dir + "/ids.txt");
  std::vector<std::vector<int32_t>> batch;
  for (size_t b = 0; b < 8; ++b) {
    const auto& s = seqs[b % seqs.size()];
    std::vector<int32_t> v;
    for (size_t t = 0; t < 14; ++t) v.push_back(s[(t + 3 * b) % s.size()]);
    batch.push_back(v);
  }
  const GradRun single = grad("", dir, batch, "", tmp + "_1.safetensors");
  ASSERT_EQ(single.status, 0) << single.log;
  auto one = io::SafetensorsFile::open(tmp + "_1.safetensors");
  for (const Layout& l : kLayouts) {
    if (l.per_rank > 1) continue;  // the batch has 8 sequences: every layout gets >= 2 per rank
    const std::string flags = l.flags + " --overlap on";
    const std::string label = "8 sequences, -np " + std::to_string(l.np) + " " + flags;
    const std::string out = tmp + "_np" + std::to_string(l.np) + ".safetensors";
    const GradRun r = grad(mpirun(l.np), dir, batch, flags, out);
    ASSERT_EQ(r.status, 0) << label << "\n" << r.log;
    EXPECT_NEAR(loss_of(r.log), loss_of(single.log), 2e-6) << label;
    expect_split(r.log, l.np, /*overlapped=*/true, label);
    auto got = io::SafetensorsFile::open(out);
    std::printf("[ %s ] worst relative difference to the single-process file %.3g\n", label.c_str(),
                worst_diff(*got, *one, 1e-5, label));
    std::filesystem::remove(out);
  }
  std::filesystem::remove(tmp + "_1.safetensors");
}

TEST(GradEpCli, ErrorsNameTheFlagOrTheRank) {
  DSV3_REQUIRE_CASE("v3_tiny");
  const std::string dir = case_dir("v3_tiny"), out = ::testing::TempDir() + "/dsv3_grad_ep_err.safetensors";
  const auto s0 = read_ids(dir + "/ids.txt")[0];
  {
    const GradRun r = grad(mpirun(2), dir, {s0, s0}, "--ep 3", out);
    EXPECT_NE(r.status, 0);
    EXPECT_NE(r.log.find("--ep 3: does not divide the 2 ranks"), std::string::npos) << r.log;
  }
  {
    const GradRun r = grad(mpirun(2), dir, {s0, s0, s0}, "--ep 2", out);
    EXPECT_NE(r.status, 0);
    EXPECT_NE(r.log.find("--ids: 3 sequence(s) do not split over the 2 ranks"), std::string::npos) << r.log;
  }
  {
    const GradRun r = grad(mpirun(2), dir, {s0, std::vector<int32_t>(s0.begin(), s0.end() - 1)}, "--ep 2", out);
    EXPECT_NE(r.status, 0);
    EXPECT_NE(r.log.find("--ids (sequence 1)"), std::string::npos) << r.log;
  }
  {  // Only rank 1's sequence is bad: rank 1 fails alone and the job is aborted, naming it.
    std::vector<int32_t> bad = s0;
    bad[2] = 1 << 20;
    const GradRun r = grad(mpirun(2), dir, {s0, bad}, "--ep 2", out);
    EXPECT_NE(r.status, 0);
    EXPECT_NE(r.log.find("[rank 1/2] dsv3 grad: error: training step: token id 1048576"), std::string::npos) << r.log;
  }
  EXPECT_FALSE(std::filesystem::exists(out));
}

}  // namespace
}  // namespace dsv3
