// TRAIN.json's "training" object: the one field table reads what TrainOptions::to_json() writes, key for key
// (every key of a full hand-written object comes back with its value), and its refusals name the key and
// the file.
#include "train/train_config.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "core/error.h"

namespace dsv3::train {
namespace {

using nlohmann::json;

TrainSpec parse(const json& training) {
  json j = json::parse(R"({
    "model_type": "deepseek_v3", "vocab_size": 300, "hidden_size": 128, "intermediate_size": 128,
    "moe_intermediate_size": 128, "num_hidden_layers": 2, "num_nextn_predict_layers": 1,
    "num_attention_heads": 2, "num_key_value_heads": 2, "n_shared_experts": 1, "n_routed_experts": 4,
    "num_experts_per_tok": 2, "n_group": 1, "topk_group": 1, "scoring_func": "sigmoid", "topk_method": "noaux_tc",
    "norm_topk_prob": true, "first_k_dense_replace": 1, "q_lora_rank": 0, "kv_lora_rank": 128,
    "qk_nope_head_dim": 32, "qk_rope_head_dim": 32, "v_head_dim": 32, "max_position_embeddings": 256})");
  j["training"] = training;
  return parse_train_config(j, std::nullopt, "train_test.json");
}

std::string error_of(const json& training) {
  try {
    parse(training);
  } catch (const Error& e) {
    return e.what();
  }
  return "(accepted)";
}

// Every key, none at its default (balance.mode aside: aux_free is the one mode with a γ to set).
const json kFull = json::parse(R"({
  "seq_len": 32, "batch_seqs": 6, "batch_seqs_start": 2, "batch_ramp_tokens": 1000, "grad_accum": 3,
  "steps": 40, "time_budget_minutes": 2.5, "lr": 0.002, "min_lr": 0.0001, "warmup_steps": 4,
  "constant_steps": 5, "decay_steps": 20, "constant_frac": 0.2, "decay_frac": 0.6, "weight_decay": 0.05,
  "beta1": 0.8, "beta2": 0.99, "eps": 1e-6, "clip": 0.5, "seed": 17, "init_std": 0.02,
  "mtp_lambda": 0.5, "mtp_lambda_final": 0.2, "mtp_lambda_switch_frac": 0.4,
  "eval_every": 7, "eval_batches": 3, "ckpt_every": 9, "log_every": 2,
  "precision": "fp8",
  "fp8": {"scale": "ue8m0", "accum_bits": 20, "promote_every": 32, "dgrad_quant": "128x128"},
  "balance": {"mode": "aux_free", "alpha": 0.001, "gamma": 0.01, "gamma_off_frac": 0.1}
})");

