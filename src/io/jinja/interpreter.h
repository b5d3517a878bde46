// The Jinja interpreter: walks a Program (ast.h) with a context and writes the output, with jinja2's
// scoping (a for loop's body is a scope of its own, so a `set` inside it does not leak out, which is why
// templates use namespace(); if blocks share their enclosing scope; a macro sees the scope it was defined
// in), loop variables, macros with defaults / varargs / kwargs / caller, and the builtin filters, tests,
// str/list/dict methods and globals (filters.cc, tests.cc, methods.cc, globals.cc).
// Hostile templates are bounded: nested evaluation depth, macro recursion, loop iterations in total, and
// the size of any string and of the output.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <unordered_map>

#include "io/jinja/ast.h"
#include "io/jinja/value.h"

namespace dsv3::io::jinja::detail {

struct Scope {
  std::unordered_map<std::string, Value> vars;
  std::shared_ptr<Scope> parent;
};

class Interpreter {
 public:
  Interpreter(const Program& program, const nlohmann::ordered_json& context);
  std::string run();

  Value eval(const Expr& e);
  Value call(const Value& callee, Args& args);
  Value apply_filter(const std::string& name, const Value& subject, Args& args);
  bool apply_test(const std::string& name, const Value& subject, Args& args);
  void count_step();  // one loop iteration or call: the total is capped

 private:
  enum class Flow { kNormal, kBreak, kContinue };
  struct DepthGuard;

  Flow exec_body(const Body& body);
  Flow exec(const Stmt& s);
  Flow exec_for(const Stmt& s);
  void exec_set(const Stmt& s);
  std::string capture(const Body& body);
  void write(std::string_view text);
  Value lookup(const std::string& name) const;
  void assign(const std::string& name, Value v);
  Value make_macro(const std::shared_ptr<Macro>& m);
  Value call_macro(const Macro& m, const std::weak_ptr<Scope>& closure, Args& args);
  Value get_attr(const Value& obj, const std::string& name);
  Value get_item(const Value& obj, const Value& key);
  Value binary(const std::string& op, const Value& a, const Value& b);
  bool compare_op(const std::string& op, const Value& a, const Value& b);
  Args eval_args(const Expr& e, size_t first);
  void unpack(const std::vector<std::string>& targets, bool tuple, const Value& v);

  const Program& program_;
  std::shared_ptr<Scope> root_;
  std::shared_ptr<Scope> scope_;
  std::unordered_map<std::string, Value> globals_;
  std::string* out_ = nullptr;
  int depth_ = 0;
  int macro_depth_ = 0;
  int64_t steps_ = 0;
  int line_ = 0;
  friend struct LineOf;
};

// The builtins, by name (filters.cc, tests.cc, methods.cc, globals.cc).
using FilterFn = Value (*)(Interpreter&, const Value&, Args&);
using TestFn = bool (*)(Interpreter&, const Value&, Args&);
const std::unordered_map<std::string, FilterFn>& builtin_filters();
const std::unordered_map<std::string, TestFn>& builtin_tests();
// A bound method of a str, list or dict (`"a b".split`, `l.append`); undefined when there is none.
Value bound_method(const Value& obj, const std::string& name);
void add_globals(std::unordered_map<std::string, Value>& globals);

// Argument binding for builtins: `names` in order; positional first, then keywords. A missing argument
// is nullopt. Too many, unknown or repeated arguments are a RenderError naming `fn`.
std::vector<std::optional<Value>> bind(const char* fn, Args& args, std::initializer_list<const char*> names);

// Python's str helpers shared by filters and methods (text.cc).
std::string py_upper(std::string_view s);
std::string py_lower(std::string_view s);
std::string py_capitalize(std::string_view s);
bool py_is_space(uint32_t cp);
std::string py_strip(std::string_view s, const std::optional<std::string>& chars, bool left, bool right);
std::vector<std::string> py_splitlines(std::string_view s, bool keepends);
std::string py_percent_format(const std::string& fmt, const Value& args);

}  // namespace dsv3::io::jinja::detail
