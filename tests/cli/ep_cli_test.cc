// Expert-parallel inference through the binary under mpirun (DSV3_MPIRUN: oversubscribed, one OpenMP thread
// per rank, mpirun's --timeout): `dsv3 logits --ep N` over every V3-family reference case against DeepSeek's
// logits and the single-process run, `dsv3 generate --ep 2` against one process (plain, MTP speculative,
// several sequences at once), the two-micro-batch overlap (--overlap on), `dsv3 info --ep N`, and the refusals and
// failures: a bad --ep names the flag, a rank that fails ends the job with a message naming it.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

struct Result {
  int status = -1;
  std::string out, err;
};

std::string slurp(const std::string& p) {
  std::ifstream f(p);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

std::string tmp_dir() {
  static const std::string d = [] {
    const std::string p = ::testing::TempDir() + "dsv3_ep_cli_" + std::to_string(::getpid());
    fs::create_directories(p);
    return p;
  }();
  return d;
}

// Runs a shell command line (stdin from /dev/null: mpirun would otherwise consume the test's stdin).
Result sh(const std::string& cmd) {
  static int n = 0;
  const std::string base = tmp_dir() + "/run" + std::to_string(n++);
  const int st = std::system((cmd + " > " + base + ".out 2> " + base + ".err < /dev/null").c_str());
  Result r;
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  r.out = slurp(base + ".out");
  r.err = slurp(base + ".err");
  return r;
}
Result dsv3(const std::string& args) { return sh(std::string(DSV3_BIN) + " " + args); }
Result mpi(int np, const std::string& args) {
  return sh(std::string(DSV3_MPIRUN) + " -np " + std::to_string(np) + " " + DSV3_BIN + " " + args);
}

std::vector<float> read_f32(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::vector<float> v;
  float x;
  while (f.read(reinterpret_cast<char*>(&x), sizeof x)) v.push_back(x);
  return v;
}

double rel_err(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size() || b.empty()) return INFINITY;
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    den += double(b[i]) * b[i];
  }
  return std::sqrt(num / den);
}

std::vector<std::string> lines(const std::string& path) {
  std::ifstream f(path);
  std::vector<std::string> out;
  std::string l;
  while (std::getline(f, l))
    if (!l.empty()) out.push_back(l);
  return out;
}

bool have_case(const std::string& c) { return fs::exists(std::string(DSV3_TESTDATA) + "/" + c + "/config.json"); }

// A tiny V3 model with an MTP module, made by `dsv3 init` (16 experts, top-4 in 2 of 4 groups; float32).
std::string init_model(const std::string& name, const nlohmann::json& changes = nlohmann::json::object()) {
  const std::string dir = tmp_dir() + "/" + name;
  if (fs::exists(dir + "/model/config.json")) return dir + "/model";
  fs::create_directories(dir);
  nlohmann::json c = {{"vocab_size", 512},
                      {"hidden_size", 64},
                      {"intermediate_size", 128},
                      {"moe_intermediate_size", 32},
                      {"num_hidden_layers", 3},
                      {"num_nextn_predict_layers", 1},
                      {"num_attention_heads", 4},
                      {"num_key_value_heads", 4},
                      {"n_shared_experts", 1},
                      {"n_routed_experts", 16},
                      {"num_experts_per_tok", 4},
                      {"n_group", 4},
                      {"topk_group", 2},
                      {"routed_scaling_factor", 2.5},
                      {"scoring_func", "sigmoid"},
                      {"topk_method", "noaux_tc"},
                      {"norm_topk_prob", true},
                      {"first_k_dense_replace", 1},
                      {"moe_layer_freq", 1},
                      {"q_lora_rank", 32},
                      {"kv_lora_rank", 32},
                      {"qk_nope_head_dim", 16},
                      {"qk_rope_head_dim", 8},
                      {"v_head_dim", 16},
                      {"rope_theta", 10000.0},
                      {"rms_norm_eps", 1e-6},
                      {"max_position_embeddings", 4096},
                      {"tie_word_embeddings", false},
                      {"bos_token_id", 0},
                      {"eos_token_id", 1},
                      {"model_type", "deepseek_v3"},
                      {"architectures", {"DeepseekV3ForCausalLM"}},
                      {"torch_dtype", "float32"}};
  c.update(changes);
  std::ofstream(dir + "/config.json") << c.dump();
  const Result r = dsv3("init --config " + dir + "/config.json --out " + dir + "/model --seed 11");
  EXPECT_EQ(r.status, 0) << r.err;
  return dir + "/model";
}

