// The Jinja parser (parser.h): recursive descent over the token list, one method per jinja2 grammar rule.
#include "io/jinja/parser.h"

#include <algorithm>

#include "core/error.h"
#include "io/jinja/lexer.h"

namespace dsv3::io::jinja::detail {
namespace {

constexpr int kMaxDepth = 128;  // nesting of expressions and of blocks

class Parser {
 public:
  Parser(std::vector<Token> tokens, const std::string& name) : tokens_(std::move(tokens)), name_(name) {}

  Body parse_template() {
    std::string end;
    return parse_body({}, end, "", 0);
  }

 private:
  const Token& cur() const { return tokens_[pos_]; }
  const Token& peek(size_t k = 1) const { return tokens_[std::min(pos_ + k, tokens_.size() - 1)]; }
  const Token& next() {
    const Token& t = tokens_[pos_];
    if (pos_ + 1 < tokens_.size()) ++pos_;
    return t;
  }

  static std::string describe(const Token& t) {
    switch (t.type) {
      case Tok::kEof:
        return "end of template";
      case Tok::kVarEnd:
        return "end of print statement ('}}')";
      case Tok::kBlockEnd:
        return "end of statement block ('%}')";
      case Tok::kText:
        return "template data";
      case Tok::kString:
        return "a string";
      default:
        return "'" + t.text + "'";
    }
  }

  [[noreturn]] void error_at(const Token& t, const std::string& message) const {
    fail("{}:{}:{}: {}", name_, t.line, t.col, message);
  }
  [[noreturn]] void unexpected(const std::string& expected) const {
    error_at(cur(), fmt::format("unexpected {}, expected {}", describe(cur()), expected));
  }

  bool is_op(const char* op) const { return cur().type == Tok::kOp && cur().text == op; }
  bool is_name(const char* n) const { return cur().type == Tok::kName && cur().text == n; }
  bool skip_op(const char* op) {
    if (!is_op(op)) return false;
    next();
    return true;
  }
  bool skip_name(const char* n) {
    if (!is_name(n)) return false;
    next();
    return true;
  }
  void expect_op(const char* op) {
    if (!skip_op(op)) unexpected(fmt::format("'{}'", op));
  }
  std::string expect_name() {
    if (cur().type != Tok::kName) unexpected("a name");
    return next().text;
  }
  void expect_block_end() {
    if (cur().type != Tok::kBlockEnd) unexpected("end of statement block ('%}')");
    next();
  }

  struct DepthGuard {
    explicit DepthGuard(Parser& p) : p(p) {
      if (++p.depth_ > kMaxDepth) p.error_at(p.cur(), fmt::format("nesting deeper than {} levels", kMaxDepth));
    }
    ~DepthGuard() { --p.depth_; }
    Parser& p;
  };

  ExprPtr node(ExprKind kind, int line) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = line;
    return e;
  }
  StmtPtr stmt(StmtKind kind, int line) {
    auto s = std::make_unique<Stmt>();
    s->kind = kind;
    s->line = line;
    return s;
  }

  // ---- statements ----

  // Statements until a block tag named in `ends` (consumed; its name returned through `found`, the rest
  // of the tag left to the caller). `opener` and `open_line` name the enclosing block for errors.
  Body parse_body(const std::vector<std::string>& ends, std::string& found, const std::string& opener, int open_line) {
    DepthGuard guard(*this);
    Body body;
    while (true) {
      const Token& t = cur();
      if (t.type == Tok::kEof) {
        if (ends.empty()) return body;
        error_at(t, fmt::format("unexpected end of template: the '{}' block opened at line {} is not closed "
                                "(expected '{{% {} %}}')",
                                opener, open_line, ends.back()));
      }
      if (t.type == Tok::kText) {
        auto s = stmt(StmtKind::kText, t.line);
        s->text = t.text;
        body.push_back(std::move(s));
        next();
      } else if (t.type == Tok::kVarBegin) {
        next();
        auto s = stmt(StmtKind::kOutput, t.line);
        s->expr = parse_tuple(true, false);
        if (cur().type != Tok::kVarEnd) unexpected("end of print statement ('}}')");
        next();
        body.push_back(std::move(s));
      } else if (t.type == Tok::kBlockBegin) {
        const Token& kw = peek();
        if (kw.type != Tok::kName) {
          next();
          unexpected("a statement name");
        }
        if (std::find(ends.begin(), ends.end(), kw.text) != ends.end()) {
          next();
          next();
          found = kw.text;
          return body;
        }
        next();
        body.push_back(parse_statement());
      } else {
        unexpected("template data or a tag");
      }
    }
  }

