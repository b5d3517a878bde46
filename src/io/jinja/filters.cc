// jinja2's builtin filters (jinja2/filters.py) that chat templates use, with their signatures and
// defaults, and Hugging Face's tojson (json.dumps(x, ensure_ascii=False, indent=None, separators=None,
// sort_keys=False), via py_json_dumps) in place of jinja2's HTML-safe one.
//   Notes from jinja2's definitions: sort, dictsort, unique, min and max compare strings case-insensitively
//   unless case_sensitive=true; title capitalises after '-', whitespace and opening brackets; indent
//   appends "\n" before splitting lines (so a trailing newline survives); round returns Python's
//   round() for 'common' (half to even) and a float for 'ceil'/'floor'; escape gives &amp; &lt; &gt; &#34;
//   &#39;; truncate has leeway 5.
#include <algorithm>
#include <cerrno>
#include <cmath>

#include "core/error.h"
#include "io/jinja/interpreter.h"
#include "io/jinja/py_json.h"

namespace dsv3::io::jinja::detail {
namespace {

using Opt = std::optional<Value>;

bool flag(const Opt& v, bool dflt = false) { return v ? truthy(*v) : dflt; }

// The value of attribute path `attr` ("a.b" or "0") of `v`, as jinja2's make_attrgetter (getitem per part).
Value attr_of(Interpreter& in, const Value& v, const Value& attr) {
  (void)in;
  Value cur = v;
  if (attr.is_integral()) {
    if (cur.is_sequence()) {
      int64_t i = attr.as_int();
      if (normalise_index(i, static_cast<int64_t>(cur.list->size()))) return (*cur.list)[static_cast<size_t>(i)];
    }
    return Value::undefined("no such element");
  }
  const std::string path = to_str(attr);
  size_t start = 0;
  while (true) {
    const size_t dot = path.find('.', start);
    const std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    Value next = Value::undefined(fmt::format("{} has no attribute '{}'", object_repr(cur), part));
    const bool digits =
        !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (cur.kind == Kind::kDict) {
      if (const Value* x = cur.dict->find(part)) next = *x;
    } else if (cur.kind == Kind::kObject) {
      if (const Value* x = cur.obj->attrs.find(part)) next = *x;
    } else if (cur.is_sequence() && digits && part.size() < 10) {
      int64_t i = std::stoll(part);
      if (normalise_index(i, static_cast<int64_t>(cur.list->size()))) next = (*cur.list)[static_cast<size_t>(i)];
    } else if (cur.is_undefined()) {
      render_fail("{}", cur.s.empty() ? "an undefined value has no attributes" : cur.s);
    }
    cur = next;
    if (dot == std::string::npos) return cur;
    start = dot + 1;
  }
}

Value lower_key(const Value& v, bool case_sensitive) {
  return !case_sensitive && v.is_string() ? Value::string(py_lower(v.s)) : v;
}

std::string join_strs(const List& items, const std::string& sep) {
  std::string out;
  for (size_t k = 0; k < items.size(); ++k) {
    if (k) out += sep;
    out += to_str(items[k]);
    check_size(out.size());
  }
  return out;
}

Value f_tojson(Interpreter&, const Value& v, Args& args) {
  const auto a = bind("tojson", args, {"ensure_ascii", "indent", "separators", "sort_keys"});
  PyJsonOptions o;
  o.ensure_ascii = flag(a[0]);
  if (a[1] && !a[1]->is_none()) {
    if (!a[1]->is_integral()) render_fail("tojson: indent must be an integer");
    o.indent = static_cast<int>(std::clamp<int64_t>(a[1]->as_int(), 0, 64));
  }
  std::string item_sep, key_sep;
  if (a[2] && !a[2]->is_none()) {
    const List seps = iterate(*a[2]);
    if (seps.size() != 2 || !seps[0].is_string() || !seps[1].is_string()) {
      render_fail("tojson: separators must be a pair of strings");
    }
    item_sep = seps[0].s;
    key_sep = seps[1].s;
    o.item_separator = item_sep.c_str();
    o.key_separator = key_sep.c_str();
  }
  o.sort_keys = flag(a[3]);
  try {
    return Value::string(py_json_dumps(to_json(v), o));
  } catch (const Error& e) {
    render_fail("tojson: {}", e.what());
  }
}

Value f_default(Interpreter&, const Value& v, Args& args) {
  const auto a = bind("default", args, {"default_value", "boolean"});
  if (v.is_undefined() || (flag(a[1]) && !truthy(v))) return a[0] ? *a[0] : Value::string("");
  return v;
}

Value f_length(Interpreter&, const Value& v, Args& args) {
  bind("length", args, {});
  return Value::integer(length(v));
}

Value f_join(Interpreter& in, const Value& v, Args& args) {
  const auto a = bind("join", args, {"d", "attribute"});
  List items = iterate(v);
  if (a[1] && !a[1]->is_none()) {
    for (Value& x : items) x = attr_of(in, x, *a[1]);
  }
  return Value::string(join_strs(items, a[0] ? to_str(*a[0]) : ""));
}

Value f_trim(Interpreter&, const Value& v, Args& args) {
  const auto a = bind("trim", args, {"chars"});
  std::optional<std::string> chars;
  if (a[0] && !a[0]->is_none()) chars = to_str(*a[0]);
  return Value::string(py_strip(to_str(v), chars, true, true));
}

Value f_items(Interpreter&, const Value& v, Args& args) {
  bind("items", args, {});
  if (v.is_undefined()) return Value::new_list();
  if (v.kind != Kind::kDict) render_fail("items: can only get item pairs from a mapping, not {}", type_name(v));
  List out;
  for (const auto& [k, x] : v.dict->items) out.push_back(Value::new_tuple({k, x}));
  return Value::new_list(std::move(out));
}

Value f_list(Interpreter&, const Value& v, Args& args) {
  bind("list", args, {});
  return Value::new_list(iterate(v));
}

Value f_first(Interpreter&, const Value& v, Args& args) {
  bind("first", args, {});
  const List items = iterate(v);
  if (items.empty()) return Value::undefined("No first item, sequence was empty.");
  return items.front();
}

Value f_last(Interpreter&, const Value& v, Args& args) {
  bind("last", args, {});
  const List items = iterate(v);
  if (items.empty()) return Value::undefined("No last item, sequence was empty.");
  return items.back();
}

Value f_string(Interpreter&, const Value& v, Args& args) {
  bind("string", args, {});
  return Value::string(to_str(v));
}

Value f_upper(Interpreter&, const Value& v, Args& args) {
  bind("upper", args, {});
  return Value::string(py_upper(to_str(v)));
}
Value f_lower(Interpreter&, const Value& v, Args& args) {
  bind("lower", args, {});
  return Value::string(py_lower(to_str(v)));
}
Value f_capitalize(Interpreter&, const Value& v, Args& args) {
  bind("capitalize", args, {});
  return Value::string(py_capitalize(to_str(v)));
}

Value f_title(Interpreter&, const Value& v, Args& args) {
  bind("title", args, {});
  const std::string s = to_str(v);
  std::string out;
  bool word_start = true;
  size_t pos = 0;
  while (pos < s.size()) {
    const size_t at = pos;
    const uint32_t c = decode_utf8(s, pos);
    const std::string one = s.substr(at, pos - at);
    const bool sep = c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || py_is_space(c);
    if (sep) {
      out += one;
      word_start = true;
    } else {
      out += word_start ? py_upper(one) : py_lower(one);
      word_start = false;
    }
  }
  return Value::string(std::move(out));
}

Value f_replace(Interpreter& in, const Value& v, Args& args) {
  const auto a = bind("replace", args, {"old", "new", "count"});
  Args m;
  if (!a[0] || !a[1]) render_fail("replace() needs old and new");
  m.positional = {Value::string(to_str(*a[0])), Value::string(to_str(*a[1]))};
  if (a[2] && !a[2]->is_none()) m.positional.push_back(*a[2]);
  Value s = Value::string(to_str(v));
  return in.call(bound_method(s, "replace"), m);
}

Value f_indent(Interpreter&, const Value& v, Args& args) {
  const auto a = bind("indent", args, {"width", "first", "blank"});
  std::string ind = "    ";
  if (a[0]) {
    if (a[0]->is_string()) {
      ind = a[0]->s;
    } else if (a[0]->is_integral()) {
      ind = std::string(static_cast<size_t>(std::clamp<int64_t>(a[0]->as_int(), 0, 1024)), ' ');
    } else {
      render_fail("indent: width must be an integer or a string");
    }
  }
  const std::string s = to_str(v) + "\n";
  const std::vector<std::string> lines = py_splitlines(s, false);
  std::string rv;
  if (flag(a[2])) {
    for (size_t k = 0; k < lines.size(); ++k) {
      if (k) rv += "\n" + ind;
      rv += lines[k];
    }
  } else {
    rv = lines.empty() ? "" : lines[0];
    for (size_t k = 1; k < lines.size(); ++k) {
      rv += "\n";
      if (!lines[k].empty()) rv += ind;
      rv += lines[k];
      check_size(rv.size());
    }
  }
  if (flag(a[1])) rv = ind + rv;
  return Value::string(std::move(rv));
}

Value f_int(Interpreter&, const Value& v, Args& args) {
  const auto a = bind("int", args, {"default", "base"});
  const Value dflt = a[0] ? *a[0] : Value::integer(0);
  if (v.is_integral()) return Value::integer(v.as_int());
  if (v.kind == Kind::kFloat) {
    if (!std::isfinite(v.f) || std::fabs(v.f) >= 9.2e18) return dflt;
    return Value::integer(static_cast<int64_t>(std::trunc(v.f)));
  }
  if (v.is_string()) {
    const std::string t = py_strip(v.s, std::nullopt, true, true);
    const int base = a[1] && a[1]->is_integral() ? static_cast<int>(a[1]->as_int()) : 10;
    if (base < 2 || base > 36) return dflt;
    errno = 0;
    char* end = nullptr;
    const long long x = std::strtoll(t.c_str(), &end, base);
    if (!t.empty() && end && *end == '\0' && errno == 0) return Value::integer(x);
    end = nullptr;
    const double d = std::strtod(t.c_str(), &end);
    if (!t.empty() && end && *end == '\0' && std::isfinite(d) && std::fabs(d) < 9.2e18) {
      return Value::integer(static_cast<int64_t>(std::trunc(d)));
    }
  }
  return dflt;
}

Value f_float(Interpreter&, const Value& v, Args& args) {
  const auto a = bind("float", args, {"default"});
  if (v.is_number()) return Value::real(v.as_double());
  if (v.is_string()) {
    const std::string t = py_strip(v.s, std::nullopt, true, true);
    char* end = nullptr;
    const double d = std::strtod(t.c_str(), &end);
    if (!t.empty() && end && *end == '\0') return Value::real(d);
  }
  return a[0] ? *a[0] : Value::real(0.0);
}

Value f_abs(Interpreter&, const Value& v, Args& args) {
  bind("abs", args, {});
  if (v.kind == Kind::kFloat) return Value::real(std::fabs(v.f));
  if (!v.is_integral()) render_fail("bad operand type for abs(): '{}'", type_name(v));
  if (v.as_int() == INT64_MIN) render_fail("integer overflow in abs");
  return Value::integer(v.as_int() < 0 ? -v.as_int() : v.as_int());
}

Value f_round(Interpreter&, const Value& v, Args& args) {
  const auto a = bind("round", args, {"precision", "method"});
  const int64_t p = a[0] && a[0]->is_integral() ? std::clamp<int64_t>(a[0]->as_int(), -300, 300) : 0;
  const std::string method = a[1] ? to_str(*a[1]) : "common";
  if (!v.is_number()) render_fail("round: a number is required, not {}", type_name(v));
  if (method == "common") {
    if (v.is_integral()) return Value::integer(v.as_int());  // Python's round(int, n) keeps an int (n >= 0)
    if (p <= 0 || !std::isfinite(v.f)) {
      const double scale = std::pow(10.0, static_cast<double>(-p));
      return Value::real(std::nearbyint(v.f / scale) * scale);
    }
    return Value::real(std::strtod(fmt::format("{:.{}f}", v.f, p).c_str(), nullptr));
  }
  if (method != "ceil" && method != "floor") render_fail("method must be common, ceil or floor");
  const double scale = std::pow(10.0, static_cast<double>(p));
  const double x = v.as_double() * scale;
  return Value::real((method == "ceil" ? std::ceil(x) : std::floor(x)) / scale);
}

Value f_reverse(Interpreter&, const Value& v, Args& args) {
  bind("reverse", args, {});
  if (v.is_string()) {
    const auto offsets = code_point_offsets(v.s);
    std::string out;
    for (size_t k = offsets.size() - 1; k > 0; --k) out.append(v.s, offsets[k - 1], offsets[k] - offsets[k - 1]);
    return Value::string(std::move(out));
  }
  List items = iterate(v);
  std::reverse(items.begin(), items.end());
  return Value::new_list(std::move(items));
}

Value f_sort(Interpreter& in, const Value& v, Args& args) {
  const auto a = bind("sort", args, {"reverse", "case_sensitive", "attribute"});
  const bool rev = flag(a[0]), cs = flag(a[1]);
  List items = iterate(v);
  std::vector<std::pair<Value, Value>> keyed;
  for (Value& x : items) {
    Value key = a[2] && !a[2]->is_none() ? attr_of(in, x, *a[2]) : x;
    keyed.emplace_back(lower_key(key, cs), std::move(x));
  }
  std::stable_sort(keyed.begin(), keyed.end(), [rev](const auto& l, const auto& r) {
    return rev ? compare(r.first, l.first) < 0 : compare(l.first, r.first) < 0;
  });
  List out;
  for (auto& kv : keyed) out.push_back(std::move(kv.second));
  return Value::new_list(std::move(out));
}

Value f_dictsort(Interpreter&, const Value& v, Args& args) {
  const auto a = bind("dictsort", args, {"case_sensitive", "by", "reverse"});
  if (v.kind != Kind::kDict) render_fail("dictsort: a mapping is required, not {}", type_name(v));
  const bool cs = flag(a[0]), rev = flag(a[2]);
  const std::string by = a[1] ? to_str(*a[1]) : "key";
  if (by != "key" && by != "value") render_fail("You can only sort by either \"key\" or \"value\"");
  List pairs;
  for (const auto& [k, x] : v.dict->items) pairs.push_back(Value::new_tuple({k, x}));
  const size_t idx = by == "key" ? 0 : 1;
  std::stable_sort(pairs.begin(), pairs.end(), [&](const Value& l, const Value& r) {
    const Value kl = lower_key((*l.list)[idx], cs), kr = lower_key((*r.list)[idx], cs);
    return rev ? compare(kr, kl) < 0 : compare(kl, kr) < 0;
  });
  return Value::new_list(std::move(pairs));
}

Value f_unique(Interpreter& in, const Value& v, Args& args) {
  const auto a = bind("unique", args, {"case_sensitive", "attribute"});
  const bool cs = flag(a[0]);
  List seen, out;
  for (const Value& x : iterate(v)) {
    const Value key = lower_key(a[1] && !a[1]->is_none() ? attr_of(in, x, *a[1]) : x, cs);
    if (std::any_of(seen.begin(), seen.end(), [&](const Value& s) { return equals(s, key); })) continue;
    seen.push_back(key);
    out.push_back(x);
  }
  return Value::new_list(std::move(out));
}

Value min_max(Interpreter& in, const Value& v, Args& args, bool want_max) {
  const auto a = bind(want_max ? "max" : "min", args, {"case_sensitive", "attribute"});
  const bool cs = flag(a[0]);
  const List items = iterate(v);
  if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
  size_t best = 0;
  Value best_key;
  for (size_t k = 0; k < items.size(); ++k) {
    const Value key = lower_key(a[1] && !a[1]->is_none() ? attr_of(in, items[k], *a[1]) : items[k], cs);
    if (k == 0 || (want_max ? compare(key, best_key) > 0 : compare(key, best_key) < 0)) {
      best = k;
      best_key = key;
    }
  }
  return items[best];
}

Value f_sum(Interpreter& in, const Value& v, Args& args) {
  const auto a = bind("sum", args, {"attribute", "start"});
  Value total = a[1] ? *a[1] : Value::integer(0);
  for (const Value& x : iterate(v)) {
    const Value term = a[0] && !a[0]->is_none() ? attr_of(in, x, *a[0]) : x;
    if (total.is_integral() && term.is_integral()) {
      int64_t r;
      if (__builtin_add_overflow(total.as_int(), term.as_int(), &r)) render_fail("integer overflow in sum");
      total = Value::integer(r);
    } else if (total.is_number() && term.is_number()) {
      total = Value::real(total.as_double() + term.as_double());
    } else {
      render_fail("unsupported operand type(s) for +: '{}' and '{}'", type_name(total), type_name(term));
    }
  }
  return total;
}

// select/reject/selectattr/rejectattr: jinja2's select_or_reject.
Value select_impl(Interpreter& in, const Value& v, Args& args, bool attr, bool keep) {
  size_t k = 0;
  Value attribute;
  if (attr) {
    if (args.positional.empty()) render_fail("selectattr/rejectattr need an attribute");
    attribute = args.positional[k++];
  }
  std::string test;
  if (k < args.positional.size()) test = to_str(args.positional[k++]);
  Args rest;
  rest.positional.assign(args.positional.begin() + static_cast<int64_t>(k), args.positional.end());
  rest.kwargs = args.kwargs;
  List out;
  for (const Value& x : iterate(v)) {
    const Value subject = attr ? attr_of(in, x, attribute) : x;
    Args call_args = rest;
    const bool ok = test.empty() ? truthy(subject) : in.apply_test(test, subject, call_args);
    if (ok == keep) out.push_back(x);
  }
  return Value::new_list(std::move(out));
}

Value f_map(Interpreter& in, const Value& v, Args& args) {
  Opt attribute, dflt;
  Args rest;
  for (auto& [key, x] : args.kwargs) {
    if (key == "attribute") {
      attribute = x;
    } else if (key == "default") {
      dflt = x;
    } else {
      rest.kwargs.emplace_back(key, x);
    }
  }
  List out;
  if (attribute) {
    for (const Value& x : iterate(v)) {
      Value y = attr_of(in, x, *attribute);
      if (y.is_undefined() && dflt) y = *dflt;
      out.push_back(std::move(y));
    }
    return Value::new_list(std::move(out));
  }
  if (args.positional.empty()) render_fail("map: a filter name or attribute= is required");
  const std::string filter = to_str(args.positional[0]);
  rest.positional.assign(args.positional.begin() + 1, args.positional.end());
  for (const Value& x : iterate(v)) {
    Args call_args = rest;
    out.push_back(in.apply_filter(filter, x, call_args));
  }
  return Value::new_list(std::move(out));
}

Value f_batch(Interpreter&, const Value& v, Args& args) {
  const auto a = bind("batch", args, {"linecount", "fill_with"});
  if (!a[0] || !a[0]->is_integral() || a[0]->as_int() <= 0) render_fail("batch: linecount must be a positive integer");
  const auto n = static_cast<size_t>(a[0]->as_int());
  List out, cur;
  for (const Value& x : iterate(v)) {
    cur.push_back(x);
    if (cur.size() == n) {
      out.push_back(Value::new_list(std::move(cur)));
      cur.clear();
    }
  }
  if (!cur.empty()) {
    if (a[1] && !a[1]->is_none()) {
      while (cur.size() < n) cur.push_back(*a[1]);
    }
    out.push_back(Value::new_list(std::move(cur)));
  }
  return Value::new_list(std::move(out));
}

Value f_center(Interpreter& in, const Value& v, Args& args) {
  const auto a = bind("center", args, {"width"});
  Args m;
  m.positional = {a[0] ? *a[0] : Value::integer(80)};
  return in.call(bound_method(Value::string(to_str(v)), "center"), m);
}

Value f_escape(Interpreter&, const Value& v, Args& args) {
  bind("escape", args, {});
  std::string out;
  for (char c : to_str(v)) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&#34;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return Value::string(std::move(out));
}

Value f_wordcount(Interpreter&, const Value& v, Args& args) {
  bind("wordcount", args, {});
  const std::string s = to_str(v);
  int64_t n = 0;
  bool in_word = false;
  size_t pos = 0;
  while (pos < s.size()) {
    const uint32_t c = decode_utf8(s, pos);
    const bool w = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                   (c >= 0x80 && !py_is_space(c));
    if (w && !in_word) ++n;
    in_word = w;
  }
  return Value::integer(n);
}

Value f_truncate(Interpreter&, const Value& v, Args& args) {
  const auto a = bind("truncate", args, {"length", "killwords", "end", "leeway"});
  const std::string s = to_str(v);
  const int64_t len = a[0] && a[0]->is_integral() ? a[0]->as_int() : 255;
  const std::string end = a[2] ? to_str(*a[2]) : "...";
  const int64_t leeway = a[3] && a[3]->is_integral() ? a[3]->as_int() : 5;
  const auto offsets = code_point_offsets(s);
  const auto n = static_cast<int64_t>(offsets.size()) - 1;
  if (n <= len + leeway) return Value::string(s);
  const int64_t cut = std::clamp<int64_t>(len - static_cast<int64_t>(code_point_count(end)), 0, n);
  std::string head = s.substr(0, offsets[static_cast<size_t>(cut)]);
  if (!flag(a[1])) {
    const size_t sp = head.rfind(' ');
    if (sp != std::string::npos) head.resize(sp);
  }
  return Value::string(head + end);
}

Value f_format(Interpreter&, const Value& v, Args& args) {
  if (!args.kwargs.empty() && !args.positional.empty()) {
    render_fail("format: can't handle positional and keyword arguments at the same time");
  }
  if (!args.kwargs.empty()) {
    Value d = Value::new_dict();
    for (auto& [k, x] : args.kwargs) d.dict->set(Value::string(k), x);
    return Value::string(py_percent_format(to_str(v), d));
  }
  return Value::string(py_percent_format(to_str(v), Value::new_tuple(args.positional)));
}

Value f_attr(Interpreter&, const Value& v, Args& args) {
  const auto a = bind("attr", args, {"name"});
  if (!a[0]) render_fail("attr() needs a name");
  const std::string name = to_str(*a[0]);
  if (v.kind == Kind::kObject) {
    if (const Value* x = v.obj->attrs.find(name)) return *x;
  }
  return Value::undefined(fmt::format("{} has no attribute '{}'", object_repr(v), name));
}

}  // namespace

const std::unordered_map<std::string, FilterFn>& builtin_filters() {
  static const std::unordered_map<std::string, FilterFn> filters = {
      {"tojson", f_tojson},
      {"default", f_default},
      {"d", f_default},
      {"length", f_length},
      {"count", f_length},
      {"join", f_join},
      {"trim", f_trim},
      {"items", f_items},
      {"list", f_list},
      {"first", f_first},
      {"last", f_last},
      {"string", f_string},
      {"upper", f_upper},
      {"lower", f_lower},
      {"capitalize", f_capitalize},
      {"title", f_title},
      {"replace", f_replace},
      {"indent", f_indent},
      {"int", f_int},
      {"float", f_float},
      {"abs", f_abs},
      {"round", f_round},
      {"reverse", f_reverse},
      {"sort", f_sort},
      {"dictsort", f_dictsort},
      {"unique", f_unique},
      {"min", [](Interpreter& in, const Value& v, Args& a) { return min_max(in, v, a, false); }},
      {"max", [](Interpreter& in, const Value& v, Args& a) { return min_max(in, v, a, true); }},
      {"sum", f_sum},
      {"select", [](Interpreter& in, const Value& v, Args& a) { return select_impl(in, v, a, false, true); }},
      {"reject", [](Interpreter& in, const Value& v, Args& a) { return select_impl(in, v, a, false, false); }},
      {"selectattr", [](Interpreter& in, const Value& v, Args& a) { return select_impl(in, v, a, true, true); }},
      {"rejectattr", [](Interpreter& in, const Value& v, Args& a) { return select_impl(in, v, a, true, false); }},
      {"map", f_map},
      {"batch", f_batch},
      {"center", f_center},
      {"escape", f_escape},
      {"e", f_escape},
      {"forceescape", f_escape},
      {"safe", [](Interpreter&, const Value& v, Args&) { return v; }},
      {"wordcount", f_wordcount},
      {"truncate", f_truncate},
      {"format", f_format},
      {"attr", f_attr},
  };
  return filters;
}

}  // namespace dsv3::io::jinja::detail
