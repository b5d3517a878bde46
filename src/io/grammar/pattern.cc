#include "io/grammar/pattern.h"

#include <fmt/format.h>

#include <bitset>

#include "core/error.h"

namespace dsv3::grammar {
namespace {

using Alt = Builder::Alt;
Element ref(int32_t r) { return Builder::ref(r); }

struct CharSet {
  std::bitset<128> ascii;
  bool nonascii = false;  // every non-ASCII character except U+2028 / U+2029
};

CharSet digits() {
  CharSet s;
  for (int c = '0'; c <= '9'; ++c) s.ascii.set(size_t(c));
  return s;
}
CharSet word() {
  CharSet s = digits();
  for (int c = 'a'; c <= 'z'; ++c) s.ascii.set(size_t(c)), s.ascii.set(size_t(c - 32));
  s.ascii.set('_');
  return s;
}
CharSet space() {
  CharSet s;
  for (char c : std::string_view(" \t\n\r\v\f")) s.ascii.set(uint8_t(c));
  return s;
}
// The complement within ASCII; non-ASCII only when the exact complement contains all of it.
CharSet negate(const CharSet& s, bool nonascii) {
  CharSet r;
  r.ascii = ~s.ascii;
  r.nonascii = nonascii;
  return r;
}

class PatternCompiler {
 public:
  PatternCompiler(Builder& b, JsonText& j, std::string_view p, const std::string& path)
      : b_(b), j_(j), p_(p), path_(path) {}

  int32_t top() {
    std::vector<Alt> branches;
    for (;;) {
      bool start = false, end = false;
      if (peek('^')) ++i_, start = true;
      const int32_t body = sequence(&end);
      const int32_t any = b_.repeat(j_.string_char(), 0, -1, -1);
      Alt a;
      if (!start) a.push_back(ref(any));
      a.push_back(ref(body));
      if (!end) a.push_back(ref(any));
      branches.push_back(std::move(a));
      if (i_ == p_.size()) break;
      if (p_[i_] == '|') {
        ++i_;
        continue;
      }
      error(fmt::format("unbalanced ')' at offset {}", i_));
    }
    const int32_t inner = b_.add_rule(std::move(branches));
    return b_.add_rule({{b_.byte('"'), ref(inner), b_.byte('"')}});
  }

 private:
  [[noreturn]] void error(const std::string& what) {
    fail(
        "json_schema: pattern at {}: {} in \"{}\" (supported: literals, . \\d \\w \\s and negations, [...] "
        "classes over ASCII, groups, |, * + ? {{n,m}}, ^ at the start and $ at the end)",
        path_.empty() ? "/" : path_, what, p_);
  }
  bool peek(char c) const { return i_ < p_.size() && p_[i_] == c; }

  // Alternatives inside a group, up to ')'.
  int32_t alternation() {
    std::vector<Alt> alts;
    for (;;) {
      alts.push_back({ref(sequence(nullptr))});
      if (peek('|')) {
        ++i_;
        continue;
      }
      return b_.add_rule(std::move(alts));
    }
  }

  // Atoms with quantifiers up to '|', ')' or the end; `end` (top level only): a trailing '$' was seen.
  int32_t sequence(bool* end) {
    Alt seq;
    while (i_ < p_.size() && p_[i_] != '|' && p_[i_] != ')') {
      if (p_[i_] == '$') {
        if (!end) error("'$' inside a group");
        ++i_;
        if (i_ < p_.size() && p_[i_] != '|') error("'$' before the end of the pattern");
        *end = true;
        break;
      }
      if (p_[i_] == '^') error("'^' after the start of the pattern");
      int32_t a = atom();
      a = quantifier(a);
      seq.push_back(ref(a));
    }
    return b_.add_rule({seq});
  }