// ---- logits ----------------------------------------------------------------------------------------------------

TEST(EpCli, LogitsOfEveryReferenceCaseOverTwoAndFourRanks) {
  int ran = 0;
  for (const char* name : {"v3_tiny", "v2lite_tiny", "v3_fp8", "v3_mtp", "v32_tiny", "v32_fp8"}) {
    if (!have_case(name)) continue;
    const std::string dir = std::string(DSV3_TESTDATA) + "/" + name;
    const auto seqs = lines(dir + "/ids.txt");
    ASSERT_FALSE(seqs.empty()) << name;
    for (size_t k = 0; k < seqs.size(); ++k) {
      const std::string ref = dir + "/logits_" + std::to_string(k) + ".f32";
      const std::string mref = dir + "/mtp_logits_" + std::to_string(k) + ".f32";
      const bool mtp = fs::exists(mref);
      const std::string base = tmp_dir() + "/" + name + "_" + std::to_string(k);
      const std::string args = "logits --model " + dir + " --ids '" + seqs[k] + "'";
      const Result one = dsv3(args + " --out " + base + "_1.f32" + (mtp ? " --mtp-out " + base + "_m1.f32" : ""));
      ASSERT_EQ(one.status, 0) << one.err;
      for (int np : {2, 4}) {
        SCOPED_TRACE(std::string(name) + " sequence " + std::to_string(k) + ", " + std::to_string(np) + " ranks");
        const std::string out = base + "_" + std::to_string(np);
        const Result r = mpi(np, args + " --ep " + std::to_string(np) + " --out " + out + ".f32" +
                                     (mtp ? " --mtp-out " + out + "_m.f32" : ""));
        ASSERT_EQ(r.status, 0) << r.err;
        // Every rank announces its layout and weight bytes.
        for (int rank = 0; rank < np; ++rank)
          EXPECT_NE(r.err.find("rank " + std::to_string(rank) + ": replica 0, EP rank " + std::to_string(rank)),
                    std::string::npos)
              << r.err;
        const auto got = read_f32(out + ".f32");
        EXPECT_LE(rel_err(got, read_f32(ref)), 1e-5);
        EXPECT_LE(rel_err(got, read_f32(base + "_1.f32")), 1e-6);
        if (mtp) {
          const auto mgot = read_f32(out + "_m.f32");
          EXPECT_LE(rel_err(mgot, read_f32(mref)), 1e-5);
          EXPECT_LE(rel_err(mgot, read_f32(base + "_m1.f32")), 1e-6);
        }
        ++ran;
      }
    }
  }
  if (ran == 0) GTEST_SKIP() << "no reference cases in " << DSV3_TESTDATA;
}

// ---- generate ----------------------------------------------------------------------------------------------

// The same tokens from one process and from two ranks, for `args` (a generate command line).
void expect_same_tokens(const std::string& args, const std::string& why) {
  SCOPED_TRACE(why);
  const Result one = dsv3(args);
  ASSERT_EQ(one.status, 0) << one.err;
  const Result two = mpi(2, args + " --ep 2 --stats");
  ASSERT_EQ(two.status, 0) << two.err;
  EXPECT_FALSE(one.out.empty());
  EXPECT_EQ(two.out, one.out);
  EXPECT_NE(two.err.find("ep: sequences per rank:"), std::string::npos) << two.err;
}

