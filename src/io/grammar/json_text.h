// Grammars of compact JSON text pieces, built into a Builder: strings (proper escapes, valid UTF-8 only,
// control characters escaped), numbers with bounded digit counts, integer ranges, the string formats, any
// value. Shared by the schema compiler (json_schema.cc) and the pattern compiler (pattern.h).
//
// Bounded by design, so that a model cannot loop inside a number: an integer has at most 16 digits, a
// fraction at most 16, an exponent at most 2 (every such number is finite in IEEE double, as JSON parsers
// and ajv read it). No whitespace anywhere: the grammar emits compact JSON.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "io/grammar/grammar.h"

namespace dsv3::grammar {

class JsonText {
 public:
  explicit JsonText(Builder& b) : b_(b) {}

  // One character inside a JSON string: unescaped (U+0020.. except '"' and '\', valid UTF-8) or an escape
  // (\" \\ \/ \b \f \n \r \t, \uXXXX outside the surrogates, so each character is one code point).
  int32_t string_char();
  // A valid UTF-8 sequence of 2..4 bytes (any non-ASCII scalar value); without_line_separators drops
  // U+2028 and U+2029 (what JavaScript's '.' does not match).
  int32_t utf8_multibyte(bool without_line_separators = false);
  // "…" with min..max characters (max < 0: unbounded).
  int32_t string(int64_t min_chars = 0, int64_t max_chars = -1);
  // A JSON number: -?(0|[1-9]d{0,15})(.d{1,16})?([eE][+-]?d{1,2})?; nonnegative drops the sign.
  int32_t number(bool nonnegative = false);
  // Integers in [lo, hi] (unset: up to 16 digits), no leading zeros, no "-0". Fails when lo > hi.
  int32_t integer(std::optional<int64_t> lo, std::optional<int64_t> hi);
  // "…" in the given format (date, time, date-time, uuid, email, ipv4); nullopt: not supported.
  std::optional<int32_t> format(std::string_view name);
  int32_t value();   // any JSON value
  int32_t object();  // any JSON object
  int32_t digits(int64_t min, int64_t max);

 private:
  int32_t same_length_range(const std::string& lo, const std::string& hi);
  int32_t nonnegative_range(uint64_t lo, uint64_t hi);
  int32_t hex(int64_t n);

  Builder& b_;
  int32_t char_ = -1, utf8_ = -1, utf8_nols_ = -1, value_ = -1, object_ = -1, digit_ = -1, hexdigit_ = -1;
};

}  // namespace dsv3::grammar
