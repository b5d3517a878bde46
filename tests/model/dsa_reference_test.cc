// DeepSeek-V3.2's sparse attention (DSA) against DeepSeek's own V3.2-Exp code (../shared/testdata v32_tiny,
// v32_fp8; their README section "DeepSeek-V3.2 cases"): the logits of every sequence, every layer's index
// scores and top-k selections, the prefill-then-decode logits, several sequences in one batch, and a
// speculative rollback of both caches — at 1e-5 (the cases reproduce to ~1e-6).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/transformer.h"
#include "testdata.h"

namespace dsv3 {
namespace {

using testing::read_f32;
using testing::read_i32;
using testing::read_ids;
using testing::rel_err;

constexpr double kTol = 1e-5;

nlohmann::json read_case(const std::string& dir) {
  std::ifstream f(dir + "/case.json");
  return nlohmann::json::parse(f);
}

class Dsa : public ::testing::TestWithParam<std::string> {
 protected:
  std::string dir() const { return testing::testdata_dir() + "/" + GetParam(); }
};

TEST_P(Dsa, ConfigDescribesTheIndexer) {
  DSV3_REQUIRE_CASE(GetParam());
  auto model = Model::load(dir());
  const ModelConfig& c = model->config();
  EXPECT_EQ(c.model_type, "deepseek_v32");
  EXPECT_TRUE(c.has_indexer());
  EXPECT_EQ(c.index_head_dim, 128);
  EXPECT_FALSE(c.indexer_rope_interleave);
  EXPECT_EQ(c.index_cache_bytes_per_token(), 132);
  EXPECT_EQ(c.raw_json()["architectures"][0], "DeepseekV32ForCausalLM");
  EXPECT_EQ(parse_config(c.raw_json()), c);
  KvCache cache = model->new_cache(8);
  EXPECT_EQ(cache.index_dim(), 128);
}

TEST_P(Dsa, LogitsScoresAndSelectionsOfEverySequenceMatch) {
  DSV3_REQUIRE_CASE(GetParam());
  auto model = Model::load(dir());
  const ModelConfig& c = model->config();
  const int64_t V = c.vocab_size, L = c.num_hidden_layers, k = c.index_topk;
  const auto seqs = read_ids(dir() + "/ids.txt");
  ASSERT_EQ(seqs.size(), 3u);
  int64_t sparse_rows = 0;
  for (size_t s = 0; s < seqs.size(); ++s) {
    const auto& ids = seqs[s];
    const int64_t T = int64_t(ids.size());
    KvCache cache = model->new_cache(T);
    std::vector<float> logits(size_t(T * V));
    std::vector<IndexRecord> index;
    SeqChunk ch{&cache, T};
    model->forward(ids, {&ch, 1}, nullptr, logits.data(), {.index = &index});
    const std::string n = std::to_string(s);
    const auto want = read_f32(dir() + "/logits_" + n + ".f32");
    ASSERT_EQ(want.size(), logits.size());
    const double e = rel_err(logits.data(), want.data(), want.size());
    EXPECT_LE(e, kTol) << GetParam() << " sequence " << s;
    std::printf("%s sequence %zu: logits rel err %.3g\n", GetParam().c_str(), s, e);

    ASSERT_EQ(int64_t(index.size()), L);
    const auto topk = read_i32(dir() + "/index_topk_" + n + ".i32");
    const auto scores = read_f32(dir() + "/index_scores_" + n + ".f32");
    ASSERT_EQ(int64_t(topk.size()), L * T * k);
    ASSERT_EQ(int64_t(scores.size()), L * T * T);
    for (int64_t l = 0; l < L; ++l) {
      const IndexRecord& rec = index[size_t(l)];
      ASSERT_EQ(rec.topk, k);
      ASSERT_EQ(int64_t(rec.selected.size()), T * k);
      ASSERT_EQ(int64_t(rec.scores.size()), T);
      for (int64_t t = 0; t < T; ++t) {
        sparse_rows += l == 0 && t + 1 > k;
        const int32_t* w = topk.data() + (l * T + t) * k;
        const int32_t* g = rec.selected.data() + t * k;
        EXPECT_TRUE(std::equal(g, g + k, w)) << "layer " << l << " row " << t << " of sequence " << s;
        const float* ws = scores.data() + (l * T + t) * T;
        const auto& gs = rec.scores[size_t(t)];
        ASSERT_EQ(int64_t(gs.size()), t + 1);
        double mx = 0, worst = 0;
        for (int64_t j = 0; j <= t; ++j) mx = std::max(mx, std::fabs(double(ws[j])));
        for (int64_t j = 0; j <= t; ++j) worst = std::max(worst, std::fabs(double(gs[size_t(j)]) - ws[j]));
        EXPECT_LE(worst, 1e-4 * mx) << "layer " << l << " row " << t << " of sequence " << s;
      }
    }
  }
  EXPECT_GT(sparse_rows, 0) << "no row drops keys: the case does not exercise the selection";
}

TEST_P(Dsa, PrefillThenDecodeMatchesTheReferenceDecode) {
  // decode_logits_K: row 0 = the prefill of prefill_len[K] tokens (its last position), row r = the decode
  // step at position P − 1 + r; sequence 0 starts dense and decodes into the sparse regime.
  DSV3_REQUIRE_CASE(GetParam());
  auto model = Model::load(dir());
  const int64_t V = model->config().vocab_size;
  const auto seqs = read_ids(dir() + "/ids.txt");
  const auto cs = read_case(dir());
  for (size_t s = 0; s < seqs.size(); ++s) {
    const std::span<const int32_t> ids(seqs[s]);
    const int64_t T = int64_t(ids.size()), P = cs["prefill_len"][s].get<int64_t>();
    const auto want = read_f32(dir() + "/decode_logits_" + std::to_string(s) + ".f32");
    ASSERT_EQ(int64_t(want.size()), (T - P + 1) * V);
    KvCache cache = model->new_cache(4);  // small on purpose: both caches grow
    std::vector<float> got(want.size());
    SeqChunk ch{&cache, P};
    model->forward(ids.first(size_t(P)), {&ch, 1}, nullptr, got.data(), {.logits = LogitRows::LastOfEachChunk});
    for (int64_t i = P; i < T; ++i) {
      SeqChunk one{&cache, 1};
      model->forward(ids.subspan(size_t(i), 1), {&one, 1}, nullptr, got.data() + (i - P + 1) * V);
    }
    EXPECT_EQ(cache.length(), T);
    const double e = rel_err(got.data(), want.data(), want.size());
    EXPECT_LE(e, kTol) << GetParam() << " sequence " << s;
    // And against the full pass's rows P − 1 .. T − 1.
    const auto full = read_f32(dir() + "/logits_" + std::to_string(s) + ".f32");
    EXPECT_LE(rel_err(got.data(), full.data() + (P - 1) * V, got.size()), kTol) << "sequence " << s;
  }
}

TEST_P(Dsa, SequencesBatchedTogetherMatchTheirOwnReferences) {
  // Every sequence but its last 3 tokens prefilled in one batch, then 3 batched decode steps.
  DSV3_REQUIRE_CASE(GetParam());
  auto model = Model::load(dir());
  const int64_t V = model->config().vocab_size;
  const auto seqs = read_ids(dir() + "/ids.txt");
  const size_t S = seqs.size();
  std::vector<KvCache> caches;
  for (size_t s = 0; s < S; ++s) caches.push_back(model->new_cache(16));
  std::vector<std::vector<float>> want(S);
  for (size_t s = 0; s < S; ++s) want[s] = read_f32(dir() + "/logits_" + std::to_string(s) + ".f32");
  constexpr int64_t kTail = 3;
  std::vector<int32_t> tokens;
  std::vector<SeqChunk> chunks;
  for (size_t s = 0; s < S; ++s) {
    const int64_t n = int64_t(seqs[s].size()) - kTail;
    tokens.insert(tokens.end(), seqs[s].begin(), seqs[s].begin() + n);
    chunks.push_back({&caches[s], n});
  }
  int64_t total = int64_t(tokens.size());
  std::vector<float> logits(size_t(total * V));
  model->forward(tokens, chunks, nullptr, logits.data());
  int64_t row = 0;
  for (size_t s = 0; s < S; ++s) {
    const int64_t n = chunks[s].n;
    EXPECT_LE(rel_err(logits.data() + row * V, want[s].data(), size_t(n * V)), kTol) << "prefill, sequence " << s;
    row += n;
  }
  for (int64_t step = 0; step < kTail; ++step) {
    tokens.clear();
    for (size_t s = 0; s < S; ++s) {
      tokens.push_back(seqs[s][seqs[s].size() - size_t(kTail - step)]);
      chunks[s].n = 1;
    }
    model->forward(tokens, chunks, nullptr, logits.data(), {.logits = LogitRows::LastOfEachChunk});
    for (size_t s = 0; s < S; ++s) {
      const size_t pos = seqs[s].size() - size_t(kTail - step);
      EXPECT_LE(rel_err(logits.data() + s * V, want[s].data() + pos * V, size_t(V)), kTol)
          << "decode step " << step << ", sequence " << s;
    }
  }
}

TEST_P(Dsa, RollbackForgetsBothCaches) {
  // Speculative decoding's rollback: decode wrong tokens past a point, truncate the cache back, decode
  // the true tokens: the logits are the reference's (the index keys of the wrong tokens are forgotten).
  DSV3_REQUIRE_CASE(GetParam());
  auto model = Model::load(dir());
  const int64_t V = model->config().vocab_size;
  const auto ids = read_ids(dir() + "/ids.txt")[0];
  const int64_t T = int64_t(ids.size()), P = T - 6;
  ASSERT_GT(P, model->config().index_topk);
  const auto want = read_f32(dir() + "/logits_0.f32");
  KvCache cache = model->new_cache(T);
  SeqChunk ch{&cache, P};
  std::vector<float> got(size_t(T * V));
  model->forward(std::span<const int32_t>(ids).first(size_t(P)), {&ch, 1}, nullptr, got.data());
  std::vector<int32_t> wrong(4);
  for (size_t i = 0; i < wrong.size(); ++i) wrong[i] = (ids[size_t(P) + i] + 7 + int32_t(i)) % int32_t(V);
  SeqChunk draft{&cache, int64_t(wrong.size())};
  std::vector<float> scratch(wrong.size() * size_t(V));
  model->forward(wrong, {&draft, 1}, nullptr, scratch.data());
  EXPECT_EQ(cache.length(), P + 4);
  cache.truncate(P);
  for (int64_t i = P; i < T; ++i) {
    SeqChunk one{&cache, 1};
    model->forward(std::span<const int32_t>(ids).subspan(size_t(i), 1), {&one, 1}, nullptr, got.data() + i * V);
  }
  EXPECT_LE(rel_err(got.data() + P * V, want.data() + P * V, size_t((T - P) * V)), kTol);
}

TEST_P(Dsa, DenseOptionAttendsToEveryKey) {
  // ModelOptions::sparse_attention = false (the benchmark's dense baseline): short sequences (dense in
  // the reference too) unchanged, long ones differ from the sparse reference.
  DSV3_REQUIRE_CASE(GetParam());
  auto model = Model::load(dir(), {.sparse_attention = false});
  const int64_t V = model->config().vocab_size;
  const auto seqs = read_ids(dir() + "/ids.txt");
  for (size_t s : {size_t(0), size_t(2)}) {
    const int64_t T = int64_t(seqs[s].size());
    KvCache cache = model->new_cache(T);
    std::vector<float> logits(size_t(T * V));
    SeqChunk ch{&cache, T};
    model->forward(seqs[s], {&ch, 1}, nullptr, logits.data());
    const auto want = read_f32(dir() + "/logits_" + std::to_string(s) + ".f32");
    const double e = rel_err(logits.data(), want.data(), want.size());
    if (T <= model->config().index_topk)
      EXPECT_LE(e, kTol) << "sequence " << s;
    else
      EXPECT_GT(e, 1e-2) << "sequence " << s << ": dense attention changed nothing";
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, Dsa, ::testing::Values("v32_tiny", "v32_fp8"));

TEST(DsaCache, CacheOfAnotherShapeIsRefused) {
  DSV3_REQUIRE_CASE("v32_tiny");
  auto model = Model::load(testing::testdata_dir() + "/v32_tiny");
  const ModelConfig& c = model->config();
  KvCache plain(c.num_hidden_layers, c.kv_cache_values_per_token(), 8);  // no index keys
  std::vector<int32_t> ids{1, 2};
  SeqChunk ch{&plain, 2};
  std::vector<float> logits(2 * size_t(c.vocab_size));
  try {
    model->forward(ids, {&ch, 1}, nullptr, logits.data());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("index keys"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace dsv3
