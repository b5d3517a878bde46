// Byte-level BPE trainer that writes a Hugging Face tokenizer.json (+ tokenizer_config.json) loadable by
// io::Tokenizer, HF tokenizers and transformers.js.
//
// Layout of the vocabulary: added tokens first (ids 0..: DeepSeek-V3's special tokens, so bos = 0 and
// eos = 1, then its tool-call tokens, then the non-special <think> </think>), then the 256 byte tokens in
// byte order, then one token per merge.
// Algorithm (as HF's BpeTrainer): pre-tokenize the text with the chosen pre-tokenizer (added tokens are
// split out first and never trained on), count distinct words once, then repeatedly merge the most frequent
// adjacent pair. Pair counts are updated incrementally from the words that contain the merged pair (an
// index pair -> words), and the best pair comes from a max-heap with lazy re-validation.
// Deterministic: words are processed in sorted order and ties between equally frequent pairs go to the pair
// with the smaller (left id, right id); the result does not depend on the thread count.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace dsv3::io {

enum class PreTokenizerKind {
  kDeepSeekV3,  // DeepSeek-V3's three Split regexes + ByteLevel (its published tokenizer.json)
  kGpt2,        // ByteLevel with GPT-2's regex
  kLlama3,      // Llama-3's Split regex + ByteLevel, ignore_merges (its published tokenizer.json)
};

// "deepseek-v3" | "gpt2" | "llama3"; throws dsv3::Error otherwise.
PreTokenizerKind parse_pretokenizer_kind(std::string_view name);

struct BpeTrainerOptions {
  int64_t vocab_size = 8192;  // total, including added tokens and the 256 byte tokens
  PreTokenizerKind pretokenizer = PreTokenizerKind::kDeepSeekV3;
  int64_t min_frequency = 2;  // a pair seen fewer times is never merged
  int threads = 0;            // 0: hardware concurrency (pre-tokenization only)
};

struct BpeTrainerResult {
  std::string tokenizer_json;         // HF tokenizer.json text
  std::string tokenizer_config_json;  // bos/eos/pad, add_bos_token, chat_template (DeepSeek-V3's)
  int64_t vocab_size = 0;
  int64_t num_merges = 0;
  int64_t num_words = 0, num_unique_words = 0;
  double seconds_pretokenize = 0, seconds_merge = 0;
};

// The added tokens the trainer puts at ids 0.. (special ones first).
const std::vector<std::string>& trainer_special_tokens();
const std::vector<std::string>& trainer_plain_added_tokens();

BpeTrainerResult train_bpe(const std::vector<std::string_view>& texts, const BpeTrainerOptions& options);

// Writes result.tokenizer_json to path and tokenizer_config.json beside it (atomically: temp + rename).
void write_trained_tokenizer(const BpeTrainerResult& result, const std::string& tokenizer_json_path);

// The tokenizer.json "pre_tokenizer" value for a kind (JSON text).
std::string pretokenizer_json(PreTokenizerKind kind);

}  // namespace dsv3::io
