// Unit tests of the tokenizer: UTF-8 repair, regex rewriting, Split behaviours, BPE merge order, added
// tokens, normalizers, decoding, streaming, threading and error reporting. Expected values are derived by
// hand from the HF tokenizers semantics cited in the sources (and from the HF docs' Split example).
#include "io/tokenizer.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "core/error.h"
#include "io/pretokenizer.h"
#include "io/regex.h"
#include "io/utf8.h"
#include "tokenizer_test_util.h"

namespace dsv3::io {
namespace {

using json = nlohmann::json;
using namespace dsv3::io::testing;

const std::string kFFFD = "\xEF\xBF\xBD";

// ---------------------------------------------------------------------------------------------------------
// UTF-8

TEST(Utf8, RepairReplacesMaximalSubparts) {
  EXPECT_EQ(utf8::repair("plain ascii"), "plain ascii");
  EXPECT_EQ(utf8::repair("\xE6\xB7\xB1\xF0\x9F\x98\x80"), "\xE6\xB7\xB1\xF0\x9F\x98\x80");
  EXPECT_EQ(utf8::repair("\xC3\x28"), kFFFD + "(");
  EXPECT_EQ(utf8::repair("a\xE2\x82"), "a" + kFFFD);  // truncated: one U+FFFD
  EXPECT_EQ(utf8::repair("\xE2\x82z"), kFFFD + "z");
  EXPECT_EQ(utf8::repair("\xED\xA0\x80"), kFFFD + kFFFD + kFFFD);              // surrogate: ED alone
  EXPECT_EQ(utf8::repair("\xE0\x80\x80"), kFFFD + kFFFD + kFFFD);              // overlong 3-byte
  EXPECT_EQ(utf8::repair("\xC0\xAF"), kFFFD + kFFFD);                          // C0 never valid
  EXPECT_EQ(utf8::repair("\xF4\x90\x80\x80"), kFFFD + kFFFD + kFFFD + kFFFD);  // > U+10FFFF
  EXPECT_EQ(utf8::repair("\xF0\x9F\x98x"), kFFFD + "x");
  EXPECT_EQ(utf8::repair("\x80\xBF"), kFFFD + kFFFD);
  EXPECT_EQ(utf8::repair(std::string("a\0b", 3)), std::string("a\0b", 3));
  EXPECT_TRUE(utf8::is_valid("\xF4\x8F\xBF\xBF"));
  EXPECT_FALSE(utf8::is_valid("\xF4\x90\x80\x80"));
}

TEST(Utf8, CompletePrefixHoldsOnlyValidIncompleteTails) {
  EXPECT_EQ(utf8::complete_prefix_length("abc"), 3u);
  EXPECT_EQ(utf8::complete_prefix_length("ab\xE2\x82"), 2u);
  EXPECT_EQ(utf8::complete_prefix_length("\xF0\x9F\x98"), 0u);
  EXPECT_EQ(utf8::complete_prefix_length("\xF0\x9F\x98\x80"), 4u);
  EXPECT_EQ(utf8::complete_prefix_length("a\xC3\x28"), 3u);  // invalid, not incomplete: emit (as U+FFFD)
  EXPECT_EQ(utf8::complete_prefix_length("a\xFF"), 2u);
  EXPECT_EQ(utf8::complete_prefix_length("\xED\xA0"), 2u);  // would be a surrogate: invalid already
}

TEST(Utf8, ByteLevelAlphabet) {
  std::set<std::string> seen;
  for (int b = 0; b < 256; ++b) {
    const std::string& p = utf8::byte_to_piece(static_cast<uint8_t>(b));
    seen.insert(p);
    size_t i = 0;
    EXPECT_EQ(utf8::piece_char_to_byte(utf8::next(p, i)), b);
  }
  EXPECT_EQ(seen.size(), 256u);
  EXPECT_EQ(utf8::byte_to_piece('a'), "a");
  EXPECT_EQ(utf8::byte_to_piece(' '), "\xC4\xA0");   // U+0120 Ġ
  EXPECT_EQ(utf8::byte_to_piece('\n'), "\xC4\x8A");  // U+010A Ċ
  EXPECT_EQ(utf8::byte_to_piece(0xAD), "\xC5\x83");  // soft hyphen is remapped (U+0143)
}

// ---------------------------------------------------------------------------------------------------------
// Regex

std::vector<std::string> matches(const Regex& re, std::string_view s) {
  std::vector<std::string> out;
  re.for_each_match(s, [&](size_t b, size_t e) { out.emplace_back(s.substr(b, e - b)); });
  return out;
}

TEST(Regex, OnigurumaEscapesAreRewritten) {
  EXPECT_EQ(onig_to_pcre2(R"(\s+(?!\S))"), R"(\p{White_Space}+(?!\P{White_Space}))");
  EXPECT_EQ(onig_to_pcre2(R"([^\s\p{L}])"), R"([^\p{White_Space}\p{L}])");
  EXPECT_EQ(onig_to_pcre2(R"(\h\u00e9\p{^L})"), R"([0-9A-Fa-f]\x{00e9}\P{L})");
  EXPECT_EQ(onig_to_pcre2(R"([\[\]\\])"), R"([\[\]\\])");
  EXPECT_THROW(onig_to_pcre2("[a-z&&[^aeiou]]"), Error);

  Regex ws(R"(\s+)", false, "test");
  EXPECT_EQ(matches(ws,
                    "a\xE1\xA0\x8E"
                    "b"),
            std::vector<std::string>{});  // U+180E is not White_Space
  EXPECT_EQ(matches(ws,
                    "a\xC2\x85"
                    "b"),
            std::vector<std::string>{"\xC2\x85"});  // U+0085 is
  Regex ci("(?i:'s|'ll)", false, "test");
  EXPECT_EQ(matches(ci, "it'S we'LL"), (std::vector<std::string>{"'S", "'LL"}));
  Regex lit("a+b", true, "test");
  EXPECT_EQ(matches(lit, "aab a+b"), std::vector<std::string>{"a+b"});
  EXPECT_THROW(Regex("(unclosed", false, "test"), Error);
}

TEST(Regex, EmptyMatchesFollowOnigurumaIteration) {
  Regex re("x*", false, "test");
  // Empty match at 0, "xx" at 1..3, then the empty match at 3 is glued to it and skipped; then empty at 4.
  std::vector<std::pair<size_t, size_t>> got;
  re.for_each_match("axxb", [&](size_t b, size_t e) { got.push_back({b, e}); });
  EXPECT_EQ(got, (std::vector<std::pair<size_t, size_t>>{{0, 0}, {1, 3}, {4, 4}}));
}

// ---------------------------------------------------------------------------------------------------------
// Split behaviours (the HF tokenizers documentation example)

std::vector<std::string> split(SplitBehavior b, bool invert, std::string_view text, const char* pattern = "-") {
  Regex re(pattern, true, "test");
  std::vector<std::string> out;
  split_by_regex(re, b, invert, text, [&](std::string_view p) { out.emplace_back(p); });
  return out;
}

TEST(PreTokenizer, SplitBehaviors) {
  using V = std::vector<std::string>;
  const char* s = "the-final--countdown";
  EXPECT_EQ(split(SplitBehavior::kRemoved, false, s), (V{"the", "final", "countdown"}));
  EXPECT_EQ(split(SplitBehavior::kIsolated, false, s), (V{"the", "-", "final", "-", "-", "countdown"}));
  EXPECT_EQ(split(SplitBehavior::kMergedWithPrevious, false, s), (V{"the-", "final-", "-", "countdown"}));
  EXPECT_EQ(split(SplitBehavior::kMergedWithNext, false, s), (V{"the", "-final", "-", "-countdown"}));
  EXPECT_EQ(split(SplitBehavior::kContiguous, false, s), (V{"the", "-", "final", "--", "countdown"}));
  EXPECT_EQ(split(SplitBehavior::kRemoved, true, s), (V{"-", "-", "-"}));  // invert: keep the matches only
  EXPECT_EQ(split(SplitBehavior::kIsolated, false, ""), V{});
}

TEST(PreTokenizer, DeepSeekV3Pieces) {
  json pt = json::parse(pretokenizer_json(PreTokenizerKind::kDeepSeekV3));
  auto pre = PreTokenizer::from_json(pt, "test");
  EXPECT_TRUE(pre->byte_level());
  using V = std::vector<std::string>;
  EXPECT_EQ(pre->pieces("Hello, world! 12345 深度求索"),
            (V{"Hello", ",", " world", "!", " ", "123", "45", " ", "深度求索"}));
  EXPECT_EQ(pre->pieces("it's (x)\n\n  y"), (V{"it", "'s", " (", "x", ")\n\n", " ", " y"}));
  EXPECT_EQ(pre->pieces("a.\nB"), (V{"a", ".\n", "B"}));
  EXPECT_EQ(pre->pieces("こんにちは世界ABC"), (V{"こんにちは世界", "ABC"}));
}

TEST(PreTokenizer, Gpt2Pieces) {
  auto pre = PreTokenizer::from_json(json::parse(pretokenizer_json(PreTokenizerKind::kGpt2)), "test");
  using V = std::vector<std::string>;
  EXPECT_EQ(pre->pieces("I'll go  now!\n\nOK"), (V{"I", "'ll", " go", " ", " now", "!", "\n", "\n", "OK"}));
  auto spaced = PreTokenizer::from_json(
      {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", true}, {"trim_offsets", true}}, "test");
  EXPECT_EQ(spaced->pieces("hi there"), (V{" hi", " there"}));
}

TEST(PreTokenizer, ByteLevelMustBeLast) {
  json pt = json::parse(R"({"type": "Sequence", "pretokenizers": [
      {"type": "ByteLevel", "use_regex": false},
      {"type": "Split", "pattern": {"String": " "}, "behavior": "Removed"}]})");
  EXPECT_THROW(PreTokenizer::from_json(pt, "test"), Error);
}

// ---------------------------------------------------------------------------------------------------------
// A hand-made byte-level BPE tokenizer.

// All 256 byte tokens (ids 0..255 in byte order), then the given merges (result ids 256..).
json tiny_tokenizer(const std::vector<std::pair<std::string, std::string>>& merges, bool legacy_merges = false,
                    json pre = nullptr) {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[utf8::byte_to_piece(static_cast<uint8_t>(b))] = b;
  json m = json::array();
  int next = 256;
  for (auto& [a, b] : merges) {
    if (!vocab.contains(a + b)) vocab[a + b] = next++;
    m.push_back(legacy_merges ? json(a + " " + b) : json::array({a, b}));
  }
  if (pre.is_null()) pre = json::parse(pretokenizer_json(PreTokenizerKind::kGpt2));
  return {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", m}}},
          {"added_tokens", json::array()},
          {"normalizer", nullptr},
          {"pre_tokenizer", pre},
          {"decoder", {{"type", "ByteLevel"}}},
          {"post_processor", nullptr}};
}

const std::string G = "\xC4\xA0";  // Ġ, the byte-level space

TEST(Bpe, MergesByRankLeftmostFirst) {
  Tokenizer t = Tokenizer::from_json(
      tiny_tokenizer(
          {{"h", "e"}, {"l", "l"}, {"he", "ll"}, {"hell", "o"}, {G, "w"}, {"b", "c"}, {"a", "b"}, {"a", "a"}})
          .dump());
  auto id = [&](const std::string& s) { return *t.token_id(s); };
  EXPECT_EQ(t.encode("hello"), (std::vector<int32_t>{id("hello")}));
  EXPECT_EQ(t.encode("hello world"), (std::vector<int32_t>{id("hello"), id(G + "w"), 'o', 'r', 'l', 'd'}));
  EXPECT_EQ(t.encode("abc"), (std::vector<int32_t>{'a', id("bc")}));  // "b c" has the lower rank
  EXPECT_EQ(t.encode("aaa"), (std::vector<int32_t>{id("aa"), 'a'}));  // leftmost on ties
  EXPECT_EQ(t.encode("aaaa"), (std::vector<int32_t>{id("aa"), id("aa")}));
  // Long words take the heap path; it must agree with the short-word scan.
  std::string long_word(150, 'a');
  std::vector<int32_t> ids = t.encode(long_word);
  EXPECT_EQ(ids, std::vector<int32_t>(75, id("aa")));
  std::string mixed;
  for (int i = 0; i < 40; ++i) mixed += "hellabc";
  std::vector<int32_t> expect;
  for (int i = 0; i < 40; ++i) expect.insert(expect.end(), {id("hell"), 'a', id("bc")});
  EXPECT_EQ(t.encode(mixed), expect);
  EXPECT_EQ(t.decode(t.encode(mixed)), mixed);
}

TEST(Bpe, LegacyAndListMergesAgree) {
  std::vector<std::pair<std::string, std::string>> merges = {{"t", "h"}, {"th", "e"}, {G, "the"}, {"e", "r"}};
  Tokenizer a = Tokenizer::from_json(tiny_tokenizer(merges, false).dump());
  Tokenizer b = Tokenizer::from_json(tiny_tokenizer(merges, true).dump());
  for (const char* s : {"the other there", " the", "theerther"}) EXPECT_EQ(a.encode(s), b.encode(s)) << s;
}

TEST(Bpe, IgnoreMergesAndUnknownCharacters) {
  json j = tiny_tokenizer({{"a", "b"}});
  j["model"]["vocab"]["abab"] = 300;  // reachable only as a whole word
  EXPECT_EQ(Tokenizer::from_json(j.dump()).encode("abab"), (std::vector<int32_t>{256, 256}));
  j["model"]["ignore_merges"] = true;
  EXPECT_EQ(Tokenizer::from_json(j.dump()).encode("abab"), (std::vector<int32_t>{300}));

  // A vocab without byte 'x': HF drops the character (no unk token) and its neighbours become adjacent.
  json k = tiny_tokenizer({{"a", "b"}});
  k["model"]["vocab"].erase("x");
  EXPECT_EQ(Tokenizer::from_json(k.dump()).encode("axb"), (std::vector<int32_t>{256}));
  k["model"]["vocab"]["<unk>"] = 400;
  k["model"]["unk_token"] = "<unk>";
  EXPECT_EQ(Tokenizer::from_json(k.dump()).encode("axxb"), (std::vector<int32_t>{'a', 400, 400, 'b'}));
  k["model"]["fuse_unk"] = true;
  EXPECT_EQ(Tokenizer::from_json(k.dump()).encode("axxb"), (std::vector<int32_t>{'a', 400, 'b'}));
}

TEST(Bpe, ByteFallbackWithoutByteLevel) {
  // A SentencePiece-like BPE: characters are symbols, unknown ones fall back to <0xXX> tokens.
  json vocab = {{"a", 0}, {"b", 1}, {"ab", 2}, {"<0xC3>", 3}, {"<0xA9>", 4}};
  json j = {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", {"a b"}}, {"byte_fallback", true}}},
            {"pre_tokenizer", nullptr},
            {"normalizer", nullptr},
            {"decoder", nullptr}};
  Tokenizer t = Tokenizer::from_json(j.dump());
  EXPECT_EQ(t.encode("ab\xC3\xA9"
                     "a"),
            (std::vector<int32_t>{2, 3, 4, 0}));
  EXPECT_FALSE(t.byte_level_decoder());
  EXPECT_EQ(t.decode({2, 0}), "ab a");  // no decoder: HF joins token strings with spaces
}

// ---------------------------------------------------------------------------------------------------------
// Added tokens

json with_added(json j, const std::vector<json>& tokens) {
  for (const json& t : tokens) j["added_tokens"].push_back(t);
  return j;
}

json added(int id, const std::string& content, bool special, bool lstrip = false, bool rstrip = false,
           bool single_word = false, bool normalized = false) {
  return {{"id", id},         {"content", content},         {"special", special},      {"lstrip", lstrip},
          {"rstrip", rstrip}, {"single_word", single_word}, {"normalized", normalized}};
}

TEST(AddedTokens, MatchedLeftmostLongestAndStripped) {
  json j = with_added(tiny_tokenizer({}),
                      {added(500, "<eos>", true), added(501, "<eos><eos>", true), added(502, "[L]", true, true, false),
                       added(503, "[R]", true, false, true), added(504, "ing", false, false, false, true)});
  Tokenizer t = Tokenizer::from_json(j.dump());
  EXPECT_EQ(t.encode("a<eos><eos><eos>b"), (std::vector<int32_t>{'a', 501, 500, 'b'}));
  EXPECT_EQ(t.encode("x  \t[L]"), (std::vector<int32_t>{'x', 502}));  // lstrip eats the blanks
  EXPECT_EQ(t.encode("[R] \n y"), (std::vector<int32_t>{503, 'y'}));  // rstrip eats them after
  EXPECT_EQ(t.encode("ing sing"), (std::vector<int32_t>{504, *t.token_id(G), 's', 'i', 'n', 'g'}));  // single_word
  EXPECT_EQ(t.encode("<eos>", /*allow_special=*/false), (std::vector<int32_t>{'<', 'e', 'o', 's', '>'}));
  EXPECT_EQ(t.encode("ing", false), (std::vector<int32_t>{504}));  // non-special tokens still match
  EXPECT_TRUE(t.is_special(500));
  EXPECT_FALSE(t.is_special(504));
  EXPECT_EQ(t.decode({'a', 500, 504}), "a<eos>ing");
  EXPECT_EQ(t.decode({'a', 500, 504}, /*skip_special=*/true), "aing");
  EXPECT_EQ(t.token_piece(500), "<eos>");
  EXPECT_EQ(t.vocab_size(), 505);
  EXPECT_FALSE(t.is_valid_id(400));
  EXPECT_THROW(t.decode({400}), Error);
  EXPECT_THROW(t.decode({505}), Error);
  EXPECT_THROW(t.decode({-1}), Error);
}

TEST(AddedTokens, NormalizedTokensMatchAfterNormalization) {
  json j = tiny_tokenizer({});
  j["normalizer"] = {{"type", "Replace"}, {"pattern", {{"String", "_"}}}, {"content", " "}};
  j = with_added(j, {added(600, "a b", false, false, false, false, true), added(601, "c_d", true)});
  Tokenizer t = Tokenizer::from_json(j.dump());
  EXPECT_EQ(t.encode("xa_b"), (std::vector<int32_t>{'x', 600}));  // "a_b" -> "a b" then matched
  EXPECT_EQ(t.encode("c_d"), (std::vector<int32_t>{601}));        // not normalized: matched on raw text
}

// ---------------------------------------------------------------------------------------------------------
// Normalizers

TEST(Normalizer, PrependReplaceStrip) {
  json seq = {{"type", "Sequence"},
              {"normalizers",
               {{{"type", "Strip"}, {"strip_left", true}, {"strip_right", true}},
                {{"type", "Replace"}, {"pattern", {{"Regex", "\\s+"}}}, {"content", " "}},
                {{"type", "Prepend"}, {"prepend", ">"}}}}};
  auto n = make_normalizer(seq, "test");
  std::string s = " \t a \n\n b\xE3\x80\x80";
  n->normalize(s);
  EXPECT_EQ(s, ">a b");
  EXPECT_FALSE(n->chunkable());
  std::string empty;
  n->normalize(empty);
  EXPECT_EQ(empty, "");  // Prepend leaves empty text alone
  EXPECT_EQ(make_normalizer(json::parse(R"({"type": "Sequence", "normalizers": []})"), "test"), nullptr);
}

// ---------------------------------------------------------------------------------------------------------
// Errors

std::string load_error(const json& j) {
  try {
    Tokenizer::from_json(j.dump(), "", "bad.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(TokenizerErrors, UnsupportedFeaturesAreNamed) {
  json j = tiny_tokenizer({});
  auto with = [&](const char* key, json v) {
    json k = j;
    k[key] = v;
    return load_error(k);
  };
  EXPECT_NE(with("normalizer", {{"type", "NFC"}}).find("NFC"), std::string::npos);
  EXPECT_NE(with("normalizer", {{"type", "Lowercase"}}).find("Lowercase"), std::string::npos);
  EXPECT_NE(with("pre_tokenizer", {{"type", "Metaspace"}}).find("Metaspace"), std::string::npos);
  EXPECT_NE(with("decoder", {{"type", "WordPiece"}}).find("WordPiece"), std::string::npos);
  EXPECT_NE(with("model", {{"type", "WordPiece"}, {"vocab", json::object()}}).find("WordPiece"), std::string::npos);
  json d = j;
  d["model"]["dropout"] = 0.1;
  EXPECT_NE(load_error(d).find("dropout"), std::string::npos);
  json p = j;
  p["model"]["continuing_subword_prefix"] = "##";
  EXPECT_NE(load_error(p).find("continuing_subword_prefix"), std::string::npos);
  json m = tiny_tokenizer({{"a", "b"}});
  m["model"]["merges"].push_back({"q", "zz"});
  EXPECT_NE(load_error(m).find("zz"), std::string::npos);
  json w = tiny_tokenizer({});
  w["added_tokens"].push_back({{"id", 1}, {"content", "x"}, {"special", nullptr}});
  EXPECT_NE(load_error(w).find("bad.json"), std::string::npos);
}

// An id of 10^9 sized the id tables for it (32 GB; bad_alloc, no reason given): now refused, naming the
// file and the entry (issue 19).
TEST(TokenizerErrors, HugeIdIsRefusedNotAllocated) {
  json a = tiny_tokenizer({});
  a["added_tokens"].push_back({{"id", 1000000000}, {"content", "<huge>"}, {"special", true}});
  const std::string ea = load_error(a);
  EXPECT_NE(ea.find("bad.json"), std::string::npos) << ea;
  EXPECT_NE(ea.find("added_tokens[0]"), std::string::npos) << ea;
  EXPECT_NE(ea.find("1000000000"), std::string::npos) << ea;
  json v = tiny_tokenizer({});
  v["model"]["vocab"]["far"] = 1000000000;
  const std::string ev = load_error(v);
  EXPECT_NE(ev.find("model.vocab[\"far\"]"), std::string::npos) << ev;
  // A few unassigned ids (holes) are still fine.
  json h = tiny_tokenizer({});
  h["added_tokens"].push_back({{"id", 300}, {"content", "<hole>"}, {"special", true}});
  EXPECT_NO_THROW(Tokenizer::from_json(h.dump()));
}

TEST(TokenizerErrors, FilesAndJson) {
  EXPECT_THROW(Tokenizer::load("/nonexistent/dir/tokenizer.json"), Error);
  std::string dir = scratch_dir("errors");
  write_file(dir + "/tokenizer.json", "{\"model\": ");
  try {
    Tokenizer::load(dir);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("invalid JSON"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(dir), std::string::npos) << e.what();
  }
}

// ---------------------------------------------------------------------------------------------------------
// Trained tokenizers: specials, bos/eos, decode, streaming, threading.

TEST(Tokenizer, SpecialIdsFromConfig) {
  const Tokenizer& t = trained_tokenizer(PreTokenizerKind::kDeepSeekV3);
  EXPECT_EQ(t.bos_id(), 0);
  EXPECT_EQ(t.eos_id(), 1);
  EXPECT_EQ(t.pad_id(), 2);
  EXPECT_TRUE(t.add_bos());
  EXPECT_EQ(t.token_id("<｜User｜>"), 3);
  EXPECT_EQ(t.encode("<｜begin▁of▁sentence｜>Hi<｜end▁of▁sentence｜>").front(), 0);
  EXPECT_EQ(t.encode("<｜begin▁of▁sentence｜>Hi<｜end▁of▁sentence｜>").back(), 1);
  EXPECT_FALSE(t.is_special(*t.token_id("<think>")));

  // Without tokenizer_config.json: well-known names, and add_bos from the TemplateProcessing post-processor.
  std::string dir = scratch_dir("noconfig");
  write_file(dir + "/tokenizer.json",
             read_file(trained_tokenizer_dir(PreTokenizerKind::kDeepSeekV3) + "/tokenizer.json"));
  Tokenizer bare = Tokenizer::load(dir + "/tokenizer.json");
  EXPECT_EQ(bare.bos_id(), 0);
  EXPECT_EQ(bare.eos_id(), 1);
  EXPECT_TRUE(bare.add_bos());

  // A config naming a token the vocab lacks is an error.
  write_file(dir + "/tokenizer_config.json", R"({"bos_token": {"content": "<nope>"}})");
  EXPECT_THROW(Tokenizer::load(dir), Error);
}

TEST(Tokenizer, RoundTripAndStreaming) {
  for (PreTokenizerKind kind : {PreTokenizerKind::kDeepSeekV3, PreTokenizerKind::kGpt2, PreTokenizerKind::kLlama3}) {
    const Tokenizer& t = trained_tokenizer(kind);
    for (const std::string& c : all_cases()) {
      std::vector<int32_t> ids = t.encode(c);
      std::string text = t.decode(ids);
      EXPECT_EQ(text, utf8::repair(c)) << kind_name(kind);
      StreamDecoder sd(t);
      std::string streamed;
      for (int32_t id : ids) {
        std::string piece = sd.push(id);
        EXPECT_TRUE(utf8::is_valid(piece));
        streamed += piece;
      }
      streamed += sd.finish();
      EXPECT_EQ(streamed, text);
      StreamDecoder skip(t, /*skip_special=*/true);
      std::string skipped;
      for (int32_t id : ids) skipped += skip.push(id);
      skipped += skip.finish();
      EXPECT_EQ(skipped, t.decode(ids, true));
    }
  }
}

TEST(Tokenizer, StreamDecoderHoldsPartialCharacters) {
  const Tokenizer& t = trained_tokenizer(PreTokenizerKind::kGpt2);
  // "🦄" (absent from the training text) is 4 bytes, so several tokens with this small vocab.
  std::vector<int32_t> ids = t.encode("\xF0\x9F\xA6\x84!");
  ASSERT_GE(ids.size(), 2u);
  StreamDecoder sd(t);
  std::string out;
  for (size_t i = 0; i + 1 < ids.size(); ++i) out += sd.push(ids[i]);
  EXPECT_EQ(out + sd.push(ids.back()) + sd.finish(), "\xF0\x9F\xA6\x84!");
  StreamDecoder cut(t);
  std::string partial = cut.push(t.encode("\xF0\x9F\xA6\x84")[0]);
  EXPECT_EQ(partial, "");
  EXPECT_GT(cut.pending(), 0u);
  EXPECT_EQ(cut.finish(), kFFFD);
}

TEST(Tokenizer, ParallelEncodingIsExact) {
  std::string text = read_file(data_path("kjv_genesis_1_11.txt"));
  std::string corpus = read_file(data_path("tokenizer_corpus.txt"));
  std::string big;
  for (int i = 0; i < 4; ++i) big += text + corpus;
  for (PreTokenizerKind kind : {PreTokenizerKind::kDeepSeekV3, PreTokenizerKind::kGpt2, PreTokenizerKind::kLlama3}) {
    const Tokenizer& t = trained_tokenizer(kind);
    std::vector<int32_t> serial = t.encode(big);
    EXPECT_EQ(t.encode_parallel(big, 4), serial) << kind_name(kind);
    auto chunks = t.split_for_parallel(big, 4096);
    EXPECT_GT(chunks.size(), 10u) << kind_name(kind) << ": no cut rule found";
    std::vector<int32_t> joined;
    for (auto c : chunks) t.encode_into(c, joined);
    EXPECT_EQ(joined, serial) << kind_name(kind);

    // Concurrent encode() calls on one tokenizer.
    std::vector<std::string_view> docs = {text, corpus, big, text, corpus, text};
    auto batch = t.encode_batch(docs, 3);
    for (size_t i = 0; i < docs.size(); ++i) EXPECT_EQ(batch[i], t.encode(docs[i]));
    std::vector<std::thread> threads;
    std::vector<std::vector<int32_t>> results(4);
    for (int k = 0; k < 4; ++k) threads.emplace_back([&, k] { results[k] = t.encode(big); });
    for (auto& th : threads) th.join();
    for (auto& r : results) EXPECT_EQ(r, serial);
  }
}

TEST(Tokenizer, PreTokenizeShowsPieces) {
  const Tokenizer& t = trained_tokenizer(PreTokenizerKind::kDeepSeekV3);
  EXPECT_EQ(t.pre_tokenize("Hi<｜User｜>12345"), (std::vector<std::string>{"Hi", "123", "45"}));
}

}  // namespace
}  // namespace dsv3::io
