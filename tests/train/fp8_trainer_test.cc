// The precision setting from TRAIN.json and `--precision` through the trainer: parsing and its errors, the
// resolved config, a short fp8 run, resume checks.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/dataset.h"
#include "train/train_config.h"
#include "train/trainer.h"

namespace dsv3::train {
namespace {

namespace fs = std::filesystem;

nlohmann::json config(const nlohmann::json& training_extra) {
  nlohmann::json j = nlohmann::json::parse(R"({
    "model_type": "deepseek_v3", "hidden_size": 128, "intermediate_size": 128, "moe_intermediate_size": 128,
    "num_hidden_layers": 2, "num_nextn_predict_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 2,
    "n_shared_experts": 1, "n_routed_experts": 4, "num_experts_per_tok": 2, "n_group": 1, "topk_group": 1,
    "scoring_func": "sigmoid", "topk_method": "noaux_tc", "norm_topk_prob": true, "first_k_dense_replace": 1,
    "q_lora_rank": 0, "kv_lora_rank": 128, "qk_nope_head_dim": 32, "qk_rope_head_dim": 32, "v_head_dim": 32,
    "max_position_embeddings": 64,
    "training": {"seq_len": 16, "batch_seqs": 4, "steps": 3, "eval_every": 0, "eval_batches": 1}})");
  for (auto it = training_extra.begin(); it != training_extra.end(); ++it) j["training"][it.key()] = it.value();
  return j;
}

TEST(Fp8Config, ParsesPrecisionAndTheFp8Object) {
  const TokenizerFacts tok{.vocab_size = 300, .bos_id = 0, .eos_id = 1};
  EXPECT_EQ(parse_train_config(config({}), tok).train.precision, Precision::FP32);  // the default
  EXPECT_EQ(parse_train_config(config({{"precision", "bf16"}}), tok).train.precision, Precision::BF16);
  const TrainSpec s = parse_train_config(
      config({{"precision", "fp8"},
              {"fp8", {{"scale", "ue8m0"}, {"accum_bits", 23}, {"promote_every", 64}, {"dgrad_quant", "128x128"}}}}),
      tok);
  EXPECT_EQ(s.train.precision, Precision::FP8);
  EXPECT_EQ(s.train.fp8.scale, Fp8ScaleFormat::UE8M0);
  EXPECT_EQ(s.train.fp8.accum_bits, 23);
  EXPECT_EQ(s.train.fp8.promote_every, 64);
  EXPECT_TRUE(s.train.fp8.dgrad_block_quant);
  // The resolved config writes them back (and parses to the same).
  EXPECT_EQ(s.raw["training"]["precision"], "fp8");
  EXPECT_EQ(s.raw["training"]["fp8"]["dgrad_quant"], "128x128");
  EXPECT_EQ(parse_train_config(s.raw, tok).raw, s.raw);
  const LinearPrecision lp = s.train.linear_precision();
  EXPECT_EQ(lp.mode, Precision::FP8);
  EXPECT_EQ(lp.fp8.promote_every, 64);
}

TEST(Fp8Config, RejectsBadValuesWithTheKeyInTheMessage) {
  const TokenizerFacts tok{.vocab_size = 300, .bos_id = 0, .eos_id = 1};
  auto error_of = [&](const nlohmann::json& extra) -> std::string {
    try {
      parse_train_config(config(extra), tok);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(error_of({{"precision", "fp16"}}).find("precision 'fp16'"), std::string::npos);
  EXPECT_NE(error_of({{"fp8", {{"scale", "fp32"}}}}).find("'training.precision' is fp32"), std::string::npos);
  EXPECT_NE(error_of({{"precision", "fp8"}, {"fp8", {{"scale", "e8m0"}}}}).find("training.fp8.scale"),
            std::string::npos);
  EXPECT_NE(error_of({{"precision", "fp8"}, {"fp8", {{"accum_bits", 24}}}}).find("accum_bits"), std::string::npos);
  EXPECT_NE(error_of({{"precision", "fp8"}, {"fp8", {{"promote_every", 96}}}}).find("must divide 128"),
            std::string::npos);
  EXPECT_NE(error_of({{"precision", "fp8"}, {"fp8", {{"dgrad_quant", "1x64"}}}}).find("dgrad_quant"),
            std::string::npos);
  EXPECT_NE(error_of({{"precision", "fp8"}, {"fp8", {{"tiles", 128}}}}).find("unknown key 'tiles'"), std::string::npos);
}

TEST(Fp8Trainer, PrecisionFlagTrainsRecordsAndMustMatchOnResume) {
  const fs::path dir = fs::temp_directory_path() / ("dsv3_fp8_trainer_test_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  // Data: byte-level tokens of a repetitive text.
  std::vector<std::string> docs;
  for (int d = 0; d < 30; ++d)
    docs.push_back("in the beginning god created the heaven and the earth " + std::to_string(d));
  io::TokenizerInfo t;
  t.encode = [](std::string_view s) {
    std::vector<int32_t> v;
    for (unsigned char ch : s) v.push_back(int32_t(ch) + 2);
    return v;
  };
  t.bos = 0, t.eos = 1, t.vocab_size = 258;
  io::prepare_dataset_from_docs(docs, {.val_frac = 0.1, .seed = 1}, t, (dir / "data").string());
  const std::string cfg = (dir / "train.json").string();
  std::ofstream(cfg) << config({}).dump();

  RunOptions o{.config = cfg, .data = (dir / "data").string(), .out = (dir / "run").string()};
  o.progress = false;
  o.precision = "fp8";
  o.stop_at = 2;
  const TrainSummary s = run_training(o);
  EXPECT_EQ(s.step, 2);
  EXPECT_TRUE(std::isfinite(s.train_loss));
  std::ifstream in(dir / "run" / "train_config.json");
  const nlohmann::json saved = nlohmann::json::parse(in);
  EXPECT_EQ(saved["training"]["precision"], "fp8");  // the flag is recorded in the run's config

  RunOptions r{.data = o.data, .out = o.out, .resume = true};
  r.progress = false;
  r.precision = "bf16";
  EXPECT_THROW(run_training(r), Error);  // a different precision on resume
  r.precision = "";
  EXPECT_EQ(run_training(r).step, 3);  // resumes in fp8 (from the saved config)
  r.precision = "fp16";
  EXPECT_THROW(run_training(r), Error);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace dsv3::train
