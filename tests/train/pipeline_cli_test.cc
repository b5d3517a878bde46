// The training pipeline through the `dsv3` binary: tokenizer train → data prepare → train → resume → plot,
// and clear one-line errors for bad inputs.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

namespace {

namespace fs = std::filesystem;

struct Result {
  int status;
  std::string out;  // stdout + stderr
};

Result sh(const std::string& args) {
  const std::string cmd = std::string("OMP_WAIT_POLICY=passive ") + DSV3_BIN + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int st = pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

std::string dir() {
  static const std::string d = [] {
    const fs::path p = fs::temp_directory_path() / ("dsv3_pipeline_cli_" + std::to_string(::getpid()));
    fs::remove_all(p);
    fs::create_directories(p);
    return p.string();
  }();
  return d;
}

const char* kVerses[] = {
    "In the beginning God created the heaven and the earth.",
    "And the earth was without form, and void; and darkness was upon the face of the deep.",
    "And God said, Let there be light: and there was light.",
    "And God saw the light, that it was good: and God divided the light from the darkness.",
    "And the LORD spake unto Moses, saying, Speak unto the children of Israel.",
};

TEST(PipelineCli, TokenizerDataTrainResumePlot) {
  const std::string d = dir();
  {
    std::ofstream f(d + "/corpus.txt");
    for (int ch = 0; ch < 40; ++ch) {
      f << "Genesis " << ch + 1 << "\n";
      for (int v = 0; v < 6; ++v) f << kVerses[(ch * 7 + v * 3) % 5] << "\n";
      f << "\n";
    }
  }
  Result r = sh("tokenizer train --input " + d + "/corpus.txt --vocab-size 320 --out " + d + "/tok/tokenizer.json");
  ASSERT_EQ(r.status, 0) << r.out;
  r = sh("data prepare --input " + d + "/corpus.txt --tokenizer " + d + "/tok/tokenizer.json --out " + d +
         "/data --val-frac 0.1 --fim-rate 0.2 --seed 3");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("36 train documents"), std::string::npos) << r.out;
  EXPECT_TRUE(fs::exists(d + "/data/tokenizer.json"));
  EXPECT_TRUE(fs::exists(d + "/data/tokenizer_config.json"));
  r = sh("data info --data " + d + "/data");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("\"fim_form\": \"PSM\""), std::string::npos) << r.out;

  auto cfg = nlohmann::json::parse(R"({
    "model_type": "deepseek_v3", "hidden_size": 32, "intermediate_size": 64, "moe_intermediate_size": 16,
    "num_hidden_layers": 2, "num_nextn_predict_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 2,
    "n_shared_experts": 1, "n_routed_experts": 8, "num_experts_per_tok": 2, "n_group": 2, "topk_group": 1,
    "routed_scaling_factor": 2.5, "first_k_dense_replace": 1, "q_lora_rank": 16, "kv_lora_rank": 16,
    "qk_nope_head_dim": 8, "qk_rope_head_dim": 4, "v_head_dim": 8, "max_position_embeddings": 64,
    "training": {"seq_len": 32, "batch_seqs": 2, "steps": 6, "lr": 1e-2, "min_lr": 1e-3, "warmup_steps": 1,
                 "eval_every": 2, "eval_batches": 1}})");
  std::ofstream(d + "/train.json") << cfg.dump(2);
  r = sh("train --config " + d + "/train.json --data " + d + "/data --out " + d + "/run --stop-at 3");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("step 3/6"), std::string::npos) << r.out;
  r = sh("train --data " + d + "/data --out " + d + "/run --resume");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("step 6/6"), std::string::npos) << r.out;
  for (const char* f : {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                        "optimizer.safetensors", "trainer_state.json", "train_config.json"})
    EXPECT_TRUE(fs::exists(d + "/run/checkpoint/" + f)) << f;
  r = sh("plot --run " + d + "/run --out " + d + "/run.png");
  if (r.out.find("gnuplot not found") == std::string::npos) {
    ASSERT_EQ(r.status, 0) << r.out;
    EXPECT_GT(fs::file_size(d + "/run.png"), 1000u);
  }
  // The checkpoint generates text through the inference path.
  r = sh("generate --model " + d + "/run/checkpoint --prompt 'In the' -n 5 --temp 0 --seed 1");
  EXPECT_EQ(r.status, 0) << r.out;
}

TEST(PipelineCli, BadInputsGiveOneLineErrors) {
  const std::string d = dir();
  Result r = sh("train --config " + d + "/nope.json --data " + d + "/nodata --out " + d + "/x");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("dsv3 train: error:"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("manifest.json"), std::string::npos) << r.out;
  r = sh("data prepare --input " + d + "/missing.txt --tokenizer x --out " + d + "/y");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.out.find("missing.txt"), std::string::npos) << r.out;
  r = sh("plot --run " + d + "/norun --out " + d + "/z.png");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("metrics.jsonl"), std::string::npos) << r.out;
}

}  // namespace