TEST(TrainConfigTable, EveryKeyIsReadAndWrittenBack) {
  const TrainSpec s = parse(kFull);
  const TrainOptions& o = s.train;
  // Read into the members (checked one by one, independently of to_json) ...
  EXPECT_EQ(o.seq_len, 32);
  EXPECT_EQ(o.batch_seqs, 6);
  EXPECT_EQ(o.batch_seqs_start, 2);
  EXPECT_EQ(o.batch_ramp_tokens, 1000);
  EXPECT_EQ(o.grad_accum, 3);
  EXPECT_EQ(o.steps, 40);
  EXPECT_DOUBLE_EQ(o.time_budget_minutes, 2.5);
  EXPECT_DOUBLE_EQ(o.lr.lr, 0.002);
  EXPECT_DOUBLE_EQ(o.lr.min_lr, 0.0001);
  EXPECT_EQ(o.lr.warmup_steps, 4);
  EXPECT_EQ(o.lr.constant_steps, 5);
  EXPECT_EQ(o.lr.decay_steps, 20);
  EXPECT_DOUBLE_EQ(o.lr.constant_frac, 0.2);
  EXPECT_DOUBLE_EQ(o.lr.decay_frac, 0.6);
  EXPECT_DOUBLE_EQ(o.weight_decay, 0.05);
  EXPECT_DOUBLE_EQ(o.beta1, 0.8);
  EXPECT_DOUBLE_EQ(o.beta2, 0.99);
  EXPECT_DOUBLE_EQ(o.eps, 1e-6);
  EXPECT_DOUBLE_EQ(o.clip, 0.5);
  EXPECT_EQ(o.seed, 17u);
  EXPECT_DOUBLE_EQ(o.init_std, 0.02);
  EXPECT_DOUBLE_EQ(o.mtp_lambda.before, 0.5);
  EXPECT_DOUBLE_EQ(o.mtp_lambda.after, 0.2);
  EXPECT_DOUBLE_EQ(o.mtp_lambda.switch_frac, 0.4);
  EXPECT_EQ(o.eval_every, 7);
  EXPECT_EQ(o.eval_batches, 3);
  EXPECT_EQ(o.ckpt_every, 9);
  EXPECT_EQ(o.log_every, 2);
  EXPECT_EQ(o.precision, Precision::FP8);
  EXPECT_EQ(o.fp8.scale, Fp8ScaleFormat::UE8M0);
  EXPECT_EQ(o.fp8.accum_bits, 20);
  EXPECT_EQ(o.fp8.promote_every, 32);
  EXPECT_TRUE(o.fp8.dgrad_block_quant);
  EXPECT_EQ(o.balance, BalanceMode::AuxFree);
  EXPECT_DOUBLE_EQ(o.balance_alpha, 0.001);
  EXPECT_DOUBLE_EQ(o.gamma, 0.01);
  EXPECT_DOUBLE_EQ(o.gamma_off_frac, 0.1);

  // ... and written back as given: the same keys (writing covers every key of the table) and values.
  EXPECT_EQ(o.to_json(), kFull);
  EXPECT_EQ(s.raw["training"], kFull);
  EXPECT_EQ(parse(o.to_json()).train.to_json(), kFull);

  // None of them at its default, so every row's read and write were exercised.
  json dj = TrainOptions{}.to_json();
  TrainOptions fp8;
  fp8.precision = Precision::FP8;  // writes the fp8 object at its defaults
  dj["fp8"] = fp8.to_json()["fp8"];
  for (auto it = kFull.begin(); it != kFull.end(); ++it) {
    if (!it->is_object()) {
      EXPECT_NE(dj.value(it.key(), json()), *it) << it.key();
      continue;
    }
    for (auto jt = it->begin(); jt != it->end(); ++jt) {
      if (it.key() + "." + jt.key() == "balance.mode") continue;
      EXPECT_NE(dj[it.key()].value(jt.key(), json()), *jt) << it.key() << "." << jt.key();
    }
  }
}

TEST(TrainConfigTable, DefaultsAndTheKeysThatDependOnOthers) {
  const json defaults = TrainOptions{}.to_json();
  EXPECT_EQ(parse(json::object()).train.to_json(), defaults);
  EXPECT_EQ(parse(defaults).train.to_json(), defaults);
  // Unset phases (negative) are left out, and so is fp8 without precision fp8.
  for (const char* k : {"constant_steps", "decay_steps", "constant_frac", "decay_frac", "fp8"})
    EXPECT_FALSE(defaults.contains(k)) << k;
  EXPECT_EQ(parse({{"constant_frac", -0.5}}).train.to_json(), defaults);

  // mtp_lambda_final: the paper's 0.1 by default, mtp_lambda when only that is given.
  EXPECT_DOUBLE_EQ(parse(json::object()).train.mtp_lambda.before, 0.3);
  EXPECT_DOUBLE_EQ(parse(json::object()).train.mtp_lambda.after, 0.1);
  EXPECT_DOUBLE_EQ(parse({{"mtp_lambda", 0.4}}).train.mtp_lambda.after, 0.4);
  EXPECT_DOUBLE_EQ(parse({{"mtp_lambda_final", 0.05}}).train.mtp_lambda.before, 0.3);

  // The balance mode sets alpha's and gamma's defaults; written back, they parse to the same.
  const TrainOptions aux = parse({{"balance", {{"mode", "aux_loss"}}}}).train;
  EXPECT_EQ(aux.to_json()["balance"],
            json({{"mode", "aux_loss"}, {"alpha", 0.01}, {"gamma", 0.0}, {"gamma_off_frac", 0.5 / 14.8}}));
  EXPECT_EQ(parse(aux.to_json()).train.to_json(), aux.to_json());
  const TrainOptions none = parse({{"balance", {{"mode", "none"}}}}).train;
  EXPECT_EQ(none.balance, BalanceMode::None);
  EXPECT_EQ(none.balance_alpha, 0);
  EXPECT_EQ(none.gamma, 0);
  EXPECT_EQ(parse(none.to_json()).train.to_json(), none.to_json());

  // Integral floats are integers; null is "not given".
  EXPECT_EQ(parse({{"seq_len", 16.0}}).train.seq_len, 16);
  EXPECT_EQ(parse({{"seq_len", nullptr}}).train.seq_len, 128);
}

