// UTF-8 validation and repair per Unicode 15 §3.9 (Table 3-7, well-formed byte sequences) and the
// "maximal subpart" substitution practice (§3.9.6, U+FFFD Substitution of Maximal Subparts).
#include "io/utf8.h"

#include <array>
#include <cstring>

namespace dsv3::io::utf8 {
namespace {

// For a lead byte: number of continuation bytes and the allowed range of the first one; need < 0 for a
// byte that cannot start a sequence.
struct Lead {
  int need;
  unsigned char lo, hi;
};

inline Lead lead_of(unsigned char b) {
  if (b < 0x80) return {0, 0, 0};
  if (b >= 0xC2 && b <= 0xDF) return {1, 0x80, 0xBF};
  if (b == 0xE0) return {2, 0xA0, 0xBF};
  if ((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF) return {2, 0x80, 0xBF};
  if (b == 0xED) return {2, 0x80, 0x9F};  // excludes surrogates
  if (b == 0xF0) return {3, 0x90, 0xBF};  // excludes overlongs
  if (b >= 0xF1 && b <= 0xF3) return {3, 0x80, 0xBF};
  if (b == 0xF4) return {3, 0x80, 0x8F};  // <= U+10FFFF
  return {-1, 0, 0};
}

// Number of bytes of s[0..n) that form a valid prefix of a sequence starting at s[0] (the lead byte counts),
// and whether the sequence is complete.
inline size_t scan(const unsigned char* s, size_t n, bool* complete) {
  Lead l = lead_of(s[0]);
  if (l.need == 0) {
    *complete = true;
    return 1;
  }
  if (l.need < 0) {
    *complete = false;
    return 0;
  }
  size_t j = 1;
  for (int k = 0; k < l.need; ++k, ++j) {
    if (j >= n) {
      *complete = false;
      return j;
    }
    unsigned char lo = k == 0 ? l.lo : 0x80, hi = k == 0 ? l.hi : 0xBF;
    if (s[j] < lo || s[j] > hi) {
      *complete = false;
      return j;
    }
  }
  *complete = true;
  return j;
}

}  // namespace

size_t valid_sequence_length(const unsigned char* s, size_t n) {
  if (n == 0) return 0;
  bool complete;
  size_t len = scan(s, n, &complete);
  return complete ? len : 0;
}

size_t invalid_subpart_length(const unsigned char* s, size_t n) {
  bool complete;
  size_t len = scan(s, n, &complete);
  return len == 0 ? 1 : len;
}

bool is_valid(std::string_view sv) {
  auto s = reinterpret_cast<const unsigned char*>(sv.data());
  size_t n = sv.size(), i = 0;
  while (i < n) {
    if (i + 8 <= n) {  // ASCII fast path, 8 bytes at a time
      uint64_t w;
      std::memcpy(&w, s + i, 8);
      if ((w & 0x8080808080808080ULL) == 0) {
        i += 8;
        continue;
      }
    }
    if (s[i] < 0x80) {
      ++i;
      continue;
    }
    size_t len = valid_sequence_length(s + i, n - i);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

std::string repair(std::string_view sv) {
  auto s = reinterpret_cast<const unsigned char*>(sv.data());
  size_t n = sv.size();
  std::string out;
  out.reserve(n + 8);
  size_t i = 0;
  while (i < n) {
    if (s[i] < 0x80) {
      out.push_back(static_cast<char>(s[i++]));
      continue;
    }
    size_t len = valid_sequence_length(s + i, n - i);
    if (len) {
      out.append(sv.data() + i, len);
      i += len;
    } else {
      out.append("\xEF\xBF\xBD");
      i += invalid_subpart_length(s + i, n - i);
    }
  }
  return out;
}

size_t complete_prefix_length(std::string_view sv) {
  auto s = reinterpret_cast<const unsigned char*>(sv.data());
  size_t n = sv.size();
  // Only the last (up to) 3 bytes can be an incomplete-but-valid tail.
  size_t start = n > 3 ? n - 3 : 0;
  for (size_t i = start; i < n; ++i) {
    if ((s[i] & 0xC0) == 0x80) continue;  // continuation byte, not a start
    bool complete;
    size_t len = scan(s + i, n - i, &complete);
    if (!complete && len > 0 && i + len == n) return i;  // valid prefix that runs to the end
  }
  return n;
}

void append(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

char32_t next(std::string_view sv, size_t& i) {
  auto s = reinterpret_cast<const unsigned char*>(sv.data());
  unsigned char b = s[i];
  if (b < 0x80) {
    ++i;
    return b;
  }
  int need = b >= 0xF0 ? 3 : b >= 0xE0 ? 2 : 1;
  char32_t cp = b & (0x3F >> need);
  ++i;
  for (int k = 0; k < need && i < sv.size(); ++k) cp = (cp << 6) | (s[i++] & 0x3F);
  return cp;
}

bool is_white_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

namespace {
struct ByteAlphabet {
  std::array<std::string, 256> piece;
  std::array<int, 0x144> byte_of;  // code points used are < U+0144
  ByteAlphabet() {
    byte_of.fill(-1);
    int extra = 0;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      char32_t cp = printable ? static_cast<char32_t>(b) : static_cast<char32_t>(0x100 + extra++);
      append(piece[b], cp);
      byte_of[cp] = b;
    }
  }
};
const ByteAlphabet& alphabet() {
  static const ByteAlphabet a;
  return a;
}
}  // namespace

const std::string& byte_to_piece(uint8_t b) { return alphabet().piece[b]; }

int piece_char_to_byte(char32_t cp) { return cp < 0x144 ? alphabet().byte_of[cp] : -1; }

}  // namespace dsv3::io::utf8
