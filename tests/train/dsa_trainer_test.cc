// DeepSeek-V3.2's indexer-training stages through the trainer (train/dsa_stage.h, train/init_from.h): a tiny
// dense V3 run, its checkpoint taken into a V3.2 model with fresh indexers (--init-from), a dense warm-up that
// changes nothing but the indexers (every other tensor bit for bit the dense checkpoint's), then sparse training
// that trains everything; the indexer metrics are logged; bad inputs fail naming the culprit.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "io/bpe_trainer.h"
#include "io/dataset.h"
#include "synthetic_corpus.h"
#include "train/param_io.h"
#include "train/trainer.h"

namespace dsv3::train {
namespace {

namespace fs = std::filesystem;

std::string tmp(const std::string& name) {
  const fs::path p = fs::temp_directory_path() / ("dsv3_dsa_trainer_test_" + std::to_string(::getpid())) / name;
  fs::remove_all(p);
  fs::create_directories(p.parent_path());
  return p.string();
}

nlohmann::json model_json(bool v32) {
  nlohmann::json j = nlohmann::json::parse(R"({
    "model_type": "deepseek_v3", "hidden_size": 32, "intermediate_size": 64, "moe_intermediate_size": 16,
    "num_hidden_layers": 2, "num_nextn_predict_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 2,
    "n_shared_experts": 1, "n_routed_experts": 4, "num_experts_per_tok": 2, "n_group": 1, "topk_group": 1,
    "routed_scaling_factor": 2.5, "scoring_func": "sigmoid", "topk_method": "noaux_tc", "norm_topk_prob": true,
    "first_k_dense_replace": 1, "moe_layer_freq": 1, "q_lora_rank": 16, "kv_lora_rank": 16,
    "qk_nope_head_dim": 8, "qk_rope_head_dim": 4, "v_head_dim": 8, "rope_theta": 10000.0,
    "rms_norm_eps": 1e-6, "max_position_embeddings": 64, "tie_word_embeddings": false})");
  if (v32) {
    j["model_type"] = "deepseek_v32";
    j["index_n_heads"] = 2;
    j["index_head_dim"] = 128;
    j["index_topk"] = 6;
  }
  j["training"] = nlohmann::json::parse(R"({"seq_len": 20, "batch_seqs": 4, "steps": 6, "lr": 1e-2,
    "min_lr": 1e-3, "seed": 3, "eval_every": 0, "eval_batches": 1})");
  return j;
}

const std::string& dataset() {
  static const std::string dir = testing::prepare_synthetic_corpus(tmp("data"), 10, 40, 12, 7);
  return dir;
}

std::string write_config(const std::string& name, const nlohmann::json& j) {
  const std::string p = tmp(name);
  std::ofstream(p) << j.dump(2);
  return p;
}

std::vector<nlohmann::json> train_lines(const std::string& run) {
  std::vector<nlohmann::json> v;
  std::ifstream in(run + "/metrics.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    if (j["type"] == "train") v.push_back(j);
  }
  return v;
}

TEST(DsaTrainer, DenseWarmupTrainsOnlyTheIndexersThenSparseTrainsEverything) {
  const std::string dense = tmp("dense");
  run_training(
      {.config = write_config("dense.json", model_json(false)), .data = dataset(), .out = dense, .progress = false});
  nlohmann::json warm = model_json(true);
  warm["training"]["steps"] = 8;
  warm["training"]["dsa"] = {{"stage", "dense_warmup"}, {"indexer_lr", 3e-3}};
  const std::string wrun = tmp("warmup");
  run_training({.config = write_config("warm.json", warm),
                .data = dataset(),
                .out = wrun,
                .progress = false,
                .init_from = dense + "/checkpoint"});
  const Params d = load_params(dense + "/checkpoint"), w = load_params(wrun + "/checkpoint");
  int indexer = 0;
  for (size_t i = 0; i < w.size(); ++i) {
    const WeightSpec& s = w.specs()[i];
    if (s.indexer) {
      ++indexer;
      continue;
    }
    EXPECT_EQ(w.value(i), d.value(d.index(s.name))) << s.name << " moved during the dense warm-up";
  }
  EXPECT_EQ(indexer, 3 * 5);  // two layers and the MTP module, five tensors each
  const std::vector<nlohmann::json> wm = train_lines(wrun);
  ASSERT_EQ(wm.size(), 8u);
  EXPECT_EQ(wm[0]["indexer_layers"], nlohmann::json::parse("[0, 1, 2]"));
  double kl0 = 0, kl1 = 0;
  for (double v : wm.front()["indexer_kl"]) kl0 += v;
  for (double v : wm.back()["indexer_kl"]) kl1 += v;
  EXPECT_LT(kl1, kl0) << "the warm-up's KL did not fall";
  EXPECT_GT(wm[0]["index_recall_mean"].get<double>(), 0.0);
  EXPECT_EQ(wm.back()["loss"].get<double>() - wm.back()["main_ce"].get<double>() > 0, true);

  nlohmann::json sparse = model_json(true);
  sparse["training"]["steps"] = 3;
  sparse["training"]["dsa"] = {{"stage", "sparse"}};
  const std::string srun = tmp("sparse");
  run_training({.config = write_config("sparse.json", sparse),
                .data = dataset(),
                .out = srun,
                .progress = false,
                .init_from = wrun + "/checkpoint"});
  const Params sp = load_params(srun + "/checkpoint");
  int moved = 0;
  for (size_t i = 0; i < sp.size(); ++i)
    moved += sp.specs()[i].role != WeightRole::Bias && !sp.specs()[i].indexer && sp.value(i) != w.value(i);
  EXPECT_GT(moved, 20);
  EXPECT_TRUE(train_lines(srun).back().contains("index_recall"));
}

