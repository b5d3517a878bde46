// JSON Schema `pattern` (an ECMAScript regular expression, as ajv runs it with the "u" flag) → the grammar
// of the JSON strings ("…", with quotes) whose value matches it. Search semantics as the standard says: a
// pattern without a leading ^ (trailing $) admits any characters before (after) the match.
//
// Supported subset: literal characters (UTF-8 included), escapes \. \\ \/ \- \^ \$ \* \+ \? \( \) \[ \] \{
// \} \| \n \r \t \f \v \uXXXX, the classes . \d \D \w \W \s \S, bracket classes [a-z0-9_] and [^…] over
// ASCII, groups (…) and (?:…), alternation |, quantifiers * + ? {n} {n,} {n,m} (lazy forms too: same
// language), ^ only at the start and $ only at the end. Everything else (backreferences, lookaround, \b,
// \p{…}, named groups, non-ASCII inside brackets) is refused with an error naming the construct.
//
// Sound by construction (every generated string matches), not complete where exactness would need Unicode
// tables: \s and [^\s…] use ASCII whitespace only, and negated forms that JavaScript would let match a
// non-ASCII whitespace character (\S, [^\s]) admit no non-ASCII characters. Characters are written the
// canonical way in JSON: '"' and '\' escaped, control characters as \n \t … or \u00XX, others verbatim.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "io/grammar/json_text.h"

namespace dsv3::grammar {

// Throws dsv3::Error "json_schema: pattern at PATH: …" on unsupported syntax.
int32_t pattern_string(Builder& b, JsonText& json, std::string_view pattern, const std::string& path);

}  // namespace dsv3::grammar
