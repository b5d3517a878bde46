// Python's json.dumps (CPython Lib/json/encoder.py, the pure-Python JSONEncoder that the C accelerator
// matches byte for byte), written for nlohmann::ordered_json values:
//   - strings: '"' and '\\' escaped, \n \r \t \b \f by their short escapes, other characters below U+0020
//     as \u00XX; '/' is not escaped. With ensure_ascii everything outside ' '..'~' (DEL included) is \uXXXX
//     (lower-case hex), characters past the BMP as a UTF-16 surrogate pair.
//   - floats: float.__repr__ (the shortest digits that round-trip; positional when the decimal exponent is
//     in [-4, 16), else d.ddde±XX; ".0" added to integral positional values); inf/-inf/nan as Infinity,
//     -Infinity, NaN (json.dumps' default allow_nan=True).
//   - containers: "[]" and "{}" when empty, whatever the indent; with an indent, each item on its own line.
// Strings must be valid UTF-8 (a Python str always is): invalid bytes are a dsv3::Error naming the offset.
#include "io/jinja/py_json.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <string_view>
#include <system_error>
#include <vector>

#include "core/error.h"

namespace dsv3::io::jinja {
namespace {

using Json = nlohmann::ordered_json;

// Decodes one UTF-8 sequence at s[i]; returns its code point and advances i. Rejects what Python's
// UTF-8 decoder rejects: overlong forms, surrogates, values past U+10FFFF, truncated sequences.
char32_t decode_utf8(std::string_view s, size_t& i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char b0 = byte(i);
  if (b0 < 0x80) return s[i++];
  int len = 0;
  char32_t cp = 0;
  char32_t min = 0;
  if ((b0 & 0xE0) == 0xC0) {
    len = 2, cp = b0 & 0x1F, min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3, cp = b0 & 0x0F, min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4, cp = b0 & 0x07, min = 0x10000;
  } else {
    fail("py_json_dumps: invalid UTF-8 byte 0x{:02x} at offset {} of a string", b0, i);
  }
  if (i + len > s.size()) fail("py_json_dumps: truncated UTF-8 sequence at offset {} of a string", i);
  for (int k = 1; k < len; ++k) {
    const unsigned char b = byte(i + k);
    if ((b & 0xC0) != 0x80) fail("py_json_dumps: invalid UTF-8 continuation byte at offset {} of a string", i + k);
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
    fail("py_json_dumps: invalid UTF-8 sequence (code point U+{:04X}) at offset {} of a string",
         static_cast<uint32_t>(cp), i);
  }
  i += len;
  return cp;
}

void append_u_escape(std::string& out, uint32_t unit) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += "\\u";
  for (int shift = 12; shift >= 0; shift -= 4) out += kHex[(unit >> shift) & 0xF];
}

void append_string(std::string& out, std::string_view s, bool ensure_ascii) {
  out += '"';
  size_t i = 0;
  while (i < s.size()) {
    const size_t start = i;
    const char32_t cp = decode_utf8(s, i);
    switch (cp) {
      case '"':
        out += "\\\"";
        continue;
      case '\\':
        out += "\\\\";
        continue;
      case '\n':
        out += "\\n";
        continue;
      case '\r':
        out += "\\r";
        continue;
      case '\t':
        out += "\\t";
        continue;
      case '\b':
        out += "\\b";
        continue;
      case '\f':
        out += "\\f";
        continue;
      default:
        break;
    }
    if (cp < 0x20) {
      append_u_escape(out, cp);
    } else if (ensure_ascii && cp > 0x7E) {
      if (cp >= 0x10000) {
        const uint32_t v = cp - 0x10000;
        append_u_escape(out, 0xD800 | (v >> 10));
        append_u_escape(out, 0xDC00 | (v & 0x3FF));
      } else {
        append_u_escape(out, cp);
      }
    } else {
      out.append(s.substr(start, i - start));
    }
  }
  out += '"';
}

// float.__repr__: the shortest round-trip digits (what to_chars gives), laid out by CPython's rule in
// format_float_short with mode 'r': with the value written 0.DIGITS × 10^decpt, exponent notation when
// decpt <= -4 or decpt > 16, positional otherwise; the exponent has a sign and at least two digits.
void append_float(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
    return;
  }
  if (std::isinf(v)) {
    out += v > 0 ? "Infinity" : "-Infinity";
    return;
  }
  char buf[64];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
  if (ec != std::errc()) fail("py_json_dumps: cannot format the float {}", v);
  const std::string_view sci(buf, end - buf);  // [-]d[.ddd]e±XX
  const size_t e = sci.find('e');
  std::string_view mantissa = sci.substr(0, e);
  const bool negative = !mantissa.empty() && mantissa[0] == '-';
  if (negative) mantissa.remove_prefix(1);
  std::string digits;
  for (char c : mantissa) {
    if (c != '.') digits += c;
  }
  int exp10 = 0;
  std::from_chars(sci.data() + e + 1 + (sci[e + 1] == '+'), sci.data() + sci.size(), exp10);
  const int decpt = exp10 + 1;
  const int n = static_cast<int>(digits.size());
  if (negative) out += '-';
  if (decpt <= -4 || decpt > 16) {
    out += digits[0];
    if (n > 1) {
      out += '.';
      out.append(digits, 1);
    }
    const int x = decpt - 1;
    out += x < 0 ? "e-" : "e+";
    const int ax = x < 0 ? -x : x;
    if (ax < 10) out += '0';
    out += std::to_string(ax);
  } else if (decpt <= 0) {
    out += "0.";
    out.append(-decpt, '0');
    out += digits;
  } else if (decpt >= n) {
    out += digits;
    out.append(decpt - n, '0');
    out += ".0";
  } else {
    out.append(digits, 0, decpt);
    out += '.';
    out.append(digits, decpt);
  }
}

