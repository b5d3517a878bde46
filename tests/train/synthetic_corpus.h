// The training tests' corpus: `docs` pseudo-random sentences of `words_per_doc` words drawn (a 64-bit LCG from
// `seed`) from the first `vocab_words` of a small KJV word list, byte-level ids (byte + 8; bos 0, eos 1, vocab
// 264), prepared into `dir` by io::prepare_dataset_from_docs with 10 % validation.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "io/dataset.h"

namespace dsv3::train::testing {

inline std::string prepare_synthetic_corpus(const std::string& dir, int vocab_words, int docs, int words_per_doc,
                                            uint64_t seed) {
  static const char* const kWords[] = {"and", "the",     "lord",   "said",  "unto",  "moses", "in",  "beginning",
                                       "god", "created", "heaven", "earth", "light", "was",   "good"};
  std::vector<std::string> text;
  uint64_t x = seed;
  for (int d = 0; d < docs; ++d) {
    std::string s;
    for (int w = 0; w < words_per_doc; ++w) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      s += std::string(kWords[(x >> 33) % uint64_t(vocab_words)]) + (w == words_per_doc - 1 ? "." : " ");
    }
    text.push_back(s);
  }
  io::TokenizerInfo t;
  t.encode = [](std::string_view s) {
    std::vector<int32_t> v;
    for (unsigned char ch : s) v.push_back(int32_t(ch) + 8);
    return v;
  };
  t.bos = 0, t.eos = 1, t.vocab_size = 264;
  io::prepare_dataset_from_docs(text, {.val_frac = 0.1, .seed = 1}, t, dir);
  return dir;
}

}  // namespace dsv3::train::testing
