// Unicode regular expressions for tokenizer.json patterns, on PCRE2 (UTF + UCP, JIT-compiled).
//
// HF tokenizers compiles tokenizer.json patterns with Oniguruma (Ruby syntax). PCRE2 agrees with it on the
// constructs tokenizers use (\p{..} classes, alternation with leftmost-first backtracking, lookahead,
// (?i:..)), except for a few escapes whose Unicode meaning differs; to_pcre2() rewrites those:
//   \s \S  -> \p{White_Space} \P{White_Space}   (PCRE2's UCP \s also matches U+180E)
//   \d \D  -> \p{Nd} \P{Nd}
//   \w \W  -> [\p{Alphabetic}\p{M}\p{Nd}\p{Pc}] and its complement (Oniguruma's Unicode word)
//   \h \H  -> hex digit / not hex digit          (Oniguruma; PCRE2's \h is horizontal space)
//   \uHHHH -> \x{HHHH}
// and ^ $ are line anchors (Ruby semantics, PCRE2_MULTILINE). Iteration follows the Rust `onig` crate:
// matches never overlap and an empty match right after the previous match is skipped.
// Documented divergence from transformers.js: (?i:...) uses full Unicode case folding as Oniguruma does
// (transformers.js folds ASCII only), so "'ſ" matches (?i:'s) here and in HF tokenizers but not in JS.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace dsv3::io {

class Regex {
 public:
  // Compiles an Oniguruma-syntax pattern (literal = true: match the string itself). Throws dsv3::Error
  // naming `label` and the PCRE2 message when the pattern is invalid.
  Regex(std::string_view pattern, bool literal, const std::string& label);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  const std::string& pattern() const { return pattern_; }

  // Finds the first match at or after byte offset `from` in subject; returns false when none. Thread-safe.
  bool find(std::string_view subject, size_t from, size_t* begin, size_t* end) const;

  // Calls f(begin, end) for every match of the subject in order (Oniguruma iteration rules).
  template <typename F>
  void for_each_match(std::string_view subject, F&& f) const {
    size_t pos = 0, last_match_end = std::string_view::npos;
    while (pos <= subject.size()) {
      size_t b, e;
      if (!find(subject, pos, &b, &e)) break;
      if (b == e && last_match_end == e) {  // empty match glued to the previous one: step one char
        if (pos >= subject.size()) break;
        pos += char_len(static_cast<unsigned char>(subject[pos]));
        continue;
      }
      pos = e;
      last_match_end = e;
      f(b, e);
    }
  }

 private:
  static size_t char_len(unsigned char b) { return b < 0x80 ? 1 : b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 1; }

  std::string pattern_;
  void* code_ = nullptr;  // pcre2_code_8*
  bool jit_ = false;
};

// Rewrites an Oniguruma pattern into PCRE2 syntax (see above). Exposed for tests.
std::string onig_to_pcre2(std::string_view pattern);

}  // namespace dsv3::io