  int32_t quantifier(int32_t a) {
    if (i_ >= p_.size()) return a;
    int64_t lo = 0, hi = -1;
    const char c = p_[i_];
    if (c == '*') {
      ++i_;
    } else if (c == '+') {
      ++i_, lo = 1;
    } else if (c == '?') {
      ++i_, hi = 1;
    } else if (c == '{') {
      ++i_;
      lo = number();
      if (lo < 0) error("'{' that is not a quantifier {n}, {n,} or {n,m}");
      if (peek(',')) {
        ++i_;
        hi = peek('}') ? -1 : number();
        if (!peek('}') || (hi >= 0 && hi < lo)) error("bad {n,m} quantifier");
      } else {
        hi = lo;
      }
      if (!peek('}')) error("bad {n} quantifier");
      ++i_;
    } else {
      return a;
    }
    if (peek('?')) ++i_;  // lazy: same language
    if (i_ < p_.size() && (p_[i_] == '*' || p_[i_] == '+' || p_[i_] == '?' || p_[i_] == '{'))
      error("a quantifier after a quantifier");
    if (lo > 10000 || hi > 10000) error("a quantifier bound above 10000");
    return b_.repeat(a, lo, hi, -1);
  }

  int64_t number() {
    int64_t n = -1;
    while (i_ < p_.size() && p_[i_] >= '0' && p_[i_] <= '9') {
      n = (n < 0 ? 0 : n) * 10 + (p_[i_++] - '0');
      if (n > 1000000) error("a quantifier bound too large");
    }
    return n;
  }

  int32_t atom() {
    const char c = p_[i_];
    if (c == '(') {
      ++i_;
      if (peek('?')) {
        if (i_ + 1 < p_.size() && p_[i_ + 1] == ':') {
          i_ += 2;
        } else {
          error("lookaround or named groups '(?'");
        }
      }
      const int32_t r = alternation();
      if (!peek(')')) error("a '(' without ')'");
      ++i_;
      return r;
    }
    if (c == '[') return set_rule(bracket());
    if (c == '.') {
      ++i_;
      CharSet s;
      s.ascii.set();
      s.ascii.reset('\n');
      s.ascii.reset('\r');
      s.nonascii = true;
      return set_rule(s);
    }
    if (c == '*' || c == '+' || c == '?' || c == '{' || c == '}' || c == ']')
      error(fmt::format("'{}' with nothing to repeat or unescaped", c));
    if (c == '\\') {
      ++i_;
      if (i_ >= p_.size()) error("a trailing '\\'");
      const char e = p_[i_++];
      CharSet s;
      switch (e) {
        case 'd':
          return set_rule(digits());
        case 'D':
          return set_rule(negate(digits(), true));
        case 'w':
          return set_rule(word());
        case 'W':
          return set_rule(negate(word(), true));
        case 's':
          return set_rule(space());
        case 'S':
          return set_rule(negate(space(), false));
        default:
          return codepoint_rule(escape(e));
      }
    }
    // A literal character, possibly multi-byte UTF-8.
    const uint8_t u = uint8_t(c);
    if (u < 0x80) {
      ++i_;
      return codepoint_rule(u);
    }
    const size_t n = u >= 0xf0 ? 4 : u >= 0xe0 ? 3 : 2;
    if (i_ + n > p_.size()) error("invalid UTF-8");
    const std::string bytes(p_.substr(i_, n));
    i_ += n;
    return b_.literal_rule(bytes);
  }

  // The code point of an escape \e (after the backslash); i_ is past e.
  uint32_t escape(char e) {
    switch (e) {
      case 'n':
        return '\n';
      case 'r':
        return '\r';
      case 't':
        return '\t';
      case 'f':
        return '\f';
      case 'v':
        return '\v';
      case 'u': {
        if (i_ + 4 > p_.size()) error("a short \\u escape");
        uint32_t v = 0;
        for (int k = 0; k < 4; ++k) {
          const char h = p_[i_++];
          v = v * 16 + uint32_t(std::isdigit(uint8_t(h)) ? h - '0' : (std::tolower(h) - 'a' + 10));
          if (!std::isxdigit(uint8_t(h))) error("a bad \\u escape");
        }
        if (v >= 0xd800 && v <= 0xdfff) error("a surrogate \\u escape");
        return v;
      }
      default:
        if (std::string_view("\\/.-^$*+?()[]{}|").find(e) != std::string_view::npos) return uint8_t(e);
        error(fmt::format("the escape '\\{}'", e));
    }
  }

