// The value model's Python semantics (value.h): str/repr, truthiness, ==, ordering, iteration, len, `in`,
// JSON conversion, UTF-8 code point helpers, slice.indices().
#include "io/jinja/value.h"

#include <cmath>

#include "io/jinja/py_json.h"

namespace dsv3::io::jinja::detail {

Value Value::undefined(std::string reason) {
  Value v;
  v.s = std::move(reason);
  return v;
}
Value Value::none() {
  Value v;
  v.kind = Kind::kNone;
  return v;
}
Value Value::boolean(bool x) {
  Value v;
  v.kind = Kind::kBool;
  v.b = x;
  return v;
}
Value Value::integer(int64_t x) {
  Value v;
  v.kind = Kind::kInt;
  v.i = x;
  return v;
}
Value Value::real(double x) {
  Value v;
  v.kind = Kind::kFloat;
  v.f = x;
  return v;
}
Value Value::string(std::string x) {
  Value v;
  v.kind = Kind::kString;
  v.s = std::move(x);
  return v;
}
Value Value::new_list(List items) {
  Value v;
  v.kind = Kind::kList;
  v.list = std::make_shared<List>(std::move(items));
  return v;
}
Value Value::new_tuple(List items) {
  Value v;
  v.kind = Kind::kTuple;
  v.list = std::make_shared<List>(std::move(items));
  return v;
}
Value Value::new_dict() {
  Value v;
  v.kind = Kind::kDict;
  v.dict = std::make_shared<Dict>();
  return v;
}
Value Value::callable(std::string name, std::function<Value(Interpreter&, Args&)> fn) {
  Value v;
  v.kind = Kind::kCallable;
  v.fn = std::make_shared<Callable>(Callable{std::move(name), std::move(fn)});
  return v;
}
Value Value::object(std::string type, bool assignable) {
  Value v;
  v.kind = Kind::kObject;
  v.obj = std::make_shared<Object>();
  v.obj->type = std::move(type);
  v.obj->assignable = assignable;
  return v;
}

Value* Dict::find(const Value& key) {
  for (auto& [k, v] : items) {
    if (equals(k, key)) return &v;
  }
  return nullptr;
}

Value* Dict::find(std::string_view key) {
  for (auto& [k, v] : items) {
    if (k.kind == Kind::kString && k.s == key) return &v;
  }
  return nullptr;
}

void Dict::set(Value key, Value value) {
  if (Value* slot = find(key)) {
    *slot = std::move(value);
  } else {
    items.emplace_back(std::move(key), std::move(value));
  }
}

bool Dict::erase(const Value& key) {
  for (auto it = items.begin(); it != items.end(); ++it) {
    if (equals(it->first, key)) {
      items.erase(it);
      return true;
    }
  }
  return false;
}

std::string type_name(const Value& v) {
  switch (v.kind) {
    case Kind::kUndefined:
      return "Undefined";
    case Kind::kNone:
      return "NoneType";
    case Kind::kBool:
      return "bool";
    case Kind::kInt:
      return "int";
    case Kind::kFloat:
      return "float";
    case Kind::kString:
      return "str";
    case Kind::kList:
      return "list";
    case Kind::kTuple:
      return "tuple";
    case Kind::kDict:
      return "dict";
    case Kind::kCallable:
      return "function";
    case Kind::kObject:
      return v.obj->type;
  }
  return "object";
}

std::string object_repr(const Value& v) {
  if (v.is_none()) return "None";
  return fmt::format("'{} object'", type_name(v));
}

bool truthy(const Value& v) {
  switch (v.kind) {
    case Kind::kUndefined:
    case Kind::kNone:
      return false;
    case Kind::kBool:
      return v.b;
    case Kind::kInt:
      return v.i != 0;
    case Kind::kFloat:
      return v.f != 0;
    case Kind::kString:
      return !v.s.empty();
    case Kind::kList:
    case Kind::kTuple:
      return !v.list->empty();
    case Kind::kDict:
      return !v.dict->items.empty();
    case Kind::kCallable:
    case Kind::kObject:
      return true;
  }
  return false;
}

std::string float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  return py_json_dumps(nlohmann::ordered_json(d));
}

