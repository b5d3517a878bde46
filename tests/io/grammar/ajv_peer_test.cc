// Differential test of the JSON Schema compiler against ajv (an independent validator): for each schema of
// peer/schemas.json (every supported keyword), documents produced by random walks through the matcher
// (uniformly random allowed bytes, with a bias towards closing quotes/brackets so walks end, until the
// grammar is finished or chosen to stop where it may, bounded) must validate with ajv; the hand-written
// documents must be classified alike by ajv and the matcher (valid ones accepted, invalid ones rejected).
#include <gtest/gtest.h>

#include <random>

#include "core/error.h"
#include "grammar_peer.h"
#include "io/grammar/matcher.h"

namespace dsv3::grammar {
namespace {

using json = nlohmann::ordered_json;

// A random document of the grammar, or nullopt when the walk hit the bound first.
std::optional<std::string> random_walk(const std::shared_ptr<const Grammar>& g, std::mt19937_64& rng,
                                       size_t max_bytes = 4000) {
  Matcher m(g);
  std::string out;
  std::uniform_real_distribution<double> u(0, 1);
  while (out.size() < max_bytes) {
    if (m.finished_only() || (m.can_finish() && u(rng) < 0.3)) return out;
    const ByteSet allowed = m.allowed_bytes();
    std::vector<uint8_t> all, closers;
    for (int b = 0; b < 256; ++b)
      if (allowed[size_t(b)]) {
        all.push_back(uint8_t(b));
        if (b == '"' || b == ']' || b == '}') closers.push_back(uint8_t(b));
      }
    if (all.empty()) return std::nullopt;  // cannot happen: a live state has bytes or is finished
    const auto& pick = !closers.empty() && u(rng) < 0.2 ? closers : all;
    const uint8_t b = pick[std::uniform_int_distribution<size_t>(0, pick.size() - 1)(rng)];
    if (!m.accept(b)) return std::nullopt;
    out.push_back(char(b));
  }
  return std::nullopt;
}

TEST(AjvPeer, RandomWalksValidateAndHandWrittenDocumentsAgree) {
  std::string skip;
  const std::string node = grammar_peer::node_dir(&skip);
  if (node.empty()) GTEST_SKIP() << "ajv peer unavailable: " << skip;
  const json cases = json::parse(grammar_peer::slurp(std::string(DSV3_TEST_SRC) + "/io/grammar/peer/schemas.json"));
  ASSERT_GE(cases.size(), 30u);
  std::vector<grammar_peer::Batch> batches;
  struct Expect {
    std::string name;
    size_t valid, invalid, walks;
  };
  std::vector<Expect> expect;
  std::mt19937_64 rng(20261204);
  int64_t total_walks = 0;
  for (const json& c : cases) {
    const std::string name = c["name"];
    SCOPED_TRACE(name);
    std::shared_ptr<const Grammar> g;
    try {
      g = std::make_shared<const Grammar>(Grammar::json_schema(c["schema"]));
    } catch (const Error& e) {
      ADD_FAILURE() << name << ": " << e.what();
      continue;
    }
    grammar_peer::Batch b{c["schema"], {}};
    for (const auto& d : c["valid"]) {
      EXPECT_TRUE(matches(*g, d.get<std::string>())) << name << ": the matcher rejects " << d.get<std::string>();
      b.docs.push_back(d);
    }
    for (const auto& d : c["invalid"]) {
      EXPECT_FALSE(matches(*g, d.get<std::string>())) << name << ": the matcher accepts " << d.get<std::string>();
      b.docs.push_back(d);
    }
    size_t walks = 0;
    for (int i = 0; i < 60 && walks < 30; ++i)
      if (auto doc = random_walk(g, rng)) {
        EXPECT_TRUE(matches(*g, *doc));
        b.docs.push_back(*doc);
        ++walks;
      }
    EXPECT_GE(walks, 15u) << name << ": too few random walks finished";
    total_walks += int64_t(walks);
    expect.push_back({name, c["valid"].size(), c["invalid"].size(), walks});
    batches.push_back(std::move(b));
  }
  const auto verdicts = grammar_peer::ajv_validate(node, batches);
  ASSERT_EQ(verdicts.size(), batches.size());
  for (size_t i = 0; i < batches.size(); ++i) {
    const Expect& e = expect[i];
    for (size_t k = 0; k < batches[i].docs.size(); ++k) {
      const bool want = k < e.valid || k >= e.valid + e.invalid;
      EXPECT_EQ(verdicts[i][k], want) << e.name << ": ajv says " << (verdicts[i][k] ? "valid" : "invalid") << " for "
                                      << (k < e.valid               ? "hand-written valid "
                                          : k < e.valid + e.invalid ? "hand-written invalid "
                                                                    : "generated ")
                                      << batches[i].docs[k];
    }
  }
  std::printf("%lld generated documents over %zu schemas validated with ajv\n", (long long)total_walks, batches.size());
}

}  // namespace
}  // namespace dsv3::grammar