TEST(DsaTrainer, BadInputsNameTheCulprit) {
  const std::string dense = tmp("dense_small");
  nlohmann::json j = model_json(false);
  j["training"]["steps"] = 1;
  run_training({.config = write_config("d1.json", j), .data = dataset(), .out = dense, .progress = false});
  // A checkpoint whose tensors do not fit the run's model.
  nlohmann::json other = model_json(true);
  other["kv_lora_rank"] = 8;
  try {
    run_training({.config = write_config("o.json", other),
                  .data = dataset(),
                  .out = tmp("o"),
                  .progress = false,
                  .init_from = dense + "/checkpoint"});
    ADD_FAILURE() << "accepted a checkpoint of another shape";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("kv_a_proj_with_mqa.weight has shape"), std::string::npos) << e.what();
  }
  try {
    run_training({.config = write_config("p.json", model_json(true)),
                  .data = dataset(),
                  .out = tmp("p"),
                  .progress = false,
                  .pp = 2});
    ADD_FAILURE() << "accepted --pp for the indexer";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--pp 2: DeepSeek-V3.2's indexer training"), std::string::npos) << e.what();
  }
}

TEST(DsaTrainer, InitFromAModelWithAnotherTokenizerIsRefused) {
  const std::string dense = tmp("dense_tok");
  nlohmann::json j = model_json(false);
  j["training"]["steps"] = 1;
  run_training({.config = write_config("t1.json", j), .data = dataset(), .out = dense, .progress = false});
  // The model directory carries a tokenizer.json; a dataset tokenized with another one is refused, one made
  // with the same file trains.
  auto bpe = [](std::string_view text) {
    return io::train_bpe({text}, {.vocab_size = 280, .min_frequency = 1, .threads = 1}).tokenizer_json;
  };
  const std::string mine = dense + "/checkpoint/tokenizer.json";
  std::ofstream(mine) << bpe("in the beginning god created the heaven and the earth");
  const std::string theirs = tmp("other_tokenizer.json");
  std::ofstream(theirs) << bpe("and moses said unto the lord, the light was good");
  auto data_with = [](const std::string& name, const std::string& tokenizer) {
    io::TokenizerInfo t;
    t.encode = [](std::string_view s) {
      std::vector<int32_t> v;
      for (unsigned char ch : s) v.push_back(int32_t(ch) + 8);
      return v;
    };
    t.bos = 0, t.eos = 1, t.vocab_size = 264, t.file = tokenizer;
    const std::string dir = tmp(name);
    io::prepare_dataset_from_docs({"in the beginning god created", "the heaven and the earth", "and the earth was"},
                                  {.val_frac = 0.34, .seed = 1}, t, dir);
    return dir;
  };
  const std::string other = data_with("data_other_tok", theirs);
  try {
    run_training({.config = write_config("t2.json", j),
                  .data = other,
                  .out = tmp("t2"),
                  .progress = false,
                  .init_from = dense + "/checkpoint"});
    ADD_FAILURE() << "accepted a dataset made with another tokenizer";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--init-from " + dense + "/checkpoint: its tokenizer.json"), std::string::npos)
        << e.what();
  }
  const std::string same = data_with("data_same_tok", mine);
  EXPECT_NO_THROW(run_training({.config = write_config("t3.json", j),
                                .data = same,
                                .out = tmp("t3"),
                                .progress = false,
                                .init_from = dense + "/checkpoint"}));
}

}  // namespace
}  // namespace dsv3::train