  StmtPtr parse_statement() {
    const Token& kw = cur();
    const std::string name = kw.text;
    const int line = kw.line;
    next();
    if (name == "if") return parse_if(line);
    if (name == "for") return parse_for(line);
    if (name == "set") return parse_set(line);
    if (name == "macro") return parse_macro(line);
    if (name == "call") return parse_call_block(line);
    if (name == "filter") return parse_filter_block(line);
    if (name == "break" || name == "continue") {
      if (loop_depth_ == 0) error_at(kw, fmt::format("'{}' outside of a loop", name));
      expect_block_end();
      return stmt(name == "break" ? StmtKind::kBreak : StmtKind::kContinue, line);
    }
    if (name == "do") {
      auto s = stmt(StmtKind::kDo, line);
      s->expr = parse_tuple(true, false);
      expect_block_end();
      return s;
    }
    if (name == "generation") {
      expect_block_end();
      auto s = stmt(StmtKind::kScope, line);
      std::string end;
      s->bodies.push_back(parse_body({"endgeneration"}, end, "generation", line));
      expect_block_end();
      return s;
    }
    if (name == "include" || name == "extends" || name == "import" || name == "from" || name == "block") {
      error_at(kw, fmt::format("'{{% {} %}}' is not supported (a chat template is a single file)", name));
    }
    error_at(kw, fmt::format("unknown statement '{}'", name));
  }

  StmtPtr parse_if(int line) {
    auto s = stmt(StmtKind::kIf, line);
    s->conds.push_back(parse_tuple(false, false));
    expect_block_end();
    while (true) {
      std::string end;
      s->bodies.push_back(parse_body({"elif", "else", "endif"}, end, "if", line));
      if (end == "elif") {
        s->conds.push_back(parse_tuple(false, false));
        expect_block_end();
      } else if (end == "else") {
        expect_block_end();
        s->bodies.push_back(parse_body({"endif"}, end, "if", line));
        expect_block_end();
        return s;
      } else {
        expect_block_end();
        return s;
      }
    }
  }

  // Names: `a`, `a, b`, `(a, b)`; returns whether it was a tuple.
  bool parse_target_names(std::vector<std::string>& names) {
    const bool paren = skip_op("(");
    bool tuple = paren;
    names.push_back(expect_name());
    while (skip_op(",")) {
      tuple = true;
      if (cur().type != Tok::kName) break;  // a trailing comma
      names.push_back(expect_name());
    }
    if (paren) expect_op(")");
    return tuple;
  }

  StmtPtr parse_for(int line) {
    auto s = stmt(StmtKind::kFor, line);
    s->tuple_target = parse_target_names(s->targets);
    if (!skip_name("in")) unexpected("'in'");
    s->expr = parse_tuple(false, false);
    if (skip_name("if")) s->cond = parse_expression(true);
    if (is_name("recursive")) error_at(cur(), "recursive for loops are not supported");
    expect_block_end();
    ++loop_depth_;
    std::string end;
    s->bodies.push_back(parse_body({"else", "endfor"}, end, "for", line));
    --loop_depth_;
    if (end == "else") {
      expect_block_end();
      const int saved = loop_depth_;
      loop_depth_ = 0;  // break/continue in a for's else belong to no loop
      s->bodies.push_back(parse_body({"endfor"}, end, "for", line));
      loop_depth_ = saved;
    }
    expect_block_end();
    return s;
  }

