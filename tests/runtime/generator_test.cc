// The engine: continuous batching gives each sequence the tokens it would get alone; prompt chunking,
// cache reuse across turns, cancellation, limits, end-of-sequence and logprobs.
#include "runtime/generator.h"

#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "model/transformer.h"
#include "test_models.h"

// Requests name only the fields a test cares about.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace dsv3::runtime {
namespace {

using namespace dsv3::testing_models;

class EngineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { model_ = Model::load(write_draftable_model(temp_dir("engine"), 0.5, 21)).release(); }
  static void TearDownTestSuite() {
    delete model_;
    model_ = nullptr;
  }
  static Model* model_;

  std::vector<int32_t> alone(EngineOptions eo, std::vector<int32_t> prompt, int64_t n,
                             SamplingParams sp = {.temperature = 0}) {
    Engine e(*model_, eo);
    std::vector<int32_t> out;
    auto s = e.start({.prompt = prompt, .sampling = sp, .max_tokens = n, .eos_ids = {}, .ignore_eos = true},
                     [&](int32_t t, const TokenLogprobs*) {
                       out.push_back(t);
                       return true;
                     });
    run_to_completion(e, *s);
    return out;
  }
};
Model* EngineTest::model_ = nullptr;

TEST_F(EngineTest, ContinuousBatchingMatchesSequencesRunAlone) {
  const std::vector<std::vector<int32_t>> prompts = {
      {0, 5, 9, 33, 7}, {0, 200}, {3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3}, {77}};
  const std::vector<int64_t> lengths = {20, 7, 15, 25};
  const std::vector<int> start_step = {0, 0, 3, 6};  // later arrivals join the running batch
  for (EngineOptions eo :
       {EngineOptions{}, EngineOptions{.spec = SpecMode::Mtp, .draft = 2}, EngineOptions{.prefill_chunk = 4}}) {
    SCOPED_TRACE(eo.spec == SpecMode::Mtp ? "mtp" : eo.prefill_chunk == 4 ? "chunked prefill" : "plain");
    Engine e(*model_, eo);
    std::vector<std::vector<int32_t>> out(prompts.size());
    std::vector<std::unique_ptr<Sequence>> seqs(prompts.size());
    for (int step = 0; step < 100; ++step) {
      std::vector<Sequence*> live;
      for (size_t i = 0; i < prompts.size(); ++i) {
        if (step == start_step[i])
          seqs[i] = e.start(
              {.prompt = prompts[i], .sampling = {.temperature = 0}, .max_tokens = lengths[i], .ignore_eos = true},
              [&out, i](int32_t t, const TokenLogprobs*) {
                out[i].push_back(t);
                return true;
              });
        if (seqs[i] && !seqs[i]->done()) live.push_back(seqs[i].get());
      }
      if (live.empty() && step > 6) break;
      e.step(live);
    }
    for (size_t i = 0; i < prompts.size(); ++i) {
      ASSERT_TRUE(seqs[i]->done());
      EXPECT_EQ(seqs[i]->finish, FinishReason::Length);
      EXPECT_EQ(out[i], alone(eo, prompts[i], lengths[i])) << "sequence " << i;
    }
  }
}

TEST_F(EngineTest, ChunkedPrefillMatchesOneShot) {
  const std::vector<int32_t> prompt = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  for (SpecMode spec : {SpecMode::None, SpecMode::Mtp})
    EXPECT_EQ(alone({.spec = spec, .prefill_chunk = 3}, prompt, 12), alone({.spec = spec}, prompt, 12));
}

TEST_F(EngineTest, ReusedCachesGiveTheSameTokens) {
  for (SpecMode spec : {SpecMode::None, SpecMode::Mtp}) {
    Engine e(*model_, {.spec = spec, .draft = 2});
    auto first = e.start(
        {.prompt = {0, 8, 16, 24}, .sampling = {.temperature = 0}, .max_tokens = 10, .eos_ids = {}, .ignore_eos = true},
        nullptr);
    run_to_completion(e, *first);
    // The next turn: the whole first exchange plus new tokens.
    std::vector<int32_t> prompt2 = first->tokens;
    prompt2.insert(prompt2.end(), {1, 99, 100});
    std::vector<int32_t> out;
    auto second = e.start(
        {.prompt = prompt2, .sampling = {.temperature = 0}, .max_tokens = 12, .eos_ids = {}, .ignore_eos = true},
        [&](int32_t t, const TokenLogprobs*) {
          out.push_back(t);
          return true;
        },
        first.get());
    EXPECT_GE(second->stats.reused, 10);
    run_to_completion(e, *second);
    EXPECT_EQ(out, alone({.spec = spec, .draft = 2}, prompt2, 12));
    // A prompt that diverges early keeps only the common prefix.
    std::vector<int32_t> prompt3 = {0, 8, 99};
    out.clear();
    auto third = e.start(
        {.prompt = prompt3, .sampling = {.temperature = 0}, .max_tokens = 5, .eos_ids = {}, .ignore_eos = true},
        [&](int32_t t, const TokenLogprobs*) {
          out.push_back(t);
          return true;
        },
        second.get());
    EXPECT_LE(third->stats.reused, 2);
    run_to_completion(e, *third);
    EXPECT_EQ(out, alone({.spec = spec}, prompt3, 5));
  }
}

