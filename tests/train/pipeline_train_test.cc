// Pipeline-parallel training through the `dsv3` binary under mpirun (one OpenMP thread per rank, fp32):
// `dsv3 train --pp 2` with 1F1B, DualPipe and DualPipeV, `--pp 2 --dp 2`, `--pp 2 --ep 2` and `--pp 4` reproduce
// the single-process loss curve, validation losses, expert loads and final weights over 20 steps (1e-5); a
// checkpoint written by --pp 2 resumes in one process, one written by one process resumes under --pp 2 --ep 2,
// one by --pp 2 --dp 2 under --dp 2 --ep 2, each continuing the curve; a Chrome trace of the last step is
// written; bad layouts name the flag.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "io/dataset.h"
#include "io/safetensors.h"
#include "synthetic_corpus.h"

namespace dsv3::train {
namespace {

namespace fs = std::filesystem;

std::string tmp(const std::string& name) {
  const fs::path p = fs::temp_directory_path() / ("dsv3_pp_train_test_" + std::to_string(::getpid())) / name;
  fs::remove_all(p);
  fs::create_directories(p.parent_path());
  return p.string();
}

struct Result {
  int status;
  std::string out;
};

Result sh(const std::string& cmd) {
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int st = pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

Result train(int np, const std::string& args) {
  const std::string bin = std::string(DSV3_BIN) + " train --no-progress " + args;
  if (np == 1) return sh("OMP_NUM_THREADS=1 " + bin);
  return sh(std::string(DSV3_MPIRUN) + " -np " + std::to_string(np) + " " + bin);
}

// 1 dense + 3 MoE layers (8 experts, top-2 of 2 groups, 1 shared) and an MTP module, 8 sequences of 24 tokens
// per step in 2 micro-batches (the single process's gradient accumulation), aux-free balancing, validation and
// checkpoints every 5 steps. Four layers leave room for DualPipeV's 4 stages on 2 ranks.
std::string config_file() {
  static const std::string p = [] {
    const std::string f = tmp("train.json");
    std::ofstream(f) << R"({
    "model_type": "deepseek_v3", "hidden_size": 32, "intermediate_size": 64, "moe_intermediate_size": 16,
    "num_hidden_layers": 4, "num_nextn_predict_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 2,
    "n_shared_experts": 1, "n_routed_experts": 8, "num_experts_per_tok": 2, "n_group": 2, "topk_group": 1,
    "routed_scaling_factor": 2.5, "scoring_func": "sigmoid", "topk_method": "noaux_tc", "norm_topk_prob": true,
    "first_k_dense_replace": 1, "moe_layer_freq": 1, "q_lora_rank": 16, "kv_lora_rank": 16,
    "qk_nope_head_dim": 8, "qk_rope_head_dim": 4, "v_head_dim": 8, "rope_theta": 10000.0,
    "rms_norm_eps": 1e-6, "max_position_embeddings": 64, "tie_word_embeddings": false, "hidden_act": "silu",
    "training": {
      "seq_len": 24, "batch_seqs": 8, "grad_accum": 2,
      "steps": 20, "lr": 1e-3, "min_lr": 1e-4, "warmup_steps": 2, "constant_frac": 0.25, "decay_frac": 0.5,
      "seed": 5, "eval_every": 5, "eval_batches": 2, "ckpt_every": 5, "mtp_lambda_switch_frac": 0.5,
      "balance": {"mode": "aux_free", "alpha": 1e-4, "gamma": 1e-2, "gamma_off_frac": 0.25}
    }})";
    return f;
  }();
  return p;
}

const std::string& dataset() {
  static const std::string dir = testing::prepare_synthetic_corpus(tmp("data"), 15, 60, 14, 7);
  return dir;
}

std::string run_args(const std::string& out) {
  return "--config " + config_file() + " --data " + dataset() + " --out " + out;
}

std::vector<nlohmann::json> metrics(const std::string& run) {
  std::vector<nlohmann::json> v;
  std::ifstream in(run + "/metrics.jsonl");
  std::string line;
  while (std::getline(in, line)) v.push_back(nlohmann::json::parse(line));
  return v;
}

double rel(double a, double b) { return std::abs(a - b) / std::max(std::abs(a), 1e-30); }

double expect_same_curve(const std::string& ref, const std::string& run, double tol) {
  const std::vector<nlohmann::json> a = metrics(ref), b = metrics(run);
  EXPECT_EQ(a.size(), b.size()) << run;
  double worst = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    const auto &x = a[i], &y = b[i];
    EXPECT_EQ(x["type"], y["type"]) << run << " line " << i;
    EXPECT_EQ(x["step"], y["step"]) << run << " line " << i;
    for (const char* k : {"lr", "loss", "main_ce", "mtp_ce", "grad_norm", "val_loss", "val_mtp_ce", "val_total"}) {
      if (!x.contains(k)) continue;
      const double r = rel(x[k].get<double>(), y[k].get<double>());
      worst = std::max(worst, r);
      EXPECT_LE(r, tol) << run << " step " << x["step"] << " " << k << ": " << x[k] << " vs " << y[k];
    }
    if (x["type"] == "train") {
      EXPECT_EQ(x["load"], y["load"]) << run << " step " << x["step"];
      for (size_t l = 0; l < x["balance_loss"].size(); ++l) {
        const double r = rel(x["balance_loss"][l].get<double>(), y["balance_loss"][l].get<double>());
        worst = std::max(worst, r);
        EXPECT_LE(r, tol) << run << " step " << x["step"] << " balance_loss[" << l << "]";
      }
    }
  }
  return worst;
}

