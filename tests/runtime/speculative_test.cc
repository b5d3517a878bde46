// MTP speculative decoding: lossless under greedy decoding (token for token, on the reference v3_mtp case,
// a random model with MTP and a "draftable" model whose MTP module drafts well) and distribution-preserving
// under sampling (chi-square of the speculative sampler's tokens against the exact distribution computed
// with the non-speculative sampler).
#include "runtime/speculative.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "core/error.h"
#include "model/transformer.h"
#include "runtime/generator.h"
#include "test_models.h"

// Requests name only the fields a test cares about.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace dsv3::runtime {
namespace {

using namespace dsv3::testing_models;

struct Run {
  std::vector<int32_t> tokens;
  SequenceStats stats;
};

Run generate(Model& model, EngineOptions eo, std::vector<int32_t> prompt, SamplingParams sp, int64_t n) {
  Engine engine(model, eo);
  Run r;
  auto seq = engine.start({.prompt = prompt, .sampling = sp, .max_tokens = n, .eos_ids = {}, .ignore_eos = true},
                          [&](int32_t t, const TokenLogprobs*) {
                            r.tokens.push_back(t);
                            return true;
                          });
  r.stats = run_to_completion(engine, *seq);
  EXPECT_EQ(seq->finish, FinishReason::Length);
  return r;
}

const std::vector<std::vector<int32_t>> kPrompts = {{0, 5, 9, 33, 7}, {0, 200, 17}, {3}};

void expect_greedy_lossless(Model& model, int64_t n, double min_acceptance, SamplingParams sp = {.temperature = 0}) {
  for (const auto& prompt : kPrompts) {
    const Run plain = generate(model, {}, prompt, sp, n);
    ASSERT_EQ(int64_t(plain.tokens.size()), n);
    for (int64_t depth : {1, 2, 3}) {
      const Run spec = generate(model, {.spec = SpecMode::Mtp, .draft = depth}, prompt, sp, n);
      EXPECT_EQ(spec.tokens, plain.tokens) << "draft depth " << depth;
      EXPECT_GT(spec.stats.drafted, 0);
      const double acc = double(spec.stats.accepted) / double(spec.stats.drafted);
      EXPECT_GE(acc, min_acceptance) << "draft depth " << depth;
      // Verify steps plus the prefill's first token account for every token.
      EXPECT_EQ(spec.stats.verify_steps + spec.stats.accepted + 1, n) << "draft depth " << depth;
    }
  }
}

TEST(Speculative, GreedyIsLosslessOnTheReferenceMtpCase) {
  if (!have_testdata("v3_mtp")) GTEST_SKIP() << "no " << DSV3_TESTDATA << "/v3_mtp";
  auto model = Model::load(std::string(DSV3_TESTDATA) + "/v3_mtp");
  expect_greedy_lossless(*model, 40, 0.0);
}

TEST(Speculative, GreedyIsLosslessOnARandomModelWithMtp) {
  auto model = Model::load(write_random_model(temp_dir("random_mtp"), 11));
  expect_greedy_lossless(*model, 40, 0.0);
}

TEST(Speculative, GreedyIsLosslessWhenDraftsAreAccepted) {
  // alpha 0: the MTP module predicts the main model exactly; 0.5: it often does.
  auto exact = Model::load(write_draftable_model(temp_dir("draftable0"), 0.0, 3));
  expect_greedy_lossless(*exact, 40, 0.99);
  auto good = Model::load(write_draftable_model(temp_dir("draftable5"), 0.5, 3));
  expect_greedy_lossless(*good, 40, 0.15);
  // Penalties see the drafts as tentative history.
  expect_greedy_lossless(*good, 40, 0.0, {.temperature = 0, .repetition_penalty = 1.3, .frequency_penalty = 0.4});
}

TEST(Speculative, RefusesAModelWithoutMtp) {
  auto c = tiny_mtp_config();
  c["num_nextn_predict_layers"] = 0;
  auto model = Model::load(write_random_model(temp_dir("no_mtp"), 1, c));
  try {
    Engine e(*model, {.spec = SpecMode::Mtp});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no MTP module"), std::string::npos) << e.what();
  }
}

TEST(VerifyDrafts, AcceptsWithProbabilityPOverQAndResamplesTheResidual) {
  // p = [0.25, 0.25, 0.5] (logits ln p), q = [0.5, 0.5, 0] for one draft. Whatever the draft, the first
  // token must come out distributed as p; a draft of 0 is accepted with probability 0.5 and a rejection
  // resamples from norm(max(0, p − q)) = [0, 0, 1].
  const float lp[] = {std::log(0.25f), std::log(0.25f), std::log(0.5f), 0, 0, 0};
  const std::vector<std::vector<float>> q = {{0.5f, 0.5f, 0.0f}};
  Sampler s({.temperature = 1.0, .seed = 5}, 3);
  const int n = 30000;
  int count[3] = {0, 0, 0}, accepted = 0;
  for (int i = 0; i < n; ++i) {
    const int32_t d = s.draw(q[0]);
    const int32_t drafts[] = {d};
    SpecVerdict v = verify_drafts(s, drafts, q, lp);
    const int32_t first = v.accepted ? d : v.next;
    if (v.accepted) {
      ++accepted;
      EXPECT_TRUE(v.next >= 0 && v.next < 3);  // the bonus token from the second row (uniform)
    } else {
      EXPECT_EQ(v.next, 2);
    }
    ++count[first];
  }
  EXPECT_NEAR(double(accepted) / n, 0.5, 0.02);
  const double p[] = {0.25, 0.25, 0.5};
  double chi2 = 0;
  for (int i = 0; i < 3; ++i) chi2 += std::pow(count[i] - n * p[i], 2) / (n * p[i]);
  EXPECT_LT(chi2, 18.4);  // χ²(2) at p = 1e-4
}

TEST(VerifyDrafts, GreedyAcceptsExactlyTheArgmaxPrefix) {
  // rows' arg-max: 2, 0, 1
  const float lg[] = {0, 1, 5, 9, 1, 0, 0, 3, 1};
  Sampler s({.temperature = 0}, 3);
  std::vector<std::vector<float>> q = {{0, 0, 1}, {1, 0, 0}};
  int32_t all[] = {2, 0};
  SpecVerdict v = verify_drafts(s, all, q, lg);
  EXPECT_EQ(v.accepted, 2);
  EXPECT_EQ(v.next, 1);
  q[1] = {0, 1, 0};
  int32_t second_wrong[] = {2, 1};
  v = verify_drafts(s, second_wrong, q, lg);
  EXPECT_EQ(v.accepted, 1);
  EXPECT_EQ(v.next, 0);
}

// ---- the sampled distribution is unchanged --------------------------------------------------------------

// Wilson–Hilferty approximation of the χ² quantile at p = 1e-4 (z = 3.719).
double chi2_critical(int df) {
  const double z = 3.719, a = 2.0 / (9.0 * df);
  return df * std::pow(1 - a + z * std::sqrt(a), 3);
}

// χ² of observed counts against expected probabilities, bins with an expected count < 5 merged.
void expect_matches(const std::map<int32_t, int>& observed, const std::map<int32_t, double>& expected, int n,
                    const char* what) {
  double chi2 = 0, rest_o = 0, rest_e = 0;
  int bins = 0;
  for (const auto& [tok, cnt] : observed)
    if (!expected.count(tok)) ADD_FAILURE() << what << ": token " << tok << " has probability 0 but was drawn";
  for (const auto& [tok, p] : expected) {
    const double e = p * n;
    const double o = observed.count(tok) ? observed.at(tok) : 0;
    if (e < 5) {
      rest_o += o;
      rest_e += e;
      continue;
    }
    chi2 += (o - e) * (o - e) / e;
    ++bins;
  }
  if (rest_e > 0) {
    chi2 += (rest_o - rest_e) * (rest_o - rest_e) / rest_e;
    ++bins;
  }
  ASSERT_GE(bins, 3) << what;
  EXPECT_LT(chi2, chi2_critical(bins - 1)) << what << ": " << bins << " bins";
}

TEST(Speculative, SamplingKeepsTheDistribution) {
  // Partial acceptance (alpha 0.5, temperature 1.3, top-k 5) with penalties, draft depth 2: the second and
  // third tokens come out of one speculative step (accepted draft, residual resample or bonus).
  auto model = Model::load(write_draftable_model(temp_dir("draftable_stat"), 0.5, 9));
  const std::vector<int32_t> prompt = {0, 42, 7, 42};
  const SamplingParams base = {.temperature = 1.3, .top_k = 5, .repetition_penalty = 1.2, .frequency_penalty = 0.3};
  const int64_t V = model->config().vocab_size;

  // Exact distributions with the non-speculative sampler: P(t1), P(t2), P(t3) by enumeration.
  auto next_dist = [&](const std::vector<int32_t>& gen) {
    std::vector<int32_t> ids = prompt;
    ids.insert(ids.end(), gen.begin(), gen.end());
    KvCache cache = model->new_cache(int64_t(ids.size()));
    std::vector<float> logits(static_cast<size_t>(V));
    SeqChunk ch{&cache, int64_t(ids.size())};
    model->forward(ids, {&ch, 1}, nullptr, logits.data(), {.logits = LogitRows::LastOfEachChunk});
    Sampler s(base, V);
    s.set_prompt(prompt);
    for (int32_t t : gen) s.push(t);
    std::vector<float> d;
    s.distribution(logits.data(), {}, d);
    return d;
  };
  std::map<int32_t, double> p2, p3;
  const auto d1 = next_dist({});
  for (int32_t a = 0; a < V; ++a) {
    if (d1[size_t(a)] == 0) continue;
    const auto d2 = next_dist({a});
    for (int32_t b = 0; b < V; ++b) {
      if (d2[size_t(b)] == 0) continue;
      const double pab = double(d1[size_t(a)]) * d2[size_t(b)];
      p2[b] += pab;
      const auto d3 = next_dist({a, b});
      for (int32_t c = 0; c < V; ++c)
        if (d3[size_t(c)] > 0) p3[c] += pab * d3[size_t(c)];
    }
  }

  // Many seeded generations of 4 tokens, 250 sequences per batched engine step.
  const int n = 5000, batch = 250;
  std::map<int32_t, int> o2, o3;
  int64_t drafted = 0, accepted = 0;
  for (int b0 = 0; b0 < n; b0 += batch) {
    Engine engine(*model, {.spec = SpecMode::Mtp, .draft = 2});
    std::vector<std::unique_ptr<Sequence>> seqs;
    std::vector<std::vector<int32_t>> out(batch);
    for (int i = 0; i < batch; ++i) {
      SamplingParams sp = base;
      sp.seed = uint64_t(1000 + b0 + i);
      seqs.push_back(
          engine.start({.prompt = prompt, .sampling = sp, .max_tokens = 4, .eos_ids = {}, .ignore_eos = true},
                       [&out, i](int32_t t, const TokenLogprobs*) {
                         out[size_t(i)].push_back(t);
                         return true;
                       }));
    }
    std::vector<Sequence*> ptrs;
    for (auto& s : seqs) ptrs.push_back(s.get());
    for (int guard = 0; guard < 10; ++guard) engine.step(ptrs);
    for (int i = 0; i < batch; ++i) {
      ASSERT_EQ(out[size_t(i)].size(), 4u);
      ++o2[out[size_t(i)][1]];
      ++o3[out[size_t(i)][2]];
    }
    drafted += engine.stats().drafted;
    accepted += engine.stats().accepted;
  }
  // Both paths were taken.
  EXPECT_GT(accepted, drafted / 10);
  EXPECT_LT(accepted, drafted * 9 / 10);
  expect_matches(o2, p2, n, "second token");
  expect_matches(o3, p3, n, "third token");
}

}  // namespace
}  // namespace dsv3::runtime
