// BPE trainer: merge order on hand-countable texts, tie-breaking, determinism, layout of the output.
#include "io/bpe_trainer.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/tokenizer.h"
#include "io/utf8.h"
#include "tokenizer_test_util.h"

namespace dsv3::io {
namespace {

using json = nlohmann::json;
using namespace dsv3::io::testing;

const std::string G = "\xC4\xA0";  // byte-level space

json merges_of(const BpeTrainerResult& r) { return json::parse(r.tokenizer_json)["model"]["merges"]; }

TEST(BpeTrainer, MergesMostFrequentPairFirst) {
  // GPT-2 pieces: "ab" x1, " ab" x2, " cd" x1 -> (a,b)=3, (Ġ,a)=2, then (Ġ,ab)=2; the rest occur once.
  BpeTrainerOptions o{.vocab_size = 1000, .pretokenizer = PreTokenizerKind::kGpt2};
  BpeTrainerResult r = train_bpe({"ab ab ab cd"}, o);
  EXPECT_EQ(merges_of(r), json::parse(R"([["a", "b"], [")" + G + R"(", "ab"]])"));
  EXPECT_EQ(r.num_merges, 2);
  EXPECT_EQ(r.vocab_size,
            static_cast<int64_t>(trainer_special_tokens().size() + trainer_plain_added_tokens().size()) + 258);
  EXPECT_EQ(r.num_words, 4);
  EXPECT_EQ(r.num_unique_words, 3);
}

TEST(BpeTrainer, TiesGoToTheSmallerPair) {
  // "ab" x1, " cd" x2, " ab" x1: (a,b), (Ġ,c), (c,d) all occur twice; Ġ has the smallest id (byte 0x20),
  // then (a,b) beats the new token's pair (Ġc,d).
  BpeTrainerOptions o{.vocab_size = 1000, .pretokenizer = PreTokenizerKind::kGpt2};
  BpeTrainerResult r = train_bpe({"ab cd ab cd"}, o);
  EXPECT_EQ(merges_of(r), json::parse(R"([[")" + G + R"(", "c"], ["a", "b"], [")" + G + R"(c", "d"]])"));
}

TEST(BpeTrainer, LayoutAndSpecialTokens) {
  const Tokenizer& t = trained_tokenizer(PreTokenizerKind::kDeepSeekV3);
  const auto& specials = trainer_special_tokens();
  for (size_t i = 0; i < specials.size(); ++i) {
    EXPECT_EQ(t.token_id(specials[i]), static_cast<int32_t>(i));
    EXPECT_TRUE(t.is_special(static_cast<int32_t>(i)));
  }
  EXPECT_EQ(t.token_piece(0), "<｜begin▁of▁sentence｜>");
  EXPECT_EQ(t.token_piece(1), "<｜end▁of▁sentence｜>");
  EXPECT_EQ(t.token_piece(2), "<｜▁pad▁｜>");
  EXPECT_EQ(t.token_piece(7), "<｜fim▁end｜>");
  int32_t base = static_cast<int32_t>(specials.size() + trainer_plain_added_tokens().size());
  for (int b = 0; b < 256; ++b) EXPECT_EQ(t.token_piece(base + b), utf8::byte_to_piece(static_cast<uint8_t>(b)));
  EXPECT_EQ(t.vocab_size(), 1200);
  // Special strings in the training text are split out, never merged into: one id each.
  EXPECT_EQ(t.encode("<｜User｜>"), (std::vector<int32_t>{3}));
}

TEST(BpeTrainer, DeterministicAcrossRunsAndThreads) {
  std::string text = training_text();
  BpeTrainerOptions one{.vocab_size = 900, .pretokenizer = PreTokenizerKind::kDeepSeekV3, .threads = 1};
  BpeTrainerOptions four = one;
  four.threads = 4;
  BpeTrainerResult a = train_bpe({text}, one), b = train_bpe({text}, four), c = train_bpe({text}, one);
  EXPECT_EQ(a.tokenizer_json, b.tokenizer_json);
  EXPECT_EQ(a.tokenizer_json, c.tokenizer_json);
  EXPECT_EQ(a.vocab_size, 900);
  // Several inputs count like their concatenation at a line boundary.
  std::string half1 = text.substr(0, text.find("\nAnd", text.size() / 2) + 1), half2 = text.substr(half1.size());
  EXPECT_EQ(train_bpe({half1, half2}, one).vocab_size, 900);
}

TEST(BpeTrainer, OutputLoadsAndRoundTrips) {
  for (PreTokenizerKind kind : {PreTokenizerKind::kDeepSeekV3, PreTokenizerKind::kGpt2, PreTokenizerKind::kLlama3}) {
    const Tokenizer& t = trained_tokenizer(kind);
    std::string text = read_file(data_path("kjv_genesis_1_11.txt"));
    std::vector<int32_t> ids = t.encode(text);
    EXPECT_EQ(t.decode(ids), text);
    EXPECT_LT(ids.size(), text.size() / 2) << kind_name(kind) << ": merges should compress the training text";
    json j = json::parse(read_file(trained_tokenizer_dir(kind) + "/tokenizer.json"));
    EXPECT_EQ(j["model"]["ignore_merges"].get<bool>(), kind == PreTokenizerKind::kLlama3);
    for (const char* key : {"normalizer", "pre_tokenizer", "post_processor", "decoder", "model", "added_tokens"})
      EXPECT_TRUE(j.contains(key)) << key;  // transformers.js requires every one of these keys
  }
}

TEST(BpeTrainer, Errors) {
  EXPECT_THROW(train_bpe({"abc"}, {.vocab_size = 100}), Error);
  EXPECT_THROW(parse_pretokenizer_kind("bert"), Error);
  EXPECT_EQ(parse_pretokenizer_kind("llama3"), PreTokenizerKind::kLlama3);
}

}  // namespace
}  // namespace dsv3::io
