// Data-parallel and expert-parallel training through the `dsv3` binary under mpirun (one OpenMP thread per
// rank, fp32): --dp 2, --ep 2 and --dp 2 --ep 2 reproduce the single-process loss curve and final weights;
// checkpoints written by one layout resume in another; resume within a layout is bit-exact; a rank killed
// (SIGKILL) in the middle of a save leaves the previous checkpoint, which resumes; distributed checkpoints
// are HF sharded model directories that `dsv3 generate` loads; bad layouts fail naming the flag. Plus the
// ZeRO-1 partition's invariants in-process.
#include "train/data_parallel.h"

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "io/dataset.h"
#include "io/safetensors.h"
#include "synthetic_corpus.h"
#include "train/adamw.h"
#include "train/param_io.h"

namespace dsv3::train {
namespace {

namespace fs = std::filesystem;

std::string tmp(const std::string& name) {
  const fs::path p = fs::temp_directory_path() / ("dsv3_dp_test_" + std::to_string(::getpid())) / name;
  fs::remove_all(p);
  fs::create_directories(p.parent_path());
  return p.string();
}

struct Result {
  int status;
  std::string out;  // stdout + stderr
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

// `dsv3 train` on one process, or on `np` ranks under mpirun; `env`: extra environment for the ranks.
Result train(int np, const std::string& args, const std::string& env = "") {
  const std::string bin = std::string(DSV3_BIN) + " train --no-progress " + args;
  if (np == 1) return sh("OMP_NUM_THREADS=1 " + env + " " + bin);
  std::string exports;
  if (!env.empty()) exports = " -x " + env.substr(0, env.find('='));
  return sh(env + " " + DSV3_MPIRUN + exports + " -np " + std::to_string(np) + " " + bin);
}

// 1 dense + 2 MoE layers (8 routed experts in 2 groups, top-2, 1 shared) and an MTP module; a batch ramp
// 4 → 8 sequences (splits of 5, 6, 7 sequences are uneven over 2 and 4 ranks), 2 micro-batches, aux-free
// balancing with the MTP λ and γ switches, validation every 5 steps. lr 1e-3: at 1e-2 this model passes a
// loss spike whose gradients amplify the float reassociation of the gradient sums to ~3e-5 in the weights.
nlohmann::json config() {
  return nlohmann::json::parse(R"({
    "model_type": "deepseek_v3", "hidden_size": 32, "intermediate_size": 64, "moe_intermediate_size": 16,
    "num_hidden_layers": 3, "num_nextn_predict_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 2,
    "n_shared_experts": 1, "n_routed_experts": 8, "num_experts_per_tok": 2, "n_group": 2, "topk_group": 1,
    "routed_scaling_factor": 2.5, "scoring_func": "sigmoid", "topk_method": "noaux_tc", "norm_topk_prob": true,
    "first_k_dense_replace": 1, "moe_layer_freq": 1, "q_lora_rank": 16, "kv_lora_rank": 16,
    "qk_nope_head_dim": 8, "qk_rope_head_dim": 4, "v_head_dim": 8, "rope_theta": 10000.0,
    "rms_norm_eps": 1e-6, "max_position_embeddings": 64, "tie_word_embeddings": false, "hidden_act": "silu",
    "training": {
      "seq_len": 24, "batch_seqs": 8, "batch_seqs_start": 4, "batch_ramp_tokens": 600, "grad_accum": 2,
      "steps": 20, "lr": 1e-3, "min_lr": 1e-4, "warmup_steps": 2, "constant_frac": 0.25, "decay_frac": 0.5,
      "seed": 5, "eval_every": 5, "eval_batches": 2, "ckpt_every": 5, "mtp_lambda_switch_frac": 0.5,
      "balance": {"mode": "aux_free", "alpha": 1e-4, "gamma": 1e-2, "gamma_off_frac": 0.25}
    }})");
}

const std::string& config_file() {
  static const std::string p = [] {
    const std::string f = tmp("train.json");
    std::ofstream(f) << config().dump(2);
    return f;
  }();
  return p;
}

// A byte-level corpus, prepared once per test process.
const std::string& dataset() {
  static const std::string dir = testing::prepare_synthetic_corpus(tmp("data"), 15, 60, 14, 7);
  return dir;
}

// The same run without gradient accumulation (one call per step: 1-2 sequences per rank on 4 ranks, so the
// two-micro-batch overlap runs once every rank has 2); the same gradients up to float summation order.
const std::string& config_file_no_accum() {
  static const std::string p = [] {
    const std::string f = tmp("train_no_accum.json");
    nlohmann::json j = config();
    j["training"]["grad_accum"] = 1;
    j["training"]["eval_batches"] = 1;  // the same validation windows: eval_batches × batch_seqs / grad_accum
    std::ofstream(f) << j.dump(2);
    return f;
  }();
  return p;
}

std::string run_args(const std::string& out, const std::string& config = config_file()) {
  return "--config " + config + " --data " + dataset() + " --out " + out;
}
std::string resume_args(const std::string& out) { return "--resume --data " + dataset() + " --out " + out; }

std::vector<nlohmann::json> metrics(const std::string& run) {
  std::vector<nlohmann::json> v;
  std::ifstream in(run + "/metrics.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    j.erase("tokens_per_s");  // wall-clock fields
    j.erase("elapsed_s");
    j.erase("buckets_overlapped");
    j.erase("ep_time");
    v.push_back(j);
  }
  return v;
}

double rel(double a, double b) { return std::abs(a - b) / std::max(std::abs(a), 1e-30); }

// Every metrics line of `run` against `ref`: the same steps, batches and loads, floats within tol. Returns
// the largest relative difference seen.
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
      EXPECT_EQ(x["batch_seqs"], y["batch_seqs"]);
      EXPECT_EQ(x["tokens"], y["tokens"]);
      for (size_t l = 0; l < x["balance_loss"].size(); ++l) {
        const double r = rel(x["balance_loss"][l].get<double>(), y["balance_loss"][l].get<double>());
        worst = std::max(worst, r);
        EXPECT_LE(r, tol) << run << " step " << x["step"] << " balance_loss[" << l << "]";
      }
    }
  }
  return worst;
}

