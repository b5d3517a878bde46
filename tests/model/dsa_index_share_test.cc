// GLM-5.x's IndexShare in a deepseek_v32 config (`indexer_types`): a "shared" layer has no indexer and no
// index-key cache; it attends to the keys the full layer above it selected for the same rows. Built from
// ../shared/testdata/v32_tiny (DeepSeek's V3.2 reference case) with layer 1 made shared and its indexer
// tensors removed: the full layers still match DeepSeek's own selections (layer 0 exactly as in the
// reference, since nothing above it changed), the shared layer's picks are layer 0's, the shared layer really
// drops keys (its output differs from dense attention), and prefill-then-decode, batched sequences and two
// micro-batches agree with the one-pass prefill (the cache slots and the per-batch share store).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/safetensors.h"
#include "model/transformer.h"
#include "testdata.h"

namespace dsv3 {
namespace {

namespace fs = std::filesystem;
using testing::read_i32;
using testing::read_ids;
using testing::rel_err;

std::string src() { return testing::testdata_dir() + "/v32_tiny"; }

nlohmann::json src_config() {
  std::ifstream f(src() + "/config.json");
  return nlohmann::json::parse(f);
}

// v32_tiny with `types` as indexer_types; the indexer tensors of its shared layers dropped unless keep_all.
std::string make_copy(const std::string& name, const std::vector<std::string>& types, bool keep_all = false) {
  const std::string dir = ::testing::TempDir() + "/" + name;
  fs::create_directories(dir);
  nlohmann::json cfg = src_config();
  cfg["indexer_types"] = types;
  io::write_file_atomic(dir + "/config.json", cfg.dump(2));
  io::Checkpoint ck = io::Checkpoint::open(src());
  std::vector<io::TensorToWrite> out;
  for (const std::string& n : ck.names()) {
    bool drop = false;
    for (size_t l = 0; l < types.size(); ++l)
      if (types[l] == "shared" && n.rfind("model.layers." + std::to_string(l) + ".self_attn.indexer.", 0) == 0)
        drop = !keep_all;
    if (drop) continue;
    const TensorView& t = ck.get(n);
    out.push_back({.name = n, .dtype = t.dtype, .shape = t.shape, .data = t.data});
  }
  io::write_checkpoint_tensors(dir, out);
  return dir;
}

std::string config_error(const nlohmann::json& types) {
  nlohmann::json cfg = src_config();
  cfg["indexer_types"] = types;
  try {
    parse_config(cfg, "cfg.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(IndexShare, ConfigReadWrittenAndRefused) {
  DSV3_REQUIRE_CASE("v32_tiny");
  nlohmann::json cfg = src_config();
  cfg["indexer_types"] = {"full", "shared", "full"};
  const ModelConfig c = parse_config(cfg);
  EXPECT_TRUE(c.layer_has_indexer(0));
  EXPECT_FALSE(c.layer_has_indexer(1));
  EXPECT_TRUE(c.layer_shares_index(1));
  EXPECT_TRUE(c.layer_has_indexer(2));
  EXPECT_EQ(c.index_cache_layers(), 2);
  EXPECT_EQ(c.index_slot(0), 0);
  EXPECT_EQ(c.index_slot(2), 1);
  EXPECT_THROW(c.index_slot(1), Error);
  EXPECT_EQ(c.raw_json()["indexer_types"], cfg["indexer_types"]);
  EXPECT_EQ(parse_config(c.raw_json()), c);
  // Every layer full is DeepSeek's V3.2: the same config as no key.
  cfg["indexer_types"] = {"full", "full", "full"};
  EXPECT_EQ(parse_config(cfg), parse_config(src_config()));
  EXPECT_FALSE(parse_config(cfg).raw_json().contains("indexer_types"));

  EXPECT_NE(config_error({"full", "shared"}).find("'indexer_types' must be an array of num_hidden_layers (3)"),
            std::string::npos);
  EXPECT_NE(config_error("full").find("'indexer_types'"), std::string::npos);
  EXPECT_NE(config_error({"full", "sparse", "full"}).find("entry 1 is 'sparse'"), std::string::npos);
  EXPECT_NE(config_error({"shared", "full", "full"}).find("entry 0 is \"shared\""), std::string::npos);
  EXPECT_NE(config_error({"full", 3, "full"}).find("'indexer_types'"), std::string::npos);
  nlohmann::json v3 = src_config();
  v3["model_type"] = "deepseek_v3";
  v3["architectures"] = {"DeepseekV3ForCausalLM"};
  for (const char* k : {"index_n_heads", "index_head_dim", "index_topk"}) v3.erase(k);
  v3["indexer_types"] = {"full", "shared", "full"};
  try {
    parse_config(v3, "v3.json");
    ADD_FAILURE() << "indexer_types accepted for deepseek_v3";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'indexer_types' is for model_type deepseek_v32"), std::string::npos)
        << e.what();
  }
}

TEST(IndexShare, SharedLayerHasNoIndexerTensorsNorIndexCache) {
  DSV3_REQUIRE_CASE("v32_tiny");
  const std::string dir = make_copy("share_tensors", {"full", "shared", "full"});
  auto model = Model::load(dir);
  EXPECT_FALSE(model->weights().layers[1].attn.has_indexer);
  EXPECT_TRUE(model->weights().layers[0].attn.has_indexer);
  EXPECT_TRUE(model->weights().layers[2].attn.has_indexer);
  KvCache shared = model->new_cache(16);
  auto full = Model::load(src());
  KvCache whole = full->new_cache(16);
  EXPECT_EQ(shared.index_layers(), 2);
  EXPECT_EQ(whole.index_layers(), 3);
  shared.ensure(16);
  whole.ensure(16);
  // Latent rows are the same; the index-key cache holds 2 of 3 layers' keys.
  EXPECT_EQ(whole.bytes() - shared.bytes(), size_t(16 * (128 + 4)));
}

TEST(IndexShare, SharedLayerAttendsToTheFullLayersSelection) {
  DSV3_REQUIRE_CASE("v32_tiny");
  const std::string dir = make_copy("share_pick", {"full", "shared", "full"});
  auto model = Model::load(dir);
  const ModelConfig& c = model->config();
  const int64_t V = c.vocab_size, k = c.index_topk;
  const auto seqs = read_ids(src() + "/ids.txt");
  const auto& ids = seqs[0];  // 64 tokens: rows 16.. drop keys
  const int64_t T = int64_t(ids.size());
  KvCache cache = model->new_cache(T);
  std::vector<float> logits(size_t(T * V));
  std::vector<IndexRecord> index;
  SeqChunk ch{&cache, T};
  model->forward(ids, {&ch, 1}, nullptr, logits.data(), {.index = &index});
  ASSERT_EQ(index.size(), 3u);  // one record per layer, the shared one included
  // Layer 0 computes what DeepSeek's code computes (nothing above it changed): its picks are the reference's.
  const auto want = read_i32(src() + "/index_topk_0.i32");
  ASSERT_EQ(want.size(), size_t(3 * T * k));
  ASSERT_EQ(index[0].selected.size(), size_t(T * k));
  for (int64_t i = 0; i < T * k; ++i) ASSERT_EQ(index[0].selected[size_t(i)], want[size_t(i)]) << "entry " << i;
  // Layer 1 reuses them, with no scores of its own; layer 2 scores again with its own indexer.
  EXPECT_EQ(index[1].selected, index[0].selected);
  EXPECT_TRUE(index[1].scores.empty());
  EXPECT_EQ(index[2].scores.size(), size_t(T));
  EXPECT_NE(index[2].selected, index[0].selected);

  // The selection matters: dense attention (every key) gives other logits once rows drop keys.
  ModelOptions dense_opt;
  dense_opt.sparse_attention = false;
  auto dense = Model::load(dir, dense_opt);
  KvCache dc = dense->new_cache(T);
  std::vector<float> dl(size_t(T * V));
  SeqChunk dch{&dc, T};
  dense->forward(ids, {&dch, 1}, nullptr, dl.data());
  EXPECT_LT(rel_err(dl.data(), logits.data(), size_t(k * V)), 1e-6);  // rows < k: every key either way
  EXPECT_GT(rel_err(dl.data() + k * V, logits.data() + k * V, size_t((T - k) * V)), 1e-3);
  // And it is not layer 1's own indexer's choice: v32_tiny with every layer full (layer 1's own indexer)
  // differs from row k on.
  auto full = Model::load(src());
  KvCache fc = full->new_cache(T);
  std::vector<float> fl(size_t(T * V));
  SeqChunk fch{&fc, T};
  full->forward(ids, {&fch, 1}, nullptr, fl.data());
  EXPECT_LT(rel_err(fl.data(), logits.data(), size_t(k * V)), 1e-6);
  EXPECT_GT(rel_err(fl.data() + k * V, logits.data() + k * V, size_t((T - k) * V)), 1e-4);
}

TEST(IndexShare, DecodeBatchesAndMicroBatchesMatchThePrefill) {
  DSV3_REQUIRE_CASE("v32_tiny");
  const std::string dir = make_copy("share_decode", {"full", "shared", "shared"});
  auto model = Model::load(dir);
  const int64_t V = model->config().vocab_size;
  const auto seqs = read_ids(src() + "/ids.txt");
  std::vector<std::vector<float>> whole;
  for (const auto& ids : seqs) {
    const int64_t T = int64_t(ids.size());
    KvCache cache = model->new_cache(T);
    std::vector<float> l(size_t(T * V));
    SeqChunk ch{&cache, T};
    model->forward(ids, {&ch, 1}, nullptr, l.data());
    whole.push_back(std::move(l));
  }
  // Prefill 14 tokens of sequence 0, then decode one token at a time into the sparse regime.
  {
    const auto& ids = seqs[0];
    const int64_t T = int64_t(ids.size()), P = 14;
    KvCache cache = model->new_cache(T);
    std::vector<float> l(size_t(P * V));
    SeqChunk ch{&cache, P};
    model->forward(std::span(ids).first(size_t(P)), {&ch, 1}, nullptr, l.data());
    double worst = rel_err(l.data(), whole[0].data(), size_t(P * V));
    for (int64_t t = P; t < T; ++t) {
      std::vector<float> row(static_cast<size_t>(V));
      SeqChunk one{&cache, 1};
      model->forward(std::span(ids).subspan(size_t(t), 1), {&one, 1}, nullptr, row.data());
      worst = std::max(worst, rel_err(row.data(), whole[0].data() + t * V, size_t(V)));
    }
    EXPECT_LE(worst, 2e-6);
  }
  // All three sequences in one batch, once as one micro-batch and once as two.
  for (int micro : {1, 2}) {
    std::vector<KvCache> caches;
    std::vector<SeqChunk> chunks;
    std::vector<int32_t> all;
    int64_t rows = 0;
    for (const auto& ids : seqs) {
      caches.push_back(model->new_cache(int64_t(ids.size())));
      all.insert(all.end(), ids.begin(), ids.end());
      rows += int64_t(ids.size());
    }
    for (size_t s = 0; s < seqs.size(); ++s) chunks.push_back({&caches[s], int64_t(seqs[s].size())});
    std::vector<float> l(size_t(rows * V));
    model->forward(all, chunks, nullptr, l.data(), {.micro_batches = micro});
    int64_t at = 0;
    for (size_t s = 0; s < seqs.size(); ++s) {
      const int64_t T = int64_t(seqs[s].size());
      EXPECT_LE(rel_err(l.data() + at * V, whole[s].data(), size_t(T * V)), 2e-6)
          << "sequence " << s << ", " << micro << " micro-batch(es)";
      at += T;
    }
  }
}

TEST(IndexShare, WeightsThatContradictTheConfigAreRefused) {
  DSV3_REQUIRE_CASE("v32_tiny");
  // The checkpoint has layer 1 shared (no indexer tensors) and layer 2 full; the config says the opposite.
  const std::string dir = make_copy("share_missing", {"full", "shared", "full"});
  nlohmann::json cfg = src_config();
  cfg["indexer_types"] = {"full", "full", "shared"};
  io::write_file_atomic(dir + "/config.json", cfg.dump(2));
  auto what = [&](const ModelOptions& o) {
    try {
      Model::load(dir, o);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  // Layer 2's indexer is unexplained by a shared layer; with those allowed, layer 1's is missing.
  EXPECT_NE(what({}).find("model.layers.2.self_attn.indexer."), std::string::npos) << what({});
  ModelOptions lax;
  lax.extra_tensors = ExtraTensors::Warn;
  const std::string e = what(lax);
  EXPECT_NE(e.find("missing tensor model.layers.1.self_attn.indexer."), std::string::npos) << e;
}

}  // namespace
}  // namespace dsv3