TEST(TrainConfigTable, RefusalsNameTheKeyAndTheFile) {
  const std::string L = "train_test.json: training";
  EXPECT_EQ(error_of({{"sequence_length", 3}}), L + ": unknown key 'sequence_length'");
  EXPECT_EQ(error_of({{"precision", "fp8"}, {"fp8", {{"tiles", 1}}}}), L + ": training.fp8: unknown key 'tiles'");
  EXPECT_EQ(error_of({{"balance", {{"beta", 1}}}}), L + ": training.balance: unknown key 'beta'");
  EXPECT_EQ(error_of({{"seq_len", "16"}}), L + ": key 'seq_len' must be an integer, got \"16\"");
  EXPECT_EQ(error_of({{"seq_len", 16.5}}), L + ": key 'seq_len' must be an integer, got 16.5");
  EXPECT_EQ(error_of({{"seed", -1}}), L + ": key 'seed' must be a non-negative integer, got -1");
  EXPECT_EQ(error_of({{"lr", "1e-3"}}), L + ": key 'lr' must be a number, got \"1e-3\"");
  EXPECT_EQ(error_of({{"balance", 1}}), L + ": key 'balance' must be an object, got 1");
  EXPECT_EQ(error_of({{"precision", "fp8"}, {"fp8", {{"scale", 32}}}}),
            L + ": training.fp8: key 'scale' must be a string, got 32");
  EXPECT_EQ(error_of({{"seq_len", 1}}), L + ": 'training.seq_len' must be at least 2, got 1");
  EXPECT_EQ(error_of({{"log_every", 0}}), L + ": 'training.log_every' must be at least 1, got 0");
  EXPECT_EQ(error_of({{"lr", 0}}), L + ": 'training.lr' must be positive, got 0");
  EXPECT_EQ(error_of({{"steps", -1}}), L + ": 'training.steps' must not be negative, got -1");
  EXPECT_EQ(error_of({{"beta2", 1}}), L + ": 'training.beta2' must lie in [0, 1), got 1");
  EXPECT_EQ(error_of({{"decay_frac", 1.5}}), L + ": 'training.decay_frac' must lie in [0, 1], got 1.5");
  EXPECT_EQ(error_of({{"mtp_lambda_switch_frac", 2}}),
            L + ": 'training.mtp_lambda_switch_frac' must lie in [0, 1], got 2");
  EXPECT_EQ(error_of({{"balance", {{"alpha", -1}}}}), L + ": 'training.balance.alpha' must not be negative, got -1");
  EXPECT_EQ(error_of({{"balance", {{"mode", "magic"}}}}),
            L + ": training.balance.mode is 'magic'; supported: aux_free, aux_loss, none");
  EXPECT_EQ(error_of({{"balance", {{"mode", "aux_loss"}, {"gamma", 0.1}}}}),
            L + ": training.balance.gamma applies to mode aux_free only (mode is aux_loss)");
  EXPECT_EQ(error_of({{"balance", {{"mode", "none"}, {"alpha", 0.1}}}}),
            L + ": training.balance.alpha must be 0 with mode none");
  EXPECT_EQ(error_of({{"fp8", {{"scale", "ue8m0"}}}}),
            L + ": 'training.fp8' configures precision fp8, but 'training.precision' is fp32");
  EXPECT_EQ(error_of({{"precision", "fp8"}, {"fp8", {{"scale", "e8m0"}}}}),
            L + ": training.fp8.scale is 'e8m0'; supported: fp32, ue8m0");
  EXPECT_EQ(error_of({{"precision", "fp8"}, {"fp8", {{"dgrad_quant", "1x64"}}}}),
            L + ": training.fp8.dgrad_quant is '1x64'; supported: 1x128, 128x128");
  EXPECT_EQ(error_of({{"precision", "fp8"}, {"fp8", {{"accum_bits", 24}}}}),
            L + ": training.fp8.accum_bits must lie in [1, 23] (23 = float32), got 24");
  EXPECT_EQ(error_of({{"precision", "fp8"}, {"fp8", {{"promote_every", 96}}}}),
            L + ": training.fp8.promote_every must divide 128 (the scale tile along K), got 96");
  EXPECT_EQ(error_of({{"batch_seqs", 4}, {"grad_accum", 5}}),
            L + ": 'training.grad_accum' (5) exceeds 'training.batch_seqs' (4)");
  EXPECT_EQ(error_of({{"batch_seqs_start", 9}}),
            L + ": 'training.batch_seqs_start' must lie in [0, batch_seqs = 8], got 9");
  EXPECT_EQ(error_of({{"lr", 1e-3}, {"min_lr", 2e-3}}),
            L + ": 'training.min_lr' (0.002) exceeds 'training.lr' (0.001)");
  EXPECT_EQ(error_of({{"seq_len", 300}}),
            "train_test.json: 'training.seq_len' (300) exceeds 'max_position_embeddings' (256)");
}

