// The Jinja parser: tokens (lexer.h) → Program (ast.h), after jinja2's Parser (jinja2/parser.py): its
// statements (if/elif/else, for with tuple targets, an inline `if` filter and `else`, set (expression,
// namespace attribute, tuple, block form), macro, call, filter, break/continue, do, generation) and its
// expression grammar and precedence, loosest first:
//   a if c else b · or · and · not · comparisons (== != < <= > >= in, not in) · + - · ~ · * / // % · **
//   · unary - + · primary with postfix . [] () and then | filters and `is` tests.
// As in jinja2, `-x|abs` is abs(-x) and `**` is left-associative. include/extends/import/block are
// refused (chat templates are single files). Nesting is bounded, so a hostile template is a syntax error
// rather than a stack overflow.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "io/jinja/ast.h"
#include "io/jinja/template.h"

namespace dsv3::io::jinja::detail {

// A syntax error is a dsv3::Error "NAME:LINE:COL: message".
std::shared_ptr<Program> parse(std::string_view source, const std::string& name, const Options& options);

}  // namespace dsv3::io::jinja::detail
