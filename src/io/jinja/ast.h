// The parsed template: expression and statement nodes, after jinja2's nodes (jinja2/nodes.py) reduced to
// what the interpreter needs. Nodes are plain tagged structs; children are owned.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "io/jinja/value.h"

namespace dsv3::io::jinja::detail {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

enum class ExprKind {
  kLiteral,  // value
  kName,     // name
  kList,     // items
  kTuple,    // items
  kDict,     // items: key, value, key, value, …
  kGetAttr,  // items[0] . name
  kGetItem,  // items[0] [ items[1] ]
  kSlice,    // items[0] [ items[1] : items[2] : items[3] ] (null parts are missing)
  kCall,     // items[0] ( items[1..] , kwargs )
  kFilter,   // items[0] | name ( items[1..] , kwargs ); items[0] null inside {% filter %}
  kTest,     // items[0] is [not] name ( items[1..] , kwargs ); negated
  kNeg,      // - items[0]
  kPos,      // + items[0]
  kNot,      // not items[0]
  kBinary,   // items[0] op items[1]: + - * / // % ** ~
  kAnd,      // items[0] and items[1]
  kOr,       // items[0] or items[1]
  kCompare,  // items[0] ops[0] items[1] ops[1] items[2] … (== != < <= > >= in notin)
  kCond,     // items[1] if items[0] else items[2] (items[2] may be null)
};

struct Expr {
  ExprKind kind;
  int line = 0;
  Value value;                                          // kLiteral
  std::string name;                                     // kName, kGetAttr, kFilter, kTest, kBinary (the operator)
  std::vector<ExprPtr> items;                           // see ExprKind
  std::vector<std::pair<std::string, ExprPtr>> kwargs;  // kCall, kFilter, kTest
  std::vector<std::string> ops;                         // kCompare
  bool negated = false;                                 // kTest
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

enum class StmtKind {
  kText,         // text
  kOutput,       // {{ expr }}
  kIf,           // conds[k] → bodies[k]; bodies.back() is the else branch when bodies.size() > conds.size()
  kFor,          // for targets in expr [if cond]: bodies[0], else bodies[1]
  kSet,          // set targets (or attr of a namespace: target_attr) = expr
  kSetBlock,     // set targets[0] %}bodies[0]{% endset (optionally filtered: filters)
  kMacro,        // macro name(params = defaults) bodies[0]
  kCallBlock,    // call(params) expr %}bodies[0]{% endcall
  kFilterBlock,  // filter filters %}bodies[0]{% endfilter
  kBreak,
  kContinue,
  kDo,     // do expr
  kScope,  // bodies[0] (generation blocks: rendered as their body)
};

struct Macro;

struct Stmt {
  StmtKind kind;
  int line = 0;
  std::string text;            // kText
  ExprPtr expr;                // kOutput, kFor (iterable), kSet (value), kCallBlock (call), kDo
  ExprPtr cond;                // kFor's filter
  std::vector<ExprPtr> conds;  // kIf
  std::vector<Body> bodies;
  std::vector<std::string> targets;  // kFor, kSet, kSetBlock; kSet with target_attr: the namespace name
  std::string target_attr;           // kSet: {% set ns.attr = … %}
  bool tuple_target = false;         // kFor, kSet: `a, b` (unpacks even a single name)
  std::vector<ExprPtr> filters;      // kSetBlock, kFilterBlock: kFilter nodes with a null subject
  std::shared_ptr<Macro> macro;      // kMacro, kCallBlock (the caller)
};

struct Macro {
  std::string name;
  std::vector<std::string> params;
  std::vector<ExprPtr> defaults;  // one per param; null: no default
  bool uses_varargs = false;      // the body names `varargs` / `kwargs` / `caller`
  bool uses_kwargs = false;
  bool uses_caller = false;
  const Body* body = nullptr;  // the Stmt's bodies[0]
};

struct Program {
  std::string name;
  Body body;
};

}  // namespace dsv3::io::jinja::detail