// Largest ‖a − b‖ / ‖a‖ over the tensors of two checkpoints (any layout); every tensor present in both.
double weights_rel(const std::string& a_dir, const std::string& b_dir) {
  const io::Checkpoint a = io::Checkpoint::open(a_dir), b = io::Checkpoint::open(b_dir);
  EXPECT_EQ(a.names(), b.names());
  double worst = 0;
  for (const std::string& n : a.names()) {
    const TensorView* tb = b.find(n);
    if (!tb) continue;
    const TensorView& ta = a.get(n);
    EXPECT_EQ(ta.shape, tb->shape) << n;
    const float* x = reinterpret_cast<const float*>(ta.data);
    const float* y = reinterpret_cast<const float*>(tb->data);
    double d = 0, s = 0;
    for (int64_t i = 0; i < ta.numel(); ++i) d += double(x[i] - y[i]) * (x[i] - y[i]), s += double(x[i]) * x[i];
    worst = std::max(worst, s > 0 ? std::sqrt(d / s) : std::sqrt(d));
  }
  return worst;
}

std::string read_bytes(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

nlohmann::json read_json(const std::string& p) { return nlohmann::json::parse(read_bytes(p)); }

const std::string& single_run() {
  static const std::string run = [] {
    const std::string r = tmp("single");
    const Result res = train(1, run_args(r));
    EXPECT_EQ(res.status, 0) << res.out;
    return r;
  }();
  return run;
}

TEST(DataParallel, LayoutsReproduceTheSingleProcessRun) {
  const std::string& ref = single_run();
  struct Case {
    int np;
    std::string flags, name;
    bool no_accum = false;
  };
  // --ep 2: micro-batches of 1-2 sequences per rank, so the two-micro-batch overlap runs in the calls where
  // every rank has 2; on 4 ranks with grad_accum 2 (1 sequence per call) it never does, with 1 it does.
  for (const Case& c :
       {Case{2, "--dp 2 --bucket-mb 0.01", "dp2"}, Case{2, "--ep 2 --overlap on", "ep2"},
        Case{2, "--ep 2 --overlap off", "ep2_no_overlap"}, Case{4, "--dp 2 --ep 2 --bucket-mb 0.02", "dp2ep2"},
        Case{4, "--dp 2 --ep 2 --bucket-mb 0.02 --overlap on", "dp2ep2_overlap", true}}) {
    const std::string run = tmp(c.name);
    const Result r = train(c.np, run_args(run, c.no_accum ? config_file_no_accum() : config_file()) + " " + c.flags);
    ASSERT_EQ(r.status, 0) << r.out;
    EXPECT_NE(r.out.find(fmt::format("{} ranks (mpi)", c.np)), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("ZeRO-1 owner of"), std::string::npos) << r.out;
    const double curve = expect_same_curve(ref, run, 1e-5);
    const double w = weights_rel(ref + "/checkpoint", run + "/checkpoint");
    EXPECT_LE(w, 1e-5) << c.name;
    std::printf("%s: loss curve within %.2g relative, final weights within %.2g (largest ‖Δ‖/‖w‖ of a tensor)\n",
                c.name.c_str(), curve, w);
    // Every bucket of every step started from the backward's grads_ready, before finish_grads. Under EP the
    // step's split of forward + backward time, and how many of its calls overlapped.
    std::ifstream in(run + "/metrics.jsonl");
    std::string line;
    int64_t overlapped = 0;
    while (std::getline(in, line)) {
      const auto j = nlohmann::json::parse(line);
      if (j["type"] != "train") continue;
      ASSERT_TRUE(j.contains("buckets_overlapped")) << line;
      EXPECT_EQ(j["buckets_overlapped"][0], j["buckets_overlapped"][1]) << line;
      if (c.name.rfind("ep2", 0) != 0) EXPECT_GT(j["buckets_overlapped"][1].get<int>(), 4) << line;
      EXPECT_EQ(j.contains("ep_time"), c.name != "dp2") << line;
      if (!j.contains("ep_time")) continue;
      const auto& t = j["ep_time"];
      EXPECT_NEAR(t["compute_s"].get<double>() + t["post_s"].get<double>() + t["wait_s"].get<double>(),
                  t["forward_backward_s"].get<double>(), 1e-9)
          << line;
      overlapped += t["overlapped_calls"][0].get<int64_t>();
    }
    if (c.name == "ep2" || c.name == "dp2ep2_overlap")
      EXPECT_GT(overlapped, 0);
    else
      EXPECT_EQ(overlapped, 0) << c.name;
    // Rank 0 alone wrote the run's files.
    EXPECT_TRUE(fs::exists(run + "/summary.json"));
  }
}

TEST(DataParallel, CheckpointsResumeInAnyLayout) {
  // 4 ranks (dp 2 × ep 2) to step 7, one process to step 14, 2 ranks (ep 2) to the end: every segment
  // continues the uninterrupted single-process curve.
  const std::string& ref = single_run();
  const std::string run = tmp("relayout");
  Result r = train(4, run_args(run) + " --dp 2 --ep 2 --stop-at 7");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_TRUE(fs::exists(run + "/checkpoint/model.safetensors.index.json"));
  EXPECT_EQ(read_json(run + "/checkpoint/trainer_state.json")["layout"], (nlohmann::json{{"dp", 2}, {"ep", 2}}));
  r = train(1, resume_args(run) + " --stop-at 14");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("resuming"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("(written by dp 2 × ep 2)"), std::string::npos) << r.out;
  EXPECT_TRUE(fs::exists(run + "/checkpoint/model.safetensors"));  // one process: today's single files
  EXPECT_TRUE(fs::exists(run + "/checkpoint/optimizer.safetensors"));
  r = train(2, resume_args(run) + " --ep 2");
  ASSERT_EQ(r.status, 0) << r.out;
  const double curve = expect_same_curve(ref, run, 1e-5);
  const double w = weights_rel(ref + "/checkpoint", run + "/checkpoint");
  EXPECT_LE(w, 1e-5);
  std::printf("4 ranks → 1 → 2: loss curve within %.2g relative, final weights within %.2g\n", curve, w);
}

TEST(DataParallel, ResumeWithinALayoutIsBitExact) {
  const std::string straight = tmp("bits_straight"), split = tmp("bits_split");
  Result r = train(4, run_args(straight) + " --dp 2 --ep 2");
  ASSERT_EQ(r.status, 0) << r.out;
  r = train(4, run_args(split) + " --dp 2 --ep 2 --stop-at 8");
  ASSERT_EQ(r.status, 0) << r.out;
  r = train(4, resume_args(split) + " --dp 2 --ep 2");
  ASSERT_EQ(r.status, 0) << r.out;
  const auto a = metrics(straight), b = metrics(split);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].dump(), b[i].dump()) << "line " << i;
  for (int k = 1; k <= 4; ++k)
    for (const char* kind : {"model", "optimizer"}) {
      const std::string f = fmt::format("/checkpoint/{}-{:05d}-of-00004.safetensors", kind, k);
      EXPECT_EQ(read_bytes(straight + f), read_bytes(split + f)) << f;
    }
}