TEST_F(EngineTest, LimitsEndOfSequenceStopAndCancel) {
  Engine e(*model_, {.max_context = 10});
  EXPECT_THROW(e.start({.prompt = std::vector<int32_t>(10, 3)}, nullptr), Error);
  EXPECT_THROW(e.start({.prompt = {}}, nullptr), Error);
  EXPECT_THROW(e.start({.prompt = {256}}, nullptr), Error);
  EXPECT_THROW(e.start({.prompt = {1}, .max_tokens = 0}, nullptr), Error);
  EXPECT_THROW(e.start({.prompt = {1}, .sampling = {.top_p = 2}}, nullptr), Error);

  auto s = e.start({.prompt = std::vector<int32_t>(8, 3), .sampling = {.temperature = 0}, .max_tokens = 100}, nullptr);
  run_to_completion(e, *s);
  EXPECT_EQ(s->finish, FinishReason::Length);
  EXPECT_EQ(s->tokens.size(), 10u);  // the context is full

  // End of sequence: make the 3rd greedy token the EOS; it ends the generation and is not delivered.
  const auto ref = alone({}, {0, 5, 9}, 6);
  std::vector<int32_t> got;
  auto eos = e.start({.prompt = {0, 5, 9}, .sampling = {.temperature = 0}, .max_tokens = 6, .eos_ids = {ref[2]}},
                     [&](int32_t t, const TokenLogprobs*) {
                       got.push_back(t);
                       return true;
                     });
  run_to_completion(e, *eos);
  EXPECT_EQ(eos->finish, FinishReason::Stop);
  EXPECT_EQ(got, std::vector<int32_t>(ref.begin(), ref.begin() + 2));

  int calls = 0;
  auto stop =
      e.start({.prompt = {0, 5, 9}, .max_tokens = 6}, [&](int32_t, const TokenLogprobs*) { return ++calls < 3; });
  run_to_completion(e, *stop);
  EXPECT_EQ(stop->finish, FinishReason::Stop);
  EXPECT_EQ(calls, 3);

  auto cancel = e.start({.prompt = {0, 5, 9}, .max_tokens = 6}, nullptr);
  Sequence* one[] = {cancel.get()};
  e.step(one);
  cancel->cancelled = true;
  e.step(one);
  EXPECT_EQ(cancel->finish, FinishReason::Cancelled);
}

TEST_F(EngineTest, LogprobsAreTheRawModelDistribution) {
  const std::vector<int32_t> prompt = {0, 5, 9};
  for (SpecMode spec : {SpecMode::None, SpecMode::Mtp}) {
    Engine e(*model_, {.spec = spec});
    std::vector<TokenLogprobs> lps;
    std::vector<int32_t> toks;
    auto s = e.start({.prompt = prompt,
                      .sampling = {.temperature = 0.8, .seed = 3, .logprobs = 3},
                      .max_tokens = 5,
                      .ignore_eos = true},
                     [&](int32_t t, const TokenLogprobs* lp) {
                       EXPECT_NE(lp, nullptr);
                       if (lp) lps.push_back(*lp);
                       toks.push_back(t);
                       return true;
                     });
    run_to_completion(e, *s);
    ASSERT_EQ(lps.size(), 5u);
    // Recompute position by position.
    const int64_t V = model_->config().vocab_size;
    std::vector<int32_t> ids = prompt;
    for (size_t i = 0; i < toks.size(); ++i) {
      KvCache c = model_->new_cache(int64_t(ids.size()));
      std::vector<float> logits(static_cast<size_t>(V));
      SeqChunk ch{&c, int64_t(ids.size())};
      model_->forward(ids, {&ch, 1}, nullptr, logits.data(), {.logits = LogitRows::LastOfEachChunk});
      const TokenLogprobs want = compute_logprobs(logits.data(), V, toks[i], 3);
      EXPECT_EQ(lps[i].chosen.id, toks[i]);
      EXPECT_NEAR(lps[i].chosen.logprob, want.chosen.logprob, 1e-4);
      ASSERT_EQ(lps[i].top.size(), 3u);
      for (int j = 0; j < 3; ++j) EXPECT_EQ(lps[i].top[size_t(j)].id, want.top[size_t(j)].id);
      ids.push_back(toks[i]);
    }
  }
}

}  // namespace
}  // namespace dsv3::runtime
