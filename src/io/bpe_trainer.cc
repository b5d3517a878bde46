// Byte-level BPE training (the algorithm of HF tokenizers' models/bpe/trainer.rs; see bpe_trainer.h).
#include "io/bpe_trainer.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <queue>
#include <unordered_map>
#include <unordered_set>

#include "core/error.h"
#include "io/chat_template.h"
#include "io/parallel.h"
#include "io/pretokenizer.h"
#include "io/tokenizer.h"
#include "io/utf8.h"

namespace dsv3::io {

using ojson = nlohmann::ordered_json;

PreTokenizerKind parse_pretokenizer_kind(std::string_view name) {
  if (name == "deepseek-v3") return PreTokenizerKind::kDeepSeekV3;
  if (name == "gpt2") return PreTokenizerKind::kGpt2;
  if (name == "llama3") return PreTokenizerKind::kLlama3;
  fail("unknown pre-tokenizer \"{}\" (expected deepseek-v3, gpt2 or llama3)", std::string(name));
}

const std::vector<std::string>& trainer_special_tokens() {
  static const std::vector<std::string> tokens = {"<｜begin▁of▁sentence｜>",
                                                  "<｜end▁of▁sentence｜>",
                                                  "<｜▁pad▁｜>",
                                                  "<｜User｜>",
                                                  "<｜Assistant｜>",
                                                  "<｜fim▁begin｜>",
                                                  "<｜fim▁hole｜>",
                                                  "<｜fim▁end｜>",
                                                  "<｜tool▁calls▁begin｜>",
                                                  "<｜tool▁calls▁end｜>",
                                                  "<｜tool▁call▁begin｜>",
                                                  "<｜tool▁call▁end｜>",
                                                  "<｜tool▁outputs▁begin｜>",
                                                  "<｜tool▁outputs▁end｜>",
                                                  "<｜tool▁output▁begin｜>",
                                                  "<｜tool▁output▁end｜>",
                                                  "<｜tool▁sep｜>"};
  return tokens;
}

const std::vector<std::string>& trainer_plain_added_tokens() {
  static const std::vector<std::string> tokens = {"<think>", "</think>"};
  return tokens;
}

namespace {

ojson pretokenizer_ojson(PreTokenizerKind kind) {
  auto split = [](const char* pattern) {
    return ojson{{"type", "Split"}, {"pattern", {{"Regex", pattern}}}, {"behavior", "Isolated"}, {"invert", false}};
  };
  auto byte_level = [](bool use_regex) {
    return ojson{{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", use_regex}};
  };
  switch (kind) {
    case PreTokenizerKind::kDeepSeekV3:
      return ojson{{"type", "Sequence"},
                   {"pretokenizers",
                    {split(kDeepSeekV3Patterns[0]), split(kDeepSeekV3Patterns[1]), split(kDeepSeekV3Patterns[2]),
                     byte_level(false)}}};
    case PreTokenizerKind::kGpt2:
      return byte_level(true);
    case PreTokenizerKind::kLlama3:
      return ojson{{"type", "Sequence"}, {"pretokenizers", {split(kLlama3Pattern), byte_level(false)}}};
  }
  return ojson();
}

// The full tokenizer.json for the given token strings (ids = positions) and merges (pairs of ids).
ojson tokenizer_ojson(PreTokenizerKind kind, const std::vector<std::string>& tokens,
                      const std::vector<std::pair<int32_t, int32_t>>& merges, size_t n_special, size_t n_added) {
  ojson added = ojson::array();
  for (size_t i = 0; i < n_added; ++i) {
    bool special = i < n_special;
    added.push_back({{"id", i},
                     {"content", tokens[i]},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", !special},
                     {"special", special}});
  }
  ojson vocab = ojson::object();
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (!vocab.contains(tokens[i])) vocab[tokens[i]] = i;  // a merge may reproduce an existing string
  }
  ojson m = ojson::array();
  for (auto& [a, b] : merges) m.push_back(ojson::array({tokens[a], tokens[b]}));
  const std::string& bos = tokens[0];
  ojson post = {
      {"type", "TemplateProcessing"},
      {"single", {{{"SpecialToken", {{"id", bos}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
      {"pair",
       {{{"SpecialToken", {{"id", bos}, {"type_id", 0}}}},
        {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
        {{"SpecialToken", {{"id", bos}, {"type_id", 1}}}},
        {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}}},
      {"special_tokens", {{bos, {{"id", bos}, {"ids", {0}}, {"tokens", {bos}}}}}}};
  return ojson{
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added},
      {"normalizer", {{"type", "Sequence"}, {"normalizers", ojson::array()}}},
      {"pre_tokenizer", pretokenizer_ojson(kind)},
      {"post_processor", post},
      {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", nullptr},
        {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr},
        {"fuse_unk", false},
        {"byte_fallback", false},
        {"ignore_merges", kind == PreTokenizerKind::kLlama3},
        {"vocab", vocab},
        {"merges", m}}}};
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

uint64_t pair_key(int32_t a, int32_t b) {
  return (uint64_t{static_cast<uint32_t>(a)} << 32) | static_cast<uint32_t>(b);
}

struct Word {
  std::vector<int32_t> syms;
  int64_t count;
};

struct HeapEntry {
  int64_t count;
  int32_t a, b;
  // priority_queue pops the largest: higher count first, then the smaller (a, b).
  bool operator<(const HeapEntry& o) const {
    if (count != o.count) return count < o.count;
    if (a != o.a) return a > o.a;
    return b > o.b;
  }
};

}  // namespace

std::string pretokenizer_json(PreTokenizerKind kind) { return pretokenizer_ojson(kind).dump(); }

BpeTrainerResult train_bpe(const std::vector<std::string_view>& texts, const BpeTrainerOptions& opt) {
  auto t0 = std::chrono::steady_clock::now();
  const auto& specials = trainer_special_tokens();
  const auto& plain = trainer_plain_added_tokens();
  const size_t n_special = specials.size(), n_added = specials.size() + plain.size();
  const int32_t byte_base = static_cast<int32_t>(n_added);
  if (opt.vocab_size < static_cast<int64_t>(n_added) + 256)
    fail("bpe trainer: vocab size {} is below the {} added and byte tokens", opt.vocab_size, n_added + 256);
  if (opt.vocab_size > INT32_MAX) fail("bpe trainer: vocab size {} too large", opt.vocab_size);

  std::vector<std::string> tokens(specials);
  tokens.insert(tokens.end(), plain.begin(), plain.end());
  for (int b = 0; b < 256; ++b) tokens.push_back(utf8::byte_to_piece(static_cast<uint8_t>(b)));

  // 1. Pre-tokenize with the pipeline we will write out (added tokens are split out and not counted).
  Tokenizer skeleton =
      Tokenizer::from_json(tokenizer_ojson(opt.pretokenizer, tokens, {}, n_special, n_added).dump(), "", "bpe trainer");
  std::vector<std::string_view> chunks;
  for (std::string_view t : texts) {
    auto c = skeleton.split_for_parallel(t, 256 * 1024);
    chunks.insert(chunks.end(), c.begin(), c.end());
  }
  std::vector<std::unordered_map<std::string, int64_t>> local(chunks.size());
  parallel_for(chunks.size(), resolve_threads(opt.threads, chunks.size()), [&](size_t i) {
    for (std::string& piece : skeleton.pre_tokenize(chunks[i])) ++local[i][std::move(piece)];
  });
  std::unordered_map<std::string, int64_t> counts;
  int64_t total_words = 0;
  for (auto& m : local) {
    for (auto& [w, c] : m) {
      counts[w] += c;
      total_words += c;
    }
    m.clear();
  }
  std::vector<std::pair<std::string, int64_t>> sorted(counts.begin(), counts.end());
  counts.clear();
  std::sort(sorted.begin(), sorted.end());
  std::vector<Word> words(sorted.size());
  for (size_t i = 0; i < sorted.size(); ++i) {
    words[i].count = sorted[i].second;
    for (unsigned char c : sorted[i].first) words[i].syms.push_back(byte_base + c);
  }
  sorted.clear();
  BpeTrainerResult result;
  result.num_words = total_words;
  result.num_unique_words = static_cast<int64_t>(words.size());
  result.seconds_pretokenize = seconds_since(t0);
  auto t1 = std::chrono::steady_clock::now();

  // 2. Pair statistics.
  std::unordered_map<uint64_t, int64_t> pair_count;
  std::unordered_map<uint64_t, std::vector<int32_t>> pair_words;
  pair_count.reserve(1 << 16);
  pair_words.reserve(1 << 16);
  for (size_t w = 0; w < words.size(); ++w) {
    const auto& s = words[w].syms;
    for (size_t i = 0; i + 1 < s.size(); ++i) {
      uint64_t k = pair_key(s[i], s[i + 1]);
      pair_count[k] += words[w].count;
      auto& ws = pair_words[k];
      if (ws.empty() || ws.back() != static_cast<int32_t>(w)) ws.push_back(static_cast<int32_t>(w));
    }
  }
  std::priority_queue<HeapEntry> heap;
  for (auto& [k, c] : pair_count) heap.push({c, static_cast<int32_t>(k >> 32), static_cast<int32_t>(k & 0xffffffffu)});

  std::unordered_map<std::string, int32_t> token_ids;
  for (size_t i = 0; i < tokens.size(); ++i) token_ids.emplace(tokens[i], static_cast<int32_t>(i));
  std::vector<std::pair<int32_t, int32_t>> merges;
  std::vector<uint32_t> seen(words.size(), 0);
  std::unordered_map<uint64_t, int64_t> delta;
  const int64_t min_count = std::max<int64_t>(1, opt.min_frequency);

  // 3. Merge loop.
  while (static_cast<int64_t>(token_ids.size()) < opt.vocab_size && !heap.empty()) {
    HeapEntry top = heap.top();
    heap.pop();
    uint64_t key = pair_key(top.a, top.b);
    auto it = pair_count.find(key);
    int64_t current = it == pair_count.end() ? 0 : it->second;
    if (current != top.count) {  // stale entry: re-queue with the current count
      if (current > 0) heap.push({current, top.a, top.b});
      continue;
    }
    if (current < min_count) break;

    std::string merged = tokens[top.a] + tokens[top.b];
    int32_t new_id;
    auto found = token_ids.find(merged);
    if (found != token_ids.end()) {
      new_id = found->second;
    } else {
      new_id = static_cast<int32_t>(tokens.size());
      tokens.push_back(merged);
      token_ids.emplace(std::move(merged), new_id);
    }
    merges.push_back({top.a, top.b});
    const uint32_t stamp = static_cast<uint32_t>(merges.size());

    delta.clear();
    std::vector<int32_t> affected = std::move(pair_words[key]);
    pair_words.erase(key);
    pair_count.erase(key);
    for (int32_t w : affected) {
      if (seen[w] == stamp) continue;
      seen[w] = stamp;
      auto& s = words[w].syms;
      const int64_t cnt = words[w].count;
      auto add = [&](int32_t x, int32_t y, int64_t d) {
        uint64_t k = pair_key(x, y);
        delta[k] += d * cnt;
        if (d > 0) {
          auto& ws = pair_words[k];
          if (ws.empty() || ws.back() != w) ws.push_back(w);
        }
      };
      // In-place, left to right, non-overlapping (HF's Word::merge): the neighbours' pairs change.
      for (size_t i = 0; i + 1 < s.size();) {
        if (s[i] == top.a && s[i + 1] == top.b) {
          if (i > 0) {
            add(s[i - 1], top.a, -1);
            add(s[i - 1], new_id, +1);
          }
          s[i] = new_id;
          s.erase(s.begin() + i + 1);
          if (i + 1 < s.size()) {
            add(top.b, s[i + 1], -1);
            add(new_id, s[i + 1], +1);
          }
        }
        ++i;
      }
    }
    for (auto& [k, d] : delta) {
      if (k == key || d == 0) continue;
      int64_t& c = pair_count[k];
      c += d;
      if (d > 0 && c > 0) heap.push({c, static_cast<int32_t>(k >> 32), static_cast<int32_t>(k & 0xffffffffu)});
      if (c <= 0) pair_count.erase(k);
    }
  }
  result.seconds_merge = seconds_since(t1);
  result.num_merges = static_cast<int64_t>(merges.size());
  result.vocab_size = static_cast<int64_t>(tokens.size());

  // 4. Output.
  result.tokenizer_json = tokenizer_ojson(opt.pretokenizer, tokens, merges, n_special, n_added).dump(1);
  ojson cfg = {{"add_bos_token", true},
               {"add_eos_token", false},
               {"bos_token", specials[0]},
               {"eos_token", specials[1]},
               {"pad_token", specials[2]},
               {"unk_token", nullptr},
               {"clean_up_tokenization_spaces", false},
               {"legacy", true},
               {"model_max_length", 16384},
               {"tokenizer_class", "LlamaTokenizerFast"},
               {"chat_template", kDeepSeekV3ChatTemplateJinja}};
  result.tokenizer_config_json = cfg.dump(2);
  return result;
}

namespace {
void write_atomic(const std::filesystem::path& path, const std::string& text) {
  std::filesystem::path tmp = path;
  tmp += ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) fail("{}: cannot open for writing", tmp.string());
    f.write(text.data(), static_cast<std::streamsize>(text.size()));
    f.close();
    if (!f) fail("{}: write failed", tmp.string());
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) fail("{}: cannot rename into place: {}", path.string(), ec.message());
}
}  // namespace

void write_trained_tokenizer(const BpeTrainerResult& result, const std::string& tokenizer_json_path) {
  std::filesystem::path p(tokenizer_json_path);
  write_atomic(p, result.tokenizer_json);
  write_atomic(p.parent_path() / "tokenizer_config.json", result.tokenizer_config_json);
}

}  // namespace dsv3::io