TEST(EpCli, GenerateGivesTheTokensOfOneProcess) {
  std::vector<std::string> models = {init_model("gen")};
  if (have_case("v3_mtp")) models.push_back(std::string(DSV3_TESTDATA) + "/v3_mtp");
  for (const std::string& m : models) {
    SCOPED_TRACE(m);
    const std::string greedy = "generate --model " + m + " --ids '0 5 9 33 7' -n 24 --temp 0 --print-ids --ignore-eos";
    expect_same_tokens(greedy, "greedy");
    for (int depth : {1, 3}) expect_same_tokens(greedy + " --spec mtp --draft " + std::to_string(depth), "MTP draft");
    // Several sequences in flight (continuous batching), placed on both ranks: greedy, and seeded sampling
    // so that the sequences differ.
    expect_same_tokens(greedy + " --batch 3", "batch greedy");
    const std::string sampled =
        "generate --model " + m + " --ids '0 5 9 33 7' -n 24 --temp 0.9 --seed 7 --print-ids --ignore-eos --batch 4";
    expect_same_tokens(sampled, "batch sampled");
    expect_same_tokens(sampled + " --spec mtp --draft 2", "batch sampled, MTP");
    const Result two = mpi(2, sampled + " --ep 2 --stats");
    EXPECT_NE(two.err.find("ep: sequences per rank: 2 2"), std::string::npos) << two.err;
  }
}

TEST(EpCli, RedundantExpertsKeepTheTokensAndBalanceTheLoad) {
  const std::string m = init_model("gen");
  const std::string greedy =
      "generate --model " + m + " --ids '0 5 9 33 7' -n 24 --temp 0 --print-ids --ignore-eos --batch 3";
  const Result one = dsv3(greedy);
  ASSERT_EQ(one.status, 0) << one.err;
  const Result two = mpi(2, greedy + " --ep 2 --redundant-experts 4 --redundant-warmup 2");
  ASSERT_EQ(two.status, 0) << two.err;
  EXPECT_EQ(two.out, one.out);
  EXPECT_NE(two.err.find("redundant experts after 2 warm-up calls"), std::string::npos) << two.err;
  // bench reports the routed rows of every rank and their imbalance.
  for (int k : {0, 4}) {
    const Result b = mpi(2, "bench --model " + m + " --prompt 16 --gen 8 --reps 1 --batch 2 --json --ep 2 " +
                                "--redundant-experts " + std::to_string(k) + " --redundant-warmup 2");
    ASSERT_EQ(b.status, 0) << b.err;
    const auto j = nlohmann::json::parse(b.out.substr(b.out.find('{')));
    EXPECT_EQ(j["ep"], 2);
    EXPECT_EQ(j["redundant_experts"], k);
    ASSERT_EQ(j["load_rows_per_rank"].size(), 2u);
    EXPECT_GT(j["load_rows_per_rank"][0].get<int64_t>() + j["load_rows_per_rank"][1].get<int64_t>(), 0);
    EXPECT_GE(j["load_imbalance"].get<double>(), 1.0);
    EXPECT_LE(j["load_imbalance"].get<double>(), 2.0);
  }
}

// ---- two-micro-batch overlap -----------------------------------------------------------------------------------

