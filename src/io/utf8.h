// UTF-8 helpers for the tokenizer: validation, lossy repair and the GPT-2 byte-level alphabet.
//
// Lossy repair follows the Unicode "substitution of maximal subparts" practice that the WHATWG
// TextDecoder (JavaScript), Python's bytes.decode(errors="replace") and Rust's String::from_utf8_lossy
// all implement: every maximal ill-formed subsequence becomes one U+FFFD. Text that reaches a tokenizer
// through a JS or Python string has already been repaired this way, so repairing ours identically keeps
// token ids equal to transformers.js / HF tokenizers for the same input bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace dsv3::io::utf8 {

// Length (1..4) of the well-formed UTF-8 sequence at s[0..n), or 0 when the bytes there are ill-formed or
// truncated.
size_t valid_sequence_length(const unsigned char* s, size_t n);

// Length of the maximal ill-formed subpart at s[0..n) (>= 1), to be replaced by one U+FFFD. Only
// meaningful when valid_sequence_length(s, n) == 0.
size_t invalid_subpart_length(const unsigned char* s, size_t n);

// True when the whole buffer is well-formed UTF-8 (no surrogates, no overlongs, <= U+10FFFF).
bool is_valid(std::string_view s);

// Replaces every maximal ill-formed subpart by U+FFFD (EF BF BD); valid input is returned unchanged.
std::string repair(std::string_view s);

// Length of the longest prefix of s that can be emitted now: everything except a trailing sequence that is
// a valid but incomplete UTF-8 prefix (at most 3 bytes), which might still be completed by more bytes.
size_t complete_prefix_length(std::string_view s);

// Appends the UTF-8 encoding of code point cp (cp must be a scalar value).
void append(std::string& out, char32_t cp);

// Decodes the code point at s[i] of a valid UTF-8 string and advances i.
char32_t next(std::string_view s, size_t& i);

// Unicode White_Space property (the set Oniguruma's and Rust's char::is_whitespace use).
bool is_white_space(char32_t cp);

// GPT-2's byte-level alphabet (bytes_to_unicode): printable Latin-1 bytes map to themselves, the other 68
// bytes to U+0100.. in byte order. byte_to_piece(b) is the UTF-8 string of that code point.
const std::string& byte_to_piece(uint8_t b);
// Inverse mapping: the byte whose alphabet character is cp, or -1.
int piece_char_to_byte(char32_t cp);

}  // namespace dsv3::io::utf8