namespace {

// Python's str.isprintable() is false for these (categories Cc, Cf, Zs but ' ', Zl, Zp, Co): repr
// escapes them. Unassigned code points are not listed (they are rare in templates).
bool printable(uint32_t c) {
  if (c < 0x20 || (c >= 0x7F && c <= 0xA0) || c == 0xAD) return false;
  if ((c >= 0x600 && c <= 0x605) || c == 0x61C || c == 0x6DD || c == 0x70F || c == 0x1680 || c == 0x180E) return false;
  if ((c >= 0x2000 && c <= 0x200F) || (c >= 0x2028 && c <= 0x202F) || (c >= 0x205F && c <= 0x2064)) return false;
  if ((c >= 0x2066 && c <= 0x206F) || c == 0x3000 || (c >= 0xE000 && c <= 0xF8FF) || c == 0xFEFF) return false;
  if ((c >= 0xFFF9 && c <= 0xFFFB) || (c >= 0xD800 && c <= 0xDFFF)) return false;
  return true;
}

std::string string_repr(const std::string& s) {
  const bool has_single = s.find('\'') != std::string::npos;
  const bool has_double = s.find('"') != std::string::npos;
  const char quote = has_single && !has_double ? '"' : '\'';
  std::string out(1, quote);
  size_t pos = 0;
  while (pos < s.size()) {
    const uint32_t c = decode_utf8(s, pos);
    if (c == static_cast<uint32_t>(quote) || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (!printable(c)) {
      if (c < 0x100) {
        out += fmt::format("\\x{:02x}", c);
      } else if (c < 0x10000) {
        out += fmt::format("\\u{:04x}", c);
      } else {
        out += fmt::format("\\U{:08x}", c);
      }
    } else {
      append_utf8(out, c);
    }
  }
  out += quote;
  return out;
}

}  // namespace

std::string repr(const Value& v) {
  switch (v.kind) {
    case Kind::kString:
      return string_repr(v.s);
    case Kind::kList:
    case Kind::kTuple: {
      const bool tuple = v.kind == Kind::kTuple;
      std::string out = tuple ? "(" : "[";
      for (size_t k = 0; k < v.list->size(); ++k) {
        if (k) out += ", ";
        out += repr((*v.list)[k]);
        check_size(out.size());
      }
      if (tuple && v.list->size() == 1) out += ",";
      out += tuple ? ")" : "]";
      return out;
    }
    case Kind::kDict: {
      std::string out = "{";
      bool first = true;
      for (const auto& [k, x] : v.dict->items) {
        if (!first) out += ", ";
        first = false;
        out += repr(k) + ": " + repr(x);
        check_size(out.size());
      }
      return out + "}";
    }
    case Kind::kUndefined:
      return "Undefined";
    default:
      return to_str(v);
  }
}

std::string to_str(const Value& v) {
  switch (v.kind) {
    case Kind::kUndefined:
      return "";
    case Kind::kNone:
      return "None";
    case Kind::kBool:
      return v.b ? "True" : "False";
    case Kind::kInt:
      return std::to_string(v.i);
    case Kind::kFloat:
      return float_repr(v.f);
    case Kind::kString:
      return v.s;
    case Kind::kCallable:
      return fmt::format("<function {}>", v.fn->name);
    case Kind::kObject: {
      if (v.obj->type != "Namespace") return fmt::format("<{} object>", v.obj->type);
      Value d = Value::new_dict();
      d.dict->items = v.obj->attrs.items;
      return "<Namespace " + repr(d) + ">";
    }
    default:
      return repr(v);
  }
}

bool equals(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_integral() && b.is_integral()) return a.as_int() == b.as_int();
    return a.as_double() == b.as_double();
  }
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case Kind::kUndefined:
    case Kind::kNone:
      return true;
    case Kind::kString:
      return a.s == b.s;
    case Kind::kList:
    case Kind::kTuple: {
      if (a.list == b.list) return true;
      if (a.list->size() != b.list->size()) return false;
      for (size_t k = 0; k < a.list->size(); ++k) {
        if (!equals((*a.list)[k], (*b.list)[k])) return false;
      }
      return true;
    }
    case Kind::kDict: {
      if (a.dict == b.dict) return true;
      if (a.dict->items.size() != b.dict->items.size()) return false;
      for (const auto& [k, x] : a.dict->items) {
        const Value* y = b.dict->find(k);
        if (!y || !equals(x, *y)) return false;
      }
      return true;
    }
    case Kind::kCallable:
      return a.fn == b.fn;
    case Kind::kObject:
      return a.obj == b.obj;
    default:
      return false;
  }
}

