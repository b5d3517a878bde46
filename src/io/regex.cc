// PCRE2-backed regex for tokenizer patterns; see regex.h for the Oniguruma compatibility rules.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "io/regex.h"

#include <pcre2.h>

#include <cctype>

#include "core/error.h"

namespace dsv3::io {
namespace {

constexpr const char* kWordClassBody = "\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}";

bool is_hex(char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; }

// Per-thread PCRE2 match state: match data (group 0 only; PCRE2 fills what fits), a match context and a
// JIT stack large enough for long runs of whitespace or letters.
struct MatchState {
  pcre2_match_data* md = nullptr;
  pcre2_match_context* mc = nullptr;
  pcre2_jit_stack* js = nullptr;
  MatchState() {
    md = pcre2_match_data_create(1, nullptr);
    mc = pcre2_match_context_create(nullptr);
    js = pcre2_jit_stack_create(64 * 1024, 16 * 1024 * 1024, nullptr);
    if (js) pcre2_jit_stack_assign(mc, nullptr, js);
  }
  ~MatchState() {
    pcre2_match_data_free(md);
    pcre2_match_context_free(mc);
    if (js) pcre2_jit_stack_free(js);
  }
};

MatchState& match_state() {
  thread_local MatchState st;
  return st;
}

std::string pcre2_message(int code) {
  PCRE2_UCHAR buf[256];
  pcre2_get_error_message(code, buf, sizeof buf);
  return reinterpret_cast<const char*>(buf);
}

}  // namespace

std::string onig_to_pcre2(std::string_view p) {
  std::string out;
  out.reserve(p.size() + 32);
  bool in_class = false;
  size_t class_start = 0;  // index in p just after '[' (and '^')
  for (size_t i = 0; i < p.size(); ++i) {
    char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      char n = p[i + 1];
      ++i;
      switch (n) {
        case 's':
          out += "\\p{White_Space}";
          continue;
        case 'S':
          out += "\\P{White_Space}";
          continue;
        case 'd':
          out += "\\p{Nd}";
          continue;
        case 'D':
          out += "\\P{Nd}";
          continue;
        case 'w':
          out += in_class ? std::string(kWordClassBody) : "[" + std::string(kWordClassBody) + "]";
          continue;
        case 'W':
          if (in_class) throw Error("regex: \\W inside a character class is not supported");
          out += "[^" + std::string(kWordClassBody) + "]";
          continue;
        case 'h':
          out += in_class ? "0-9A-Fa-f" : "[0-9A-Fa-f]";
          continue;
        case 'H':
          if (in_class) throw Error("regex: \\H inside a character class is not supported");
          out += "[^0-9A-Fa-f]";
          continue;
        case 'u':
          if (i + 4 < p.size() && is_hex(p[i + 1]) && is_hex(p[i + 2]) && is_hex(p[i + 3]) && is_hex(p[i + 4])) {
            out += "\\x{" + std::string(p.substr(i + 1, 4)) + "}";
            i += 4;
            continue;
          }
          out += "\\u";
          continue;
        case 'p':
        case 'P':
          // Oniguruma's \p{^X} is \P{X}.
          if (i + 2 < p.size() && p[i + 1] == '{' && p[i + 2] == '^') {
            out += n == 'p' ? "\\P{" : "\\p{";
            i += 2;
            continue;
          }
          out += '\\';
          out += n;
          continue;
        default:
          out += '\\';
          out += n;
          continue;
      }
    }
    if (in_class) {
      if (c == ']' && i != class_start) {
        in_class = false;
      } else if (c == '[') {
        if (i + 1 < p.size() && p[i + 1] == ':') {  // POSIX class [:alpha:] - same in both
          size_t close = p.find(":]", i + 2);
          if (close != std::string_view::npos) {
            out.append(p.substr(i, close + 2 - i));
            i = close + 1;
            continue;
          }
        }
        throw Error("regex: nested character classes (Oniguruma set operations) are not supported");
      } else if (c == '&' && i + 1 < p.size() && p[i + 1] == '&') {
        throw Error("regex: character-class intersection '&&' is not supported");
      }
      out += c;
      continue;
    }
    if (c == '[') {
      in_class = true;
      out += c;
      if (i + 1 < p.size() && p[i + 1] == '^') {
        out += '^';
        ++i;
      }
      class_start = i + 1;
      continue;
    }
    out += c;
  }
  return out;
}

Regex::Regex(std::string_view pattern, bool literal, const std::string& label) : pattern_(pattern) {
  std::string translated = literal ? std::string(pattern) : onig_to_pcre2(pattern);
  uint32_t options = literal ? PCRE2_UTF | PCRE2_LITERAL : PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE;
  pcre2_compile_context* cc = pcre2_compile_context_create(nullptr);
  pcre2_set_newline(cc, PCRE2_NEWLINE_LF);
  int err = 0;
  PCRE2_SIZE err_off = 0;
  pcre2_code* code =
      pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(), options, &err, &err_off, cc);
  pcre2_compile_context_free(cc);
  if (!code) {
    fail("{}: cannot compile regex {:?} (as PCRE2 {:?}): {} at offset {}", label, std::string(pattern), translated,
         pcre2_message(err), err_off);
  }
  jit_ = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
  code_ = code;
}

Regex::~Regex() { pcre2_code_free(static_cast<pcre2_code*>(code_)); }

bool Regex::find(std::string_view subject, size_t from, size_t* begin, size_t* end) const {
  auto* code = static_cast<pcre2_code*>(code_);
  MatchState& st = match_state();
  auto subj = reinterpret_cast<PCRE2_SPTR>(subject.data() ? subject.data() : "");
  int rc = jit_ ? pcre2_jit_match(code, subj, subject.size(), from, 0, st.md, st.mc)
                : pcre2_match(code, subj, subject.size(), from, PCRE2_NO_UTF_CHECK, st.md, st.mc);
  if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {
    rc = pcre2_match(code, subj, subject.size(), from, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, st.md, st.mc);
  }
  if (rc == PCRE2_ERROR_NOMATCH) return false;
  if (rc < 0) fail("regex {:?}: match failed: {}", pattern_, pcre2_message(rc));
  const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(st.md);
  *begin = ov[0];
  *end = ov[1];
  return true;
}

}  // namespace dsv3::io
