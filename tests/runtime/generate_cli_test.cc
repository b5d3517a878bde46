// `dsv3 generate` and `dsv3 chat` through the binary: MTP speculative decoding prints exactly the tokens of
// plain greedy decoding (the reference v3_mtp case and a `dsv3 init` model with an MTP module), --stats,
// clear errors, seeded sampling, stop strings, and a two-turn chat fed on stdin.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "test_models.h"

namespace dsv3 {
namespace {

using namespace dsv3::testing_models;

struct Result {
  int status = -1;
  std::string out, err;
};

// Runs DSV3_BIN with arguments (a shell fragment); stdout and stderr captured separately.
Result dsv3(const std::string& args, const std::string& stdin_text = "") {
  static int n = 0;
  const std::string base = temp_dir("cli") + "/run" + std::to_string(n++);
  std::string cmd = std::string(DSV3_BIN) + " " + args + " > " + base + ".out 2> " + base + ".err";
  if (!stdin_text.empty()) {
    std::ofstream(base + ".in") << stdin_text;
    cmd += " < " + base + ".in";
  } else {
    cmd += " < /dev/null";
  }
  Result r;
  const int st = std::system(cmd.c_str());
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  auto slurp = [](const std::string& p) {
    std::ifstream f(p);
    return std::string(std::istreambuf_iterator<char>(f), {});
  };
  r.out = slurp(base + ".out");
  r.err = slurp(base + ".err");
  return r;
}

void expect_mtp_matches_plain(const std::string& model) {
  const std::string common =
      "generate --model " + model + " --ids '0 5 9 33 7' -n 30 --temp 0 --print-ids --ignore-eos";
  const Result plain = dsv3(common);
  ASSERT_EQ(plain.status, 0) << plain.err;
  for (int depth : {1, 2, 3}) {
    const Result spec = dsv3(common + " --spec mtp --draft " + std::to_string(depth) + " --stats");
    ASSERT_EQ(spec.status, 0) << spec.err;
    EXPECT_EQ(spec.out, plain.out) << "draft " << depth;
    EXPECT_NE(spec.err.find("decode: 29 tokens"), std::string::npos) << spec.err;
    EXPECT_NE(spec.err.find("mtp: "), std::string::npos) << spec.err;
    EXPECT_NE(spec.err.find("acceptance"), std::string::npos) << spec.err;
  }
}

TEST(GenerateCli, MtpMatchesPlainOnTheReferenceCase) {
  if (!have_testdata("v3_mtp")) GTEST_SKIP() << "no " << DSV3_TESTDATA << "/v3_mtp";
  expect_mtp_matches_plain(std::string(DSV3_TESTDATA) + "/v3_mtp");
}

TEST(GenerateCli, MtpMatchesPlainOnADsv3InitModel) {
  const std::string dir = temp_dir("cli_init");
  std::ofstream(dir + "/config.json") << tiny_mtp_config().dump();
  const Result init = dsv3("init --config " + dir + "/config.json --out " + dir + "/model --seed 4");
  ASSERT_EQ(init.status, 0) << init.err;
  expect_mtp_matches_plain(dir + "/model");
}

TEST(GenerateCli, ErrorsAreClear) {
  const std::string dir = temp_dir("cli_nomtp");
  auto c = tiny_mtp_config();
  c["num_nextn_predict_layers"] = 0;
  write_random_model(dir, 2, c);
  Result r = dsv3("generate --model " + dir + " --ids '1 2' --spec mtp");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("no MTP module"), std::string::npos) << r.err;
  r = dsv3("generate --model " + dir + " --prompt 'hello'");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("no tokenizer.json"), std::string::npos) << r.err;
  r = dsv3("generate --model " + dir + " --ids '1 2 999'");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("outside the vocabulary"), std::string::npos) << r.err;
  r = dsv3("generate --model " + dir + " --ids '1 2' --top-p 0");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("top_p"), std::string::npos) << r.err;
}

