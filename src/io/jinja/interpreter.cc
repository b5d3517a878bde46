// The Jinja interpreter (interpreter.h): statements, expressions, operators with Python's semantics
// (floor division and modulo, str/list repetition and concatenation, chained comparisons, `and`/`or`
// returning an operand), attribute and item lookup as jinja2's Environment.getattr/getitem.
#include "io/jinja/interpreter.h"

#include <cmath>

#include "core/error.h"

namespace dsv3::io::jinja::detail {
namespace {

constexpr int kMaxDepth = 1000;           // nested eval/exec frames
constexpr int kMaxMacroDepth = 100;       // nested macro calls
constexpr int64_t kMaxSteps = 1'000'000;  // loop iterations and calls per render

}  // namespace

struct Interpreter::DepthGuard {
  explicit DepthGuard(Interpreter& in) : in(in) {
    if (++in.depth_ > kMaxDepth) render_fail("evaluation nested deeper than {} levels", kMaxDepth);
  }
  ~DepthGuard() { --in.depth_; }
  Interpreter& in;
};

Interpreter::Interpreter(const Program& program, const nlohmann::ordered_json& context) : program_(program) {
  root_ = std::make_shared<Scope>();
  scope_ = root_;
  add_globals(globals_);
  if (!context.is_object() && !context.is_null()) fail("{}: the render context must be a JSON object", program.name);
  if (context.is_object()) {
    for (const auto& [k, v] : context.items()) root_->vars[k] = from_json(v);
  }
}

std::string Interpreter::run() {
  std::string out;
  out_ = &out;
  try {
    exec_body(program_.body);
  } catch (const RenderError& e) {
    fail("{}:{}: {}", program_.name, line_, e.message);
  }
  return out;
}

void Interpreter::count_step() {
  if (++steps_ > kMaxSteps) render_fail("more than {} loop iterations and calls", kMaxSteps);
}

void Interpreter::write(std::string_view text) {
  check_size(out_->size() + text.size());
  out_->append(text);
}

std::string Interpreter::capture(const Body& body) {
  std::string buf;
  std::string* saved = out_;
  out_ = &buf;
  try {
    exec_body(body);
  } catch (...) {
    out_ = saved;
    throw;
  }
  out_ = saved;
  return buf;
}

Value Interpreter::lookup(const std::string& name) const {
  for (const Scope* s = scope_.get(); s; s = s->parent.get()) {
    auto it = s->vars.find(name);
    if (it != s->vars.end()) return it->second;
  }
  auto it = globals_.find(name);
  if (it != globals_.end()) return it->second;
  return Value::undefined(fmt::format("'{}' is undefined", name));
}

void Interpreter::assign(const std::string& name, Value v) { scope_->vars[name] = std::move(v); }

// ---- statements ----

Interpreter::Flow Interpreter::exec_body(const Body& body) {
  for (const StmtPtr& s : body) {
    const Flow f = exec(*s);
    if (f != Flow::kNormal) return f;
  }
  return Flow::kNormal;
}

Interpreter::Flow Interpreter::exec(const Stmt& s) {
  DepthGuard guard(*this);
  line_ = s.line;
  switch (s.kind) {
    case StmtKind::kText:
      write(s.text);
      break;
    case StmtKind::kOutput: {
      const Value v = eval(*s.expr);
      write(to_str(v));
      break;
    }
    case StmtKind::kIf:
      for (size_t k = 0; k < s.conds.size(); ++k) {
        line_ = s.conds[k]->line;
        if (truthy(eval(*s.conds[k]))) return exec_body(s.bodies[k]);
      }
      if (s.bodies.size() > s.conds.size()) return exec_body(s.bodies.back());
      break;
    case StmtKind::kFor:
      return exec_for(s);
    case StmtKind::kSet:
      exec_set(s);
      break;
    case StmtKind::kSetBlock: {
      Value v = Value::string(capture(s.bodies[0]));
      for (const ExprPtr& f : s.filters) {
        Args args = eval_args(*f, 1);
        v = apply_filter(f->name, v, args);
      }
      assign(s.targets[0], std::move(v));
      break;
    }
    case StmtKind::kMacro:
      assign(s.macro->name, make_macro(s.macro));
      break;
    case StmtKind::kCallBlock: {
      const Expr& call_expr = *s.expr;
      Value callee = eval(*call_expr.items[0]);
      Args args = eval_args(call_expr, 1);
      args.kwargs.emplace_back("caller", make_macro(s.macro));
      write(to_str(call(callee, args)));
      break;
    }
    case StmtKind::kFilterBlock: {
      Value v = Value::string(capture(s.bodies[0]));
      for (const ExprPtr& f : s.filters) {
        Args args = eval_args(*f, 1);
        v = apply_filter(f->name, v, args);
      }
      write(to_str(v));
      break;
    }
    case StmtKind::kBreak:
      return Flow::kBreak;
    case StmtKind::kContinue:
      return Flow::kContinue;
    case StmtKind::kDo:
      eval(*s.expr);
      break;
    case StmtKind::kScope:
      return exec_body(s.bodies[0]);
  }
  return Flow::kNormal;
}

void Interpreter::unpack(const std::vector<std::string>& targets, bool tuple, const Value& v) {
  if (!tuple) {
    assign(targets[0], v);
    return;
  }
  if (v.is_undefined()) render_fail("{}", v.s.empty() ? "cannot unpack an undefined value" : v.s);
  const List items = iterate(v);
  if (items.size() < targets.size()) {
    render_fail("not enough values to unpack (expected {}, got {})", targets.size(), items.size());
  }
  if (items.size() > targets.size()) render_fail("too many values to unpack (expected {})", targets.size());
  for (size_t k = 0; k < targets.size(); ++k) assign(targets[k], items[k]);
}

void Interpreter::exec_set(const Stmt& s) {
  Value v = eval(*s.expr);
  if (!s.target_attr.empty()) {
    Value ns = lookup(s.targets[0]);
    if (ns.kind != Kind::kObject || !ns.obj->assignable) {
      render_fail("cannot assign attribute '{}' on '{}', which is not a namespace", s.target_attr, s.targets[0]);
    }
    ns.obj->attrs.set(Value::string(s.target_attr), std::move(v));
    return;
  }
  unpack(s.targets, s.tuple_target, v);
}

Interpreter::Flow Interpreter::exec_for(const Stmt& s) {
  const Value seq = eval(*s.expr);
  List items = iterate(seq);
  auto loop_scope = std::make_shared<Scope>();
  loop_scope->parent = scope_;
  std::shared_ptr<Scope> saved = scope_;
  scope_ = loop_scope;
  struct Restore {
    Interpreter& in;
    std::shared_ptr<Scope> saved;
    ~Restore() { in.scope_ = saved; }
  } restore{*this, saved};
  if (s.cond) {  // the inline filter runs before the loop, so loop.length counts what passes
    List kept;
    for (Value& item : items) {
      count_step();
      unpack(s.targets, s.tuple_target, item);
      if (truthy(eval(*s.cond))) kept.push_back(std::move(item));
    }
    items = std::move(kept);
    loop_scope->vars.clear();
  }
  if (items.empty()) {
    scope_ = saved;
    if (s.bodies.size() > 1) exec_body(s.bodies[1]);
    return Flow::kNormal;
  }
  Value loop = Value::object("LoopContext", false);
  auto index0 = std::make_shared<int64_t>(0);
  loop.obj->attrs.set(Value::string("cycle"), Value::callable("loop.cycle", [index0](Interpreter&, Args& args) {
                        if (args.positional.empty()) render_fail("no items for cycling given");
                        return args.positional[static_cast<size_t>(*index0) % args.positional.size()];
                      }));
  const auto n = static_cast<int64_t>(items.size());
  static const char* const kNames[] = {"index0", "index", "revindex0", "revindex", "first",   "last",
                                       "length", "depth", "depth0",    "previtem", "nextitem"};
  Dict& attrs = loop.obj->attrs;
  for (const char* name : kNames) attrs.items.emplace_back(Value::string(name), Value());
  const auto slot = [&attrs](size_t j) -> Value& { return attrs.items[1 + j].second; };  // items[0]: cycle
  for (int64_t k = 0; k < n; ++k) {
    count_step();
    *index0 = k;
    slot(0) = Value::integer(k);
    slot(1) = Value::integer(k + 1);
    slot(2) = Value::integer(n - k - 1);
    slot(3) = Value::integer(n - k);
    slot(4) = Value::boolean(k == 0);
    slot(5) = Value::boolean(k == n - 1);
    slot(6) = Value::integer(n);
    slot(7) = Value::integer(1);
    slot(8) = Value::integer(0);
    slot(9) = k > 0 ? items[k - 1] : Value::undefined("there is no previous item");
    slot(10) = k + 1 < n ? items[k + 1] : Value::undefined("there is no next item");
    loop_scope->vars["loop"] = loop;
    unpack(s.targets, s.tuple_target, items[k]);
    if (exec_body(s.bodies[0]) == Flow::kBreak) break;
  }
  return Flow::kNormal;
}

// ---- macros ----

Value Interpreter::make_macro(const std::shared_ptr<Macro>& m) {
  std::weak_ptr<Scope> closure = scope_;
  const Macro* macro = m.get();  // owned by the Program, which outlives the render
  return Value::callable(
      m->name, [macro, closure](Interpreter& in, Args& args) { return in.call_macro(*macro, closure, args); });
}

Value Interpreter::call_macro(const Macro& m, const std::weak_ptr<Scope>& closure, Args& args) {
  if (++macro_depth_ > kMaxMacroDepth) {
    --macro_depth_;
    render_fail("macro '{}': calls nested deeper than {} levels", m.name, kMaxMacroDepth);
  }
  struct Dec {
    int& d;
    ~Dec() { --d; }
  } dec{macro_depth_};
  auto frame = std::make_shared<Scope>();
  frame->parent = closure.lock();
  if (!frame->parent) frame->parent = root_;
  std::shared_ptr<Scope> saved = scope_;
  scope_ = frame;
  struct Restore {
    Interpreter& in;
    std::shared_ptr<Scope> saved;
    ~Restore() { in.scope_ = saved; }
  } restore{*this, saved};

  if (args.positional.size() > m.params.size() && !m.uses_varargs) {
    render_fail("macro '{}' takes not more than {} argument(s)", m.name, m.params.size());
  }
  std::vector<bool> given(m.params.size(), false);
  for (size_t k = 0; k < m.params.size() && k < args.positional.size(); ++k) {
    frame->vars[m.params[k]] = args.positional[k];
    given[k] = true;
  }
  Value extra_kwargs = Value::new_dict();
  for (auto& [key, v] : args.kwargs) {
    bool bound = false;
    for (size_t k = 0; k < m.params.size(); ++k) {
      if (m.params[k] != key) continue;
      if (given[k]) render_fail("macro '{}' got multiple values for argument '{}'", m.name, key);
      frame->vars[key] = v;
      given[k] = true;
      bound = true;
    }
    if (bound) continue;
    if (key == "caller") {
      if (!m.uses_caller) render_fail("macro '{}' takes no keyword argument 'caller'", m.name);
      frame->vars["caller"] = v;
    } else if (m.uses_kwargs) {
      extra_kwargs.dict->set(Value::string(key), v);
    } else {
      render_fail("macro '{}' takes no keyword argument '{}'", m.name, key);
    }
  }
  for (size_t k = 0; k < m.params.size(); ++k) {
    if (given[k]) continue;
    frame->vars[m.params[k]] = m.defaults[k]
                                   ? eval(*m.defaults[k])
                                   : Value::undefined(fmt::format("parameter '{}' was not provided", m.params[k]));
  }
  List rest;
  for (size_t k = m.params.size(); k < args.positional.size(); ++k) rest.push_back(args.positional[k]);
  frame->vars["varargs"] = Value::new_tuple(std::move(rest));
  frame->vars["kwargs"] = extra_kwargs;
  return Value::string(capture(*m.body));
}

Value Interpreter::call(const Value& callee, Args& args) {
  count_step();
  if (callee.is_undefined()) render_fail("{}", callee.s.empty() ? "an undefined value is not callable" : callee.s);
  if (callee.kind != Kind::kCallable) render_fail("'{}' object is not callable", type_name(callee));
  return callee.fn->fn(*this, args);
}

Value Interpreter::apply_filter(const std::string& name, const Value& subject, Args& args) {
  const auto& filters = builtin_filters();
  auto it = filters.find(name);
  if (it == filters.end()) render_fail("no filter named '{}'", name);
  return it->second(*this, subject, args);
}

bool Interpreter::apply_test(const std::string& name, const Value& subject, Args& args) {
  const auto& tests = builtin_tests();
  auto it = tests.find(name);
  if (it == tests.end()) render_fail("no test named '{}'", name);
  return it->second(*this, subject, args);
}

// ---- expressions ----

Args Interpreter::eval_args(const Expr& e, size_t first) {
  Args args;
  for (size_t k = first; k < e.items.size(); ++k) args.positional.push_back(eval(*e.items[k]));
  for (const auto& [key, x] : e.kwargs) args.kwargs.emplace_back(key, eval(*x));
  return args;
}

Value Interpreter::get_attr(const Value& obj, const std::string& name) {
  switch (obj.kind) {
    case Kind::kUndefined:
      render_fail("{}", obj.s.empty() ? "an undefined value has no attributes" : obj.s);
    case Kind::kDict: {
      Value m = bound_method(obj, name);
      if (!m.is_undefined()) return m;
      if (const Value* v = obj.dict->find(name)) return *v;
      break;
    }
    case Kind::kObject:
      if (const Value* v = obj.obj->attrs.find(name)) return *v;
      break;
    case Kind::kString:
    case Kind::kList:
    case Kind::kTuple: {
      Value m = bound_method(obj, name);
      if (!m.is_undefined()) return m;
      break;
    }
    default:
      break;
  }
  return Value::undefined(fmt::format("{} has no attribute '{}'", object_repr(obj), name));
}

Value Interpreter::get_item(const Value& obj, const Value& key) {
  switch (obj.kind) {
    case Kind::kUndefined:
      render_fail("{}", obj.s.empty() ? "an undefined value cannot be indexed" : obj.s);
    case Kind::kDict:
      if (const Value* v = obj.dict->find(key)) return *v;
      break;
    case Kind::kList:
    case Kind::kTuple:
      if (key.is_integral()) {
        int64_t i = key.as_int();
        if (normalise_index(i, static_cast<int64_t>(obj.list->size()))) return (*obj.list)[static_cast<size_t>(i)];
      }
      break;
    case Kind::kString:
      if (key.is_integral()) {
        const auto offsets = code_point_offsets(obj.s);
        int64_t i = key.as_int();
        if (normalise_index(i, static_cast<int64_t>(offsets.size()) - 1)) {
          const size_t k = static_cast<size_t>(i);
          return Value::string(obj.s.substr(offsets[k], offsets[k + 1] - offsets[k]));
        }
      }
      break;
    case Kind::kObject:
      if (const Value* v = obj.obj->attrs.find(key)) return *v;
      break;
    default:
      break;
  }
  if (key.is_string()) return get_attr(obj, key.s);
  return Value::undefined(fmt::format("{} has no element {}", object_repr(obj), repr(key)));
}

namespace {

Value repeat(const Value& seq, int64_t n) {
  if (seq.is_string()) {
    if (n <= 0) return Value::string("");
    check_size(seq.s.size() * static_cast<size_t>(std::min<int64_t>(n, int64_t{1} << 40)));
    std::string out;
    out.reserve(seq.s.size() * static_cast<size_t>(n));
    for (int64_t k = 0; k < n; ++k) out += seq.s;
    return Value::string(std::move(out));
  }
  List out;
  if (n > 0) {
    if (static_cast<double>(seq.list->size()) * static_cast<double>(n) > 1e7)
      render_fail("a list repeated too many times");
    for (int64_t k = 0; k < n; ++k) out.insert(out.end(), seq.list->begin(), seq.list->end());
  }
  return seq.kind == Kind::kTuple ? Value::new_tuple(std::move(out)) : Value::new_list(std::move(out));
}

[[noreturn]] void unsupported(const std::string& op, const Value& a, const Value& b) {
  render_fail("unsupported operand type(s) for {}: '{}' and '{}'", op, type_name(a), type_name(b));
}

}  // namespace

Value Interpreter::binary(const std::string& op, const Value& a, const Value& b) {
  if (op == "~") {
    std::string s = to_str(a);
    s += to_str(b);
    check_size(s.size());
    return Value::string(std::move(s));
  }
  if (a.is_undefined()) render_fail("{}", a.s.empty() ? "undefined value in an arithmetic expression" : a.s);
  if (b.is_undefined()) render_fail("{}", b.s.empty() ? "undefined value in an arithmetic expression" : b.s);
  const bool ints = a.is_integral() && b.is_integral();
  const bool nums = a.is_number() && b.is_number();
  if (op == "+") {
    if (ints) {
      int64_t r;
      if (__builtin_add_overflow(a.as_int(), b.as_int(), &r)) render_fail("integer overflow in +");
      return Value::integer(r);
    }
    if (nums) return Value::real(a.as_double() + b.as_double());
    if (a.is_string() && b.is_string()) {
      check_size(a.s.size() + b.s.size());
      return Value::string(a.s + b.s);
    }
    if (a.is_sequence() && a.kind == b.kind) {
      List out = *a.list;
      out.insert(out.end(), b.list->begin(), b.list->end());
      return a.kind == Kind::kTuple ? Value::new_tuple(std::move(out)) : Value::new_list(std::move(out));
    }
    if (a.is_string()) render_fail("can only concatenate str (not \"{}\") to str", type_name(b));
    if (a.kind == Kind::kList) render_fail("can only concatenate list (not \"{}\") to list", type_name(b));
    unsupported(op, a, b);
  }
  if (op == "-") {
    if (ints) {
      int64_t r;
      if (__builtin_sub_overflow(a.as_int(), b.as_int(), &r)) render_fail("integer overflow in -");
      return Value::integer(r);
    }
    if (nums) return Value::real(a.as_double() - b.as_double());
    unsupported(op, a, b);
  }
  if (op == "*") {
    if (ints) {
      int64_t r;
      if (__builtin_mul_overflow(a.as_int(), b.as_int(), &r)) render_fail("integer overflow in *");
      return Value::integer(r);
    }
    if (nums) return Value::real(a.as_double() * b.as_double());
    if ((a.is_string() || a.is_sequence()) && b.is_integral()) return repeat(a, b.as_int());
    if (a.is_integral() && (b.is_string() || b.is_sequence())) return repeat(b, a.as_int());
    unsupported(op, a, b);
  }
  if (op == "/") {
    if (!nums) unsupported(op, a, b);
    if (b.as_double() == 0) render_fail("division by zero");
    return Value::real(a.as_double() / b.as_double());
  }
  if (op == "//" || op == "%") {
    if (op == "%" && a.is_string()) return Value::string(py_percent_format(a.s, b));
    if (!nums) unsupported(op, a, b);
    if (ints) {
      const int64_t x = a.as_int(), y = b.as_int();
      if (y == 0) render_fail("integer division or modulo by zero");
      if (x == INT64_MIN && y == -1) {
        if (op == "%") return Value::integer(0);
        render_fail("integer overflow in //");
      }
      int64_t q = x / y, r = x % y;
      if (r != 0 && ((r < 0) != (y < 0))) {  // Python floors toward -inf
        --q;
        r += y;
      }
      return Value::integer(op == "//" ? q : r);
    }
    const double x = a.as_double(), y = b.as_double();
    if (y == 0) render_fail("float division by zero");
    double r = std::fmod(x, y);
    if (r != 0 && ((r < 0) != (y < 0))) r += y;
    if (op == "%") return Value::real(r);
    return Value::real(std::floor(x / y));
  }
  if (op == "**") {
    if (!nums) unsupported(op, a, b);
    if (ints && b.as_int() >= 0) {
      int64_t base = a.as_int(), e = b.as_int(), r = 1;
      while (e > 0) {
        if (e & 1) {
          if (__builtin_mul_overflow(r, base, &r)) render_fail("integer overflow in **");
        }
        e >>= 1;
        if (e > 0 && __builtin_mul_overflow(base, base, &base)) render_fail("integer overflow in **");
      }
      return Value::integer(r);
    }
    if (a.as_double() == 0 && b.as_double() < 0) render_fail("0.0 cannot be raised to a negative power");
    return Value::real(std::pow(a.as_double(), b.as_double()));
  }
  render_fail("unknown operator {}", op);
}

bool Interpreter::compare_op(const std::string& op, const Value& a, const Value& b) {
  if (op == "==") return equals(a, b);
  if (op == "!=") return !equals(a, b);
  if (op == "in") return contains(b, a);
  if (op == "notin") return !contains(b, a);
  if (a.is_undefined()) render_fail("{}", a.s.empty() ? "undefined value in a comparison" : a.s);
  if (b.is_undefined()) render_fail("{}", b.s.empty() ? "undefined value in a comparison" : b.s);
  const int c = compare(a, b, op);
  if (op == "<") return c < 0;
  if (op == "<=") return c <= 0;
  if (op == ">") return c > 0;
  return c >= 0;
}

Value Interpreter::eval(const Expr& e) {
  DepthGuard guard(*this);
  line_ = e.line;
  switch (e.kind) {
    case ExprKind::kLiteral:
      return e.value;
    case ExprKind::kName:
      return lookup(e.name);
    case ExprKind::kList:
    case ExprKind::kTuple: {
      List items;
      items.reserve(e.items.size());
      for (const ExprPtr& x : e.items) items.push_back(eval(*x));
      return e.kind == ExprKind::kList ? Value::new_list(std::move(items)) : Value::new_tuple(std::move(items));
    }
    case ExprKind::kDict: {
      Value d = Value::new_dict();
      for (size_t k = 0; k + 1 < e.items.size(); k += 2) {
        Value key = eval(*e.items[k]);
        d.dict->set(std::move(key), eval(*e.items[k + 1]));
      }
      return d;
    }
    case ExprKind::kGetAttr:
      return get_attr(eval(*e.items[0]), e.name);
    case ExprKind::kGetItem: {
      const Value obj = eval(*e.items[0]);
      return get_item(obj, eval(*e.items[1]));
    }
    case ExprKind::kSlice: {
      const Value obj = eval(*e.items[0]);
      Value parts[3];
      for (int k = 0; k < 3; ++k) parts[k] = e.items[k + 1] ? eval(*e.items[k + 1]) : Value::none();
      if (obj.is_undefined()) render_fail("{}", obj.s.empty() ? "an undefined value cannot be sliced" : obj.s);
      if (!obj.is_string() && !obj.is_sequence()) render_fail("'{}' object is not subscriptable", type_name(obj));
      std::vector<size_t> offsets;
      const int64_t size = obj.is_string() ? static_cast<int64_t>((offsets = code_point_offsets(obj.s)).size()) - 1
                                           : static_cast<int64_t>(obj.list->size());
      int64_t start, stop, step;
      slice_indices(parts[0], parts[1], parts[2], size, start, stop, step);
      std::string s;
      List items;
      for (int64_t k = start; step > 0 ? k < stop : k > stop; k += step) {
        const auto u = static_cast<size_t>(k);
        if (obj.is_string()) {
          s.append(obj.s, offsets[u], offsets[u + 1] - offsets[u]);
        } else {
          items.push_back((*obj.list)[u]);
        }
        if ((step > 0 && k > INT64_MAX - step) || (step < 0 && k < INT64_MIN - step)) break;
      }
      if (obj.is_string()) return Value::string(std::move(s));
      return obj.kind == Kind::kTuple ? Value::new_tuple(std::move(items)) : Value::new_list(std::move(items));
    }
    case ExprKind::kCall: {
      const Value callee = eval(*e.items[0]);
      Args args = eval_args(e, 1);
      line_ = e.line;
      return call(callee, args);
    }
    case ExprKind::kFilter: {
      const Value subject = eval(*e.items[0]);
      Args args = eval_args(e, 1);
      line_ = e.line;
      return apply_filter(e.name, subject, args);
    }
    case ExprKind::kTest: {
      const Value subject = eval(*e.items[0]);
      Args args = eval_args(e, 1);
      line_ = e.line;
      return Value::boolean(apply_test(e.name, subject, args) != e.negated);
    }
    case ExprKind::kNeg:
    case ExprKind::kPos: {
      const Value v = eval(*e.items[0]);
      if (v.is_undefined()) render_fail("{}", v.s.empty() ? "undefined value in an arithmetic expression" : v.s);
      if (!v.is_number()) {
        render_fail("bad operand type for unary {}: '{}'", e.kind == ExprKind::kNeg ? "-" : "+", type_name(v));
      }
      if (e.kind == ExprKind::kPos) return v.kind == Kind::kBool ? Value::integer(v.as_int()) : v;
      if (v.kind == Kind::kFloat) return Value::real(-v.f);
      if (v.as_int() == INT64_MIN) render_fail("integer overflow in unary -");
      return Value::integer(-v.as_int());
    }
    case ExprKind::kNot:
      return Value::boolean(!truthy(eval(*e.items[0])));
    case ExprKind::kAnd: {
      Value a = eval(*e.items[0]);
      return truthy(a) ? eval(*e.items[1]) : a;
    }
    case ExprKind::kOr: {
      Value a = eval(*e.items[0]);
      return truthy(a) ? a : eval(*e.items[1]);
    }
    case ExprKind::kBinary: {
      const Value a = eval(*e.items[0]);
      const Value b = eval(*e.items[1]);
      line_ = e.line;
      return binary(e.name, a, b);
    }
    case ExprKind::kCompare: {
      Value left = eval(*e.items[0]);
      for (size_t k = 0; k < e.ops.size(); ++k) {
        Value right = eval(*e.items[k + 1]);
        line_ = e.line;
        if (!compare_op(e.ops[k], left, right)) return Value::boolean(false);
        left = std::move(right);
      }
      return Value::boolean(true);
    }
    case ExprKind::kCond:
      if (truthy(eval(*e.items[0]))) return eval(*e.items[1]);
      return e.items[2] ? eval(*e.items[2]) : Value::undefined("the condition was false and there is no else");
  }
  return Value::undefined();
}

std::vector<std::optional<Value>> bind(const char* fn, Args& args, std::initializer_list<const char*> names) {
  std::vector<std::optional<Value>> out(names.size());
  if (args.positional.size() > names.size()) {
    render_fail("{}() takes at most {} argument(s) ({} given)", fn, names.size(), args.positional.size());
  }
  for (size_t k = 0; k < args.positional.size(); ++k) out[k] = args.positional[k];
  for (auto& [key, v] : args.kwargs) {
    size_t k = 0;
    for (const char* n : names) {
      if (key == n) break;
      ++k;
    }
    if (k == names.size()) render_fail("{}() got an unexpected keyword argument '{}'", fn, key);
    if (out[k]) render_fail("{}() got multiple values for argument '{}'", fn, key);
    out[k] = v;
  }
  return out;
}

}  // namespace dsv3::io::jinja::detail