  StmtPtr parse_set(int line) {
    std::vector<std::string> names;
    std::string attr;
    bool tuple = false;
    if (cur().type == Tok::kName && peek().type == Tok::kOp && peek().text == ".") {
      names.push_back(next().text);
      next();
      attr = expect_name();
    } else {
      tuple = parse_target_names(names);
    }
    if (skip_op("=")) {
      auto s = stmt(StmtKind::kSet, line);
      s->targets = std::move(names);
      s->target_attr = std::move(attr);
      s->tuple_target = tuple;
      s->expr = parse_tuple(true, false);
      expect_block_end();
      return s;
    }
    if (tuple || !attr.empty()) unexpected("'='");
    auto s = stmt(StmtKind::kSetBlock, line);
    s->targets = std::move(names);
    while (skip_op("|")) s->filters.push_back(parse_filter(nullptr));
    expect_block_end();
    std::string end;
    s->bodies.push_back(parse_body({"endset"}, end, "set", line));
    expect_block_end();
    return s;
  }

  // `(a, b=default, …)` of a macro or a call block's caller.
  void parse_signature(Macro& m) {
    expect_op("(");
    while (!is_op(")")) {
      if (!m.params.empty()) expect_op(",");
      if (is_op(")")) break;
      m.params.push_back(expect_name());
      m.defaults.push_back(skip_op("=") ? parse_expression(true) : nullptr);
    }
    next();
  }

  StmtPtr parse_macro(int line) {
    auto s = stmt(StmtKind::kMacro, line);
    s->macro = std::make_shared<Macro>();
    s->macro->name = expect_name();
    parse_signature(*s->macro);
    expect_block_end();
    macros_.push_back(s->macro.get());
    const int saved = loop_depth_;
    loop_depth_ = 0;
    std::string end;
    s->bodies.push_back(parse_body({"endmacro"}, end, "macro", line));
    loop_depth_ = saved;
    macros_.pop_back();
    if (cur().type == Tok::kName) next();  // {% endmacro name %}
    expect_block_end();
    s->macro->body = &s->bodies[0];
    return s;
  }

  StmtPtr parse_call_block(int line) {
    auto s = stmt(StmtKind::kCallBlock, line);
    s->macro = std::make_shared<Macro>();
    s->macro->name = "caller";
    if (is_op("(")) parse_signature(*s->macro);
    s->expr = parse_expression(true);
    if (s->expr->kind != ExprKind::kCall) error_at(cur(), "a call block needs a call ('{% call m(…) %}')");
    expect_block_end();
    macros_.push_back(s->macro.get());
    std::string end;
    s->bodies.push_back(parse_body({"endcall"}, end, "call", line));
    macros_.pop_back();
    expect_block_end();
    s->macro->body = &s->bodies[0];
    return s;
  }

  StmtPtr parse_filter_block(int line) {
    auto s = stmt(StmtKind::kFilterBlock, line);
    s->filters.push_back(parse_filter(nullptr));
    while (skip_op("|")) s->filters.push_back(parse_filter(nullptr));
    expect_block_end();
    std::string end;
    s->bodies.push_back(parse_body({"endfilter"}, end, "filter", line));
    expect_block_end();
    return s;
  }

  // ---- expressions ----

  bool at_tuple_end() const {
    const Token& t = cur();
    return t.type == Tok::kVarEnd || t.type == Tok::kBlockEnd || t.type == Tok::kEof ||
           (t.type == Tok::kOp && (t.text == ")" || t.text == "]" || t.text == "}")) ||
           (t.type == Tok::kName && (t.text == "if" || t.text == "recursive"));
  }

