// Small models for the runtime tests, written to a temporary directory.
//
// draftable: dsv3 init's random initialisation of a tiny V3 config with one MTP module, changed so that the
// MTP module is a good draft model (speculative decoding then accepts often, exercising the accept path):
// every block's output projections (o_proj, down_proj) are scaled by alpha, so with alpha = 0 the model is
// a bigram model (final hidden = norm(embed(t))); eh_proj = [I | 0] makes the MTP module read the embedding
// of the token it is given, so it predicts the main model's next prediction — exactly for alpha = 0, with
// a context-dependent error growing with alpha.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "io/bpe_trainer.h"
#include "model/config.h"
#include "tools/init.h"

namespace dsv3::testing_models {

// The v3_mtp test case's architecture (q-LoRA, sigmoid routing with groups, YaRN, 1 dense + 2 MoE layers).
inline nlohmann::json tiny_mtp_config(int64_t vocab = 256) {
  return nlohmann::json{{"vocab_size", vocab},
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
                        {"rope_scaling",
                         {{"type", "yarn"},
                          {"factor", 40},
                          {"original_max_position_embeddings", 4096},
                          {"beta_fast", 32},
                          {"beta_slow", 1},
                          {"mscale", 1.0},
                          {"mscale_all_dim", 1.0}}},
                        {"rms_norm_eps", 1e-6},
                        {"max_position_embeddings", 4096},
                        {"tie_word_embeddings", false},
                        {"bos_token_id", 0},
                        {"eos_token_id", 1},
                        {"hidden_act", "silu"},
                        {"initializer_range", 0.02},
                        {"model_type", "deepseek_v3"},
                        {"architectures", {"DeepseekV3ForCausalLM"}},
                        {"torch_dtype", "float32"}};
}

inline std::string temp_dir(const std::string& name) {
  const std::string d = ::testing::TempDir() + "dsv3_runtime_" + std::to_string(::getpid()) + "_" + name;
  std::filesystem::create_directories(d);
  return d;
}

inline bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Writes the draftable model (F32) into dir and returns dir. `config` may override the architecture.
inline std::string write_draftable_model(const std::string& dir, double alpha, uint64_t seed,
                                         nlohmann::json config = tiny_mtp_config()) {
  ModelConfig c = parse_config(config, "test config");
  auto w = init_weights_f32(c, {.seed = seed, .dtype = InitDType::F32});
  const int64_t D = c.hidden_size;
  for (auto& [spec, v] : w) {
    if (ends_with(spec.name, "o_proj.weight") || ends_with(spec.name, "down_proj.weight")) {
      for (float& x : v) x = float(x * alpha);
    } else if (ends_with(spec.name, "eh_proj.weight")) {  // [D, 2D] = [I | 0]
      std::fill(v.begin(), v.end(), 0.0f);
      for (int64_t r = 0; r < D; ++r) v[size_t(r * 2 * D + r)] = 1.0f;
    }
  }
  write_model_dir(dir, c, encode_for_storage(w, InitDType::F32), InitDType::F32);
  return dir;
}

// A plain random model (dsv3 init's initialisation, BF16 storage as `dsv3 init` writes by default).
inline std::string write_random_model(const std::string& dir, uint64_t seed,
                                      nlohmann::json config = tiny_mtp_config()) {
  ModelConfig c = parse_config(config, "test config");
  auto w = init_weights_f32(c, {.seed = seed, .dtype = InitDType::BF16});
  write_model_dir(dir, c, encode_for_storage(w, InitDType::BF16), InitDType::BF16);
  return dir;
}

// A small English corpus for training a test tokenizer.
inline const char* kCorpus =
    "The quick brown fox jumps over the lazy dog. A model reads like the paper's equations, one concept per "
    "file, and every kernel has a scalar reference it is tested against. Hello there! How are you today? I am "
    "fine, thank you, and you? The server answers chat completions and text completions, streaming tokens as "
    "they are produced. Speculative decoding drafts the next tokens with the multi-token prediction module and "
    "verifies them with the main model in one batched forward. Numbers: 1, 2, 3, 10, 42, 100, 2024. Questions "
    "and answers, prompts and replies, stop strings and seeds. The cat sat on the mat; the dog sat on the log. "
    "She sells sea shells by the sea shore. To be or not to be, that is the question. All work and no play "
    "makes Jack a dull boy. Once upon a time there was a little model that wanted to talk.";

// The draftable model with a byte-level BPE tokenizer trained on kCorpus (tokenizer.json and
// tokenizer_config.json with DeepSeek-V3's chat template); bos = 0, eos = 1 as the trainer lays them out.
inline std::string write_chat_model(const std::string& dir, double alpha, uint64_t seed, int64_t vocab = 384) {
  std::vector<std::string_view> texts;
  for (int i = 0; i < 4; ++i) texts.push_back(kCorpus);
  io::BpeTrainerResult tok = io::train_bpe(texts, {.vocab_size = vocab, .min_frequency = 2, .threads = 1});
  auto c = tiny_mtp_config(tok.vocab_size);
  write_draftable_model(dir, alpha, seed, c);
  io::write_trained_tokenizer(tok, dir + "/tokenizer.json");
  return dir;
}

inline bool have_testdata(const std::string& name) {
  return std::filesystem::exists(std::string(DSV3_TESTDATA) + "/" + name + "/config.json");
}

}  // namespace dsv3::testing_models