// --overlap on: every step's rows as two micro-batches whose all-to-alls travel while the other computes.
// The results stay those of one process (the reference cases within 1e-5 of DeepSeek's logits and 1e-6
// of one process; generate's tokens equal), and bench counts two MoE calls per layer and step.
TEST(EpCli, TwoMicroBatchOverlapKeepsTheResults) {
  int ran = 0;
  for (const char* name : {"v3_tiny", "v3_fp8", "v3_mtp"}) {
    if (!have_case(name)) continue;
    const std::string dir = std::string(DSV3_TESTDATA) + "/" + name;
    const auto seqs = lines(dir + "/ids.txt");
    ASSERT_FALSE(seqs.empty()) << name;
    const std::string mref = dir + "/mtp_logits_0.f32";
    const bool mtp = fs::exists(mref);
    const std::string base = tmp_dir() + "/ov_" + name;
    const std::string args = "logits --model " + dir + " --ids '" + seqs[0] + "'";
    const Result one = dsv3(args + " --out " + base + "_1.f32" + (mtp ? " --mtp-out " + base + "_m1.f32" : ""));
    ASSERT_EQ(one.status, 0) << one.err;
    for (int np : {2, 4}) {
      SCOPED_TRACE(std::string(name) + ", " + std::to_string(np) + " ranks, --overlap on");
      const std::string out = base + "_" + std::to_string(np);
      const Result r = mpi(np, args + " --ep " + std::to_string(np) + " --overlap on --out " + out + ".f32" +
                                   (mtp ? " --mtp-out " + out + "_m.f32" : ""));
      ASSERT_EQ(r.status, 0) << r.err;
      const auto got = read_f32(out + ".f32");
      EXPECT_LE(rel_err(got, read_f32(dir + "/logits_0.f32")), 1e-5);
      EXPECT_LE(rel_err(got, read_f32(base + "_1.f32")), 1e-6);
      if (mtp) {
        EXPECT_LE(rel_err(read_f32(out + "_m.f32"), read_f32(mref)), 1e-5);
        EXPECT_LE(rel_err(read_f32(out + "_m.f32"), read_f32(base + "_m1.f32")), 1e-6);
      }
      ++ran;
    }
  }
  if (ran == 0) GTEST_SKIP() << "no reference cases in " << DSV3_TESTDATA;

  const std::string m = init_model("gen");
  const std::string greedy =
      "generate --model " + m + " --ids '0 5 9 33 7' -n 24 --temp 0 --print-ids --ignore-eos --batch 3";
  for (const std::string& g : {greedy, greedy + " --spec mtp --draft 2"}) {
    SCOPED_TRACE(g);
    const Result one = dsv3(g);
    ASSERT_EQ(one.status, 0) << one.err;
    const Result two = mpi(2, g + " --ep 2 --overlap on");
    ASSERT_EQ(two.status, 0) << two.err;
    EXPECT_EQ(two.out, one.out);
  }

  // The model has 2 MoE layers (3 layers, the first dense): 2 executor calls per prefill and decode step
  // with one micro-batch, 4 with two; auto takes two for the 40-row prefill (>= 32 rows on a rank) only.
  const std::string bench = "bench --model " + m + " --prompt 40 --gen 4 --reps 1 --batch 2 --json --ep 2";
  for (const char* ov : {"off", "on", "auto"}) {
    SCOPED_TRACE(std::string("--overlap ") + ov);
    const Result b = mpi(2, bench + " --overlap " + ov);
    ASSERT_EQ(b.status, 0) << b.err;
    const auto j = nlohmann::json::parse(b.out.substr(b.out.find('{')));
    EXPECT_EQ(j["overlap"], ov);
    const bool on = std::string(ov) == "on";
    for (const char* phase : {"prefill_split", "decode_split"}) {
      const auto& p = j[phase];
      ASSERT_EQ(p["ranks"].size(), 2u) << p;
      EXPECT_GT(p["wall_ms"].get<double>(), 0) << p;
      const double calls = (on || (std::string(ov) == "auto" && std::string(phase) == "prefill_split")) ? 4 : 2;
      for (const auto& r : p["ranks"]) {
        EXPECT_EQ(r["moe_calls"].get<double>(), calls) << phase << " " << r;
        EXPECT_GT(r["experts_ms"].get<double>(), 0) << r;
        EXPECT_GE(r["comm_ms"].get<double>(), 0) << r;
        EXPECT_GE(r["sync_ms"].get<double>(), 0) << r;
        EXPECT_LE(r["experts_ms"].get<double>() + r["comm_ms"].get<double>() + r["sync_ms"].get<double>(),
                  p["wall_ms"].get<double>() * 1.01)
            << r;
      }
    }
  }
  const Result solo = dsv3("logits --model " + m + " --ids '1 2' --out " + tmp_dir() + "/solo.f32 --overlap on");
  EXPECT_NE(solo.status, 0);
  EXPECT_NE(solo.err.find("--overlap on: needs --ep 2 or more"), std::string::npos) << solo.err;
}

