// The Jinja value model: Python's objects as a chat template sees them (jinja2 runs on Python, so every
// value follows Python's rules): Undefined (jinja2.Undefined, the default one: renders empty, iterates
// empty, is false, but raises on attribute access, calls and arithmetic), None, bool, int, float, str
// (UTF-8; indexing, slicing and length count code points as Python does), list and tuple (shared, so
// list.append mutates every holder as Python references do), dict (insertion-ordered), callables (macros,
// globals, bound methods) and attribute objects (namespace(), loop, joiner, cycler).
// Conversions follow Python: str() and repr() (float repr: shortest round trip; containers print repr of
// their items), truthiness, == across types (1 == 1.0 == True), ordering (TypeError across types).
#pragma once

#include <fmt/format.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dsv3::io::jinja::detail {

// A runtime error without its position; the interpreter adds "NAME:LINE: ".
struct RenderError {
  std::string message;
};

template <typename... Args>
[[noreturn]] void render_fail(fmt::format_string<Args...> f, Args&&... args) {
  throw RenderError{fmt::format(f, std::forward<Args>(args)...)};
}

enum class Kind { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kTuple, kDict, kCallable, kObject };

struct Value;
class Interpreter;
using List = std::vector<Value>;

// Call arguments: positional, then keyword (in the order written).
struct Args {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> kwargs;
};

struct Callable {
  std::string name;
  std::function<Value(Interpreter&, Args&)> fn;
};

struct Dict;
// An object with attributes only (namespace(), loop, joiner()); `assignable`: {% set obj.attr = … %}.
struct Object;

struct Value {
  Kind kind = Kind::kUndefined;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string s;                 // kString; for kUndefined the reason ("'x' is undefined")
  std::shared_ptr<List> list;    // kList, kTuple
  std::shared_ptr<Dict> dict;    // kDict
  std::shared_ptr<Callable> fn;  // kCallable
  std::shared_ptr<Object> obj;   // kObject

  static Value undefined(std::string reason = {});
  static Value none();
  static Value boolean(bool v);
  static Value integer(int64_t v);
  static Value real(double v);
  static Value string(std::string v);
  static Value new_list(List items = {});
  static Value new_tuple(List items);
  static Value new_dict();
  static Value callable(std::string name, std::function<Value(Interpreter&, Args&)> fn);
  static Value object(std::string type, bool assignable);

  bool is_undefined() const { return kind == Kind::kUndefined; }
  bool is_none() const { return kind == Kind::kNone; }
  bool is_string() const { return kind == Kind::kString; }
  bool is_sequence() const { return kind == Kind::kList || kind == Kind::kTuple; }
  bool is_number() const { return kind == Kind::kInt || kind == Kind::kFloat || kind == Kind::kBool; }
  bool is_integral() const { return kind == Kind::kInt || kind == Kind::kBool; }
  int64_t as_int() const { return kind == Kind::kBool ? (b ? 1 : 0) : i; }
  double as_double() const { return kind == Kind::kFloat ? f : static_cast<double>(as_int()); }
};

struct Dict {
  std::vector<std::pair<Value, Value>> items;
  Value* find(const Value& key);
  Value* find(std::string_view key);
  void set(Value key, Value value);
  bool erase(const Value& key);
};

struct Object {
  std::string type;  // "Namespace", "LoopContext", "Joiner", "Cycler"
  bool assignable = false;
  Dict attrs;  // string keys
};

// Python's type name ("str", "int", "dict", "NoneType", ...), as TypeError messages spell it.
std::string type_name(const Value& v);
// jinja2's object_type_repr: "'dict object'", "None", used in "… has no attribute 'x'".
std::string object_repr(const Value& v);

bool truthy(const Value& v);
std::string to_str(const Value& v);  // Python str(); Undefined renders ""
std::string repr(const Value& v);    // Python repr()
std::string float_repr(double d);    // Python repr(float): 1.0, 0.1, 1e-05, inf, nan

bool equals(const Value& a, const Value& b);  // Python ==
// Python's ordering: -1, 0, 1; a RenderError (TypeError) for unordered types, `op` names the operator.
int compare(const Value& a, const Value& b, std::string_view op = "<");

// Iteration as Python's iter(): a list's items, a dict's keys, a string's characters; Undefined is empty.
List iterate(const Value& v);
// len(): code points of a string, items of a container; a TypeError for others.
int64_t length(const Value& v);

// Python's hash-free `x in container`.
bool contains(const Value& container, const Value& item);

Value from_json(const nlohmann::ordered_json& j);
nlohmann::ordered_json to_json(const Value& v);  // a RenderError for values JSON has no form for

// UTF-8 helpers: byte offsets of each code point start (plus the end), code point count, decode/encode.
std::vector<size_t> code_point_offsets(std::string_view s);
size_t code_point_count(std::string_view s);
void append_utf8(std::string& out, uint32_t cp);
// Decodes one code point at s[pos] (invalid bytes decode as themselves), advancing pos.
uint32_t decode_utf8(std::string_view s, size_t& pos);

// Python's index normalisation: a negative index counts from the end; nullopt-like -1 when out of range.
bool normalise_index(int64_t& index, int64_t size);
// Python's slice.indices(): start, stop, step for a sequence of `size` (step != 0 checked by the caller).
void slice_indices(const Value& start, const Value& stop, const Value& step, int64_t size, int64_t& s_out,
                   int64_t& e_out, int64_t& step_out);

// The cap on any one string the template builds, and on the output (a hostile template errors, not
// exhausts memory).
inline constexpr size_t kMaxStringBytes = size_t{64} << 20;
void check_size(size_t bytes);

}  // namespace dsv3::io::jinja::detail