double weights_rel(const std::string& a_dir, const std::string& b_dir) {
  const io::Checkpoint a = io::Checkpoint::open(a_dir), b = io::Checkpoint::open(b_dir);
  EXPECT_EQ(a.names(), b.names());
  double worst = 0;
  for (const std::string& n : a.names()) {
    const TensorView* tb = b.find(n);
    if (!tb) continue;
    const TensorView& ta = a.get(n);
    const float* x = reinterpret_cast<const float*>(ta.data);
    const float* y = reinterpret_cast<const float*>(tb->data);
    double d = 0, s = 0;
    for (int64_t i = 0; i < ta.numel(); ++i) d += double(x[i] - y[i]) * (x[i] - y[i]), s += double(x[i]) * x[i];
    worst = std::max(worst, s > 0 ? std::sqrt(d / s) : std::sqrt(d));
  }
  return worst;
}

const std::string& single_run() {
  static const std::string run = [] {
    const std::string r = tmp("single");
    const Result res = train(1, run_args(r));
    EXPECT_EQ(res.status, 0) << res.out;
    return r;
  }();
  return run;
}

TEST(PipelineTrain, Pp2ReproducesTheSingleProcessRun) {
  const std::string& ref = single_run();
  for (const char* flags : {"--pp 2 --schedule 1f1b", "--pp 2 --schedule dualpipe", "--pp 2 --schedule dualpipev"}) {
    const std::string run = tmp(std::string("pp_") + (flags + 18));
    const std::string trace = run + ".trace.json";
    const Result r = train(2, run_args(run) + " " + flags + " --trace " + trace);
    ASSERT_EQ(r.status, 0) << flags << "\n" << r.out;
    const double curve = expect_same_curve(ref, run, 1e-5);
    const double w = weights_rel(ref + "/checkpoint", run + "/checkpoint");
    EXPECT_LE(w, 1e-5) << flags;
    std::printf("%s: loss curve within %.2g relative, final weights within %.2g\n", flags, curve, w);
    EXPECT_TRUE(fs::exists(trace)) << r.out;
    EXPECT_NE(r.out.find("bubble fraction measured"), std::string::npos) << r.out;
  }
}

TEST(PipelineTrain, APipelinedCheckpointResumesInOneProcess) {
  const std::string& ref = single_run();
  const std::string run = tmp("resume");
  Result r = train(2, run_args(run) + " --pp 2 --schedule dualpipe --stop-at 10");
  ASSERT_EQ(r.status, 0) << r.out;
  r = train(1, "--resume --data " + dataset() + " --out " + run);
  ASSERT_EQ(r.status, 0) << r.out;
  const double curve = expect_same_curve(ref, run, 1e-5);
  const double w = weights_rel(ref + "/checkpoint", run + "/checkpoint");
  EXPECT_LE(w, 1e-5);
  std::printf("--pp 2 for 10 steps, then 1 process: loss curve within %.2g, final weights within %.2g\n", curve, w);
}

// pp × dp × ep (4 ranks each, dist/layout.h): the lanes split the batch's 8 sequences, each lane's pipeline
// runs its share; within a stage the replicas all-reduce (ZeRO-1 over the stage) or the EP ranks exchange their
// rows at every MoE layer (with --overlap on, the two chunks of each DualPipe F&B pair take turns at the
// exchanges). --pp 4 alone: one decoder layer per stage. One test per layout (each a 4-rank, 20-step run), so
// every test stays short on 2 loaded cores.
void expect_ranks_reproduce(int np, const char* flags) {
  const std::string& ref = single_run();
  std::string name = flags;
  std::replace(name.begin(), name.end(), ' ', '_');
  const std::string run = tmp("combo" + std::to_string(np) + name);
  const Result r = train(np, run_args(run) + " " + flags);
  ASSERT_EQ(r.status, 0) << flags << "\n" << r.out;
  const double curve = expect_same_curve(ref, run, 1e-5);
  const double w = weights_rel(ref + "/checkpoint", run + "/checkpoint");
  EXPECT_LE(w, 1e-5) << flags;
  std::printf("%s (%d ranks): loss curve within %.2g relative, final weights within %.2g\n", flags, np, curve, w);
}