// ---- info --------------------------------------------------------------------------------------------------

TEST(EpCli, InfoShowsWhatEachRankHolds) {
  if (!have_case("v3_mtp")) GTEST_SKIP() << "no " << DSV3_TESTDATA << "/v3_mtp";
  const std::string m = std::string(DSV3_TESTDATA) + "/v3_mtp";
  const Result r = dsv3("info --model " + m + " --ep 4");
  ASSERT_EQ(r.status, 0) << r.err;
  for (const char* s : {"expert parallel --ep 4", "rank 0   experts       0-3", "rank 3   experts     12-15",
                        "stored sizes", "bytes fp32 per token of a sequence"})
    EXPECT_NE(r.out.find(s), std::string::npos) << s << " not in:\n" << r.out;
  const Result j = dsv3("info --json --model " + m + " --ep 2");
  ASSERT_EQ(j.status, 0) << j.err;
  const auto js = nlohmann::json::parse(j.out);
  const auto& per = js["ep"]["per_rank"];
  ASSERT_EQ(per.size(), 2u);
  EXPECT_EQ(per[0]["replicated_bytes"], per[1]["replicated_bytes"]);
  // Replicated + every rank's experts = the checkpoint's bytes.
  const uint64_t all = per[0]["replicated_bytes"].get<uint64_t>() + per[0]["routed_bytes"].get<uint64_t>() +
                       per[1]["routed_bytes"].get<uint64_t>();
  EXPECT_EQ(all, js["weights"]["bytes"].get<uint64_t>());
  EXPECT_EQ(per[1]["experts"][0], 8);
  EXPECT_EQ(per[1]["experts"][1], 16);
  // A config alone: the sizes the config implies (DeepSeek-V3: FP8 experts over 8 ranks).
  const Result v3 = dsv3("info --model " + std::string(DSV3_TEST_SRC) + "/data/deepseek_v3_config.json --ep 8");
  ASSERT_EQ(v3.status, 0) << v3.err;
  EXPECT_NE(v3.out.find("config-implied sizes"), std::string::npos) << v3.out;
  EXPECT_NE(v3.out.find("rank 7   experts   224-255"), std::string::npos) << v3.out;
}

// ---- refusals and failures -----------------------------------------------------------------------------------

TEST(EpCli, BadEpIsRefusedNamingTheFlag) {
  const std::string m = init_model("gen");
  const std::string run = "logits --model " + m + " --ids '1 2 3' --out " + tmp_dir() + "/bad.f32";
  auto expect_refused = [](const Result& r, const std::string& what, const char* why) {
    EXPECT_NE(r.status, 0) << why;
    EXPECT_NE(r.err.find("--ep"), std::string::npos) << why << ": " << r.err;
    EXPECT_NE(r.err.find(what), std::string::npos) << why << ": " << r.err;
  };
  expect_refused(dsv3(run + " --ep 2"), "must equal the job's 1 rank", "--ep 2 without mpirun");
  expect_refused(mpi(2, run + " --ep 4"), "must equal the job's 2 ranks", "--ep 4 on 2 ranks");
  expect_refused(mpi(2, run), "give --ep 2", "mpirun without --ep");
  expect_refused(dsv3("info --model " + m + " --ep 32"), "more EP ranks than the model's 16 routed experts",
                 "more ranks than experts");
  const std::string few = init_model(
      "few_experts", {{"n_routed_experts", 2}, {"num_experts_per_tok", 1}, {"n_group", 1}, {"topk_group", 1}});
  expect_refused(mpi(4, "logits --model " + few + " --ids '1 2' --out " + tmp_dir() + "/few.f32 --ep 4"),
                 "more EP ranks than the model's 2 routed experts", "4 ranks, 2 experts");
  const std::string dense = init_model("dense", {{"n_routed_experts", 0}});
  expect_refused(mpi(2, "logits --model " + dense + " --ids '1 2' --out " + tmp_dir() + "/dense.f32 --ep 2"),
                 "no routed experts", "dense model");
  const Result red = mpi(2, run + " --ep 2 --redundant-experts 17");
  EXPECT_NE(red.status, 0);
  EXPECT_NE(red.err.find("--redundant-experts 17"), std::string::npos) << red.err;
}