  // Comma-separated expressions; one without a comma is itself, else a tuple.
  ExprPtr parse_tuple(bool with_condexpr, bool explicit_parens) {
    const int line = cur().line;
    std::vector<ExprPtr> items;
    bool comma = false;
    while (true) {
      if (!items.empty()) {
        if (!skip_op(",")) break;
        comma = true;
      }
      if (at_tuple_end()) break;
      items.push_back(parse_expression(with_condexpr));
    }
    if (items.empty() && !explicit_parens) unexpected("an expression");
    if (items.size() == 1 && !comma) return std::move(items[0]);
    auto t = node(ExprKind::kTuple, line);
    t->items = std::move(items);
    return t;
  }

  ExprPtr parse_expression(bool with_condexpr) {
    DepthGuard guard(*this);
    return with_condexpr ? parse_condexpr() : parse_or();
  }

  ExprPtr parse_condexpr() {
    ExprPtr e = parse_or();
    while (is_name("if")) {
      const int line = next().line;
      auto c = node(ExprKind::kCond, line);
      c->items.push_back(parse_or());
      c->items.push_back(std::move(e));
      c->items.push_back(skip_name("else") ? parse_condexpr() : nullptr);
      e = std::move(c);
    }
    return e;
  }

  ExprPtr binary(ExprKind kind, ExprPtr l, ExprPtr r, int line, std::string op = {}) {
    auto e = node(kind, line);
    e->name = std::move(op);
    e->items.push_back(std::move(l));
    e->items.push_back(std::move(r));
    return e;
  }

  ExprPtr parse_or() {
    ExprPtr e = parse_and();
    while (is_name("or")) {
      const int line = next().line;
      e = binary(ExprKind::kOr, std::move(e), parse_and(), line);
    }
    return e;
  }

  ExprPtr parse_and() {
    ExprPtr e = parse_not();
    while (is_name("and")) {
      const int line = next().line;
      e = binary(ExprKind::kAnd, std::move(e), parse_not(), line);
    }
    return e;
  }

  ExprPtr parse_not() {
    if (is_name("not")) {
      DepthGuard guard(*this);
      const int line = next().line;
      auto e = node(ExprKind::kNot, line);
      e->items.push_back(parse_not());
      return e;
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    const int line = cur().line;
    ExprPtr first = parse_math1();
    std::unique_ptr<Expr> cmp;
    while (true) {
      std::string op;
      if (cur().type == Tok::kOp && (cur().text == "==" || cur().text == "!=" || cur().text == "<" ||
                                     cur().text == "<=" || cur().text == ">" || cur().text == ">=")) {
        op = next().text;
      } else if (is_name("in")) {
        next();
        op = "in";
      } else if (is_name("not") && peek().type == Tok::kName && peek().text == "in") {
        next();
        next();
        op = "notin";
      } else {
        break;
      }
      if (!cmp) {
        cmp = node(ExprKind::kCompare, line);
        cmp->items.push_back(std::move(first));
      }
      cmp->ops.push_back(op);
      cmp->items.push_back(parse_math1());
    }
    return cmp ? std::move(cmp) : std::move(first);
  }

  ExprPtr parse_math1() {
    ExprPtr e = parse_concat();
    while (is_op("+") || is_op("-")) {
      const Token& t = next();
      e = binary(ExprKind::kBinary, std::move(e), parse_concat(), t.line, t.text);
    }
    return e;
  }

  ExprPtr parse_concat() {
    ExprPtr e = parse_math2();
    while (is_op("~")) {
      const Token& t = next();
      e = binary(ExprKind::kBinary, std::move(e), parse_math2(), t.line, "~");
    }
    return e;
  }

  ExprPtr parse_math2() {
    ExprPtr e = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const Token& t = next();
      e = binary(ExprKind::kBinary, std::move(e), parse_pow(), t.line, t.text);
    }
    return e;
  }

