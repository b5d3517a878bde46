// Python's str helpers for filters and methods: upper/lower/capitalize (per code point, through the C
// library's Unicode tables in the C.UTF-8 locale: Python's simple case mapping, without its special
// cases such as 'ß'.upper() == 'SS'), str.isspace's whitespace set, strip with and without chars,
// splitlines' line boundaries, and printf-style `%` formatting (%s %r %d %i %f %e %g %x %o %c %%, flags,
// width, precision, %(name)s with a dict).
#include <locale.h>

#include <algorithm>
#include <clocale>
#include <cmath>
#include <cwctype>

#include "io/jinja/interpreter.h"

namespace dsv3::io::jinja::detail {
namespace {

locale_t utf8_locale() {
  static const locale_t loc = [] {
    locale_t l = newlocale(LC_CTYPE_MASK, "C.UTF-8", static_cast<locale_t>(0));
    return l;
  }();
  return loc;
}

uint32_t map_case(uint32_t cp, bool upper) {
  if (cp < 0x80) {
    if (upper && cp >= 'a' && cp <= 'z') return cp - 32;
    if (!upper && cp >= 'A' && cp <= 'Z') return cp + 32;
    return cp;
  }
  const locale_t loc = utf8_locale();
  if (!loc) return cp;
  return static_cast<uint32_t>(upper ? towupper_l(static_cast<wint_t>(cp), loc)
                                     : towlower_l(static_cast<wint_t>(cp), loc));
}

std::string map_string(std::string_view s, bool upper) {
  std::string out;
  out.reserve(s.size());
  size_t pos = 0;
  while (pos < s.size()) append_utf8(out, map_case(decode_utf8(s, pos), upper));
  return out;
}

}  // namespace

std::string py_upper(std::string_view s) { return map_string(s, true); }
std::string py_lower(std::string_view s) { return map_string(s, false); }

std::string py_capitalize(std::string_view s) {
  std::string out;
  size_t pos = 0;
  bool first = true;
  while (pos < s.size()) {
    append_utf8(out, map_case(decode_utf8(s, pos), first));
    first = false;
  }
  return out;
}

bool py_is_space(uint32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

std::string py_strip(std::string_view s, const std::optional<std::string>& chars, bool left, bool right) {
  std::vector<uint32_t> set;
  if (chars) {
    size_t p = 0;
    while (p < chars->size()) set.push_back(decode_utf8(*chars, p));
  }
  const auto strip_it = [&](uint32_t c) {
    if (!chars) return py_is_space(c);
    return std::find(set.begin(), set.end(), c) != set.end();
  };
  const auto offsets = code_point_offsets(s);
  size_t b = 0, e = offsets.size() - 1;
  const auto cp_at = [&](size_t k) {
    size_t p = offsets[k];
    return decode_utf8(s, p);
  };
  if (left) {
    while (b < e && strip_it(cp_at(b))) ++b;
  }
  if (right) {
    while (e > b && strip_it(cp_at(e - 1))) --e;
  }
  return std::string(s.substr(offsets[b], offsets[e] - offsets[b]));
}

std::vector<std::string> py_splitlines(std::string_view s, bool keepends) {
  std::vector<std::string> lines;
  size_t start = 0, pos = 0;
  while (pos < s.size()) {
    const size_t at = pos;
    const uint32_t c = decode_utf8(s, pos);
    const bool brk = c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x1C || c == 0x1D || c == 0x1E ||
                     c == 0x85 || c == 0x2028 || c == 0x2029;
    if (!brk) continue;
    if (c == '\r' && pos < s.size() && s[pos] == '\n') ++pos;
    lines.emplace_back(s.substr(start, (keepends ? pos : at) - start));
    start = pos;
  }
  if (start < s.size()) lines.emplace_back(s.substr(start));
  return lines;
}

std::string py_percent_format(const std::string& f, const Value& args) {
  List items;
  const bool mapping = args.kind == Kind::kDict;
  if (args.kind == Kind::kTuple) {
    items = *args.list;
  } else if (!mapping) {
    items.push_back(args);
  }
  size_t next = 0;
  std::string out;
  for (size_t k = 0; k < f.size(); ++k) {
    if (f[k] != '%') {
      out += f[k];
      continue;
    }
    if (++k >= f.size()) render_fail("incomplete format");
    const Value* arg = nullptr;
    if (f[k] == '(') {
      const size_t close = f.find(')', k);
      if (close == std::string::npos || !mapping) render_fail("format requires a mapping");
      arg = args.dict->find(std::string_view(f).substr(k + 1, close - k - 1));
      if (!arg) render_fail("KeyError: '{}'", f.substr(k + 1, close - k - 1));
      k = close + 1;
    }
    std::string flags;
    while (k < f.size() && std::string_view("-+ #0").find(f[k]) != std::string_view::npos) flags += f[k++];
    std::string width, prec;
    while (k < f.size() && isdigit(static_cast<unsigned char>(f[k]))) width += f[k++];
    if (k < f.size() && f[k] == '.') {
      prec = ".";
      ++k;
      while (k < f.size() && isdigit(static_cast<unsigned char>(f[k]))) prec += f[k++];
    }
    if (k >= f.size()) render_fail("incomplete format");
    const char conv = f[k];
    if (conv == '%') {
      out += '%';
      continue;
    }
    if (!arg) {
      if (mapping || next >= items.size()) render_fail("not enough arguments for format string");
      arg = &items[next++];
    }
    if (width.size() > 4 || prec.size() > 4) render_fail("format width or precision too large");
    const std::string spec = "%" + flags + width + prec;
    std::string piece;
    char buf[512];
    switch (conv) {
      case 's':
      case 'r': {
        std::string s = conv == 's' ? to_str(*arg) : repr(*arg);
        if (prec.size() > 1) {
          const auto offs = code_point_offsets(s);
          const size_t n = std::stoul(prec.substr(1));
          if (n + 1 < offs.size()) s = s.substr(0, offs[n]);
        }
        const size_t w = width.empty() ? 0 : std::stoul(width);
        const size_t len = code_point_count(s);
        if (len < w) {
          if (flags.find('-') != std::string::npos) {
            s.append(w - len, ' ');
          } else {
            s.insert(0, w - len, ' ');
          }
        }
        piece = s;
        break;
      }
      case 'd':
      case 'i':
      case 'x':
      case 'X':
      case 'o':
      case 'c': {
        if (!arg->is_number()) render_fail("%{} format: a real number is required, not {}", conv, type_name(*arg));
        const auto v = arg->kind == Kind::kFloat ? static_cast<long long>(std::trunc(arg->f))
                                                 : static_cast<long long>(arg->as_int());
        if (conv == 'c') {
          append_utf8(piece, static_cast<uint32_t>(v));
          break;
        }
        const std::string c = conv == 'i' ? "lld" : std::string("ll") + conv;
        snprintf(buf, sizeof buf, (spec + c).c_str(), v);
        piece = buf;
        break;
      }
      case 'f':
      case 'F':
      case 'e':
      case 'E':
      case 'g':
      case 'G': {
        if (!arg->is_number()) render_fail("must be real number, not {}", type_name(*arg));
        snprintf(buf, sizeof buf, (spec + conv).c_str(), arg->as_double());
        piece = buf;
        break;
      }
      default:
        render_fail("unsupported format character '{}'", conv);
    }
    out += piece;
    check_size(out.size());
  }
  if (!mapping && next < items.size()) render_fail("not all arguments converted during string formatting");
  return out;
}

}  // namespace dsv3::io::jinja::detail
