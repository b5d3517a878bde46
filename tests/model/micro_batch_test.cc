// Two micro-batches (ForwardOptions::micro_batches = 2, the schedule of DeepSeek's two-micro-batch overlap)
// against DeepSeek's reference logits and against the one-batch forward: every sequence of a case in one
// batch, so that the split between the micro-batches falls inside a sequence (its second half attends to
// cache rows the first half wrote at the same layer), prefill then one-row decode steps (micro-batch A
// empty), and the MTP module.
#include <gtest/gtest.h>

#include <cstring>

#include "core/error.h"
#include "model/transformer.h"
#include "testdata.h"

namespace dsv3 {
namespace {

using testing::read_f32;
using testing::read_ids;
using testing::rel_err;

class MicroBatches : public ::testing::TestWithParam<std::string> {};

// Every sequence of the case in one forward (all rows' logits), with `micro` micro-batches; fresh caches.
std::vector<float> batched_logits(Model& model, const std::vector<std::vector<int32_t>>& seqs, int micro,
                                  std::vector<float>* hidden = nullptr) {
  const int64_t V = model.config().vocab_size, D = model.config().hidden_size;
  std::vector<KvCache> caches;
  std::vector<int32_t> tokens;
  std::vector<SeqChunk> chunks;
  for (const auto& s : seqs) caches.push_back(model.new_cache(int64_t(s.size())));
  for (size_t i = 0; i < seqs.size(); ++i) {
    tokens.insert(tokens.end(), seqs[i].begin(), seqs[i].end());
    chunks.push_back({&caches[i], int64_t(seqs[i].size())});
  }
  std::vector<float> logits(tokens.size() * size_t(V));
  if (hidden) hidden->resize(tokens.size() * size_t(D));
  model.forward(tokens, chunks, hidden ? hidden->data() : nullptr, logits.data(), {.micro_batches = micro});
  return logits;
}

TEST_P(MicroBatches, EveryRowMatchesOneBatchAndTheReference) {
  DSV3_REQUIRE_CASE(GetParam());
  const std::string dir = testing::testdata_dir() + "/" + GetParam();
  auto model = Model::load(dir);
  const int64_t V = model->config().vocab_size;
  const auto seqs = read_ids(dir + "/ids.txt");
  ASSERT_FALSE(seqs.empty());
  std::vector<float> h1, h2;
  const std::vector<float> one = batched_logits(*model, seqs, 1, &h1);
  const std::vector<float> two = batched_logits(*model, seqs, 2, &h2);
  ASSERT_EQ(one.size(), two.size());
  EXPECT_LE(rel_err(two.data(), one.data(), one.size()), 1e-6);
  EXPECT_LE(rel_err(h2.data(), h1.data(), h1.size()), 1e-6);
  size_t row = 0;
  for (size_t s = 0; s < seqs.size(); ++s) {
    const auto want = read_f32(dir + "/logits_" + std::to_string(s) + ".f32");
    ASSERT_EQ(want.size(), seqs[s].size() * size_t(V));
    EXPECT_LE(rel_err(two.data() + row * V, want.data(), want.size()), 1e-5) << "sequence " << s;
    row += seqs[s].size();
  }

  if (model->num_mtp() == 0) return;
  // MTP module 0 over the first sequence: next tokens and the main model's hidden states.
  const auto& ids = seqs[0];
  const int64_t n = int64_t(ids.size());
  std::vector<float> mlog[2];
  for (int micro : {1, 2}) {
    KvCache mc = model->new_mtp_cache(n - 1);
    SeqChunk mch{&mc, n - 1};
    mlog[micro - 1].resize(size_t((n - 1) * V));
    model->mtp_forward(0, std::span<const int32_t>(ids).subspan(1), h1.data(), {&mch, 1}, nullptr,
                       mlog[micro - 1].data(), {.micro_batches = micro});
  }
  EXPECT_LE(rel_err(mlog[1].data(), mlog[0].data(), mlog[0].size()), 1e-6);
  const auto mwant = read_f32(dir + "/mtp_logits_0.f32");
  ASSERT_EQ(mwant.size(), mlog[1].size());
  EXPECT_LE(rel_err(mlog[1].data(), mwant.data(), mwant.size()), 1e-5);
}

TEST_P(MicroBatches, PrefillThenOneRowStepsMatchTheReference) {
  DSV3_REQUIRE_CASE(GetParam());
  const std::string dir = testing::testdata_dir() + "/" + GetParam();
  auto model = Model::load(dir);
  const int64_t V = model->config().vocab_size;
  const auto ids = read_ids(dir + "/ids.txt")[0];
  const int64_t n = int64_t(ids.size()), split = n / 2;
  KvCache cache = model->new_cache(n);
  std::vector<float> got(size_t(n * V));
  SeqChunk ch{&cache, split};
  model->forward(std::span<const int32_t>(ids).first(size_t(split)), {&ch, 1}, nullptr, got.data(),
                 {.micro_batches = 2});
  for (int64_t i = split; i < n; ++i) {  // one row: micro-batch A is empty
    SeqChunk step{&cache, 1};
    model->forward(std::span<const int32_t>(ids).subspan(size_t(i), 1), {&step, 1}, nullptr, got.data() + i * V,
                   {.micro_batches = 2});
  }
  EXPECT_EQ(cache.length(), n);
  const auto want = read_f32(dir + "/logits_0.f32");
  EXPECT_LE(rel_err(got.data(), want.data(), want.size()), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Cases, MicroBatches, ::testing::Values("v3_tiny", "v2lite_tiny", "v3_fp8", "v3_mtp"),
                         [](const auto& info) { return info.param; });

TEST(MicroBatchesRefused, OtherCountsAndRoutingRecords) {
  DSV3_REQUIRE_CASE("v3_tiny");
  auto model = Model::load(testing::testdata_dir() + "/v3_tiny");
  const std::vector<int32_t> ids = {1, 2, 3};
  KvCache cache = model->new_cache(8);
  SeqChunk ch{&cache, 3};
  std::vector<float> logits(3 * size_t(model->config().vocab_size));
  try {
    model->forward(ids, {&ch, 1}, nullptr, logits.data(), {.micro_batches = 3});
    ADD_FAILURE() << "3 micro-batches accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("3 micro-batches"), std::string::npos) << e.what();
  }
  std::vector<RoutingRecord> rec;
  cache.truncate(0);
  try {
    model->forward(ids, {&ch, 1}, nullptr, logits.data(), {.routing = &rec, .micro_batches = 2});
    ADD_FAILURE() << "routing records with two micro-batches accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("routing records"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace dsv3