  ExprPtr parse_pow() {
    ExprPtr e = parse_unary(true);
    while (is_op("**")) {
      const Token& t = next();
      e = binary(ExprKind::kBinary, std::move(e), parse_unary(true), t.line, "**");
    }
    return e;
  }

  ExprPtr parse_unary(bool with_filter) {
    DepthGuard guard(*this);
    ExprPtr e;
    if (is_op("-") || is_op("+")) {
      const Token& t = next();
      e = node(t.text == "-" ? ExprKind::kNeg : ExprKind::kPos, t.line);
      e->items.push_back(parse_unary(false));
    } else {
      e = parse_primary();
    }
    e = parse_postfix(std::move(e));
    if (with_filter) e = parse_filter_expr(std::move(e));
    return e;
  }

  ExprPtr parse_primary() {
    const Token& t = cur();
    switch (t.type) {
      case Tok::kName: {
        next();
        auto e = node(ExprKind::kLiteral, t.line);
        if (t.text == "true" || t.text == "True") {
          e->value = Value::boolean(true);
        } else if (t.text == "false" || t.text == "False") {
          e->value = Value::boolean(false);
        } else if (t.text == "none" || t.text == "None") {
          e->value = Value::none();
        } else {
          e->kind = ExprKind::kName;
          e->name = t.text;
          if (!macros_.empty()) {
            if (t.text == "varargs") macros_.back()->uses_varargs = true;
            if (t.text == "kwargs") macros_.back()->uses_kwargs = true;
            if (t.text == "caller") macros_.back()->uses_caller = true;
          }
        }
        return e;
      }
      case Tok::kString: {
        auto e = node(ExprKind::kLiteral, t.line);
        std::string s;
        while (cur().type == Tok::kString) s += next().text;  // adjacent literals concatenate
        e->value = Value::string(std::move(s));
        return e;
      }
      case Tok::kInt: {
        next();
        auto e = node(ExprKind::kLiteral, t.line);
        e->value = Value::integer(t.ival);
        return e;
      }
      case Tok::kFloat: {
        next();
        auto e = node(ExprKind::kLiteral, t.line);
        e->value = Value::real(t.fval);
        return e;
      }
      case Tok::kOp:
        if (t.text == "(") {
          next();
          ExprPtr e = parse_tuple(true, true);
          expect_op(")");
          return e;
        }
        if (t.text == "[") {
          next();
          auto e = node(ExprKind::kList, t.line);
          while (!is_op("]")) {
            if (!e->items.empty()) expect_op(",");
            if (is_op("]")) break;
            e->items.push_back(parse_expression(true));
          }
          next();
          return e;
        }
        if (t.text == "{") {
          next();
          auto e = node(ExprKind::kDict, t.line);
          while (!is_op("}")) {
            if (!e->items.empty()) expect_op(",");
            if (is_op("}")) break;
            e->items.push_back(parse_expression(true));
            expect_op(":");
            e->items.push_back(parse_expression(true));
          }
          next();
          return e;
        }
        break;
      default:
        break;
    }
    unexpected("an expression");
  }

  ExprPtr parse_postfix(ExprPtr e) {
    while (true) {
      if (is_op(".")) {
        const int line = next().line;
        if (cur().type == Tok::kInt) {  // x.0 is x[0]
          auto g = node(ExprKind::kGetItem, line);
          auto idx = node(ExprKind::kLiteral, line);
          idx->value = Value::integer(next().ival);
          g->items.push_back(std::move(e));
          g->items.push_back(std::move(idx));
          e = std::move(g);
          continue;
        }
        auto g = node(ExprKind::kGetAttr, line);
        g->name = expect_name();
        g->items.push_back(std::move(e));
        e = std::move(g);
      } else if (is_op("[")) {
        e = parse_subscript(std::move(e));
      } else if (is_op("(")) {
        e = parse_call(std::move(e));
      } else {
        return e;
      }
    }
  }