TEST(DataParallel, RankKilledMidSaveLeavesThePreviousCheckpoint) {
  const std::string straight = tmp("kill_straight"), run = tmp("kill");
  Result r = train(2, run_args(straight) + " --dp 2");
  ASSERT_EQ(r.status, 0) << r.out;
  // ckpt_every 5: rank 1 dies in its second save (step 10), half-way through its optimizer shard.
  r = train(2, run_args(run) + " --dp 2", "DSV3_TEST_KILL_IN_SAVE=1:2");
  EXPECT_NE(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("rank 1 kills itself"), std::string::npos) << r.out;
  EXPECT_EQ(read_json(run + "/checkpoint/trainer_state.json")["step"], 5);
  EXPECT_TRUE(fs::exists(run + "/checkpoint.tmp"));  // the torn save, never swapped in
  EXPECT_FALSE(fs::exists(run + "/checkpoint.tmp/trainer_state.json"));
  r = train(2, resume_args(run) + " --dp 2");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("at step 5/20"), std::string::npos) << r.out;
  const auto a = metrics(straight), b = metrics(run);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].dump(), b[i].dump()) << "line " << i;
  EXPECT_FALSE(fs::exists(run + "/checkpoint.tmp"));
}

TEST(DataParallel, DistributedCheckpointIsAnHfShardedModelDirectory) {
  const std::string run = tmp("format");
  Result r = train(4, run_args(run) + " --dp 2 --ep 2 --steps 3");
  ASSERT_EQ(r.status, 0) << r.out;
  const std::string ck = run + "/checkpoint";
  const auto index = read_json(ck + "/model.safetensors.index.json");
  ASSERT_TRUE(index.contains("weight_map"));
  EXPECT_GT(index["metadata"]["total_size"].get<int64_t>(), 0);
  const ModelConfig c = load_config(ck);
  std::set<std::string> files;
  for (const WeightSpec& s : enumerate_weights(c)) {
    if (s.optional) continue;
    ASSERT_TRUE(index["weight_map"].contains(s.name)) << s.name;
    files.insert(index["weight_map"][s.name].get<std::string>());
  }
  EXPECT_EQ(files.size(), 4u);  // every rank wrote a share
  // The moments: each trainable tensor's two, once, in the optimizer index.
  const auto oindex = read_json(ck + "/optimizer.safetensors.index.json");
  const Params full(c);
  size_t moments = 0;
  for (size_t i = 0; i < full.size(); ++i)
    if (trainable(full.specs()[i].role)) {
      EXPECT_TRUE(oindex["weight_map"].contains(full.specs()[i].name + ".exp_avg")) << full.specs()[i].name;
      moments += 2;
    }
  EXPECT_EQ(oindex["weight_map"].size(), moments);
  EXPECT_EQ(oindex["metadata"]["step"], "3");
  // Loads as a model directory; generates.
  const Params p = load_params(ck);
  EXPECT_EQ(p.size(), full.size());
  r = sh(std::string("OMP_NUM_THREADS=1 ") + DSV3_BIN + " generate --model " + ck +
         " --ids '0 90 112' -n 4 --temp 0 --print-ids");
  ASSERT_EQ(r.status, 0) << r.out;
}

