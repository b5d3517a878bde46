// Sampler: every transform against hand-computed distributions (values worked out with a calculator from
// the definitions in sampler.h), the random stream against an independent implementation of its definition,
// and draws against their distribution.
#include "runtime/sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/error.h"

namespace dsv3::runtime {
namespace {

std::vector<float> dist(const SamplingParams& p, std::vector<float> logits, std::vector<int32_t> prompt = {},
                        std::vector<int32_t> output = {}, std::vector<int32_t> extra = {}) {
  Sampler s(p, int64_t(logits.size()));
  s.set_prompt(prompt);
  for (int32_t t : output) s.push(t);
  std::vector<float> out;
  s.distribution(logits.data(), extra, out);
  return out;
}

void expect_dist(const std::vector<float>& got, const std::vector<double>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i], want[i], 2e-5) << "token " << i;
}

const std::vector<float> kLogits = {1, 2, 3, 0};  // softmax: e^x / 31.19287

TEST(Rng, MatchesTheDefinition) {
  // Reference values from an independent Python implementation of SplitMix64 → xoshiro256**.
  Rng r0(0);
  EXPECT_EQ(r0.next(), 0x99ec5f36cb75f2b4ull);
  EXPECT_EQ(r0.next(), 0xbf6e1f784956452aull);
  EXPECT_EQ(r0.next(), 0x1a5f849d4933e6e0ull);
  Rng r42(42);
  EXPECT_EQ(r42.next(), 0x15780b2e0c2ec716ull);
  EXPECT_EQ(r42.next(), 0x6104d9866d113a7eull);
  EXPECT_DOUBLE_EQ(r42.uniform(), 0.6800434110281394);
}

TEST(Sampler, Softmax) { expect_dist(dist({}, kLogits), {0.0871443, 0.2368828, 0.6439142, 0.0320586}); }

TEST(Sampler, Temperature) {
  // logits / 2 = [0.5, 1, 1.5, 0]: e^x = [1.648721, 2.718282, 4.481689, 1], sum 9.848692
  expect_dist(dist({.temperature = 2.0}, kLogits), {0.1674025, 0.2760043, 0.4550535, 0.1015363});
}

TEST(Sampler, GreedyTakesTheLowestIdOnTies) {
  expect_dist(dist({.temperature = 0}, kLogits), {0, 0, 1, 0});
  expect_dist(dist({.temperature = 0}, {5, 1, 5, 5}), {1, 0, 0, 0});
  Sampler s({.temperature = 0}, 4);
  std::vector<float> l = {0, 7, 7, 1};
  EXPECT_EQ(s.sample(l.data()), 1);
}

TEST(Sampler, PaddedIdsAreNeverDrawn) {
  // Rows 3..5 stand for a checkpoint's embedding padding past the tokenizer; they carry the largest logits.
  const std::vector<float> l = {1, 2, 0, 9, 9, 9};
  Sampler greedy({.temperature = 0}, 6);
  greedy.set_emit_vocab(3);
  EXPECT_EQ(greedy.sample(l.data()), 1);
  // softmax over {1, 2, 0}: e^x = [2.718282, 7.389056, 1], sum 11.107338
  Sampler s({.temperature = 1, .seed = 7}, 6);
  s.set_emit_vocab(3);
  std::vector<float> d;
  s.distribution(l.data(), {}, d);
  expect_dist(d, {0.2447285, 0.6652410, 0.0900306, 0, 0, 0});
  for (int i = 0; i < 1000; ++i) EXPECT_LT(s.sample(l.data()), 3);
  // A limit at or above the vocabulary (or 0) limits nothing.
  Sampler all({.temperature = 0}, 6);
  all.set_emit_vocab(0);
  EXPECT_EQ(all.sample(l.data()), 3);
  all.set_emit_vocab(6);
  EXPECT_EQ(all.sample(l.data()), 3);
}