TEST(EpCli, AFailingRankEndsTheJobNamingItself) {
  const std::string m = init_model("gen");
  // MPMD: rank 1 is given a model directory that does not exist; rank 0 a good one. The job must end (no
  // rank left waiting for the other), fail, and say which rank failed.
  const std::string args = " logits --ids '1 2 3' --out " + tmp_dir() + "/fail.f32 --ep 2";
  const Result r = sh(std::string(DSV3_MPIRUN) + " -np 1 " + DSV3_BIN + " " + args + " --model " + m + " : -np 1 " +
                      DSV3_BIN + args + " --model " + tmp_dir() + "/no_such_model");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("[rank 1/2]"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("no_such_model"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(tmp_dir() + "/fail.f32"));

  // Inside a step: rank 1's copy of the model says max_position_embeddings = 4 (same weights), so the
  // 5-token prompt of the sequence placed on rank 1 fails there only, while rank 0 is in the step.
  const std::string short_dir = tmp_dir() + "/short_context";
  fs::create_directories(short_dir);
  nlohmann::json c = nlohmann::json::parse(slurp(m + "/config.json"));
  c["max_position_embeddings"] = 4;
  std::ofstream(short_dir + "/config.json") << c.dump();
  for (const auto& e : fs::directory_iterator(m))
    if (e.path().extension() == ".safetensors" && !fs::exists(short_dir + "/" + e.path().filename().string()))
      fs::create_symlink(e.path(), short_dir + "/" + e.path().filename().string());
  const std::string gen = " generate --ids '0 5 9 33 7' -n 4 --temp 0 --print-ids --batch 2 --ep 2";
  const Result step = sh(std::string(DSV3_MPIRUN) + " -np 1 " + DSV3_BIN + gen + " --model " + m + " : -np 1 " +
                         DSV3_BIN + gen + " --model " + short_dir);
  EXPECT_NE(step.status, 0);
  EXPECT_NE(step.err.find("[rank 1/2] dsv3: rank 1 failed in a distributed step"), std::string::npos) << step.err;
  EXPECT_NE(step.err.find("max_position_embeddings"), std::string::npos) << step.err;
}

TEST(EpCli, LogitsOfQuantizedCopiesAsStored) {
  if (!have_case("v3_mtp")) GTEST_SKIP() << "no " << DSV3_TESTDATA << "/v3_mtp";
  const std::string src = std::string(DSV3_TESTDATA) + "/v3_mtp";
  const std::string ids = lines(src + "/ids.txt")[0];
  for (const char* type : {"int8", "int4"}) {
    SCOPED_TRACE(type);
    const std::string q = tmp_dir() + "/q_" + type;
    if (!fs::exists(q + "/config.json")) {
      const Result r = dsv3("quantize --model " + src + " --out " + q + " --type " + type);
      ASSERT_EQ(r.status, 0) << r.err;
    }
    const std::string args = "logits --model " + q + " --ids '" + ids + "'";
    const Result one = dsv3(args + " --out " + q + "/l1.f32 --mtp-out " + q + "/m1.f32");
    ASSERT_EQ(one.status, 0) << one.err;
    const Result two = mpi(2, args + " --ep 2 --out " + q + "/l2.f32 --mtp-out " + q + "/m2.f32");
    ASSERT_EQ(two.status, 0) << two.err;
    EXPECT_LE(rel_err(read_f32(q + "/l2.f32"), read_f32(q + "/l1.f32")), 1e-6);
    EXPECT_LE(rel_err(read_f32(q + "/m2.f32"), read_f32(q + "/m1.f32")), 1e-6);
  }
}

}  // namespace
