// Shared helpers of the tokenizer tests: test data, tokenizers trained once per process, tricky cases.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "io/bpe_trainer.h"
#include "io/tokenizer.h"

namespace dsv3::io::testing {

inline std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + path);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline void write_file(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << text;
  if (!f) throw std::runtime_error("cannot write " + path);
}

inline std::string data_path(const std::string& name) { return std::string(DSV3_TEST_SRC) + "/data/" + name; }

// A scratch directory unique to this process (removed by the OS's tmp cleaning, not by us: tests may run
// in parallel processes).
inline std::string scratch_dir(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() / ("dsv3_tok_" + std::to_string(::getpid())) / name;
  std::filesystem::create_directories(dir);
  return dir.string();
}

// The training text of the test tokenizers: KJV Genesis 1-11 plus the tricky corpus.
inline std::string training_text() {
  return read_file(data_path("kjv_genesis_1_11.txt")) + read_file(data_path("tokenizer_corpus.txt"));
}

inline std::string kind_name(PreTokenizerKind k) {
  switch (k) {
    case PreTokenizerKind::kDeepSeekV3:
      return "deepseek-v3";
    case PreTokenizerKind::kGpt2:
      return "gpt2";
    case PreTokenizerKind::kLlama3:
      return "llama3";
  }
  return "?";
}

// Directory holding tokenizer.json + tokenizer_config.json trained by the dsv3 trainer (vocab 1200),
// trained once per process and kind.
inline std::string trained_tokenizer_dir(PreTokenizerKind kind) {
  static std::mutex mu;
  static std::map<PreTokenizerKind, std::string> dirs;
  std::lock_guard<std::mutex> lock(mu);
  auto it = dirs.find(kind);
  if (it != dirs.end()) return it->second;
  std::string text = training_text();
  BpeTrainerOptions o;
  o.vocab_size = 1200;
  o.pretokenizer = kind;
  BpeTrainerResult r = train_bpe({text}, o);
  std::string dir = scratch_dir("trained_" + kind_name(kind));
  write_trained_tokenizer(r, dir + "/tokenizer.json");
  return dirs[kind] = dir;
}

inline const Tokenizer& trained_tokenizer(PreTokenizerKind kind) {
  static std::mutex mu;
  static std::map<PreTokenizerKind, std::unique_ptr<Tokenizer>> toks;
  std::string dir = trained_tokenizer_dir(kind);
  std::lock_guard<std::mutex> lock(mu);
  auto& t = toks[kind];
  if (!t) t = std::make_unique<Tokenizer>(Tokenizer::load(dir));
  return *t;
}

inline std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> out;
  size_t b = 0;
  while (b < text.size()) {
    size_t e = text.find('\n', b);
    if (e == std::string::npos) e = text.size();
    out.push_back(text.substr(b, e - b));
    b = e + 1;
  }
  return out;
}

// Byte strings that stress the pipeline beyond the corpus file: line endings, Unicode whitespace, invalid
// UTF-8 (every kind of ill-formed sequence), NUL, empty input.
inline std::vector<std::string> generated_cases() {
  return {
      "",
      "a\r\nb\r\n\r\nc\r",
      "a\rb\x0B"
      "c\x0C"
      "d",
      "x\xC2\x85y \xC2\x85 z",                 // U+0085 NEXT LINE
      "\xEF\xBB\xBFhello \xEF\xBB\xBF world",  // U+FEFF
      "line\xE2\x80\xA8sep\xE2\x80\xA9para",   // U+2028 U+2029
      "a\xC2\xA0\xC2\xA0"
      "b \xE2\x80\x83 c",                      // NBSP, em space
      "mongolian\xE1\xA0\x8Evowel separator",  // U+180E (not White_Space)
      "\n\n\nA\n\n",
      "  \n\n\t  \r\n  x",
      "word\n\n",
      "trailing spaces    ",
      std::string("a\0b", 3),
      "\xFF",
      "abc\xC3",
      "\xC3\x28 bad continuation",
      "\xE2\x82",
      "\xE2\x28\xA1",
      "\xED\xA0\x80 surrogate",
      "\xF0\x9F\x98"
      "x truncated emoji",
      "\xF4\x90\x80\x80 beyond U+10FFFF",
      "\xC0\xAF overlong",
      "\x80\x80 lone continuations",
      "Hello\xFFWorld\xFE!",
      "\xF0\x9F\x98\x80\xF0\x9F\x98",
      "<\xEF\xBD\x9C"
      "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>\xFF",
      std::string(300, ' ') + "x",
      std::string(1000, '7'),
      std::string(500, 'a') + " " + std::string(200, '!'),
  };
}

// The whole case list for the corpus-based tests.
inline std::vector<std::string> all_cases() {
  std::string corpus = read_file(data_path("tokenizer_corpus.txt"));
  std::vector<std::string> cases;
  for (const std::string& line : split_lines(corpus)) {
    cases.push_back(line);
    cases.push_back(line + "\n");
  }
  cases.push_back(corpus);
  cases.push_back(read_file(data_path("kjv_genesis_1_11.txt")));
  for (std::string& g : generated_cases()) cases.push_back(std::move(g));
  return cases;
}

}  // namespace dsv3::io::testing