TEST(Sampler, NonFiniteLogitsStopInsteadOfEmittingAToken) {
  for (const SamplingParams& p : {SamplingParams{.temperature = 0}, SamplingParams{.temperature = 0.8, .seed = 1}}) {
    Sampler s(p, 4);
    for (float bad : {std::nanf(""), INFINITY}) {
      std::vector<float> l = {0, 1, bad, 2};
      try {
        s.sample(l.data());
        ADD_FAILURE() << "a token was drawn from a non-finite logit";
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("token id 2"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("no token is emitted"), std::string::npos) << e.what();
      }
    }
    std::vector<float> masked = {0, -INFINITY, 3, 1};  // −inf: a masked token, fine
    EXPECT_EQ(s.sample(masked.data()) == 1, false);
  }
}

TEST(Sampler, TopK) {
  // keep {2, 1}: e^3, e^2 renormalised
  expect_dist(dist({.top_k = 2}, kLogits), {0, 0.2689414, 0.7310586, 0});
  expect_dist(dist({.top_k = 1}, kLogits), {0, 0, 1, 0});
  expect_dist(dist({.top_k = 10}, kLogits), {0.0871443, 0.2368828, 0.6439142, 0.0320586});
}

TEST(Sampler, TopP) {
  // sorted masses 0.6439, 0.2369 (cum 0.8808), 0.0871 (0.9679), 0.0321
  expect_dist(dist({.top_p = 0.8}, kLogits), {0, 0.2689414, 0.7310586, 0});
  expect_dist(dist({.top_p = 0.6}, kLogits), {0, 0, 1, 0});
  expect_dist(dist({.top_p = 0.9}, kLogits), {0.0900296, 0.2447262, 0.6652443, 0});
  // after top-k = 3 the masses are renormalised over {2, 1, 0}: 0.66524, 0.24473 → cum 0.90997 ≥ 0.9
  expect_dist(dist({.top_k = 3, .top_p = 0.9}, kLogits), {0, 0.2689414, 0.7310586, 0});
}

TEST(Sampler, TopPOverALargeVocabularySortsOnlyWhatItNeeds) {
  std::vector<float> l(1000, 0.0f);
  l[500] = 10;  // p = e^10 / (e^10 + 999) = 0.9566133, the others 4.343017e-5
  const auto d9 = dist({.top_p = 0.9}, l);
  EXPECT_EQ(d9[500], 1.0f);
  // top_p 0.99 needs 0.9566133 + j · 4.343017e-5 ≥ 0.99 → j = 769 more tokens (768.75), lowest ids first
  auto d = dist({.top_p = 0.99}, l);
  int kept = 0;
  for (float x : d) kept += x > 0;
  EXPECT_EQ(kept, 1 + 769);
  EXPECT_GT(d[0], 0);
  EXPECT_EQ(d[999], 0);
}

TEST(Sampler, MinP) {
  // threshold 0.2 · 0.6439 = 0.1288 keeps {1, 2}; 0.1 · 0.6439 = 0.0644 keeps {0, 1, 2}
  expect_dist(dist({.min_p = 0.2}, kLogits), {0, 0.2689414, 0.7310586, 0});
  expect_dist(dist({.min_p = 0.1}, kLogits), {0.0900296, 0.2447262, 0.6652443, 0});
}

TEST(Sampler, RepetitionPenalty) {
  // prompt {2}, output {0}: 3 → 1.5, 1 → 0.5: [0.5, 2, 1.5, 0]; e^x sum = 14.519473
  expect_dist(dist({.repetition_penalty = 2}, kLogits, {2}, {0}), {0.1135525, 0.5089072, 0.3086675, 0.0688729});
  // negative logits are multiplied: [-1, 0] with token 0 seen → [-2, 0]
  expect_dist(dist({.repetition_penalty = 2}, {-1, 0}, {0}), {0.1192029, 0.8807971});
  // a draft (extra) counts like an output token
  expect_dist(dist({.repetition_penalty = 2}, kLogits, {2}, {}, {0}), {0.1135525, 0.5089072, 0.3086675, 0.0688729});
}