TEST(GenerateCli, TextSeedsStopsAndChat) {
  const std::string dir = write_chat_model(temp_dir("cli_chat"), 0.5, 8);
  const std::string base = "generate --model " + dir + " --prompt 'Once upon a time' -n 24 --ignore-eos";
  const std::string gen = base + " --temp 0.9";
  const Result a = dsv3(gen + " --seed 11"), b = dsv3(gen + " --seed 11");
  ASSERT_EQ(a.status, 0) << a.err;
  EXPECT_EQ(a.out, b.out);
  EXPECT_GT(a.out.size(), 2u);
  // Continuations generated together (--batch) are the ones generated alone with the same seeds.
  const Result batch = dsv3(gen + " --seed 9 --batch 3");
  ASSERT_EQ(batch.status, 0) << batch.err;
  EXPECT_NE(batch.out.find("[2] " + a.out), std::string::npos) << batch.out << "\nvs\n" << a.out;
  // A stop string taken from the text cuts it there.
  const std::string text = a.out.substr(0, a.out.size() - 1);  // without the final newline
  const std::string stop = text.substr(text.size() / 2, 2);
  auto plain = [](char ch) { return (ch & 0x80) == 0 && ch != '\'' && ch != '\n' && ch != '-'; };
  if (plain(stop[0]) && plain(stop[1])) {
    const Result s = dsv3(gen + " --seed 11 --stop '" + stop + "'");
    EXPECT_EQ(s.out, text.substr(0, text.find(stop)) + "\n");
  }
  // Two turns on stdin (not a terminal: no prompt decoration), the second reusing the first's cache.
  const Result chat = dsv3("chat --model " + dir + " -n 8 --temp 0 --ignore-eos --stats --system 'Be brief.'",
                           "Hello there!\nHow are you?\n/reset\nHello there!\n");
  ASSERT_EQ(chat.status, 0) << chat.err;
  // Replies may hold newlines: compare the first reply (before /reset) with the one after it.
  const std::string mark = "(conversation cleared)\n";
  const size_t at = chat.out.find(mark);
  ASSERT_NE(at, std::string::npos) << chat.out;
  const std::string before = chat.out.substr(0, at), after = chat.out.substr(at + mark.size());
  EXPECT_FALSE(after.empty());
  EXPECT_EQ(before.rfind(after, 0), 0u) << "greedy: the first reply again after /reset";
  EXPECT_GT(before.size(), after.size());                                                // two replies before
  EXPECT_EQ(std::count(chat.err.begin(), chat.err.end(), '\n'), 3 * 3 + 0) << chat.err;  // stats of 3 turns
}

TEST(GenerateCli, PaddedEmbeddingRowsAreNeverEmitted) {
  // Checkpoints pad the vocabulary past the tokenizer (DeepSeek-V3: 129,280 rows, 128,815 tokens). A random
  // model with 256 padded rows out of ~640 would draw one within a few tokens at temperature 1; no generated
  // id may reach the padding (the tokenizer could not decode it).
  const std::string dir = temp_dir("padded_model");
  std::vector<std::string_view> texts(4, kCorpus);
  io::BpeTrainerResult tok = io::train_bpe(texts, {.vocab_size = 384, .min_frequency = 2, .threads = 1});
  write_draftable_model(dir, 0.5, 23, tiny_mtp_config(tok.vocab_size + 256));
  io::write_trained_tokenizer(tok, dir + "/tokenizer.json");
  const std::string common = "generate --model " + dir + " --prompt 'The quick' -n 200 --temp 1 --ignore-eos";
  for (const char* seed : {"1", "2", "3"}) {
    const Result ids = dsv3(common + " --print-ids --seed " + seed);
    ASSERT_EQ(ids.status, 0) << ids.err;
    std::istringstream in(ids.out);
    int64_t id = 0, n = 0;
    while (in >> id) {
      EXPECT_GE(id, 0);
      EXPECT_LT(id, tok.vocab_size) << "seed " << seed << ", token " << n;
      ++n;
    }
    EXPECT_EQ(n, 200) << ids.out;
    const Result text = dsv3(common + " --seed " + seed);
    EXPECT_EQ(text.status, 0) << text.err;
  }
  // And through MTP speculation: drafts may land in the padding, verification never accepts them.
  const Result spec = dsv3(common + " --print-ids --seed 4 --spec mtp --draft 2");
  ASSERT_EQ(spec.status, 0) << spec.err;
  std::istringstream in(spec.out);
  for (int64_t id = 0; in >> id;) EXPECT_LT(id, tok.vocab_size);
}

}  // namespace
}  // namespace dsv3
