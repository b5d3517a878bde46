// The prefix cache inside the engine: the same requests give identical tokens and logprobs with the cache on
// and off (the cache-off engine is the independent path: every prompt prefilled from scratch), greedy and
// seeded sampling, MTP speculation on and off, on a V3 model and a V3.2 (DSA) model whose sequences outgrow
// index_topk; and the cached-token counts are the whole blocks of the shared prefix.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <optional>

#include "core/error.h"
#include "kernels/isa.h"
#include "model/transformer.h"
#include "runtime/generator.h"
#include "test_models.h"

#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace dsv3::runtime {
namespace {

using namespace dsv3::testing_models;

// The SIMD kernels group rows differently for different batch shapes (GEMV for <= 4 rows, panel GEMM
// above; an expert's rows depend on what else is routed to it), so a prompt prefilled from a cached prefix
// — or in other chunks, or batched with other requests, cache or not — rounds differently in the last
// bits: the tokens are identical and the logprobs agree to a few ulp. Under Isa::Scalar every path computes
// each row the same way whatever the batch, and the logprobs are identical bit for bit.
constexpr float kLogprobTolerance = 1e-5f;

struct Output {
  std::vector<int32_t> tokens;
  std::vector<float> logprobs;  // chosen and top-3, flattened
  int64_t cached = 0;
};

std::vector<int32_t> range(int32_t from, int32_t n, int32_t step = 1) {
  std::vector<int32_t> v;
  for (int32_t i = 0; i < n; ++i) v.push_back((from + i * step) % 200 + 2);
  return v;
}
std::vector<int32_t> cat(std::vector<int32_t> a, const std::vector<int32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

void expect_same(const Output& got, const Output& ref, bool exact, const std::string& what) {
  EXPECT_EQ(got.tokens, ref.tokens) << what;
  if (exact) {
    EXPECT_EQ(got.logprobs, ref.logprobs) << what;
    return;
  }
  ASSERT_EQ(got.logprobs.size(), ref.logprobs.size()) << what;
  float worst = 0;
  for (size_t k = 0; k < ref.logprobs.size(); ++k) worst = std::max(worst, std::abs(got.logprobs[k] - ref.logprobs[k]));
  EXPECT_LE(worst, kLogprobTolerance) << what;
}

// Forces the scalar kernels for a scope.
struct ScalarKernels {
  kernels::Isa was = kernels::active_isa();
  ScalarKernels() { kernels::set_isa(kernels::Isa::Scalar); }
  ~ScalarKernels() { kernels::set_isa(was); }
};

// Runs `prompts` on `e`: wave by wave (the requests of a wave start together and are batched), each
// request alone in its wave when `waves` is empty.
std::vector<Output> run(Engine& e, const std::vector<std::vector<int32_t>>& prompts, SamplingParams sp,
                        int64_t max_tokens, const std::vector<std::vector<size_t>>& waves) {
  std::vector<Output> out(prompts.size());
  std::vector<std::vector<size_t>> order = waves;
  if (order.empty())
    for (size_t i = 0; i < prompts.size(); ++i) order.push_back({i});
  for (const auto& wave : order) {
    std::vector<std::unique_ptr<Sequence>> seqs;
    std::vector<Sequence*> live;
    for (size_t i : wave) {
      SamplingParams s = sp;
      s.seed = sp.seed + i;
      seqs.push_back(e.start({.prompt = prompts[i], .sampling = s, .max_tokens = max_tokens, .ignore_eos = true},
                             [&out, i](int32_t t, const TokenLogprobs* lp) {
                               out[i].tokens.push_back(t);
                               out[i].logprobs.push_back(lp->chosen.logprob);
                               for (const TokenLogprob& x : lp->top) out[i].logprobs.push_back(x.logprob);
                               return true;
                             }));
      live.push_back(seqs.back().get());
    }
    for (bool any = true; any;) {
      any = false;
      for (Sequence* s : live) any |= !s->done();
      if (any) e.step(live);
    }
    for (size_t k = 0; k < wave.size(); ++k) out[wave[k]].cached = seqs[k]->stats.cached;
  }
  return out;
}

void check_model(const Model& model_c, const char* what, bool exact) {
  Model& model = const_cast<Model&>(model_c);
  const int64_t B = 4;
  // A shared system prompt of 37 tokens (9 whole blocks); prompts that extend it, repeat one exactly, diverge
  // inside a block, diverge exactly at a block boundary (the MTP row before it pairs h with a new token),
  // and one with nothing in common.
  const std::vector<int32_t> sys = range(3, 37, 7);
  std::vector<std::vector<int32_t>> prompts = {
      cat(sys, {5, 6, 7}),      // 0: fills the cache
      cat(sys, range(50, 20)),  // 1: shares 37 tokens → 9 blocks
      cat(sys, {5, 6, 7}),      // 2: repeat of 0 (40 tokens → 9 blocks, 1 left)
      cat(std::vector<int32_t>(sys.begin(), sys.begin() + 10), range(90, 12)),  // 3: 10 shared → 2 blocks
      cat(std::vector<int32_t>(sys.begin(), sys.begin() + 8), range(120, 9)),   // 4: at a boundary → 2 blocks
      range(150, 30, 3),                                                        // 5: a miss
      cat(sys, range(50, 20)),                                                  // 6: repeat of 1, batched with 7
      cat(sys, range(60, 5)),                                                   // 7
  };
  const std::vector<int64_t> want_cached = {0, 36, 36, 8, 8, 0, 56, 36};
  const std::vector<std::vector<size_t>> waves = {{0}, {1}, {2, 3, 4}, {5}, {6, 7}};
  for (SpecMode spec : {SpecMode::None, SpecMode::Mtp})
    for (SamplingParams sp : {SamplingParams{.temperature = 0, .logprobs = 3},
                              SamplingParams{.temperature = 0.9, .top_k = 20, .seed = 11, .logprobs = 3}}) {
      SCOPED_TRACE(std::string(what) + (spec == SpecMode::Mtp ? " mtp" : " plain") +
                   (sp.greedy() ? " greedy" : " seeded"));
      Engine off(model, {.spec = spec, .draft = 2});
      const std::vector<Output> ref = run(off, prompts, sp, 12, {});
      for (int64_t chunk : {512, 5}) {
        SCOPED_TRACE("prefill chunk " + std::to_string(chunk));
        Engine on(
            model,
            {.spec = spec, .draft = 2, .prefill_chunk = chunk, .prefix_cache_bytes = 64 << 20, .prefix_block = B});
        const std::vector<Output> got = run(on, prompts, sp, 12, waves);
        for (size_t i = 0; i < prompts.size(); ++i) {
          expect_same(got[i], ref[i], exact, "request " + std::to_string(i));
          EXPECT_EQ(ref[i].cached, 0);
        }
        // Request 6 repeats 1 (57 tokens): 14 whole blocks, the last prompt token left to run.
        const std::vector<int64_t>& want = want_cached;
        for (size_t i = 0; i < prompts.size(); ++i) EXPECT_EQ(got[i].cached, want[i]) << "request " << i;
        const PrefixCacheStats& st = on.stats().prefix;
        EXPECT_EQ(st.lookups, int64_t(prompts.size()));
        EXPECT_EQ(st.hits, 6);
        int64_t hit = 0;
        for (int64_t c : want) hit += c;
        EXPECT_EQ(st.hit_tokens, hit);
        EXPECT_GT(st.bytes, 0);
      }
    }
}

TEST(PrefixEngine, CacheOnMatchesCacheOffV3) {
  auto model = Model::load(write_draftable_model(temp_dir("prefix_v3"), 0.5, 21));
  check_model(*model, "v3", false);
  ScalarKernels scalar;
  check_model(*model, "v3 scalar", true);
}

TEST(PrefixEngine, CacheOnMatchesCacheOffV32Dsa) {
  auto c = tiny_mtp_config();
  c["model_type"] = "deepseek_v32";
  c["architectures"] = {"DeepseekV32ForCausalLM"};
  c["index_n_heads"] = 4;
  c["index_head_dim"] = 128;
  c["index_topk"] = 8;  // the prompts (up to 57 tokens) run well past it: attention is sparse
  auto model = Model::load(write_draftable_model(temp_dir("prefix_dsa"), 0.5, 5, c));
  check_model(*model, "v3.2", false);
  ScalarKernels scalar;
  check_model(*model, "v3.2 scalar", true);
}

TEST(PrefixEngine, MultiTurnHitsTheGeneratedTokens) {
  auto model = Model::load(write_draftable_model(temp_dir("prefix_turns"), 0.5, 8));
  for (bool exact : {false, true}) {
    std::optional<ScalarKernels> scalar;
    if (exact) scalar.emplace();
    Engine on(*model, {.prefix_cache_bytes = 64 << 20, .prefix_block = 4});
    Engine off(*model, {});
    const SamplingParams sp{.temperature = 0, .logprobs = 2};
    std::vector<int32_t> prompt = range(7, 13);
    int64_t prev = 0;
    for (int turn = 0; turn < 3; ++turn) {
      SCOPED_TRACE("turn " + std::to_string(turn) + (exact ? " scalar" : ""));
      const Output a = run(on, {prompt}, sp, 9, {})[0], b = run(off, {prompt}, sp, 9, {})[0];
      expect_same(a, b, exact, "");
      // The previous turn's prompt and 8 of its 9 generated tokens have rows (the last one was never run):
      // their whole blocks are found again.
      EXPECT_EQ(a.cached, turn == 0 ? 0 : (prev + 9 - 1) / 4 * 4);
      prev = int64_t(prompt.size());
      prompt = cat(cat(prompt, a.tokens), range(30 + turn, 3));
    }
  }
}

TEST(PrefixEngine, ByteLimitHoldsAndTinyLimitStillMatches) {
  auto model = Model::load(write_draftable_model(temp_dir("prefix_small"), 0.5, 9));
  const int64_t row_bytes = model->new_cache(0).layers() * model->new_cache(0).width() * 4;
  const int64_t limit = 5 * 4 * row_bytes;  // five blocks of 4 tokens
  Engine on(*model, {.prefix_cache_bytes = limit, .prefix_block = 4});
  Engine off(*model, {});
  const SamplingParams sp{.temperature = 0, .logprobs = 1};
  for (int r = 0; r < 12; ++r) {
    const std::vector<int32_t> p = range(r * 13, 10 + r % 7, 1 + r % 3);
    expect_same(run(on, {p}, sp, 4, {})[0], run(off, {p}, sp, 4, {})[0], false, std::to_string(r));
    EXPECT_LE(on.stats().prefix.bytes, limit);
  }
  EXPECT_GT(on.stats().prefix.evicted_blocks, 0);
  EXPECT_THROW(Engine(*model, {.prefix_cache_bytes = -1}), Error);
  EXPECT_THROW(Engine(*model, {.prefix_cache_bytes = 10, .prefix_block = 0}), Error);
}

}  // namespace
}  // namespace dsv3::runtime
