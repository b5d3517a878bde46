// The tokenizer subcommands of the dsv3 binary: tokenize, detokenize, tokenizer train/info/chat, and their
// errors (missing file, bad JSON, out-of-range id) as one-line messages with a non-zero exit status.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "io/tokenizer.h"
#include "tokenizer_test_util.h"

namespace dsv3::io {
namespace {

using namespace dsv3::io::testing;

struct CmdResult {
  int status;
  std::string out, err;
};

std::string quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

CmdResult dsv3(const std::string& args) {
  std::string dir = scratch_dir("cli");
  std::string err = dir + "/stderr.txt";
  std::string cmd = std::string(DSV3_BIN) + " " + args + " 2> " + quote(err);
  CmdResult r{};
  FILE* p = ::popen(cmd.c_str(), "r");
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  int st = ::pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  r.err = read_file(err);
  return r;
}

TEST(TokenizerCli, TokenizeDetokenizeRoundTrip) {
  std::string dir = trained_tokenizer_dir(PreTokenizerKind::kDeepSeekV3);
  const Tokenizer& tok = trained_tokenizer(PreTokenizerKind::kDeepSeekV3);
  std::string text = "In the beginning God created the heaven and the earth. 深度求索 😀<｜end▁of▁sentence｜>";
  CmdResult r = dsv3("tokenize --tokenizer " + quote(dir) + " --text " + quote(text));
  ASSERT_EQ(r.status, 0) << r.err;
  std::vector<int32_t> ids = tok.encode(text);
  std::string expect;
  for (size_t i = 0; i < ids.size(); ++i) expect += (i ? " " : "") + std::to_string(ids[i]);
  EXPECT_EQ(r.out, expect + "\n");

  std::string file = scratch_dir("cli") + "/in.txt";
  write_file(file, text);
  CmdResult f =
      dsv3("tokenize --tokenizer " + quote(dir + "/tokenizer.json") + " --in " + quote(file) + " --add-bos --stats");
  ASSERT_EQ(f.status, 0) << f.err;
  EXPECT_EQ(f.out, "0 " + expect + "\n");
  EXPECT_NE(f.err.find("tokens"), std::string::npos);

  CmdResult d = dsv3("detokenize --tokenizer " + quote(dir) + " --ids " + quote(expect));
  ASSERT_EQ(d.status, 0) << d.err;
  EXPECT_EQ(d.out, text);
  CmdResult s = dsv3("detokenize --tokenizer " + quote(dir) + " --skip-special --ids " + quote(expect));
  EXPECT_EQ(s.out, "In the beginning God created the heaven and the earth. 深度求索 😀");

  CmdResult plain = dsv3("tokenize --tokenizer " + quote(dir) + " --no-special --text " + quote("<｜User｜>"));
  EXPECT_NE(plain.out, "3\n");
  CmdResult empty = dsv3("tokenize --tokenizer " + quote(dir) + " --text ''");
  EXPECT_EQ(empty.status, 0) << empty.err;
  EXPECT_EQ(empty.out, "\n");
}

TEST(TokenizerCli, Errors) {
  std::string dir = trained_tokenizer_dir(PreTokenizerKind::kDeepSeekV3);
  CmdResult missing = dsv3("tokenize --tokenizer /nonexistent/tokenizer.json --text hi");
  EXPECT_NE(missing.status, 0);
  EXPECT_NE(missing.err.find("/nonexistent/tokenizer.json"), std::string::npos) << missing.err;

  std::string bad = scratch_dir("cli_bad");
  write_file(bad + "/tokenizer.json", "{ not json");
  CmdResult badjson = dsv3("tokenize --tokenizer " + quote(bad) + " --text hi");
  EXPECT_NE(badjson.status, 0);
  EXPECT_NE(badjson.err.find("invalid JSON"), std::string::npos) << badjson.err;

  CmdResult range = dsv3("detokenize --tokenizer " + quote(dir) + " --ids '5 99999'");
  EXPECT_NE(range.status, 0);
  EXPECT_NE(range.err.find("99999"), std::string::npos) << range.err;
  CmdResult notid = dsv3("detokenize --tokenizer " + quote(dir) + " --ids '5 x'");
  EXPECT_NE(notid.status, 0);
  CmdResult noin = dsv3("tokenize --tokenizer " + quote(dir) + " --in /nonexistent/in.txt");
  EXPECT_NE(noin.status, 0);
  EXPECT_NE(noin.err.find("/nonexistent/in.txt"), std::string::npos) << noin.err;
  CmdResult notext = dsv3("tokenize --tokenizer " + quote(dir));
  EXPECT_NE(notext.status, 0);
}

TEST(TokenizerCli, TrainInfoChat) {
  std::string out = scratch_dir("cli_train") + "/tok/tokenizer.json";
  CmdResult t =
      dsv3("tokenizer train --input " + quote(data_path("kjv_genesis_1_11.txt")) + " " +
           quote(data_path("tokenizer_corpus.txt")) + " --vocab-size 600 --pretokenizer gpt2 --out " + quote(out));
  ASSERT_EQ(t.status, 0) << t.err;
  EXPECT_NE(t.err.find("trained 600 tokens"), std::string::npos) << t.err;
  Tokenizer tok = Tokenizer::load(out);
  EXPECT_EQ(tok.vocab_size(), 600);
  EXPECT_EQ(tok.bos_id(), 0);

  CmdResult info = dsv3("tokenizer info --tokenizer " + quote(out));
  ASSERT_EQ(info.status, 0) << info.err;
  EXPECT_NE(info.out.find("vocab_size 600\nbos 0\neos 1\n"), std::string::npos) << info.out;

  std::string msgs = scratch_dir("cli_train") + "/messages.json";
  write_file(msgs, R"([{"role": "user", "content": "Hi"}])");
  std::string cfg_dir = std::filesystem::path(out).parent_path().string();
  CmdResult chat =
      dsv3("tokenizer chat --config " + quote(cfg_dir) + " --messages " + quote(msgs) + " --generation-prompt");
  ASSERT_EQ(chat.status, 0) << chat.err;
  EXPECT_EQ(chat.out, "<｜begin▁of▁sentence｜><｜User｜>Hi<｜Assistant｜>");
  CmdResult ids = dsv3("tokenizer chat --config " + quote(cfg_dir) + " --messages " + quote(msgs) + " --ids");
  ASSERT_EQ(ids.status, 0) << ids.err;
  EXPECT_EQ(ids.out.substr(0, 4), "0 3 ");

  CmdResult bad = dsv3("tokenizer train --input /nonexistent.txt --vocab-size 600 --out " + quote(out));
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.err.find("/nonexistent.txt"), std::string::npos) << bad.err;
  CmdResult kind = dsv3("tokenizer train --input " + quote(data_path("tokenizer_corpus.txt")) +
                        " --vocab-size 600 --pretokenizer bert --out " + quote(out));
  EXPECT_NE(kind.status, 0);
  EXPECT_NE(kind.err.find("bert"), std::string::npos) << kind.err;
}

}  // namespace
}  // namespace dsv3::io