TEST(PipelineTrain, PpWithDpReproducesTheSingleProcessRun) {
  expect_ranks_reproduce(4, "--pp 2 --dp 2 --schedule 1f1b");
}
TEST(PipelineTrain, PpWithEpReproducesTheSingleProcessRun) {
  expect_ranks_reproduce(4, "--pp 2 --ep 2 --schedule dualpipe");
}
TEST(PipelineTrain, PpWithEpOverlappedReproducesTheSingleProcessRun) {
  expect_ranks_reproduce(4, "--pp 2 --ep 2 --schedule dualpipe --overlap on");
}
TEST(PipelineTrain, Pp4ReproducesTheSingleProcessRun) { expect_ranks_reproduce(4, "--pp 4 --schedule 1f1b"); }

// --pp 4 combined with --dp 2 / --ep 2: 8 ranks (4 stages × 2 lanes of 4 sequences, one per micro-batch).
TEST(PipelineTrain, Pp4WithDpReproducesTheSingleProcessRun) {
  expect_ranks_reproduce(8, "--pp 4 --dp 2 --schedule 1f1b");
}
TEST(PipelineTrain, Pp4WithEpReproducesTheSingleProcessRun) {
  expect_ranks_reproduce(8, "--pp 4 --ep 2 --schedule 1f1b");
}

// Checkpoints move between layouts: one process → --pp 2 --ep 2, and --pp 2 --dp 2 → --dp 2 --ep 2 (no pipeline).
TEST(PipelineTrain, CheckpointsResumeAcrossPipelinedLayouts) {
  const std::string& ref = single_run();
  struct Leg {
    int np_a;
    std::string a;
    int np_b;
    std::string b;
  };
  for (const Leg& l : {Leg{1, "", 4, "--pp 2 --ep 2 --schedule 1f1b"},
                       Leg{4, "--pp 2 --dp 2 --schedule dualpipe", 4, "--dp 2 --ep 2"}}) {
    std::string name = "relayout" + std::to_string(l.np_a) + l.a;
    std::replace(name.begin(), name.end(), ' ', '_');
    const std::string run = tmp(name);
    Result r = train(l.np_a, run_args(run) + " " + l.a + " --stop-at 10");
    ASSERT_EQ(r.status, 0) << l.a << "\n" << r.out;
    r = train(l.np_b, "--resume --data " + dataset() + " --out " + run + " " + l.b);
    ASSERT_EQ(r.status, 0) << l.b << "\n" << r.out;
    const double curve = expect_same_curve(ref, run, 1e-5);
    const double w = weights_rel(ref + "/checkpoint", run + "/checkpoint");
    EXPECT_LE(w, 1e-5);
    std::printf("'%s' for 10 steps, then '%s': loss curve within %.2g, final weights within %.2g\n", l.a.c_str(),
                l.b.c_str(), curve, w);
  }
}

TEST(PipelineTrain, BadLayoutsNameTheFlag) {
  struct Bad {
    int np;
    std::string flags, names;
  };
  for (const Bad& b :
       {Bad{2, "--pp 3", "--pp"}, Bad{2, "--pp 2 --ep 2", "--pp"}, Bad{2, "--pp 2 --micro 3", "--micro"},
        Bad{2, "--pp 2 --schedule dualpipe --micro 2", "--micro"}, Bad{2, "--pp 2 --schedule nope", "--schedule"},
        Bad{4, "--pp 2 --dp 3", "--dp"},                                   // 2 × 3 ranks, the job has 4
        Bad{4, "--pp 2 --dp 2 --schedule dualpipe --micro 8", "--micro"},  // a lane has 4 sequences
        Bad{4, "--pp 2 --ep 2 --overlap on", "--overlap"}}) {
    const Result r = train(b.np, run_args(tmp("bad")) + " " + b.flags);
    EXPECT_NE(r.status, 0) << b.flags << "\n" << r.out;
    EXPECT_NE(r.out.find(b.names), std::string::npos) << b.flags << "\n" << r.out;
  }
}

}  // namespace
}  // namespace dsv3::train