  int32_t codepoint_rule(uint32_t cp) {
    if (cp < 0x80) {
      CharSet s;
      s.ascii.set(cp);
      return set_rule(s);
    }
    std::string u;
    if (cp < 0x800) {
      u += char(0xc0 | (cp >> 6));
      u += char(0x80 | (cp & 0x3f));
    } else {
      u += char(0xe0 | (cp >> 12));
      u += char(0x80 | ((cp >> 6) & 0x3f));
      u += char(0x80 | (cp & 0x3f));
    }
    return b_.literal_rule(u);
  }

  CharSet bracket() {
    ++i_;  // '['
    bool neg = false;
    if (peek('^')) ++i_, neg = true;
    CharSet s;
    bool has_space = false, has_negated = false;
    bool first = true;
    while (i_ < p_.size() && (p_[i_] != ']' || false)) {
      if (p_[i_] == ']' && !first) break;
      first = false;
      int lo = member(&s, &has_space, &has_negated);
      if (lo < 0) continue;  // a class escape
      if (peek('-') && i_ + 1 < p_.size() && p_[i_ + 1] != ']') {
        ++i_;
        const int hi = member(&s, &has_space, &has_negated);
        if (hi < 0) error("a range with a class escape");
        if (hi < lo) error("a range out of order");
        for (int c = lo; c <= hi; ++c) s.ascii.set(size_t(c));
      } else {
        s.ascii.set(size_t(lo));
      }
    }
    if (!peek(']')) error("a '[' without ']'");
    ++i_;
    if (!neg) return s;
    if (has_negated || s.nonascii) error("a negated class containing \\D, \\W or \\S");
    return negate(s, !has_space);
  }

  // One member of a bracket class: an ASCII code (returned) or a class escape merged into s (-1).
  int member(CharSet* s, bool* has_space, bool* has_negated) {
    const char c = p_[i_];
    if (uint8_t(c) >= 0x80) error("a non-ASCII character inside [...]");
    if (c != '\\') {
      ++i_;
      if (c == '[') error("'[' inside [...]");
      return uint8_t(c);
    }
    ++i_;
    if (i_ >= p_.size()) error("a trailing '\\'");
    const char e = p_[i_++];
    auto merge = [&](const CharSet& o) {
      s->ascii |= o.ascii;
      s->nonascii = s->nonascii || o.nonascii;
      return -1;
    };
    switch (e) {
      case 'd':
        return merge(digits());
      case 'w':
        return merge(word());
      case 's':
        *has_space = true;
        return merge(space());
      case 'D':
        *has_negated = true;
        return merge(negate(digits(), true));
      case 'W':
        *has_negated = true;
        return merge(negate(word(), true));
      case 'S':
        *has_negated = true;
        return merge(negate(space(), false));
      case 'b':
        return '\b';
      default: {
        const uint32_t cp = escape(e);
        if (cp >= 0x80) error("a non-ASCII character inside [...]");
        return int(cp);
      }
    }
  }

  // The JSON-string encodings of the characters of s.
  int32_t set_rule(const CharSet& s) {
    ByteSet plain;
    std::vector<Alt> alts;
    for (int c = 0; c < 128; ++c) {
      if (!s.ascii[size_t(c)]) continue;
      if (c >= 0x20 && c != '"' && c != '\\') {
        plain.set(size_t(c));
        continue;
      }
      std::string e;
      switch (c) {
        case '"':
          e = "\\\"";
          break;
        case '\\':
          e = "\\\\";
          break;
        case '\b':
          e = "\\b";
          break;
        case '\f':
          e = "\\f";
          break;
        case '\n':
          e = "\\n";
          break;
        case '\r':
          e = "\\r";
          break;
        case '\t':
          e = "\\t";
          break;
        default:
          e = fmt::format("\\u{:04x}", c);
      }
      alts.push_back(b_.text(e));
    }
    if (plain.any()) alts.push_back({b_.set(plain)});
    if (s.nonascii) alts.push_back({ref(j_.utf8_multibyte(true))});
    if (alts.empty()) error("a class that matches no character");
    return b_.add_rule(std::move(alts));
  }

  Builder& b_;
  JsonText& j_;
  std::string_view p_;
  const std::string& path_;
  size_t i_ = 0;
};

}  // namespace

int32_t pattern_string(Builder& b, JsonText& json, std::string_view pattern, const std::string& path) {
  return PatternCompiler(b, json, pattern, path).top();
}

}  // namespace dsv3::grammar
