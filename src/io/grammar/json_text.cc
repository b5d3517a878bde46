#include "io/grammar/json_text.h"

#include <algorithm>
#include <cctype>

#include "core/error.h"

namespace dsv3::grammar {

namespace {
constexpr int64_t kMaxIntDigits = 16;
constexpr uint64_t kIntCap = 9999999999999999ull;  // 16 digits
using Alt = Builder::Alt;
using Ref = Element;
Ref ref(int32_t r) { return Builder::ref(r); }
}  // namespace

int32_t JsonText::utf8_multibyte(bool without_line_separators) {
  int32_t& memo = without_line_separators ? utf8_nols_ : utf8_;
  if (memo >= 0) return memo;
  const Element cont = b_.range(0x80, 0xbf);
  std::vector<Alt> alts = {
      {b_.range(0xc2, 0xdf), cont},
      {b_.byte(0xe0), b_.range(0xa0, 0xbf), cont},
      {b_.byte(0xed), b_.range(0x80, 0x9f), cont},  // no surrogates
      {b_.range(0xf0, 0xf0), b_.range(0x90, 0xbf), cont, cont},
      {b_.range(0xf1, 0xf3), cont, cont, cont},
      {b_.byte(0xf4), b_.range(0x80, 0x8f), cont, cont},
  };
  ByteSet e3;  // E1..EC, EE..EF
  for (int c = 0xe1; c <= 0xef; ++c)
    if (c != 0xed) e3.set(size_t(c));
  if (without_line_separators) {
    e3.reset(0xe2);
    ByteSet not_a8a9;  // E2 80 [80-BF minus A8, A9]
    for (int c = 0x80; c <= 0xbf; ++c)
      if (c != 0xa8 && c != 0xa9) not_a8a9.set(size_t(c));
    alts.push_back({b_.byte(0xe2), b_.byte(0x80), b_.set(not_a8a9)});
    alts.push_back({b_.byte(0xe2), b_.range(0x81, 0xbf), cont});
  }
  alts.push_back({b_.set(e3), cont, cont});
  memo = b_.add_rule(std::move(alts));
  return memo;
}

int32_t JsonText::hex(int64_t n) {
  if (hexdigit_ < 0) {
    ByteSet h;
    for (int c = '0'; c <= '9'; ++c) h.set(size_t(c));
    for (int c = 'a'; c <= 'f'; ++c) h.set(size_t(c)), h.set(size_t(c - 32));
    hexdigit_ = b_.add_rule({{b_.set(h)}});
  }
  return b_.repeat(hexdigit_, n, n, -1);
}

int32_t JsonText::string_char() {
  if (char_ >= 0) return char_;
  ByteSet plain;
  for (int c = 0x20; c < 0x80; ++c)
    if (c != '"' && c != '\\') plain.set(size_t(c));
  ByteSet esc;
  for (char c : std::string_view("\"\\/bfnrt")) esc.set(uint8_t(c));
  // \uXXXX without surrogates (D800-DFFF): first hex digit not d/D, or d/D then 0-7.
  ByteSet h, h_not_d;
  for (int c = '0'; c <= '9'; ++c) h.set(size_t(c));
  for (int c = 'a'; c <= 'f'; ++c) h.set(size_t(c)), h.set(size_t(c - 32));
  h_not_d = h;
  h_not_d.reset('d');
  h_not_d.reset('D');
  ByteSet dD;
  dD.set('d');
  dD.set('D');
  const Element H = b_.set(h);
  char_ = b_.add_rule({
      {b_.set(plain)},
      {ref(utf8_multibyte())},
      {b_.byte('\\'), b_.set(esc)},
      {b_.byte('\\'), b_.byte('u'), b_.set(h_not_d), H, H, H},
      {b_.byte('\\'), b_.byte('u'), b_.set(dD), b_.range('0', '7'), H, H},
  });
  return char_;
}

int32_t JsonText::string(int64_t min_chars, int64_t max_chars) {
  const int32_t body = b_.repeat(string_char(), min_chars, max_chars, -1);
  return b_.add_rule({{b_.byte('"'), ref(body), b_.byte('"')}});
}

int32_t JsonText::digits(int64_t min, int64_t max) {
  if (digit_ < 0) digit_ = b_.add_rule({{b_.range('0', '9')}});
  return b_.repeat(digit_, min, max, -1);
}

int32_t JsonText::number(bool nonnegative) {
  const int32_t intpart = b_.add_rule({{b_.byte('0')}, {b_.range('1', '9'), ref(digits(0, kMaxIntDigits - 1))}});
  const int32_t frac = b_.add_rule({{b_.byte('.'), ref(digits(1, 16))}, {}});
  ByteSet e, sign;
  e.set('e');
  e.set('E');
  sign.set('+');
  sign.set('-');
  const int32_t opt_sign = b_.add_rule({{b_.set(sign)}, {}});
  const int32_t exp = b_.add_rule({{b_.set(e), ref(opt_sign), ref(digits(1, 2))}, {}});
  std::vector<Alt> alts = {{ref(intpart), ref(frac), ref(exp)}};
  if (!nonnegative) alts.push_back({b_.byte('-'), ref(intpart), ref(frac), ref(exp)});
  return b_.add_rule(std::move(alts));
}

// Decimal strings of equal length n, lo <= x <= hi digit-wise (the classic range-to-regex split).
int32_t JsonText::same_length_range(const std::string& lo, const std::string& hi) {
  const size_t n = lo.size();
  if (n == 0) return b_.empty_rule();
  if (lo == hi) return b_.literal_rule(lo);
  const std::string lo_rest = lo.substr(1), hi_rest = hi.substr(1);
  const bool lo_zero = std::all_of(lo_rest.begin(), lo_rest.end(), [](char c) { return c == '0'; });
  const bool hi_nine = std::all_of(hi_rest.begin(), hi_rest.end(), [](char c) { return c == '9'; });
  const int64_t m = int64_t(n) - 1;
  if (lo_zero && hi_nine) return b_.add_rule({{b_.range(uint8_t(lo[0]), uint8_t(hi[0])), ref(digits(m, m))}});
  if (lo[0] == hi[0]) return b_.add_rule({{b_.byte(uint8_t(lo[0])), ref(same_length_range(lo_rest, hi_rest))}});
  std::vector<Alt> alts;
  alts.push_back({b_.byte(uint8_t(lo[0])), ref(same_length_range(lo_rest, std::string(size_t(m), '9')))});
  if (lo[0] + 1 <= hi[0] - 1) alts.push_back({b_.range(uint8_t(lo[0] + 1), uint8_t(hi[0] - 1)), ref(digits(m, m))});
  alts.push_back({b_.byte(uint8_t(hi[0])), ref(same_length_range(std::string(size_t(m), '0'), hi_rest))});
  return b_.add_rule(std::move(alts));
}

int32_t JsonText::nonnegative_range(uint64_t lo, uint64_t hi) {
  std::vector<Alt> alts;
  const std::string slo = std::to_string(lo), shi = std::to_string(hi);
  for (size_t d = slo.size(); d <= shi.size(); ++d) {
    uint64_t first = 1;
    for (size_t i = 1; i < d; ++i) first *= 10;
    const uint64_t last = first * 10 - 1;
    const uint64_t a = std::max(lo, d == 1 ? uint64_t(0) : first), z = std::min(hi, last);
    if (a > z) continue;
    alts.push_back({ref(same_length_range(std::to_string(a), std::to_string(z)))});
  }
  return b_.add_rule(std::move(alts));
}

int32_t JsonText::integer(std::optional<int64_t> lo, std::optional<int64_t> hi) {
  constexpr int64_t kLimit = 999999999999999999;  // 18 digits: negation never overflows
  int64_t l = lo ? std::max(*lo, -kLimit) : -int64_t(kIntCap);
  int64_t h = hi ? std::min(*hi, kLimit) : int64_t(kIntCap);
  if (!lo && h < l) l = h;  // e.g. maximum -10^17 alone
  if (!hi && h < l) h = l;
  if (l > h) fail("json_schema: no integer lies in [{}, {}]", l, h);
  if (l >= 0) return nonnegative_range(uint64_t(l), uint64_t(h));
  const int32_t neg = b_.add_rule({{b_.byte('-'), ref(nonnegative_range(h < 0 ? uint64_t(-h) : 1, uint64_t(-l)))}});
  if (h < 0) return neg;
  return b_.add_rule({{ref(neg)}, {ref(nonnegative_range(0, uint64_t(h)))}});
}

std::optional<int32_t> JsonText::format(std::string_view name) {
  auto lit = [&](std::string_view s) { return ref(b_.literal_rule(s)); };
  auto two = [&](std::vector<std::string> options) {  // alternatives of fixed short strings
    std::vector<Alt> alts;
    for (auto& o : options) alts.push_back(b_.text(o));
    return ref(b_.add_rule(std::move(alts)));
  };
  auto pair_range = [&](char d0lo, char d0hi, char d1lo, char d1hi) {
    return Alt{b_.range(uint8_t(d0lo), uint8_t(d0hi)), b_.range(uint8_t(d1lo), uint8_t(d1hi))};
  };
  auto date = [&]() {
    const Element dash = b_.byte('-');
    const int32_t d31 =
        b_.add_rule({pair_range('0', '0', '1', '9'), pair_range('1', '2', '0', '9'), pair_range('3', '3', '0', '1')});
    const int32_t d30 = b_.add_rule({pair_range('0', '0', '1', '9'), pair_range('1', '2', '0', '9'), b_.text("30")});
    const int32_t d28 =
        b_.add_rule({pair_range('0', '0', '1', '9'), pair_range('1', '1', '0', '9'), pair_range('2', '2', '0', '8')});
    const int32_t md = b_.add_rule({
        {two({"01", "03", "05", "07", "08", "10", "12"}), dash, ref(d31)},
        {two({"04", "06", "09", "11"}), dash, ref(d30)},
        {lit("02"), dash, ref(d28)},
    });
    return b_.add_rule({{ref(digits(4, 4)), dash, ref(md)}});
  };
  auto time = [&]() {
    const int32_t hh = b_.add_rule({pair_range('0', '1', '0', '9'), pair_range('2', '2', '0', '3')});
    const int32_t mm = b_.add_rule({pair_range('0', '5', '0', '9')});
    const int32_t frac = b_.add_rule({{b_.byte('.'), ref(digits(1, 6))}, {}});
    ByteSet pm;
    pm.set('+');
    pm.set('-');
    const int32_t zone = b_.add_rule({{b_.byte('Z')}, {b_.set(pm), ref(hh), b_.byte(':'), ref(mm)}});
    return b_.add_rule({{ref(hh), b_.byte(':'), ref(mm), b_.byte(':'), ref(mm), ref(frac), ref(zone)}});
  };
  int32_t body;
  if (name == "date") {
    body = date();
  } else if (name == "time") {
    body = time();
  } else if (name == "date-time") {
    body = b_.add_rule({{ref(date()), b_.byte('T'), ref(time())}});
  } else if (name == "uuid") {
    const Element dash = b_.byte('-');
    body = b_.add_rule({{ref(hex(8)), dash, ref(hex(4)), dash, ref(hex(4)), dash, ref(hex(4)), dash, ref(hex(12))}});
  } else if (name == "email") {
    ByteSet local, label;
    for (int c = 0; c < 128; ++c)
      if (std::isalnum(c)) local.set(size_t(c)), label.set(size_t(c));
    for (char c : std::string_view("_+-")) local.set(uint8_t(c));
    const int32_t atom = b_.repeat(b_.add_rule({{b_.set(local)}}), 1, 24, -1);
    const int32_t lab = b_.repeat(b_.add_rule({{b_.set(label)}}), 1, 24, -1);
    const int32_t dot = b_.literal_rule(".");
    body = b_.add_rule({{ref(b_.repeat(atom, 1, 3, dot)), b_.byte('@'), ref(b_.repeat(lab, 2, 4, dot))}});
  } else if (name == "ipv4") {
    const int32_t octet = b_.add_rule({
        {b_.range('0', '9')},
        pair_range('1', '9', '0', '9'),
        {b_.byte('1'), b_.range('0', '9'), b_.range('0', '9')},
        {b_.byte('2'), b_.range('0', '4'), b_.range('0', '9')},
        {b_.byte('2'), b_.byte('5'), b_.range('0', '5')},
    });
    body = b_.repeat(octet, 4, 4, b_.literal_rule("."));
  } else {
    return std::nullopt;
  }
  return b_.add_rule({{b_.byte('"'), ref(body), b_.byte('"')}});
}

int32_t JsonText::value() {
  if (value_ >= 0) return value_;
  value_ = b_.new_rule();
  const int32_t comma = b_.literal_rule(",");
  const int32_t member = b_.add_rule({{ref(string()), b_.byte(':'), ref(value_)}});
  object_ = b_.add_rule({{b_.byte('{'), ref(b_.repeat(member, 0, -1, comma)), b_.byte('}')}});
  const int32_t array = b_.add_rule({{b_.byte('['), ref(b_.repeat(value_, 0, -1, comma)), b_.byte(']')}});
  b_.set_rule(value_, {{ref(object_)},
                       {ref(array)},
                       {ref(string())},
                       {ref(number())},
                       b_.text("true"),
                       b_.text("false"),
                       b_.text("null")});
  return value_;
}

int32_t JsonText::object() {
  value();
  return object_;
}

Grammar Grammar::json_value() {
  Builder b;
  JsonText j(b);
  return b.finish(j.value());
}

Grammar Grammar::json_object() {
  Builder b;
  JsonText j(b);
  return b.finish(j.object());
}

}  // namespace dsv3::grammar
