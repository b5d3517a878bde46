// jinja2's builtin tests (jinja2/tests.py), used as `x is name(args)` and by select/reject.
//   Notes: `number` is true for bools (Python's bool is a Number), `integer` is not; `sequence` is true
//   for str, list, tuple and dict (they have len and []); `iterable` also for Undefined; `sameas` is
//   Python's `is`: identity for containers, value for None/True/False and (as CPython caches them) ints.
#include "io/jinja/interpreter.h"

namespace dsv3::io::jinja::detail {
namespace {

const Value& operand(const char* test, Args& args) {
  if (args.positional.size() != 1 || !args.kwargs.empty()) render_fail("test '{}' takes one argument", test);
  return args.positional[0];
}

bool lower_test(const Value& v, bool upper) {
  if (!v.is_string()) return false;
  bool cased = false;
  size_t pos = 0;
  while (pos < v.s.size()) {
    const size_t at = pos;
    const uint32_t c = decode_utf8(v.s, pos);
    std::string one = v.s.substr(at, pos - at);
    const std::string lo = py_lower(one), up = py_upper(one);
    if (lo == up) continue;  // uncased
    cased = true;
    if (upper ? one != up : one != lo) return false;
    (void)c;
  }
  return cased;
}

bool integer_of(const char* test, const Value& v) {
  if (!v.is_integral()) render_fail("test '{}' needs an integer, not {}", test, type_name(v));
  return true;
}

}  // namespace

const std::unordered_map<std::string, TestFn>& builtin_tests() {
  static const std::unordered_map<std::string, TestFn> tests = {
      {"defined", [](Interpreter&, const Value& v, Args&) { return !v.is_undefined(); }},
      {"undefined", [](Interpreter&, const Value& v, Args&) { return v.is_undefined(); }},
      {"none", [](Interpreter&, const Value& v, Args&) { return v.is_none(); }},
      {"boolean", [](Interpreter&, const Value& v, Args&) { return v.kind == Kind::kBool; }},
      {"true", [](Interpreter&, const Value& v, Args&) { return v.kind == Kind::kBool && v.b; }},
      {"false", [](Interpreter&, const Value& v, Args&) { return v.kind == Kind::kBool && !v.b; }},
      {"integer", [](Interpreter&, const Value& v, Args&) { return v.kind == Kind::kInt; }},
      {"float", [](Interpreter&, const Value& v, Args&) { return v.kind == Kind::kFloat; }},
      {"number", [](Interpreter&, const Value& v, Args&) { return v.is_number(); }},
      {"string", [](Interpreter&, const Value& v, Args&) { return v.is_string(); }},
      {"mapping", [](Interpreter&, const Value& v, Args&) { return v.kind == Kind::kDict; }},
      {"sequence",
       [](Interpreter&, const Value& v, Args&) { return v.is_string() || v.is_sequence() || v.kind == Kind::kDict; }},
      {"iterable", [](Interpreter&, const Value& v,
                      Args&) { return v.is_string() || v.is_sequence() || v.kind == Kind::kDict || v.is_undefined(); }},
      {"callable", [](Interpreter&, const Value& v, Args&) { return v.kind == Kind::kCallable; }},
      {"escaped", [](Interpreter&, const Value&, Args&) { return false; }},
      {"lower", [](Interpreter&, const Value& v, Args&) { return lower_test(v, false); }},
      {"upper", [](Interpreter&, const Value& v, Args&) { return lower_test(v, true); }},
      {"even", [](Interpreter&, const Value& v, Args&) { return integer_of("even", v) && v.as_int() % 2 == 0; }},
      {"odd", [](Interpreter&, const Value& v, Args&) { return integer_of("odd", v) && v.as_int() % 2 != 0; }},
      {"divisibleby",
       [](Interpreter&, const Value& v, Args& a) {
         const Value& d = operand("divisibleby", a);
         integer_of("divisibleby", v);
         integer_of("divisibleby", d);
         if (d.as_int() == 0) render_fail("integer division or modulo by zero");
         return d.as_int() == -1 || v.as_int() % d.as_int() == 0;
       }},
      {"eq", [](Interpreter&, const Value& v, Args& a) { return equals(v, operand("eq", a)); }},
      {"equalto", [](Interpreter&, const Value& v, Args& a) { return equals(v, operand("equalto", a)); }},
      {"==", [](Interpreter&, const Value& v, Args& a) { return equals(v, operand("==", a)); }},
      {"ne", [](Interpreter&, const Value& v, Args& a) { return !equals(v, operand("ne", a)); }},
      {"!=", [](Interpreter&, const Value& v, Args& a) { return !equals(v, operand("!=", a)); }},
      {"lt", [](Interpreter&, const Value& v, Args& a) { return compare(v, operand("lt", a), "<") < 0; }},
      {"lessthan", [](Interpreter&, const Value& v, Args& a) { return compare(v, operand("lt", a), "<") < 0; }},
      {"<", [](Interpreter&, const Value& v, Args& a) { return compare(v, operand("<", a), "<") < 0; }},
      {"le", [](Interpreter&, const Value& v, Args& a) { return compare(v, operand("le", a), "<=") <= 0; }},
      {"<=", [](Interpreter&, const Value& v, Args& a) { return compare(v, operand("<=", a), "<=") <= 0; }},
      {"gt", [](Interpreter&, const Value& v, Args& a) { return compare(v, operand("gt", a), ">") > 0; }},
      {"greaterthan", [](Interpreter&, const Value& v, Args& a) { return compare(v, operand("gt", a), ">") > 0; }},
      {">", [](Interpreter&, const Value& v, Args& a) { return compare(v, operand(">", a), ">") > 0; }},
      {"ge", [](Interpreter&, const Value& v, Args& a) { return compare(v, operand("ge", a), ">=") >= 0; }},
      {">=", [](Interpreter&, const Value& v, Args& a) { return compare(v, operand(">=", a), ">=") >= 0; }},
      {"in", [](Interpreter&, const Value& v, Args& a) { return contains(operand("in", a), v); }},
      {"sameas",
       [](Interpreter&, const Value& v, Args& a) {
         const Value& o = operand("sameas", a);
         if (v.kind != o.kind) return false;
         switch (v.kind) {
           case Kind::kList:
           case Kind::kTuple:
             return v.list == o.list;
           case Kind::kDict:
             return v.dict == o.dict;
           case Kind::kCallable:
             return v.fn == o.fn;
           case Kind::kObject:
             return v.obj == o.obj;
           case Kind::kFloat:
           case Kind::kString:
             return false;  // distinct objects unless the very same one
           default:
             return equals(v, o);
         }
       }},
      {"filter", [](Interpreter&, const Value& v, Args&) { return v.is_string() && builtin_filters().count(v.s) > 0; }},
      {"test", [](Interpreter&, const Value& v, Args&) { return v.is_string() && builtin_tests().count(v.s) > 0; }},
  };
  return tests;
}

}  // namespace dsv3::io::jinja::detail