int compare(const Value& a, const Value& b, std::string_view op) {
  if (a.is_number() && b.is_number()) {
    if (a.is_integral() && b.is_integral()) return a.as_int() < b.as_int() ? -1 : a.as_int() > b.as_int() ? 1 : 0;
    const double x = a.as_double(), y = b.as_double();
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (a.is_string() && b.is_string()) {
    const int c = a.s.compare(b.s);  // UTF-8 byte order is code point order
    return c < 0 ? -1 : c > 0 ? 1 : 0;
  }
  if (a.is_sequence() && a.kind == b.kind) {
    const size_t n = std::min(a.list->size(), b.list->size());
    for (size_t k = 0; k < n; ++k) {
      if (!equals((*a.list)[k], (*b.list)[k])) return compare((*a.list)[k], (*b.list)[k], op);
    }
    return a.list->size() < b.list->size() ? -1 : a.list->size() > b.list->size() ? 1 : 0;
  }
  render_fail("'{}' not supported between instances of '{}' and '{}'", op, type_name(a), type_name(b));
}

List iterate(const Value& v) {
  switch (v.kind) {
    case Kind::kUndefined:
      return {};
    case Kind::kList:
    case Kind::kTuple:
      return *v.list;
    case Kind::kDict: {
      List keys;
      keys.reserve(v.dict->items.size());
      for (const auto& kv : v.dict->items) keys.push_back(kv.first);
      return keys;
    }
    case Kind::kString: {
      List chars;
      const auto offsets = code_point_offsets(v.s);
      for (size_t k = 0; k + 1 < offsets.size(); ++k) {
        chars.push_back(Value::string(v.s.substr(offsets[k], offsets[k + 1] - offsets[k])));
      }
      return chars;
    }
    default:
      render_fail("'{}' object is not iterable", type_name(v));
  }
}

int64_t length(const Value& v) {
  switch (v.kind) {
    case Kind::kUndefined:
      return 0;
    case Kind::kString:
      return static_cast<int64_t>(code_point_count(v.s));
    case Kind::kList:
    case Kind::kTuple:
      return static_cast<int64_t>(v.list->size());
    case Kind::kDict:
      return static_cast<int64_t>(v.dict->items.size());
    default:
      render_fail("object of type '{}' has no len()", type_name(v));
  }
}

bool contains(const Value& container, const Value& item) {
  switch (container.kind) {
    case Kind::kString:
      if (!item.is_string()) {
        render_fail("'in <string>' requires string as left operand, not {}", type_name(item));
      }
      return container.s.find(item.s) != std::string::npos;
    case Kind::kList:
    case Kind::kTuple:
      for (const Value& x : *container.list) {
        if (equals(x, item)) return true;
      }
      return false;
    case Kind::kDict:
      return container.dict->find(item) != nullptr;
    case Kind::kUndefined:
      return false;  // Undefined iterates as empty
    default:
      render_fail("argument of type '{}' is not iterable", type_name(container));
  }
}

Value from_json(const nlohmann::ordered_json& j) {
  using T = nlohmann::ordered_json::value_t;
  switch (j.type()) {
    case T::null:
      return Value::none();
    case T::boolean:
      return Value::boolean(j.get<bool>());
    case T::number_integer:
      return Value::integer(j.get<int64_t>());
    case T::number_unsigned: {
      const uint64_t u = j.get<uint64_t>();
      if (u > static_cast<uint64_t>(INT64_MAX)) return Value::real(static_cast<double>(u));
      return Value::integer(static_cast<int64_t>(u));
    }
    case T::number_float:
      return Value::real(j.get<double>());
    case T::string:
      return Value::string(j.get<std::string>());
    case T::array: {
      List items;
      items.reserve(j.size());
      for (const auto& x : j) items.push_back(from_json(x));
      return Value::new_list(std::move(items));
    }
    case T::object: {
      Value d = Value::new_dict();
      d.dict->items.reserve(j.size());
      for (const auto& [k, x] : j.items()) d.dict->items.emplace_back(Value::string(k), from_json(x));
      return d;
    }
    default:
      return Value::none();  // binary / discarded: not produced by parsing JSON text
  }
}

nlohmann::ordered_json to_json(const Value& v) {
  using Json = nlohmann::ordered_json;
  switch (v.kind) {
    case Kind::kNone:
      return nullptr;
    case Kind::kBool:
      return v.b;
    case Kind::kInt:
      return v.i;
    case Kind::kFloat:
      return v.f;
    case Kind::kString:
      return v.s;
    case Kind::kList:
    case Kind::kTuple: {
      Json a = Json::array();
      for (const Value& x : *v.list) a.push_back(to_json(x));
      return a;
    }
    case Kind::kDict: {
      // json.dumps converts str, int, float, bool and None keys; others are a TypeError.
      Json o = Json::object();
      for (const auto& [k, x] : v.dict->items) {
        std::string key;
        if (k.is_string()) {
          key = k.s;
        } else if (k.kind == Kind::kBool) {
          key = k.b ? "true" : "false";
        } else if (k.is_none()) {
          key = "null";
        } else if (k.kind == Kind::kInt) {
          key = std::to_string(k.i);
        } else if (k.kind == Kind::kFloat) {
          key = float_repr(k.f);
        } else {
          render_fail("keys must be str, int, float, bool or None, not {}", type_name(k));
        }
        o[key] = to_json(x);
      }
      return o;
    }
    default:
      render_fail("Object of type {} is not JSON serializable", type_name(v));
  }
}

uint32_t decode_utf8(std::string_view s, size_t& pos) {
  const auto b0 = static_cast<unsigned char>(s[pos]);
  int len = b0 < 0x80 ? 1 : (b0 & 0xE0) == 0xC0 ? 2 : (b0 & 0xF0) == 0xE0 ? 3 : (b0 & 0xF8) == 0xF0 ? 4 : 0;
  if (len <= 1 || pos + len > s.size()) {
    ++pos;
    return b0;
  }
  uint32_t cp = b0 & (0x7F >> len);
  for (int k = 1; k < len; ++k) {
    const auto b = static_cast<unsigned char>(s[pos + k]);
    if ((b & 0xC0) != 0x80) {
      ++pos;
      return b0;
    }
    cp = (cp << 6) | (b & 0x3F);
  }
  pos += len;
  return cp;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::vector<size_t> code_point_offsets(std::string_view s) {
  std::vector<size_t> offsets;
  offsets.reserve(s.size() + 1);
  size_t pos = 0;
  while (pos < s.size()) {
    offsets.push_back(pos);
    decode_utf8(s, pos);
  }
  offsets.push_back(s.size());
  return offsets;
}

size_t code_point_count(std::string_view s) {
  size_t n = 0, pos = 0;
  while (pos < s.size()) {
    decode_utf8(s, pos);
    ++n;
  }
  return n;
}

bool normalise_index(int64_t& index, int64_t size) {
  if (index < 0) index += size;
  return index >= 0 && index < size;
}

void slice_indices(const Value& start, const Value& stop, const Value& step, int64_t size, int64_t& s_out,
                   int64_t& e_out, int64_t& step_out) {
  const auto is_missing = [](const Value& v) { return v.is_none() || v.is_undefined(); };
  for (const Value* v : {&start, &stop, &step}) {
    if (!is_missing(*v) && !v->is_integral()) render_fail("slice indices must be integers or None");
  }
  step_out = is_missing(step) ? 1 : step.as_int();
  if (step_out == 0) render_fail("slice step cannot be zero");
  if (step_out == INT64_MIN) step_out = -INT64_MAX;
  const int64_t lower = step_out > 0 ? 0 : -1;
  const int64_t upper = step_out > 0 ? size : size - 1;
  const auto clamp = [&](const Value& v, int64_t missing) {
    if (is_missing(v)) return missing;
    int64_t x = v.as_int();
    if (x < 0) {
      x = x < -size ? lower : x + size;  // avoids overflow for huge negative indices
      if (x < lower) x = lower;
    } else if (x > upper) {
      x = upper;
    }
    return x;
  };
  s_out = clamp(start, step_out < 0 ? upper : lower);
  e_out = clamp(stop, step_out < 0 ? lower : upper);
}

void check_size(size_t bytes) {
  if (bytes > kMaxStringBytes) render_fail("a string past {} bytes (the renderer's cap)", kMaxStringBytes);
}

}  // namespace dsv3::io::jinja::detail