  ExprPtr parse_subscript(ExprPtr subject) {
    DepthGuard guard(*this);
    const int line = next().line;
    ExprPtr parts[3];
    bool slice = false;
    if (!is_op(":")) parts[0] = parse_expression(true);
    if (skip_op(":")) {
      slice = true;
      if (!is_op("]") && !is_op(":")) parts[1] = parse_expression(true);
      if (skip_op(":") && !is_op("]")) parts[2] = parse_expression(true);
    }
    expect_op("]");
    auto g = node(slice ? ExprKind::kSlice : ExprKind::kGetItem, line);
    g->items.push_back(std::move(subject));
    g->items.push_back(std::move(parts[0]));
    if (slice) {
      g->items.push_back(std::move(parts[1]));
      g->items.push_back(std::move(parts[2]));
    }
    return g;
  }

  // `( args )` into e's items (after the subject) and kwargs.
  void parse_args(Expr& e) {
    expect_op("(");
    bool first = true;
    while (!is_op(")")) {
      if (!first) expect_op(",");
      first = false;
      if (is_op(")")) break;
      if (is_op("*") || is_op("**")) error_at(cur(), "*args / **kwargs in calls are not supported");
      if (cur().type == Tok::kName && peek().type == Tok::kOp && peek().text == "=") {
        std::string key = next().text;
        next();
        e.kwargs.emplace_back(std::move(key), parse_expression(true));
      } else {
        if (!e.kwargs.empty()) error_at(cur(), "a positional argument follows a keyword argument");
        e.items.push_back(parse_expression(true));
      }
    }
    next();
  }

  ExprPtr parse_call(ExprPtr callee) {
    DepthGuard guard(*this);
    auto c = node(ExprKind::kCall, cur().line);
    c->items.push_back(std::move(callee));
    parse_args(*c);
    return c;
  }

  // A filter's name and arguments (after '|'); `subject` may be null (filter blocks, set blocks).
  ExprPtr parse_filter(ExprPtr subject) {
    auto f = node(ExprKind::kFilter, cur().line);
    f->name = expect_name();
    while (is_op(".")) {
      next();
      f->name += "." + expect_name();
    }
    f->items.push_back(std::move(subject));
    if (is_op("(")) parse_args(*f);
    return f;
  }

  ExprPtr parse_filter_expr(ExprPtr e) {
    while (true) {
      if (is_op("|")) {
        next();
        e = parse_filter(std::move(e));
      } else if (is_name("is")) {
        const int line = next().line;
        auto t = node(ExprKind::kTest, line);
        t->negated = skip_name("not");
        t->name = expect_name();
        t->items.push_back(std::move(e));
        if (is_op("(")) {
          parse_args(*t);
        } else if ((cur().type == Tok::kName || cur().type == Tok::kString || cur().type == Tok::kInt ||
                    cur().type == Tok::kFloat || is_op("[") || is_op("{")) &&
                   !(is_name("else") || is_name("or") || is_name("and") || is_name("if") || is_name("in") ||
                     is_name("not") || is_name("is") || is_name("recursive"))) {
          DepthGuard guard(*this);
          t->items.push_back(parse_postfix(parse_primary()));
        }
        e = std::move(t);
      } else if (is_op("(")) {
        e = parse_call(std::move(e));
      } else {
        return e;
      }
    }
  }

  std::vector<Token> tokens_;
  size_t pos_ = 0;
  const std::string& name_;
  int depth_ = 0;
  int loop_depth_ = 0;
  std::vector<Macro*> macros_;
};

}  // namespace

std::shared_ptr<Program> parse(std::string_view source, const std::string& name, const Options& options) {
  auto program = std::make_shared<Program>();
  program->name = name;
  Parser parser(tokenize(source, name, options), name);
  program->body = parser.parse_template();
  return program;
}

}  // namespace dsv3::io::jinja::detail
