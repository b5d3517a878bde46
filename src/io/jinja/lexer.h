// The Jinja lexer: template source → tokens, as jinja2's Lexer (jinja2/lexer.py) splits it.
//   - Newlines are normalised first, as jinja2 does (source.splitlines() joined by "\n", so "\r\n", "\r"
//     and the other line breaks Python knows become "\n"), and one trailing newline is dropped
//     (keep_trailing_newline=False, jinja2's default and Hugging Face's).
//   - Text between tags is data; `{{ … }}`, `{% … %}` and `{# … #}` are tags. Inside a tag, brackets are
//     balanced, so `}}` inside `{{ {'a': {'b': 1}} }}` closes nothing until the brackets do.
//   - Whitespace control: `{%-` / `{{-` / `{#-` strip all whitespace before the tag, `-%}` / `-}}` / `-#}`
//     all after; `{%+` disables lstrip_blocks for that tag. trim_blocks drops one "\n" right after `%}`
//     or `#}`; lstrip_blocks strips spaces and tabs from a line's start up to `{%` or `{#`.
//   - `{% raw %}…{% endraw %}` is data, verbatim. Comments produce no token.
//   - In tags: names, integers (with `_`), floats, strings ('…' or "…", Python's escapes decoded as
//     jinja2 does with unicode-escape), operators.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "io/jinja/template.h"

namespace dsv3::io::jinja::detail {

enum class Tok { kText, kVarBegin, kVarEnd, kBlockBegin, kBlockEnd, kName, kInt, kFloat, kString, kOp, kEof };

struct Token {
  Tok type;
  std::string text;  // kText/kString: the value; kName/kOp: the spelling
  int64_t ival = 0;
  double fval = 0;
  int line = 1;
  int col = 1;
};

// A syntax error is a dsv3::Error "NAME:LINE:COL: message".
std::vector<Token> tokenize(std::string_view source, const std::string& name, const Options& options);

}  // namespace dsv3::io::jinja::detail
