// The Jinja lexer (lexer.h): jinja2's Lexer.tokeniter rules, written as a scanner.
#include "io/jinja/lexer.h"

#include <algorithm>

#include "core/error.h"
#include "io/jinja/value.h"

namespace dsv3::io::jinja::detail {
namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_name_char(char c) { return is_name_start(c) || is_digit(c); }

// source.splitlines() joined by "\n": every line break Python's str.splitlines knows becomes "\n", and
// a final line break is dropped.
std::string normalise_newlines(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t k = 0; k < s.size(); ++k) {
    const char c = s[k];
    if (c == '\r') {
      if (k + 1 < s.size() && s[k + 1] == '\n') ++k;
      out += '\n';
    } else if (c == '\v' || c == '\f' || c == '\x1c' || c == '\x1d' || c == '\x1e') {
      out += '\n';
    } else if (c == '\xC2' && k + 1 < s.size() && s[k + 1] == '\x85') {
      out += '\n';
      ++k;
    } else if (c == '\xE2' && k + 2 < s.size() && s[k + 1] == '\x80' && (s[k + 2] == '\xA8' || s[k + 2] == '\xA9')) {
      out += '\n';
      k += 2;
    } else {
      out += c;
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

class Lexer {
 public:
  Lexer(std::string_view source, const std::string& name, const Options& options)
      : src_(normalise_newlines(source)), name_(name), options_(options) {
    line_starts_.push_back(0);
    for (size_t k = 0; k < src_.size(); ++k) {
      if (src_[k] == '\n') line_starts_.push_back(k + 1);
    }
  }

  std::vector<Token> run() {
    size_t pos = 0;
    bool strip_next = false;  // the previous tag ended with '-': strip leading whitespace of the next data
    while (pos < src_.size()) {
      if (strip_next) {
        while (pos < src_.size() && is_space(src_[pos])) ++pos;
        strip_next = false;
        if (pos >= src_.size()) break;
      }
      const size_t tag = find_tag(pos);
      std::string_view text(src_.data() + pos, (tag == std::string::npos ? src_.size() : tag) - pos);
      if (tag == std::string::npos) {
        emit_text(text, pos);
        break;
      }
      const char kind = src_[tag + 1];  // '{', '%' or '#'
      const char sign = tag + 2 < src_.size() ? src_[tag + 2] : '\0';
      if (sign == '-') {
        while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
      } else if (sign != '+' && kind != '{' && options_.lstrip_blocks) {
        const size_t nl = text.rfind('\n');
        const size_t l_pos = nl == std::string_view::npos ? 0 : nl + 1;
        const bool line_start = pos == 0 || src_[pos - 1] == '\n';
        if (l_pos > 0 || line_start) {
          const std::string_view tail = text.substr(l_pos);
          if (std::all_of(tail.begin(), tail.end(), [](char c) { return c == ' ' || c == '\t'; })) {
            text = text.substr(0, l_pos);
          }
        }
      }
      emit_text(text, pos);
      size_t p = tag + 2 + ((sign == '-' || sign == '+') ? 1 : 0);
      if (kind == '#') {
        pos = lex_comment(tag, p, strip_next);
      } else if (kind == '%' && is_raw(p)) {
        pos = lex_raw(tag, p, strip_next);
      } else {
        pos = lex_tag(tag, p, kind == '{', strip_next);
      }
    }
    tokens_.push_back(Token{Tok::kEof, "", 0, 0, position(src_.size()).first, position(src_.size()).second});
    return std::move(tokens_);
  }

 private:
  std::pair<int, int> position(size_t pos) const {
    const auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), pos) - 1;
    return {static_cast<int>(it - line_starts_.begin()) + 1, static_cast<int>(pos - *it) + 1};
  }

  [[noreturn]] void error(size_t pos, const std::string& message) const {
    const auto [line, col] = position(pos);
    fail("{}:{}:{}: {}", name_, line, col, message);
  }

  size_t find_tag(size_t pos) const {
    for (size_t k = src_.find('{', pos); k != std::string::npos; k = src_.find('{', k + 1)) {
      if (k + 1 < src_.size() && (src_[k + 1] == '{' || src_[k + 1] == '%' || src_[k + 1] == '#')) return k;
    }
    return std::string::npos;
  }

  void emit_text(std::string_view text, size_t pos) {
    if (text.empty()) return;
    const auto [line, col] = position(pos);
    tokens_.push_back(Token{Tok::kText, std::string(text), 0, 0, line, col});
  }

  void push(Tok type, std::string text, size_t pos) {
    const auto [line, col] = position(pos);
    tokens_.push_back(Token{type, std::move(text), 0, 0, line, col});
  }

  // After a block or comment's closing "%}" / "#}": trim_blocks drops one newline; "-" strips all
  // whitespace (left to the main loop); "+" keeps everything.
  size_t after_block_end(size_t pos, char sign, bool& strip_next) const {
    if (sign == '-') {
      strip_next = true;
    } else if (sign != '+' && options_.trim_blocks && pos < src_.size() && src_[pos] == '\n') {
      ++pos;
    }
    return pos;
  }

  size_t lex_comment(size_t tag, size_t p, bool& strip_next) {
    const size_t end = src_.find("#}", p);
    if (end == std::string::npos) error(tag, "unclosed comment (missing '#}')");
    const char sign = end > p && (src_[end - 1] == '-' || src_[end - 1] == '+') ? src_[end - 1] : '\0';
    return after_block_end(end + 2, sign, strip_next);
  }

  // `{%[-+]? raw [-]?%}` at p (after "{%" and its sign)?
  bool is_raw(size_t p) const {
    while (p < src_.size() && is_space(src_[p])) ++p;
    if (src_.compare(p, 3, "raw") != 0) return false;
    p += 3;
    if (p < src_.size() && is_name_char(src_[p])) return false;
    while (p < src_.size() && is_space(src_[p])) ++p;
    return src_.compare(p, 2, "%}") == 0 || src_.compare(p, 3, "-%}") == 0;
  }

  size_t lex_raw(size_t tag, size_t p, bool& strip_next) {
    size_t end_open = src_.find("%}", p);
    size_t body = end_open + 2;
    if (src_[end_open - 1] == '-') {  // "-%}" strips the raw body's leading whitespace
      while (body < src_.size() && is_space(src_[body])) ++body;
    }
    for (size_t k = src_.find("{%", body); k != std::string::npos; k = src_.find("{%", k + 1)) {
      size_t q = k + 2;
      const char sign = q < src_.size() && (src_[q] == '-' || src_[q] == '+') ? src_[q] : '\0';
      if (sign) ++q;
      while (q < src_.size() && is_space(src_[q])) ++q;
      if (src_.compare(q, 6, "endraw") != 0) continue;
      q += 6;
      while (q < src_.size() && is_space(src_[q])) ++q;
      char end_sign = '\0';
      if (q < src_.size() && (src_[q] == '-' || src_[q] == '+')) end_sign = src_[q++];
      if (src_.compare(q, 2, "%}") != 0) continue;
      std::string_view text(src_.data() + body, k - body);
      if (sign == '-') {
        while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
      }
      emit_text(text, body);
      return after_block_end(q + 2, end_sign, strip_next);
    }
    error(tag, "unclosed 'raw' block (missing '{% endraw %}')");
  }

  // The tokens of one `{{ … }}` or `{% … %}` tag, p just past its opener.
  size_t lex_tag(size_t tag, size_t p, bool variable, bool& strip_next) {
    push(variable ? Tok::kVarBegin : Tok::kBlockBegin, variable ? "{{" : "{%", tag);
    std::vector<char> brackets;
    while (true) {
      while (p < src_.size() && is_space(src_[p])) ++p;
      if (p >= src_.size()) {
        error(tag, variable ? "unclosed '{{' (missing '}}')" : "unclosed '{%' (missing '%}')");
      }
      if (brackets.empty()) {
        const std::string_view rest(src_.data() + p, src_.size() - p);
        const std::string_view close = variable ? "}}" : "%}";
        if (rest.starts_with(close) || ((rest[0] == '-' || rest[0] == '+') && rest.substr(1).starts_with(close))) {
          const char sign = rest[0] == '-' || rest[0] == '+' ? rest[0] : '\0';
          if (variable && sign == '+') error(p, "unexpected '+'");
          push(variable ? Tok::kVarEnd : Tok::kBlockEnd, std::string(close), p);
          p += close.size() + (sign ? 1 : 0);
          if (variable) {
            if (sign == '-') strip_next = true;
            return p;
          }
          return after_block_end(p, sign, strip_next);
        }
      }
      p = lex_token(p, brackets);
    }
  }

  size_t lex_token(size_t p, std::vector<char>& brackets) {
    const char c = src_[p];
    const size_t start = p;
    if (is_name_start(c)) {
      while (p < src_.size() && is_name_char(src_[p])) ++p;
      push(Tok::kName, src_.substr(start, p - start), start);
      return p;
    }
    if (is_digit(c)) return lex_number(p);
    if (c == '\'' || c == '"') return lex_string(p);
    static constexpr std::string_view kTwo[] = {"//", "**", "==", "!=", "<=", ">="};
    for (std::string_view op : kTwo) {
      if (src_.compare(p, 2, op) == 0) {
        push(Tok::kOp, std::string(op), p);
        return p + 2;
      }
    }
    static constexpr std::string_view kOne = "+-*/%~<>=()[]{},.:|";
    if (kOne.find(c) == std::string_view::npos) error(p, fmt::format("unexpected character '{}'", c));
    if (c == '(' || c == '[' || c == '{') {
      brackets.push_back(c == '(' ? ')' : c == '[' ? ']' : '}');
    } else if (c == ')' || c == ']' || c == '}') {
      if (brackets.empty()) error(p, fmt::format("unexpected '{}'", c));
      if (brackets.back() != c) error(p, fmt::format("unexpected '{}', expected '{}'", c, brackets.back()));
      brackets.pop_back();
    }
    push(Tok::kOp, std::string(1, c), p);
    return p + 1;
  }

  size_t digits(size_t p, std::string& out) const {  // (\d+_)*\d+
    while (p < src_.size() &&
           (is_digit(src_[p]) || (src_[p] == '_' && p + 1 < src_.size() && is_digit(src_[p + 1]) && !out.empty()))) {
      if (src_[p] != '_') out += src_[p];
      ++p;
    }
    return p;
  }

  size_t lex_number(size_t p) {
    const size_t start = p;
    std::string text;
    p = digits(p, text);
    const bool after_dot = !tokens_.empty() && tokens_.back().type == Tok::kOp && tokens_.back().text == ".";
    bool is_float = false;
    if (!after_dot && p + 1 < src_.size() && src_[p] == '.' && is_digit(src_[p + 1])) {
      text += '.';
      p = digits(p + 1, text);
      is_float = true;
    }
    if (!after_dot && p < src_.size() && (src_[p] == 'e' || src_[p] == 'E')) {
      size_t q = p + 1;
      std::string exp = "e";
      if (q < src_.size() && (src_[q] == '+' || src_[q] == '-')) exp += src_[q++];
      if (q < src_.size() && is_digit(src_[q])) {
        std::string d;
        p = digits(q, d);
        text += exp + d;
        is_float = true;
      }
    }
    const auto [line, col] = position(start);
    Token t{is_float ? Tok::kFloat : Tok::kInt, text, 0, 0, line, col};
    if (is_float) {
      t.fval = std::strtod(text.c_str(), nullptr);
    } else {
      int64_t v = 0;
      for (char d : text) {
        if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, d - '0', &v)) {
          error(start, fmt::format("integer literal {} is too large", text));
        }
      }
      t.ival = v;
    }
    tokens_.push_back(std::move(t));
    return p;
  }

  // A string literal, decoded as jinja2 does (Python's unicode-escape codec on the literal's body).
  size_t lex_string(size_t p) {
    const char quote = src_[p];
    const size_t start = p++;
    std::string out;
    while (true) {
      if (p >= src_.size()) error(start, "unterminated string literal");
      const char c = src_[p];
      if (c == quote) break;
      if (c != '\\') {
        out += c;
        ++p;
        continue;
      }
      if (p + 1 >= src_.size()) error(start, "unterminated string literal");
      const char e = src_[p + 1];
      p += 2;
      switch (e) {
        case '\n':
          break;  // a line continuation
        case '\\':
        case '\'':
        case '"':
          out += e;
          break;
        case 'a':
          out += '\a';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'v':
          out += '\v';
          break;
        case 'x':
        case 'u':
        case 'U': {
          const int n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          uint32_t cp = 0;
          for (int k = 0; k < n; ++k) {
            const int h = p + k < src_.size() ? hex_value(src_[p + k]) : -1;
            if (h < 0) error(p - 2, fmt::format("truncated \\{} escape in a string literal", e));
            cp = cp * 16 + static_cast<uint32_t>(h);
          }
          p += n;
          if (cp > 0x10FFFF) error(p - n - 2, "a \\U escape past U+10FFFF in a string literal");
          // A surrogate pair written as two \u escapes becomes its character.
          if (cp >= 0xD800 && cp <= 0xDBFF && src_.compare(p, 2, "\\u") == 0 && p + 6 <= src_.size()) {
            uint32_t lo = 0;
            bool ok = true;
            for (int k = 0; k < 4; ++k) {
              const int h = hex_value(src_[p + 2 + k]);
              ok = ok && h >= 0;
              lo = lo * 16 + static_cast<uint32_t>(std::max(h, 0));
            }
            if (ok && lo >= 0xDC00 && lo <= 0xDFFF) {
              cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
              p += 6;
            }
          }
          if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD;  // a lone surrogate has no UTF-8 form
          append_utf8(out, cp);
          break;
        }
        default:
          if (e >= '0' && e <= '7') {  // up to three octal digits
            uint32_t cp = static_cast<uint32_t>(e - '0');
            for (int k = 0; k < 2 && p < src_.size() && src_[p] >= '0' && src_[p] <= '7'; ++k) {
              cp = cp * 8 + static_cast<uint32_t>(src_[p++] - '0');
            }
            append_utf8(out, cp);
          } else {  // an unknown escape stays as written
            out += '\\';
            out += e;
          }
      }
    }
    const auto [line, col] = position(start);
    tokens_.push_back(Token{Tok::kString, std::move(out), 0, 0, line, col});
    return p + 1;
  }

  std::string src_;
  const std::string& name_;
  Options options_;
  std::vector<size_t> line_starts_;
  std::vector<Token> tokens_;
};

}  // namespace

std::vector<Token> tokenize(std::string_view source, const std::string& name, const Options& options) {
  return Lexer(source, name, options).run();
}

}  // namespace dsv3::io::jinja::detail
