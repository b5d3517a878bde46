// The training forward + backward against DeepSeek's reference (../shared/testdata/*/grads.safetensors and
// loss.txt, computed by inference/model.py under torch autograd in float32): every gradient within 1e-4
// relative (‖a − b‖ / ‖b‖ per tensor) and the loss. Also: evaluate() gives forward_backward's loss; gradient
// accumulation (two half-batches at grad_scale 0.5 = one full batch); save → load round-trips exactly;
// `dsv3 grad` writes what the reference holds.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>  // before testdata.h, which uses std::memcpy
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "../model/testdata.h"
#include "io/safetensors.h"
#include "model/config.h"
#include "train/param_io.h"
#include "train/step.h"

namespace dsv3::train {
namespace {

using dsv3::testing::read_ids;
using dsv3::testing::rel_err;

constexpr double kTol = 1e-4;

std::string case_dir(const std::string& name) { return dsv3::testing::testdata_dir() + "/" + name; }

double read_loss(const std::string& dir) {
  std::ifstream f(dir + "/loss.txt");
  double v = NAN;
  f >> v;
  return v;
}

// Compares every gradient the reference holds with ours; returns the worst relative error.
double compare_grads(const Params& grads, const io::SafetensorsFile& ref, const std::string& label) {
  double worst = 0.0;
  size_t seen = 0;
  for (size_t i = 0; i < grads.size(); ++i) {
    const WeightSpec& s = grads.specs()[i];
    const TensorView* t = ref.find(s.name);
    if (s.role == WeightRole::Bias) {
      EXPECT_EQ(t, nullptr) << s.name << ": the reference has a gradient for the selection bias";
      continue;
    }
    if (!t) {
      ADD_FAILURE() << label << ": reference lacks " << s.name;
      continue;
    }
    ++seen;
    EXPECT_EQ(t->dtype, DType::F32);
    EXPECT_EQ(t->shape, s.shape) << s.name;
    const double e = rel_err(grads.value(i).data(), t->as<float>(), grads.value(i).size());
    EXPECT_LE(e, kTol) << label << ": " << s.name;
    worst = std::max(worst, e);
  }
  EXPECT_EQ(seen, ref.tensors().size()) << label << ": reference tensors we do not produce";
  return worst;
}

class ReferenceGrads : public ::testing::TestWithParam<std::string> {};

TEST_P(ReferenceGrads, LossAndEveryGradientMatch) {
  DSV3_REQUIRE_CASE(GetParam());
  const std::string dir = case_dir(GetParam());
  const ModelConfig c = load_config(dir);
  const Params p = load_params(c, io::Checkpoint::open(dir));
  const auto ids = read_ids(dir + "/ids.txt")[0];
  LossOptions opt{
      .mtp_lambda = c.num_nextn_predict_layers > 0 ? 0.3 : 0.0, .balance_alpha = 0.0, .mode = BalanceMode::None};
  Params g(c);
  const StepResult r = forward_backward(c, p, ids.data(), 1, int64_t(ids.size()), opt, g);
  const double want = read_loss(dir);
  EXPECT_NEAR(r.loss, want, 1e-5 * std::fabs(want)) << GetParam();
  EXPECT_EQ(r.tokens, int64_t(ids.size()) - 1);
  auto ref = io::SafetensorsFile::open(dir + "/grads.safetensors");
  const double worst = compare_grads(g, *ref, GetParam());
  std::printf("[ %s ] loss %.8f (reference %.8f), worst gradient relative error %.3g\n", GetParam().c_str(), r.loss,
              want, worst);

  // evaluate() computes the same objective without gradients.
  const StepResult e = evaluate(c, p, ids.data(), 1, int64_t(ids.size()), opt);
  EXPECT_EQ(e.loss, r.loss);
  EXPECT_EQ(e.main_ce, r.main_ce);
  EXPECT_EQ(e.mtp_ce, r.mtp_ce);
}

INSTANTIATE_TEST_SUITE_P(Cases, ReferenceGrads, ::testing::Values("v3_tiny", "v2lite_tiny", "v3_mtp"));

// Batches of the reference models' sequences (cut to a common length), with every loss term switched on.
std::vector<int32_t> batch_of(const std::string& dir, int64_t B, int64_t T) {
  auto seqs = read_ids(dir + "/ids.txt");
  std::vector<int32_t> out;
  for (int64_t b = 0; b < B; ++b) {
    const auto& s = seqs[size_t(b) % seqs.size()];
    for (int64_t t = 0; t < T; ++t) out.push_back(s[size_t((t + 3 * b) % int64_t(s.size()))]);
  }
  return out;
}

class Accumulation : public ::testing::TestWithParam<std::string> {};

TEST_P(Accumulation, TwoHalfBatchesAtHalfScaleEqualOneFullBatch) {
  DSV3_REQUIRE_CASE(GetParam());
  const std::string dir = case_dir(GetParam());
  const ModelConfig c = load_config(dir);
  const Params p = load_params(c, io::Checkpoint::open(dir));
  const int64_t B = 4, T = 12;
  const auto tokens = batch_of(dir, B, T);
  const LossOptions opt{.mtp_lambda = 0.3, .balance_alpha = 0.01, .mode = BalanceMode::AuxFree};
  Params full(c), halves(c);
  const StepResult rf = forward_backward(c, p, tokens.data(), B, T, opt, full, 1.0f);
  const StepResult r1 = forward_backward(c, p, tokens.data(), B / 2, T, opt, halves, 0.5f);
  const StepResult r2 = forward_backward(c, p, tokens.data() + (B / 2) * T, B / 2, T, opt, halves, 0.5f);
  EXPECT_NEAR(rf.loss, 0.5 * (r1.loss + r2.loss), 1e-6 * std::fabs(rf.loss));
  EXPECT_NEAR(rf.main_ce, 0.5 * (r1.main_ce + r2.main_ce), 1e-6);
  EXPECT_EQ(rf.tokens, r1.tokens + r2.tokens);
  ASSERT_EQ(rf.routing.size(), r1.routing.size());
  for (size_t l = 0; l < rf.routing.size(); ++l)
    for (size_t e = 0; e < rf.routing[l].load.size(); ++e)
      EXPECT_EQ(rf.routing[l].load[e], r1.routing[l].load[e] + r2.routing[l].load[e]);
  double worst = 0.0;
  for (size_t i = 0; i < full.size(); ++i) {
    if (full.specs()[i].role == WeightRole::Bias) continue;
    const double e = rel_err(halves.value(i).data(), full.value(i).data(), full.value(i).size());
    EXPECT_LE(e, 1e-5) << full.specs()[i].name;
    worst = std::max(worst, e);
  }
  std::printf("[ %s ] accumulation: worst relative difference %.3g\n", GetParam().c_str(), worst);
}

TEST_P(Accumulation, RoutingReportCoversEveryMoeLayer) {
  DSV3_REQUIRE_CASE(GetParam());
  const std::string dir = case_dir(GetParam());
  const ModelConfig c = load_config(dir);
  const Params p = load_params(c, io::Checkpoint::open(dir));
  const int64_t B = 2, T = 10;
  const auto tokens = batch_of(dir, B, T);
  const StepResult r = evaluate(c, p, tokens.data(), B, T, {.mtp_lambda = 0.3, .balance_alpha = 1e-4});
  std::vector<int64_t> want;
  for (int64_t l = 0; l < c.num_hidden_layers + c.num_nextn_predict_layers; ++l)
    if (c.is_moe_layer(l)) want.push_back(l);
  ASSERT_EQ(r.routing.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(r.routing[i].layer, want[i]);
    int64_t total = 0;
    for (int64_t v : r.routing[i].load) total += v;
    const int64_t rows = want[i] >= c.num_hidden_layers ? B * (T - 1) : B * T;
    EXPECT_EQ(total, rows * c.num_experts_per_tok);
    EXPECT_GT(r.routing[i].balance_loss, 0.0);
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, Accumulation, ::testing::Values("v3_tiny", "v2lite_tiny", "v3_mtp"));

TEST(ParamIo, SaveThenLoadIsExactForF32) {
  DSV3_REQUIRE_CASE("v3_mtp");
  const std::string dir = case_dir("v3_mtp");
  const ModelConfig c = load_config(dir);
  const Params p = load_params(c, io::Checkpoint::open(dir));
  const std::string out = ::testing::TempDir() + "/dsv3_param_io_roundtrip";
  std::filesystem::remove_all(out);
  save_params(out, c, p);
  const Params q = load_params(out);
  ASSERT_EQ(q.size(), p.size());
  for (size_t i = 0; i < p.size(); ++i) EXPECT_EQ(q.value(i), p.value(i)) << p.specs()[i].name;
  std::filesystem::remove_all(out);
}

TEST(ParamIo, Fp8CheckpointDecodesWithBlockScales) {
  DSV3_REQUIRE_CASE("v3_fp8");
  const std::string dir = case_dir("v3_fp8");
  const ModelConfig c = load_config(dir);
  const auto ckpt = io::Checkpoint::open(dir);
  const Params p = load_params(c, ckpt);
  // Every value equals the E4M3 byte times its block's weight_scale_inv.
  for (size_t i = 0; i < p.size(); ++i) {
    const WeightSpec& s = p.specs()[i];
    const TensorView& t = ckpt.get(s.name);
    if (t.dtype != DType::F8_E4M3) continue;
    const TensorView& sc = ckpt.get(s.name + "_scale_inv");
    const int64_t cols = s.shape[1], kb = sc.shape[1];
    for (int64_t r = 0; r < s.shape[0]; r += 37)
      for (int64_t j = 0; j < cols; j += 11) {
        const float want = e4m3_to_f32(t.as<uint8_t>()[r * cols + j]) * sc.as<float>()[(r / 128) * kb + j / 128];
        ASSERT_EQ(p.value(i)[size_t(r * cols + j)], want) << s.name;
      }
  }
}

TEST(GradCli, WritesTheReferenceGradients) {
  DSV3_REQUIRE_CASE("v3_tiny");
  const std::string dir = case_dir("v3_tiny");
  const auto ids = read_ids(dir + "/ids.txt")[0];
  std::ostringstream id_text;
  for (int32_t v : ids) id_text << v << ' ';
  const std::string out = ::testing::TempDir() + "/dsv3_grad_cli.safetensors";
  const std::string log = ::testing::TempDir() + "/dsv3_grad_cli.txt";
  std::filesystem::remove(out);
  const std::string cmd =
      std::string(DSV3_BIN) + " grad --model " + dir + " --ids \"" + id_text.str() + "\" --out " + out + " > " + log;
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::ifstream lf(log);
  std::string word;
  double loss = NAN;
  lf >> word >> loss;
  EXPECT_EQ(word, "loss");
  EXPECT_NEAR(loss, read_loss(dir), 1e-5);
  auto got = io::SafetensorsFile::open(out);
  auto ref = io::SafetensorsFile::open(dir + "/grads.safetensors");
  EXPECT_EQ(got->tensors().size(), ref->tensors().size());
  for (const auto& [name, t] : ref->tensors()) {
    const TensorView* g = got->find(name);
    ASSERT_NE(g, nullptr) << name;
    ASSERT_EQ(g->dtype, DType::F32);
    ASSERT_EQ(g->shape, t.shape);
    EXPECT_LE(rel_err(g->as<float>(), t.as<float>(), size_t(t.numel())), kTol) << name;
  }
  std::filesystem::remove(out);
  std::filesystem::remove(log);
}

}  // namespace
}  // namespace dsv3::train