TEST(Sampler, FrequencyAndPresencePenalties) {
  // output [1, 1, 3]: logit1 = 2 − (2·0.5 + 0.25) = 0.75, logit3 = 0 − (0.5 + 0.25) = −0.75
  // [1, 0.75, 3, −0.75]: e^x = [2.718282, 2.117000, 20.085537, 0.472367], sum 25.393186
  const std::vector<double> want = {0.1070477, 0.0833688, 0.7909807, 0.0186020};
  expect_dist(dist({.frequency_penalty = 0.5, .presence_penalty = 0.25}, kLogits, {3}, {1, 1, 3}), want);
  // the same counts split between history and tentative drafts
  expect_dist(dist({.frequency_penalty = 0.5, .presence_penalty = 0.25}, kLogits, {}, {1}, {1, 3}), want);
}

TEST(Sampler, Logprobs) {
  TokenLogprobs lp = compute_logprobs(kLogits.data(), 4, 0, 2);
  EXPECT_EQ(lp.chosen.id, 0);
  EXPECT_NEAR(lp.chosen.logprob, std::log(0.0871443), 1e-5);
  ASSERT_EQ(lp.top.size(), 2u);
  EXPECT_EQ(lp.top[0].id, 2);
  EXPECT_NEAR(lp.top[0].logprob, std::log(0.6439142), 1e-5);
  EXPECT_EQ(lp.top[1].id, 1);
  EXPECT_TRUE(compute_logprobs(kLogits.data(), 4, 3, 0).top.empty());
}

TEST(Sampler, DrawsFollowTheDistributionAndTheSeed) {
  const std::vector<float> l = {1, 2, 3, 0};
  Sampler s({.temperature = 1.0, .seed = 7}, 4);
  const int n = 40000;
  std::vector<int> count(4);
  std::vector<int32_t> first;
  for (int i = 0; i < n; ++i) {
    const int32_t t = s.sample(l.data());
    ++count[size_t(t)];
    if (i < 20) first.push_back(t);
  }
  const double p[] = {0.0871443, 0.2368828, 0.6439142, 0.0320586};
  double chi2 = 0;
  for (int i = 0; i < 4; ++i) chi2 += std::pow(count[size_t(i)] - n * p[i], 2) / (n * p[i]);
  EXPECT_LT(chi2, 21.1);  // χ²(3) at p = 1e-4
  Sampler again({.temperature = 1.0, .seed = 7}, 4);
  for (int32_t t : first) EXPECT_EQ(again.sample(l.data()), t);
}

TEST(Sampler, RejectsBadParameters) {
  EXPECT_THROW(Sampler({.temperature = -1}, 4), Error);
  EXPECT_THROW(Sampler({.top_k = -1}, 4), Error);
  EXPECT_THROW(Sampler({.top_p = 0}, 4), Error);
  EXPECT_THROW(Sampler({.top_p = 1.5}, 4), Error);
  EXPECT_THROW(Sampler({.min_p = 2}, 4), Error);
  EXPECT_THROW(Sampler({.repetition_penalty = 0}, 4), Error);
  EXPECT_THROW(Sampler({.temperature = NAN}, 4), Error);
}

TEST(StopStrings, HoldsBackPossibleStartsAndCutsAtTheMatch) {
  StopStrings s({"o w", "xyz"});
  EXPECT_EQ(s.push("Hel"), "Hel");
  EXPECT_EQ(s.push("lo"), "l");  // "o" might start "o w"
  EXPECT_EQ(s.push(" "), "");    // "o " too
  EXPECT_EQ(s.push("world"), "");
  EXPECT_TRUE(s.stopped());
  EXPECT_EQ(s.push("more"), "");
  EXPECT_EQ(s.flush(), "");

  StopStrings t({"ab"});
  EXPECT_EQ(t.push("xa"), "x");
  EXPECT_EQ(t.push("c"), "ac");
  EXPECT_EQ(t.push("a"), "");
  EXPECT_EQ(t.flush(), "a");
  EXPECT_FALSE(t.stopped());

  StopStrings none;
  EXPECT_EQ(none.push("abc"), "abc");
}

}  // namespace
}  // namespace dsv3::runtime
