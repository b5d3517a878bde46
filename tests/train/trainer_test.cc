// The trainer end to end on a tiny DeepSeek-V3 (MLA with q/kv LoRA, 1 dense + 1 MoE layer of 8 routed +
// 1 shared experts in 2 groups, MTP depth 1) over a byte-level corpus: losses fall, checkpoints are HF model
// directories, and --resume reproduces the uninterrupted run bit for bit. Bad inputs fail with clear errors.
#include "train/trainer.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "io/dataset.h"
#include "io/safetensors.h"
#include "model/config.h"
#include "synthetic_corpus.h"
#include "train/param_io.h"
#include "train/train_config.h"

namespace dsv3::train {
namespace {

namespace fs = std::filesystem;

std::string tmp(const std::string& name) {
  const fs::path p = fs::temp_directory_path() / ("dsv3_trainer_test_" + std::to_string(::getpid())) / name;
  fs::remove_all(p);
  fs::create_directories(p.parent_path());
  return p.string();
}

nlohmann::json tiny_train_json() {
  return nlohmann::json::parse(R"({
    "model_type": "deepseek_v3", "hidden_size": 32, "intermediate_size": 64, "moe_intermediate_size": 16,
    "num_hidden_layers": 2, "num_nextn_predict_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 2,
    "n_shared_experts": 1, "n_routed_experts": 8, "num_experts_per_tok": 2, "n_group": 2, "topk_group": 1,
    "routed_scaling_factor": 2.5, "scoring_func": "sigmoid", "topk_method": "noaux_tc", "norm_topk_prob": true,
    "first_k_dense_replace": 1, "moe_layer_freq": 1, "q_lora_rank": 16, "kv_lora_rank": 16,
    "qk_nope_head_dim": 8, "qk_rope_head_dim": 4, "v_head_dim": 8, "rope_theta": 10000.0,
    "rms_norm_eps": 1e-6, "max_position_embeddings": 64, "tie_word_embeddings": false, "hidden_act": "silu",
    "training": {
      "seq_len": 24, "batch_seqs": 4, "batch_seqs_start": 2, "batch_ramp_tokens": 150, "grad_accum": 2,
      "steps": 8, "lr": 1e-2, "min_lr": 1e-3, "warmup_steps": 2, "constant_frac": 0.25, "decay_frac": 0.5,
      "seed": 5, "eval_every": 3, "eval_batches": 2, "ckpt_every": 3, "mtp_lambda_switch_frac": 0.5,
      "balance": {"mode": "aux_free", "alpha": 1e-4, "gamma": 1e-2, "gamma_off_frac": 0.25}
    }})");
}

// A byte-level corpus of English-like sentences, prepared once per test binary.
const std::string& dataset() {
  static const std::string dir = testing::prepare_synthetic_corpus(tmp("data"), 15, 40, 12, 1);
  return dir;
}

std::string write_config(const std::string& name, const nlohmann::json& j) {
  const std::string p = tmp(name);
  std::ofstream(p) << j.dump(2);
  return p;
}

std::vector<nlohmann::json> read_metrics(const std::string& run) {
  std::vector<nlohmann::json> v;
  std::ifstream in(run + "/metrics.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    j.erase("tokens_per_s");  // wall-clock fields differ between runs
    j.erase("elapsed_s");
    v.push_back(j);
  }
  return v;
}

std::string read_bytes(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(Trainer, ResumeReproducesTheUninterruptedRunBitForBit) {
  const std::string cfg = write_config("tiny.json", tiny_train_json());
  const std::string straight = tmp("straight"), split = tmp("split");
  TrainSummary a = run_training({.config = cfg, .data = dataset(), .out = straight, .progress = false});
  EXPECT_TRUE(a.finished);
  EXPECT_EQ(a.step, 8);
  TrainSummary b1 = run_training({.config = cfg, .data = dataset(), .out = split, .stop_at = 4, .progress = false});
  EXPECT_FALSE(b1.finished);
  EXPECT_EQ(b1.step, 4);
  // Simulate a crash after the step-4 checkpoint: the interrupted run had logged a little further.
  std::ofstream(split + "/metrics.jsonl", std::ios::app) << R"({"type":"train","step":5,"loss":123})"
                                                         << "\n";
  TrainSummary b2 = run_training({.data = dataset(), .out = split, .resume = true, .progress = false});
  EXPECT_TRUE(b2.finished);

  const auto ma = read_metrics(straight), mb = read_metrics(split);
  ASSERT_EQ(ma.size(), mb.size());
  int train_lines = 0, val_lines = 0;
  for (size_t i = 0; i < ma.size(); ++i) {
    EXPECT_EQ(ma[i].dump(), mb[i].dump()) << "line " << i;  // doubles print round-trip exact
    train_lines += ma[i]["type"] == "train";
    val_lines += ma[i]["type"] == "val";
  }
  EXPECT_EQ(train_lines, 8);
  EXPECT_EQ(val_lines, 3);  // steps 3, 6, 8
  EXPECT_EQ(read_bytes(straight + "/checkpoint/model.safetensors"),
            read_bytes(split + "/checkpoint/model.safetensors"));
  EXPECT_EQ(read_bytes(straight + "/checkpoint/optimizer.safetensors"),
            read_bytes(split + "/checkpoint/optimizer.safetensors"));

  // What the run did: the batch ramp, warmup, the MTP λ switch, γ switched off, biases moved, loss fell.
  EXPECT_EQ(ma[0]["batch_seqs"], 2);
  const auto& last_train = ma[ma.size() - 2];  // the last line is step 8's validation
  ASSERT_EQ(last_train["type"], "train");
  EXPECT_EQ(last_train["batch_seqs"], 4);
  EXPECT_DOUBLE_EQ(ma[0]["lr"].get<double>(), 5e-3);
  EXPECT_DOUBLE_EQ(ma[0]["mtp_lambda"].get<double>(), 0.3);
  EXPECT_GT(ma[0]["mtp_ce"].get<double>(), 0.0);
  EXPECT_EQ(ma[0]["moe_layers"], nlohmann::json::array({1, 2}));  // main MoE layer + the MTP layer
  EXPECT_DOUBLE_EQ(last_train["mtp_lambda"].get<double>(), 0.1);
  EXPECT_DOUBLE_EQ(last_train["gamma"].get<double>(), 0.0);
  EXPECT_LT(last_train["main_ce"].get<double>(), ma[0]["main_ce"].get<double>());
  int64_t routed = 0;
  for (int64_t l : ma[0]["load"][0].get<std::vector<int64_t>>()) routed += l;
  EXPECT_EQ(routed, 2 * 24 * 2);  // B · T · top_k

  // The checkpoint is an HF model directory the inference path can load.
  const ModelConfig c = load_config(straight + "/checkpoint");
  EXPECT_EQ(c.vocab_size, 264);
  EXPECT_EQ(c.eos_token_ids, std::vector<int64_t>{1});
  const Params p = load_params(straight + "/checkpoint");
  const float* bias = p.data("model.layers.1.mlp.gate.e_score_correction_bias");
  bool moved = false;
  for (int e = 0; e < 8; ++e) moved |= bias[e] != 0.0f;
  EXPECT_TRUE(moved);
}

void expect_error(const RunOptions& o, const std::string& needle) {
  try {
    run_training(o);
    ADD_FAILURE() << "no error; expected one mentioning '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(Trainer, BadInputsFailClearly) {
  const std::string run = tmp("bad_run");
  expect_error({.config = tmp("missing.json"), .data = dataset(), .out = run}, "cannot open");
  const std::string bad_json = tmp("bad.json");
  std::ofstream(bad_json) << "{\"model_type\": ";
  expect_error({.config = bad_json, .data = dataset(), .out = run}, "not valid JSON");
  expect_error({.config = write_config("a.json", tiny_train_json()), .data = tmp("nodata"), .out = run},
               "manifest.json");

  auto j = tiny_train_json();
  j["training"]["sequence_length"] = 3;
  expect_error({.config = write_config("b.json", j), .data = dataset(), .out = run}, "unknown key 'sequence_length'");
  j = tiny_train_json();
  j["training"]["seq_len"] = 65;
  expect_error({.config = write_config("c.json", j), .data = dataset(), .out = run}, "max_position_embeddings");
  j = tiny_train_json();
  j["vocab_size"] = 100;
  expect_error({.config = write_config("d.json", j), .data = dataset(), .out = run}, "tokenizer's vocabulary");
  j = tiny_train_json();
  j["training"]["balance"]["mode"] = "magic";
  expect_error({.config = write_config("e.json", j), .data = dataset(), .out = run}, "aux_free, aux_loss, none");
  j = tiny_train_json();
  j["training"]["steps"] = 0;
  expect_error({.config = write_config("f.json", j), .data = dataset(), .out = run}, "time budget");
  j = tiny_train_json();
  j["training"]["seq_len"] = 60;
  j["training"]["grad_accum"] = 9;
  expect_error({.config = write_config("g.json", j), .data = dataset(), .out = run}, "grad_accum");
  j = tiny_train_json();
  j["num_experts_per_tok"] = 9;
  expect_error({.config = write_config("h.json", j), .data = dataset(), .out = run}, "num_experts_per_tok");
  expect_error({.data = dataset(), .out = tmp("never_ran"), .resume = true}, "no checkpoint");
}

TEST(Trainer, ExistingRunIsNotOverwritten) {
  const std::string cfg = write_config("short.json", [] {
    auto j = tiny_train_json();
    j["training"]["steps"] = 1;
    return j;
  }());
  const std::string run = tmp("once");
  run_training({.config = cfg, .data = dataset(), .out = run, .progress = false});
  expect_error({.config = cfg, .data = dataset(), .out = run}, "already holds a run");
  // Resuming a finished run is a no-op that keeps the checkpoint.
  TrainSummary s = run_training({.data = dataset(), .out = run, .resume = true, .progress = false});
  EXPECT_TRUE(s.finished);
  EXPECT_TRUE(fs::exists(run + "/checkpoint/config.json"));
}

// Killed before the first checkpoint (issue 19): metrics.jsonl and a partial checkpoint.tmp, no checkpoint.
// --resume with --config starts it from scratch, and so does a plain start; the stale metrics are dropped.
TEST(Trainer, KilledBeforeTheFirstCheckpointStartsAgain) {
  const std::string cfg = write_config("short2.json", [] {
    auto j = tiny_train_json();
    j["training"]["steps"] = 1;
    return j;
  }());
  for (bool resume : {true, false}) {
    SCOPED_TRACE(resume ? "--resume" : "plain start");
    const std::string run = tmp(resume ? "killed_resume" : "killed_restart");
    fs::create_directories(run + "/checkpoint.tmp");
    std::ofstream(run + "/checkpoint.tmp/model.safetensors") << "torn";
    std::ofstream(run + "/metrics.jsonl") << R"({"step": 1, "loss": 99.5, "stale": true})"
                                          << "\n";
    const TrainSummary s =
        run_training({.config = cfg, .data = dataset(), .out = run, .resume = resume, .progress = false});
    EXPECT_TRUE(s.finished);
    EXPECT_TRUE(fs::exists(run + "/checkpoint/trainer_state.json"));
    std::ifstream m(run + "/metrics.jsonl");
    std::stringstream ss;
    ss << m.rdbuf();
    EXPECT_EQ(ss.str().find("stale"), std::string::npos) << ss.str();
    EXPECT_NE(ss.str().find("\"step\":1"), std::string::npos) << ss.str();
  }
  // Without --config there is nothing to start from: the error says what to give.
  expect_error({.data = dataset(), .out = tmp("killed_noconfig"), .resume = true}, "give --config");
}

}  // namespace
}  // namespace dsv3::train
