// Python's str, list and dict methods that chat templates call (`content.split('</think>')[-1]`,
// `m.get('tool_calls')`, `d.items()`, `l.append(x)`). Indices and lengths count code points.
// Deviation: Hugging Face renders in jinja2's ImmutableSandboxedEnvironment, which refuses the mutating
// list/dict methods (append, pop, update, …); templates written for other engines use them, so they work.
#include <algorithm>

#include "io/jinja/interpreter.h"

namespace dsv3::io::jinja::detail {
namespace {

std::string str_arg(const char* fn, const std::optional<Value>& v) {
  if (!v || !v->is_string()) render_fail("{}() argument must be str, not {}", fn, v ? type_name(*v) : "nothing");
  return v->s;
}

// Byte offset of code point index `i` (clamped as Python slices clamp).
size_t byte_at(const std::vector<size_t>& offsets, const std::optional<Value>& v, bool is_end) {
  const auto n = static_cast<int64_t>(offsets.size()) - 1;
  int64_t i = is_end ? n : 0;
  if (v && !v->is_none()) {
    if (!v->is_integral()) render_fail("slice indices must be integers or None");
    i = v->as_int();
    if (i < 0) i = std::max<int64_t>(0, i + n);
    i = std::min(i, n);
  }
  return offsets[static_cast<size_t>(i)];
}

int64_t cp_index(const std::string& s, size_t byte) {
  return static_cast<int64_t>(code_point_count(std::string_view(s).substr(0, byte)));
}

List split(const std::string& s, const std::optional<Value>& sep_v, const std::optional<Value>& max_v, bool right) {
  int64_t maxsplit = -1;
  if (max_v) {
    if (!max_v->is_integral()) render_fail("maxsplit must be an integer");
    maxsplit = max_v->as_int();
  }
  std::vector<std::string> parts;
  if (!sep_v || sep_v->is_none()) {  // runs of whitespace; no empty strings
    const auto offsets = code_point_offsets(s);
    std::vector<std::pair<size_t, size_t>> words;  // code point ranges
    const size_t n = offsets.size() - 1;
    const auto space = [&](size_t k) {
      size_t p = offsets[k];
      return py_is_space(decode_utf8(s, p));
    };
    if (!right) {
      size_t k = 0;
      while (k < n) {
        while (k < n && space(k)) ++k;
        if (k >= n) break;
        if (maxsplit >= 0 && static_cast<int64_t>(parts.size()) == maxsplit) {
          size_t e = n;
          while (e > k && space(e - 1)) --e;
          parts.push_back(s.substr(offsets[k], offsets[e] - offsets[k]));
          break;
        }
        size_t e = k;
        while (e < n && !space(e)) ++e;
        parts.push_back(s.substr(offsets[k], offsets[e] - offsets[k]));
        k = e;
      }
    } else {
      size_t k = n;
      while (k > 0) {
        while (k > 0 && space(k - 1)) --k;
        if (k == 0) break;
        if (maxsplit >= 0 && static_cast<int64_t>(parts.size()) == maxsplit) {
          size_t b = 0;
          while (b < k && space(b)) ++b;
          parts.push_back(s.substr(offsets[b], offsets[k] - offsets[b]));
          break;
        }
        size_t b = k;
        while (b > 0 && !space(b - 1)) --b;
        parts.push_back(s.substr(offsets[b], offsets[k] - offsets[b]));
        k = b;
      }
      std::reverse(parts.begin(), parts.end());
    }
  } else {
    if (!sep_v->is_string()) render_fail("must be str or None, not {}", type_name(*sep_v));
    const std::string& sep = sep_v->s;
    if (sep.empty()) render_fail("empty separator");
    if (!right) {
      size_t start = 0;
      while (true) {
        const size_t at =
            (maxsplit >= 0 && static_cast<int64_t>(parts.size()) >= maxsplit) ? std::string::npos : s.find(sep, start);
        if (at == std::string::npos) {
          parts.push_back(s.substr(start));
          break;
        }
        parts.push_back(s.substr(start, at - start));
        start = at + sep.size();
      }
    } else {
      size_t end = s.size();
      while (true) {
        size_t at = std::string::npos;
        if (!(maxsplit >= 0 && static_cast<int64_t>(parts.size()) >= maxsplit) && end >= sep.size()) {
          at = s.rfind(sep, end - sep.size());
        }
        if (at == std::string::npos) {
          parts.push_back(s.substr(0, end));
          break;
        }
        parts.push_back(s.substr(at + sep.size(), end - at - sep.size()));
        end = at;
      }
      std::reverse(parts.begin(), parts.end());
    }
  }
  List out;
  for (auto& p : parts) out.push_back(Value::string(std::move(p)));
  return out;
}

// str.format: {} {0} {name} {{ }}, with an optional !r/!s conversion; format specs are not supported.
std::string str_format(const std::string& f, Args& args) {
  std::string out;
  size_t auto_index = 0;
  for (size_t k = 0; k < f.size(); ++k) {
    const char c = f[k];
    if (c == '{' && k + 1 < f.size() && f[k + 1] == '{') {
      out += '{';
      ++k;
    } else if (c == '}' && k + 1 < f.size() && f[k + 1] == '}') {
      out += '}';
      ++k;
    } else if (c == '{') {
      const size_t close = f.find('}', k);
      if (close == std::string::npos) render_fail("Single '{{' encountered in format string");
      std::string field = f.substr(k + 1, close - k - 1);
      char conv = 's';
      if (const size_t bang = field.find('!'); bang != std::string::npos) {
        conv = bang + 1 < field.size() ? field[bang + 1] : 's';
        field.resize(bang);
      }
      if (field.find(':') != std::string::npos) render_fail("str.format: format specs are not supported");
      const Value* v = nullptr;
      if (field.empty()) {
        if (auto_index >= args.positional.size()) render_fail("Replacement index {} out of range", auto_index);
        v = &args.positional[auto_index++];
      } else if (std::all_of(field.begin(), field.end(), [](char d) { return d >= '0' && d <= '9'; })) {
        const size_t idx = field.size() > 6 ? SIZE_MAX : std::stoul(field);
        if (idx >= args.positional.size()) render_fail("Replacement index {} out of range", field);
        v = &args.positional[idx];
      } else {
        for (auto& [key, x] : args.kwargs) {
          if (key == field) v = &x;
        }
        if (!v) render_fail("KeyError: '{}'", field);
      }
      out += conv == 'r' ? repr(*v) : to_str(*v);
      k = close;
    } else if (c == '}') {
      render_fail("Single '}}' encountered in format string");
    } else {
      out += c;
    }
    check_size(out.size());
  }
  return out;
}

bool all_cp(const std::string& s, bool (*pred)(uint32_t)) {
  if (s.empty()) return false;
  size_t pos = 0;
  while (pos < s.size()) {
    if (!pred(decode_utf8(s, pos))) return false;
  }
  return true;
}

Value str_method(const Value& self, const std::string& name, Interpreter&, Args& args) {
  const std::string& s = self.s;
  if (name == "startswith" || name == "endswith") {
    const auto a = bind(name.c_str(), args, {"prefix", "start", "end"});
    if (!a[0]) render_fail("{}() takes at least 1 argument", name);
    const auto offsets = code_point_offsets(s);
    const size_t b = byte_at(offsets, a[1], false), e = std::max(b, byte_at(offsets, a[2], true));
    const std::string_view part = std::string_view(s).substr(b, e - b);
    List cands = a[0]->kind == Kind::kTuple ? *a[0]->list : List{*a[0]};
    for (const Value& c : cands) {
      if (!c.is_string()) render_fail("{} first arg must be str or a tuple of str, not {}", name, type_name(c));
      if (name == "startswith" ? part.starts_with(c.s) : part.ends_with(c.s)) return Value::boolean(true);
    }
    return Value::boolean(false);
  }
  if (name == "split" || name == "rsplit") {
    const auto a = bind(name.c_str(), args, {"sep", "maxsplit"});
    return Value::new_list(split(s, a[0], a[1], name == "rsplit"));
  }
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    const auto a = bind(name.c_str(), args, {"chars"});
    std::optional<std::string> chars;
    if (a[0] && !a[0]->is_none()) chars = str_arg(name.c_str(), a[0]);
    return Value::string(py_strip(s, chars, name != "rstrip", name != "lstrip"));
  }
  if (name == "replace") {
    const auto a = bind("replace", args, {"old", "new", "count"});
    const std::string from = str_arg("replace", a[0]), to = str_arg("replace", a[1]);
    int64_t count = a[2] && a[2]->is_integral() ? a[2]->as_int() : -1;
    std::string out;
    if (from.empty()) {  // Python inserts `to` between every character and at both ends
      const auto offsets = code_point_offsets(s);
      for (size_t k = 0; k + 1 < offsets.size(); ++k) {
        if (count < 0 || static_cast<int64_t>(k) < count) out += to;
        out.append(s, offsets[k], offsets[k + 1] - offsets[k]);
        check_size(out.size());
      }
      if (count < 0 || static_cast<int64_t>(offsets.size()) - 1 < count) out += to;
      return Value::string(std::move(out));
    }
    size_t start = 0;
    for (int64_t n = 0; count < 0 || n < count; ++n) {
      const size_t at = s.find(from, start);
      if (at == std::string::npos) break;
      out.append(s, start, at - start);
      out += to;
      check_size(out.size());
      start = at + from.size();
    }
    out.append(s, start, std::string::npos);
    return Value::string(std::move(out));
  }
  if (name == "upper") return Value::string(py_upper(s));
  if (name == "lower") return Value::string(py_lower(s));
  if (name == "capitalize") return Value::string(py_capitalize(s));
  if (name == "title") {  // str.title: a cased character after an uncased one starts a word
    std::string out;
    size_t pos = 0;
    bool prev_cased = false;
    while (pos < s.size()) {
      const size_t at = pos;
      decode_utf8(s, pos);
      const std::string one = s.substr(at, pos - at);
      const std::string up = py_upper(one), lo = py_lower(one);
      const bool cased = up != lo;
      out += cased ? (prev_cased ? lo : up) : one;
      prev_cased = cased;
    }
    return Value::string(std::move(out));
  }
  if (name == "find" || name == "rfind" || name == "index" || name == "rindex" || name == "count") {
    const auto a = bind(name.c_str(), args, {"sub", "start", "end"});
    const std::string sub = str_arg(name.c_str(), a[0]);
    const auto offsets = code_point_offsets(s);
    const size_t b = byte_at(offsets, a[1], false), e = byte_at(offsets, a[2], true);
    const std::string_view part = e >= b ? std::string_view(s).substr(b, e - b) : std::string_view();
    if (name == "count") {
      if (sub.empty()) return Value::integer(static_cast<int64_t>(code_point_count(part)) + 1);
      int64_t n = 0;
      for (size_t at = part.find(sub); at != std::string_view::npos; at = part.find(sub, at + sub.size())) ++n;
      return Value::integer(n);
    }
    const size_t at = (name == "find" || name == "index") ? part.find(sub) : part.rfind(sub);
    if (at == std::string_view::npos) {
      if (name == "index" || name == "rindex") render_fail("substring not found");
      return Value::integer(-1);
    }
    return Value::integer(cp_index(s, b + at));
  }
  if (name == "format") return Value::string(str_format(s, args));
  if (name == "join") {
    const auto a = bind("join", args, {"iterable"});
    if (!a[0]) render_fail("join() takes exactly one argument");
    std::string out;
    bool first = true;
    for (const Value& v : iterate(*a[0])) {
      if (!v.is_string()) render_fail("sequence item: expected str instance, {} found", type_name(v));
      if (!first) out += s;
      first = false;
      out += v.s;
      check_size(out.size());
    }
    return Value::string(std::move(out));
  }
  if (name == "removeprefix" || name == "removesuffix") {
    const auto a = bind(name.c_str(), args, {"affix"});
    const std::string x = str_arg(name.c_str(), a[0]);
    if (name == "removeprefix" && s.starts_with(x)) return Value::string(s.substr(x.size()));
    if (name == "removesuffix" && s.ends_with(x) && !x.empty()) return Value::string(s.substr(0, s.size() - x.size()));
    return self;
  }
  if (name == "splitlines") {
    const auto a = bind("splitlines", args, {"keepends"});
    List out;
    for (auto& line : py_splitlines(s, a[0] && truthy(*a[0]))) out.push_back(Value::string(std::move(line)));
    return Value::new_list(std::move(out));
  }
  if (name == "isdigit" || name == "isdecimal" || name == "isnumeric") {
    return Value::boolean(all_cp(s, [](uint32_t c) { return c >= '0' && c <= '9'; }));
  }
  if (name == "isalpha" || name == "isalnum") {
    const bool alnum = name == "isalnum";
    if (s.empty()) return Value::boolean(false);
    size_t pos = 0;
    while (pos < s.size()) {
      const size_t at = pos;
      const uint32_t c = decode_utf8(s, pos);
      if (alnum && c >= '0' && c <= '9') continue;
      if (c < 0x80 ? !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
                   : py_upper(s.substr(at, pos - at)) == py_lower(s.substr(at, pos - at)) && c < 0x3040) {
        return Value::boolean(false);  // non-ASCII: cased letters, and CJK/kana and beyond count as alphabetic
      }
    }
    return Value::boolean(true);
  }
  if (name == "isspace") return Value::boolean(all_cp(s, py_is_space));
  if (name == "islower" || name == "isupper") {
    bool cased = false;
    size_t pos = 0;
    while (pos < s.size()) {
      const size_t at = pos;
      decode_utf8(s, pos);
      const std::string one = s.substr(at, pos - at), up = py_upper(one), lo = py_lower(one);
      if (up == lo) continue;
      cased = true;
      if (one != (name == "islower" ? lo : up)) return Value::boolean(false);
    }
    return Value::boolean(cased);
  }
  if (name == "center" || name == "ljust" || name == "rjust") {
    const auto a = bind(name.c_str(), args, {"width", "fillchar"});
    if (!a[0] || !a[0]->is_integral()) render_fail("{}() needs an integer width", name);
    const std::string fill = a[1] ? str_arg(name.c_str(), a[1]) : " ";
    const int64_t len = static_cast<int64_t>(code_point_count(s));
    const int64_t w = std::min<int64_t>(a[0]->as_int(), static_cast<int64_t>(kMaxStringBytes));
    if (w <= len) return self;
    const int64_t pad = w - len;
    int64_t left = name == "ljust" ? 0 : name == "rjust" ? pad : pad / 2 + (pad & w & 1);
    std::string out;
    for (int64_t k = 0; k < left; ++k) out += fill;
    out += s;
    for (int64_t k = 0; k < pad - left; ++k) out += fill;
    return Value::string(std::move(out));
  }
  return Value::undefined();
}

Value list_method(const Value& self, const std::string& name, Interpreter&, Args& args) {
  List& l = *self.list;
  const bool mutating = name == "append" || name == "extend" || name == "pop" || name == "insert" || name == "remove" ||
                        name == "reverse" || name == "clear";
  if (mutating && self.kind == Kind::kTuple) return Value::undefined();
  if (name == "append") {
    const auto a = bind("append", args, {"object"});
    if (!a[0]) render_fail("append() takes exactly one argument");
    if (l.size() >= 10'000'000) render_fail("list too long");
    l.push_back(*a[0]);
    return Value::none();
  }
  if (name == "extend") {
    const auto a = bind("extend", args, {"iterable"});
    if (!a[0]) render_fail("extend() takes exactly one argument");
    List more = iterate(*a[0]);
    if (l.size() + more.size() > 10'000'000) render_fail("list too long");
    l.insert(l.end(), more.begin(), more.end());
    return Value::none();
  }
  if (name == "pop") {
    const auto a = bind("pop", args, {"index"});
    if (l.empty()) render_fail("pop from empty list");
    int64_t i = a[0] && a[0]->is_integral() ? a[0]->as_int() : -1;
    if (!normalise_index(i, static_cast<int64_t>(l.size()))) render_fail("pop index out of range");
    Value v = l[static_cast<size_t>(i)];
    l.erase(l.begin() + i);
    return v;
  }
  if (name == "insert") {
    const auto a = bind("insert", args, {"index", "object"});
    if (!a[0] || !a[1] || !a[0]->is_integral()) render_fail("insert() takes an index and an object");
    const auto n = static_cast<int64_t>(l.size());
    int64_t i = a[0]->as_int();
    if (i < 0) i = std::max<int64_t>(0, i + n);
    i = std::min(i, n);
    l.insert(l.begin() + i, *a[1]);
    return Value::none();
  }
  if (name == "remove" || name == "index" || name == "count") {
    const auto a = bind(name.c_str(), args, {"value"});
    if (!a[0]) render_fail("{}() takes exactly one argument", name);
    int64_t n = 0;
    for (size_t k = 0; k < l.size(); ++k) {
      if (!equals(l[k], *a[0])) continue;
      if (name == "index") return Value::integer(static_cast<int64_t>(k));
      if (name == "remove") {
        l.erase(l.begin() + static_cast<int64_t>(k));
        return Value::none();
      }
      ++n;
    }
    if (name == "count") return Value::integer(n);
    render_fail("{} is not in list", repr(*a[0]));
  }
  if (name == "reverse") {
    std::reverse(l.begin(), l.end());
    return Value::none();
  }
  if (name == "clear") {
    l.clear();
    return Value::none();
  }
  if (name == "copy") return Value::new_list(l);
  return Value::undefined();
}

Value dict_method(const Value& self, const std::string& name, Interpreter&, Args& args) {
  Dict& d = *self.dict;
  if (name == "items" || name == "keys" || name == "values") {
    bind(name.c_str(), args, {});
    List out;
    for (const auto& [k, v] : d.items) {
      out.push_back(name == "items" ? Value::new_tuple({k, v}) : name == "keys" ? k : v);
    }
    return Value::new_list(std::move(out));
  }
  if (name == "get") {
    const auto a = bind("get", args, {"key", "default"});
    if (!a[0]) render_fail("get expected at least 1 argument, got 0");
    if (const Value* v = d.find(*a[0])) return *v;
    return a[1] ? *a[1] : Value::none();
  }
  if (name == "pop") {
    const auto a = bind("pop", args, {"key", "default"});
    if (!a[0]) render_fail("pop expected at least 1 argument, got 0");
    if (const Value* v = d.find(*a[0])) {
      Value out = *v;
      d.erase(*a[0]);
      return out;
    }
    if (a[1]) return *a[1];
    render_fail("KeyError: {}", repr(*a[0]));
  }
  if (name == "setdefault") {
    const auto a = bind("setdefault", args, {"key", "default"});
    if (!a[0]) render_fail("setdefault expected at least 1 argument, got 0");
    if (const Value* v = d.find(*a[0])) return *v;
    d.set(*a[0], a[1] ? *a[1] : Value::none());
    return a[1] ? *a[1] : Value::none();
  }
  if (name == "update") {
    if (args.positional.size() > 1) render_fail("update expected at most 1 argument");
    if (!args.positional.empty()) {
      const Value& src = args.positional[0];
      if (src.kind != Kind::kDict) render_fail("update() needs a dict, not {}", type_name(src));
      for (const auto& [k, v] : src.dict->items) d.set(k, v);
    }
    for (auto& [k, v] : args.kwargs) d.set(Value::string(k), v);
    return Value::none();
  }
  if (name == "copy") {
    Value c = Value::new_dict();
    c.dict->items = d.items;
    return c;
  }
  if (name == "clear") {
    d.items.clear();
    return Value::none();
  }
  return Value::undefined();
}

bool is_method(Kind kind, const std::string& n) {
  static const char* const kStr[] = {
      "startswith", "endswith", "split",     "rsplit",     "strip",   "lstrip",       "rstrip",
      "replace",    "upper",    "lower",     "capitalize", "title",   "find",         "rfind",
      "index",      "rindex",   "count",     "format",     "join",    "removeprefix", "removesuffix",
      "splitlines", "isdigit",  "isdecimal", "isnumeric",  "isalpha", "isalnum",      "isspace",
      "islower",    "isupper",  "center",    "ljust",      "rjust"};
  static const char* const kList[] = {"append", "extend", "pop",     "insert", "remove",
                                      "index",  "count",  "reverse", "clear",  "copy"};
  static const char* const kDict[] = {"items", "keys", "values", "get", "pop", "setdefault", "update", "copy", "clear"};
  const auto has = [&](const auto& names) {
    return std::any_of(std::begin(names), std::end(names), [&](const char* x) { return n == x; });
  };
  if (kind == Kind::kString) return has(kStr);
  if (kind == Kind::kList) return has(kList);
  if (kind == Kind::kTuple) return n == "index" || n == "count";
  if (kind == Kind::kDict) return has(kDict);
  return false;
}

}  // namespace

Value bound_method(const Value& obj, const std::string& name) {
  if (!is_method(obj.kind, name)) return Value::undefined();
  return Value::callable(name, [obj, name](Interpreter& in, Args& args) {
    if (obj.is_string()) return str_method(obj, name, in, args);
    if (obj.is_sequence()) return list_method(obj, name, in, args);
    return dict_method(obj, name, in, args);
  });
}

}  // namespace dsv3::io::jinja::detail