TEST(DataParallel, BadLayoutsFailNamingTheFlag) {
  Result r = train(1, run_args(tmp("bad1")) + " --dp 2");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.out.find("mpirun -np 2"), std::string::npos) << r.out;
  r = train(2, run_args(tmp("bad2")) + " --dp 2 --ep 2");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.out.find("--dp 2 × --ep 2 = 4 ranks, but the job has 2"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("[rank "), std::string::npos) << r.out;  // the aborting rank names itself
  // 3 ranks do not divide the batch of 8 sequences.
  r = train(3, run_args(tmp("bad3")) + " --dp 3");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.out.find("training.batch_seqs 8 does not split over the 3 ranks of --dp 3 × --ep 1"), std::string::npos)
      << r.out;
  r = train(2, run_args(tmp("bad4")) + " --ep 2 --bucket-mb 0");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.out.find("--bucket-mb 0"), std::string::npos) << r.out;
}

TEST(DataParallel, ZeroPartitionOwnsEveryTensorOnceAndBalances) {
  auto j = config();
  j.erase("training");
  j["vocab_size"] = 264;
  const ModelConfig c = parse_config(j);
  for (const dist::Layout l :
       {dist::Layout{1, 1}, dist::Layout{2, 1}, dist::Layout{1, 2}, dist::Layout{2, 2}, dist::Layout{3, 4}}) {
    const ZeroPartition p = zero_partition(c, l);
    int64_t total = 0, largest = 0;
    for (const WeightSpec& s : enumerate_weights(c)) {
      if (s.optional) continue;
      ASSERT_TRUE(p.owner.count(s.name)) << s.name;
      const int o = p.owner.at(s.name);
      ASSERT_GE(o, 0);
      ASSERT_LT(o, l.ranks());
      if (s.expert >= 0) EXPECT_EQ(o % l.ep, dist::expert_owner(c.n_routed_experts, l.ep, s.expert)) << s.name;
      total += s.numel();
      largest = std::max(largest, s.numel());
    }
    int64_t sum = 0, lo = total, hi = 0;
    for (int64_t f : p.floats) sum += f, lo = std::min(lo, f), hi = std::max(hi, f);
    EXPECT_EQ(sum, total);
    EXPECT_LE(hi - lo, largest) << l.dp << "x" << l.ep;  // greedy: within one tensor of balance
    EXPECT_EQ(p.owner, zero_partition(c, l).owner);      // a function of config and layout
  }
}

}  // namespace
}  // namespace dsv3::train