struct Writer {
  const PyJsonOptions& options;
  std::string item_separator;
  std::string key_separator;
  std::string out;

  void newline(int level) {
    out += '\n';
    out.append(static_cast<size_t>(options.indent) * level, ' ');
  }

  // Before each item: the item separator between items, then with an indent a newline at the new depth.
  void begin_item(bool first, int level) {
    if (!first) out += item_separator;
    if (options.indent >= 0) newline(level);
  }

  void write(const Json& v, int level) {
    switch (v.type()) {
      case Json::value_t::null:
        out += "null";
        return;
      case Json::value_t::boolean:
        out += v.get<bool>() ? "true" : "false";
        return;
      case Json::value_t::number_integer:
        out += std::to_string(v.get<int64_t>());
        return;
      case Json::value_t::number_unsigned:
        out += std::to_string(v.get<uint64_t>());
        return;
      case Json::value_t::number_float:
        append_float(out, v.get<double>());
        return;
      case Json::value_t::string:
        append_string(out, v.get_ref<const std::string&>(), options.ensure_ascii);
        return;
      case Json::value_t::array: {
        if (v.empty()) {
          out += "[]";
          return;
        }
        out += '[';
        bool first = true;
        for (const Json& item : v) {
          begin_item(first, level + 1);
          first = false;
          write(item, level + 1);
        }
        if (options.indent >= 0) newline(level);
        out += ']';
        return;
      }
      case Json::value_t::object: {
        if (v.empty()) {
          out += "{}";
          return;
        }
        std::vector<Json::const_iterator> items;
        for (auto it = v.begin(); it != v.end(); ++it) items.push_back(it);
        if (options.sort_keys) {
          // Python compares str by code point; UTF-8 byte order (std::string's unsigned compare) agrees.
          std::stable_sort(items.begin(), items.end(), [](const auto& a, const auto& b) { return a.key() < b.key(); });
        }
        out += '{';
        bool first = true;
        for (const auto& it : items) {
          begin_item(first, level + 1);
          first = false;
          append_string(out, it.key(), options.ensure_ascii);
          out += key_separator;
          write(it.value(), level + 1);
        }
        if (options.indent >= 0) newline(level);
        out += '}';
        return;
      }
      case Json::value_t::binary:
        fail("py_json_dumps: a binary value has no JSON form");
      case Json::value_t::discarded:
        fail("py_json_dumps: a discarded value has no JSON form");
    }
    fail("py_json_dumps: unknown JSON value type");
  }
};

}  // namespace

std::string py_json_dumps(const nlohmann::ordered_json& value, const PyJsonOptions& options) {
  Writer writer{options,
                options.item_separator ? options.item_separator : (options.indent >= 0 ? "," : ", "),
                options.key_separator ? options.key_separator : ": ",
                {}};
  writer.write(value, 0);
  return std::move(writer.out);
}

}  // namespace dsv3::io::jinja