// A deepseek_v32 model (two layers, an indexer in each) for the "dsa" keys.
json v32_model() {
  return json::parse(R"({
      "model_type": "deepseek_v32", "vocab_size": 300, "hidden_size": 128, "intermediate_size": 128,
      "moe_intermediate_size": 128, "num_hidden_layers": 2, "num_nextn_predict_layers": 0,
      "num_attention_heads": 2, "num_key_value_heads": 2, "n_shared_experts": 1, "n_routed_experts": 4,
      "num_experts_per_tok": 2, "n_group": 1, "topk_group": 1, "scoring_func": "sigmoid", "topk_method": "noaux_tc",
      "norm_topk_prob": true, "first_k_dense_replace": 1, "q_lora_rank": 64, "kv_lora_rank": 128,
      "qk_nope_head_dim": 32, "qk_rope_head_dim": 32, "v_head_dim": 32, "max_position_embeddings": 256,
      "index_n_heads": 2, "index_head_dim": 128, "index_topk": 16})");
}

// "training.dsa" (DeepSeek-V3.2's indexer training): read, written back, refused with the key named, and only
// for a model with an indexer.
TEST(TrainConfigTable, DsaStageKeys) {
  auto parse_v32 = [](const json& training) {
    json j = v32_model();
    j["training"] = training;
    return parse_train_config(j, std::nullopt, "v32_test.json");
  };
  auto error_v32 = [&](const json& training) -> std::string {
    try {
      parse_v32(training);
    } catch (const Error& e) {
      return e.what();
    }
    return "(accepted)";
  };
  const TrainSpec s =
      parse_v32(json::parse(R"({"dsa": {"stage": "dense_warmup", "indexer_lr": 0.002, "kl_weight": 0.5}})"));
  EXPECT_EQ(s.train.dsa.stage, DsaStage::DenseWarmup);
  EXPECT_EQ(s.train.indexer_lr, 0.002);
  EXPECT_EQ(s.train.dsa.kl_weight, 0.5);
  EXPECT_EQ(s.raw["training"]["dsa"],
            json::parse(R"({"stage": "dense_warmup", "indexer_lr": 0.002, "kl_weight": 0.5})"));
  EXPECT_EQ(parse_v32(s.raw["training"]).raw, s.raw);
  // Defaults: sparse, the run's lr, weight 1 (written back without indexer_lr).
  const TrainSpec d = parse_v32(json::object());
  EXPECT_EQ(d.train.dsa.stage, DsaStage::Sparse);
  EXPECT_LT(d.train.indexer_lr, 0);
  EXPECT_EQ(d.raw["training"]["dsa"], json::parse(R"({"stage": "sparse", "kl_weight": 1.0})"));
  EXPECT_NE(error_v32(json::parse(R"({"dsa": {"stage": "warmup"}})")).find("training.dsa.stage is 'warmup'"),
            std::string::npos);
  EXPECT_NE(error_v32(json::parse(R"({"dsa": {"kl_wieght": 1}})")).find("training.dsa: unknown key 'kl_wieght'"),
            std::string::npos);
  EXPECT_NE(error_v32(json::parse(R"({"dsa": {"kl_weight": 0}})")).find("'training.dsa.kl_weight' must be positive"),
            std::string::npos);
  EXPECT_NE(error_v32(json::parse(R"({"dsa": {"indexer_lr": 0}})")).find("'training.dsa.indexer_lr' must be positive"),
            std::string::npos);
  EXPECT_NE(error_v32(json::parse(R"({"dsa": 3})")).find("key 'dsa' must be an object"), std::string::npos);
  // A model without an indexer: refused, and nothing written.
  EXPECT_NE(error_of(json::parse(R"({"dsa": {"stage": "sparse"}})")).find("'training.dsa' trains DeepSeek-V3.2"),
            std::string::npos);
  EXPECT_FALSE(parse(json::object()).raw["training"].contains("dsa"));
  // GLM-5.x's shared-indexer layers run for inference only: a training config with one is refused, naming the key.
  json shared = v32_model();
  shared["indexer_types"] = {"full", "shared"};
  shared["training"] = json::object();
  try {
    parse_train_config(shared, std::nullopt, "glm_test.json");
    ADD_FAILURE() << "a shared-indexer model accepted for training";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("glm_test.json: key 'indexer_types' has \"shared\" layers"), std::string::npos)
        << e.what();
  }
  shared["indexer_types"] = {"full", "full"};  // every layer full: V3.2 itself
  EXPECT_NO_THROW(parse_train_config(shared, std::nullopt, "glm_test.json"));
}

}  // namespace
}  // namespace dsv3::train
