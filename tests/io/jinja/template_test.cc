// The Jinja interpreter against jinja2's documented behaviour: each expected string is what Python's
// jinja2 renders with Environment(trim_blocks=True, lstrip_blocks=True) (Hugging Face's settings), worked
// out by hand from the rule noted beside it.
#include "io/jinja/template.h"

#include <gtest/gtest.h>

#include "core/error.h"

namespace dsv3::io::jinja {
namespace {

using Json = nlohmann::ordered_json;

std::string render(std::string_view src, const Json& ctx = Json::object(), Options o = {}) {
  return Template(src, "t", o).render(ctx);
}

std::string error_of(std::string_view src, const Json& ctx = Json::object()) {
  try {
    render(src, ctx);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Jinja, TextAndOutput) {
  EXPECT_EQ(render("hello {{ name }}!", {{"name", "world"}}), "hello world!");
  // One trailing newline of the source is dropped (keep_trailing_newline=False).
  EXPECT_EQ(render("a\n"), "a");
  EXPECT_EQ(render("a\n\n"), "a\n");
  EXPECT_EQ(render("a\r\nb"), "a\nb");  // newlines normalised to \n
}

TEST(Jinja, PythonStrOfValues) {
  EXPECT_EQ(render("{{ none }} {{ true }} {{ False }} {{ 1.0 }} {{ 0.1 }} {{ 1e-5 }} {{ 3 }}"),
            "None True False 1.0 0.1 1e-05 3");
  EXPECT_EQ(render("{{ ['a', 1, none, true] }}"), "['a', 1, None, True]");
  EXPECT_EQ(render("{{ {'k': 'v', 'n': [1.5]} }}"), "{'k': 'v', 'n': [1.5]}");
  EXPECT_EQ(render("{{ (1,) }} {{ (1, 2) }} {{ \"it's\" }}"), "(1,) (1, 2) it's");
  EXPECT_EQ(render("{{ [\"it's\"] }}"), "[\"it's\"]");  // repr picks " when the string holds '
  EXPECT_EQ(render("{{ undefined_thing }}|"), "|");
}

TEST(Jinja, WhitespaceControl) {
  EXPECT_EQ(render("a  {{- 'b' -}}  c"), "abc");
  EXPECT_EQ(render("a\n  {%- if true -%}\n  b\n{%- endif %}"), "ab");
  // trim_blocks removes the newline after a block tag; lstrip_blocks the indentation before it.
  EXPECT_EQ(render("{% if true %}\n  x\n  {% endif %}\ny"), "  x\ny");
  // lstrip_blocks does not apply to {{ }}, nor when text precedes the tag on its line.
  EXPECT_EQ(render("  {{ 1 }}"), "  1");
  EXPECT_EQ(render("x {% if true %}y{% endif %}"), "x y");
  // {%+ keeps the indentation.
  EXPECT_EQ(render("  {%+ if true %}y{% endif %}"), "  y");
  // Comments take part in trimming.
  EXPECT_EQ(render("a\n  {# c #}\nb"), "a\nb");
  EXPECT_EQ(render("a {#- c -#} b"), "ab");
  // Without the HF options, text is kept as written.
  EXPECT_EQ(render("{% if true %}\n  x\n  {% endif %}\ny", {}, Options{.trim_blocks = false, .lstrip_blocks = false}),
            "\n  x\n  \ny");
}

TEST(Jinja, Raw) {
  EXPECT_EQ(render("{% raw %}{{ x }}{% endraw %}"), "{{ x }}");
  EXPECT_EQ(render("{%- raw -%}  {% if %}  {%- endraw %}"), "{% if %}");
}

TEST(Jinja, StringLiterals) {
  EXPECT_EQ(render(R"({{ 'a\nb\t\\\'' }})"), "a\nb\t\\'");
  EXPECT_EQ(render(R"({{ "\u00e9\x41" }})"),
            "\xC3\xA9"
            "A");
  EXPECT_EQ(render(R"({{ 'a' "b" }})"), "ab");  // adjacent literals concatenate
  EXPECT_EQ(render(R"({{ '\d' }})"), "\\d");    // unknown escapes stay
}

TEST(Jinja, ForLoop) {
  EXPECT_EQ(render("{% for x in xs %}{{ loop.index }}{{ x }}{% if not loop.last %},{% endif %}{% endfor %}",
                   {{"xs", {"a", "b", "c"}}}),
            "1a,2b,3c");
  EXPECT_EQ(render("{% for x in xs %}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.length }}"
                   "{{ loop.first }} {% endfor %}",
                   {{"xs", {1, 2}}}),
            "0212True 1102False ");
  EXPECT_EQ(render("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}", Json::parse(R"({"d":{"b":1,"a":2}})")),
            "b=1;a=2;");
  EXPECT_EQ(render("{% for x in [] %}x{% else %}empty{% endfor %}"), "empty");
  // The inline filter runs first: loop.length and loop.last see the filtered sequence.
  EXPECT_EQ(
      render("{% for x in range(6) if x is even %}{{ x }}/{{ loop.length }}{{ ',' if not loop.last }}{% endfor %}"),
      "0/3,2/3,4/3");
  EXPECT_EQ(render("{% for x in xs %}{{ loop.previtem }}-{{ loop.nextitem }} {% endfor %}", {{"xs", {1, 2, 3}}}),
            "-2 1-3 2- ");
  EXPECT_EQ(render("{% for x in range(4) %}{{ loop.cycle('a', 'b') }}{% endfor %}"), "abab");
  EXPECT_EQ(render("{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 4 %}{% break %}"
                   "{% endif %}{{ x }}{% endfor %}"),
            "013");
  EXPECT_EQ(render("{% for c in 'hé' %}[{{ c }}]{% endfor %}"), "[h][é]");
  EXPECT_EQ(render("{% for x in nothing %}x{% endfor %}ok"), "ok");  // Undefined iterates as empty
}

TEST(Jinja, Scoping) {
  // A set inside a loop does not leak out; a namespace attribute does.
  EXPECT_EQ(render("{% set x = 1 %}{% for i in range(3) %}{% set x = i %}{% endfor %}{{ x }}"), "1");
  EXPECT_EQ(render("{% set ns = namespace(x=1) %}{% for i in range(3) %}{% set ns.x = ns.x + i %}{% endfor %}"
                   "{{ ns.x }}"),
            "4");
  // if blocks share their scope.
  EXPECT_EQ(render("{% if true %}{% set y = 'in' %}{% endif %}{{ y }}"), "in");
  EXPECT_EQ(render("{% set a, b = 1, 2 %}{{ b }}{{ a }}"), "21");
  EXPECT_EQ(render("{% set s %}x{{ 1 + 1 }}{% endset %}[{{ s }}]"), "[x2]");
  EXPECT_EQ(render("{% set s | upper %}abc{% endset %}{{ s }}"), "ABC");
}

TEST(Jinja, Macros) {
  EXPECT_EQ(render("{% macro m(a, b='B') %}{{ a }}{{ b }}{% endmacro %}{{ m(1) }} {{ m(1, 2) }} {{ m(b=3, a=4) }}"),
            "1B 12 43");
  EXPECT_EQ(render("{% macro m() %}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1, 2, k=3) }}"), "(1, 2){'k': 3}");
  EXPECT_EQ(render("{% set g = 'G' %}{% macro m() %}{{ g }}{% endmacro %}{{ m() }}"), "G");
  EXPECT_EQ(render("{% macro box(t) %}<{{ t }}:{{ caller() }}>{% endmacro %}{% call box('a') %}body{% endcall %}"),
            "<a:body>");
  EXPECT_EQ(render("{% macro l() %}{% for x in [1, 2] %}{{ caller(x) }}{% endfor %}{% endmacro %}"
                   "{% call(v) l() %}[{{ v }}]{% endcall %}"),
            "[1][2]");
  EXPECT_NE(error_of("{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}").find("takes not more than 1 argument"),
            std::string::npos);
}

TEST(Jinja, FilterBlockGenerationDo) {
  EXPECT_EQ(render("{% filter upper %}ab{{ 'c' }}{% endfilter %}"), "ABC");
  EXPECT_EQ(render("{% generation %}gen{% endgeneration %}"), "gen");
  EXPECT_EQ(render("{% set l = [] %}{% do l.append(1) %}{% set _ = l.append(2) %}{{ l }}"), "[1, 2]");
}

TEST(Jinja, Expressions) {
  // ~ binds tighter than + (jinja2's parse_math1 → parse_concat), so 1 ~ 2 + 3 is an error only with
  // strings; here: '1' ~ '2' = '12'.
  EXPECT_EQ(render("{{ 1 ~ 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }} {{ 4 / 2 }}"),
            "12 3 -4 2 3.5 1024 2.0");
  EXPECT_EQ(render("{{ 'ab' * 3 }} {{ [1] + [2] }} {{ 'a' + 'b' }} {{ 1 + 2.5 }} {{ true + 1 }}"),
            "ababab [1, 2] ab 3.5 2");
  EXPECT_EQ(render("{{ 1 == 1.0 }} {{ 'a' == 1 }} {{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 'b' in 'abc' }} "
                   "{{ 2 not in [1] }}"),
            "True False True False True True");
  EXPECT_EQ(render("{{ 0 or 'x' }} {{ 'a' and 'b' }} {{ not [] }} {{ none or [] }}"), "x b True []");
  EXPECT_EQ(render("{{ 'y' if true else 'n' }}{{ 'y' if false }}|"), "y|");
  EXPECT_EQ(render("{{ -3|abs }} {{ (2 - 5)|abs }}"), "3 3");
  EXPECT_EQ(
      render("{{ [1, 2, 3, 4][1:3] }} {{ [1, 2, 3][::-1] }} {{ 'héllo'[1] }} {{ 'héllo'[-3:] }} {{ [1, 2][-1] }}"),
      "[2, 3] [3, 2, 1] é llo 2");
  EXPECT_EQ(render("{{ {'a': 1}['a'] }} {{ {'a': {'b': 2}}.a.b }} {{ [[1, 2]].0.1 }}"), "1 2 2");
  EXPECT_EQ(render("{{ '%s-%d' % ('a', 3) }} {{ '%.2f' % 3.14159 }}"), "a-3 3.14");
}

TEST(Jinja, Undefined) {
  EXPECT_EQ(render("{{ x is defined }} {{ x is undefined }} {{ x|length }} {{ x|default('d') }} {{ x ~ 'a' }}"),
            "False True 0 d a");
  EXPECT_EQ(render("{{ d.missing is defined }} {{ d['missing'] is defined }}", {{"d", Json::object()}}), "False False");
  // Attribute of an undefined value raises.
  EXPECT_EQ(error_of("{{ x.y }}"), "t:1: 'x' is undefined");
  EXPECT_EQ(error_of("\n{{ d.a.b }}", {{"d", Json::object()}}), "t:2: 'dict object' has no attribute 'a'");
  EXPECT_EQ(error_of("{{ x + 1 }}"), "t:1: 'x' is undefined");
}

TEST(Jinja, Filters) {
  const Json ctx = Json::parse(R"({"users": [{"name": "b", "age": 3}, {"name": "A", "age": 1}, {"name": "c"}]})");
  EXPECT_EQ(render("{{ users|map(attribute='name')|join(', ') }}", ctx), "b, A, c");
  EXPECT_EQ(render("{{ users|selectattr('age')|map(attribute='name')|list }}", ctx), "['b', 'A']");
  EXPECT_EQ(render("{{ users|selectattr('age', 'defined')|list|length }}", ctx), "2");
  EXPECT_EQ(render("{{ users|rejectattr('age', 'equalto', 3)|map(attribute='name')|join }}", ctx), "Ac");
  EXPECT_EQ(render("{{ ['b', 'A', 'c']|sort }} {{ ['b', 'A', 'c']|sort(case_sensitive=true) }}"),
            "['A', 'b', 'c'] ['A', 'b', 'c']");
  EXPECT_EQ(render("{{ ['b', 'a', 'C']|sort(reverse=true) }}"), "['C', 'b', 'a']");
  EXPECT_EQ(render("{{ [3, 1, 2]|sort|first }} {{ [3, 1, 2]|last }} {{ [3, 1, 2]|min }} {{ [3, 1, 2]|max }}"),
            "1 2 1 3");
  EXPECT_EQ(render("{{ '  hi  '|trim }}|{{ 'xxhixx'|trim('x') }}|{{ 'hello world'|title }}|{{ 'hELLO'|capitalize }}"),
            "hi|hi|Hello World|Hello");
  EXPECT_EQ(render("{{ 'aaa'|replace('a', 'b', 2) }} {{ 'abc'|upper }} {{ 'ABC'|lower }} {{ 'abc'|reverse }}"),
            "bba ABC abc cba");
  // indent: the first line is not indented unless first=true; blank lines are not indented.
  EXPECT_EQ(render("{{ 'a\nb\n\nc'|indent(2) }}"), "a\n  b\n\n  c");
  EXPECT_EQ(render("{{ 'a\nb'|indent(2, true) }}"), "  a\n  b");
  EXPECT_EQ(render("{{ '42'|int + 1 }} {{ 'x'|int }} {{ '3.7'|int }} {{ '2.5'|float }} {{ 3|float }} {{ 2.5|round }} "
                   "{{ 3.14159|round(2) }} {{ 2.1|round(0, 'ceil') }}"),
            "43 0 3 2.5 3.0 2.0 3.14 3.0");
  EXPECT_EQ(render("{{ [1, 2, 1, 3]|unique|list }} {{ [1, 2, 3]|sum }} {{ [1, 2, 3, 4, 5]|batch(2)|list }}"),
            "[1, 2, 3] 6 [[1, 2], [3, 4], [5]]");
  EXPECT_EQ(render("{{ {'b': 1, 'a': 2}|dictsort }} {{ {'b': 1}|items|list }}"), "[('a', 2), ('b', 1)] [('b', 1)]");
  EXPECT_EQ(render("{{ '<a href=\"x\">'|e }} {{ 'one two  three'|wordcount }} {{ '%s!'|format('hi') }}"),
            "&lt;a href=&#34;x&#34;&gt; 3 hi!");
  EXPECT_EQ(
      render("{{ [1, 2, 3]|select('odd')|list }} {{ [1, 2, 3]|reject('odd')|list }} {{ ['a']|map('upper')|list }}"),
      "[1, 3] [2] ['A']");
  EXPECT_EQ(render("{{ ''|default('d') }} {{ ''|default('d', true) }} {{ none|d('x') }}"), " d None");
  // truncate: 15 code points > 9 + leeway 5, so s[:9 - len('...')] = 'hello ' cut at its last space.
  EXPECT_EQ(render("{{ 'hello world foo'|truncate(9) }}"), "hello...");
  EXPECT_EQ(render("{{ 'hello world'|truncate(9) }}"), "hello world");  // 11 <= 9 + 5
}

TEST(Jinja, ToJson) {
  // HF's tojson: json.dumps(x, ensure_ascii=False) — ', ' and ': ' separators, non-ASCII kept.
  const Json ctx = Json::parse(R"({"t": {"name": "f", "desc": "é\"", "args": [1, 2.5, null, true]}})");
  EXPECT_EQ(render("{{ t|tojson }}", ctx), R"({"name": "f", "desc": "é\"", "args": [1, 2.5, null, true]})");
  EXPECT_EQ(render("{{ [1, {'a': 'b'}]|tojson(indent=2) }}"), "[\n  1,\n  {\n    \"a\": \"b\"\n  }\n]");
  EXPECT_EQ(render("{{ {'b': 1, 'a': 2}|tojson(sort_keys=true) }}"), R"({"a": 2, "b": 1})");
  EXPECT_EQ(render("{{ 'é'|tojson(ensure_ascii=true) }}"), R"("\u00e9")");
  EXPECT_NE(error_of("{{ x|tojson }}").find("not JSON serializable"), std::string::npos);
}

TEST(Jinja, Tests) {
  EXPECT_EQ(
      render("{{ none is none }} {{ 1 is number }} {{ true is number }} {{ true is integer }} {{ 1 is integer }} "
             "{{ 1.0 is float }} {{ 'a' is string }} {{ {} is mapping }} {{ [] is sequence }} {{ 'a' is iterable }}"),
      "True True True False True True True True True True");
  EXPECT_EQ(render("{{ 4 is even }} {{ 3 is odd }} {{ 9 is divisibleby 3 }} {{ 9 is divisibleby(4) }} {{ 1 is eq 1 }} "
                   "{{ 2 is gt 1 }} {{ 1 is in [1] }} {{ 'ab' is lower }} {{ 'AB' is upper }} {{ x is not defined }}"),
            "True True True False True True True True True True");
  EXPECT_EQ(
      render(
          "{{ true is true }} {{ 1 is true }} {{ false is false }} {{ range is callable }} {{ none is sameas none }}"),
      "True False True True True");
}

TEST(Jinja, StrMethods) {
  EXPECT_EQ(
      render(
          "{{ 'a,b,,c'.split(',') }} {{ ' a  b '.split() }} {{ 'a b c'.split(none, 1) }} {{ 'a.b.c'.rsplit('.', 1) }}"),
      "['a', 'b', '', 'c'] ['a', 'b'] ['a', 'b c'] ['a.b', 'c']");
  EXPECT_EQ(render("{{ 'abc'.startswith('ab') }} {{ 'abc'.endswith(('x', 'c')) }} {{ 'xxax'.strip('x') }} "
                   "{{ '  a '.lstrip() }}| {{ 'hello'.find('l') }} {{ 'hello'.rfind('l') }} {{ 'hello'.count('l') }}"),
            "True True a a | 2 3 2");
  EXPECT_EQ(render("{{ '{} {}'.format(1, 'b') }} {{ '{0}{0}'.format('x') }} {{ '{n}!'.format(n=3) }} "
                   "{{ '-'.join(['a', 'b']) }} {{ 'ab12'.isalnum() }} {{ '12'.isdigit() }} {{ ' '.isspace() }}"),
            "1 b xx 3! a-b True True True");
  EXPECT_EQ(
      render("{{ 'prefix_x'.removeprefix('prefix_') }} {{ 'x.txt'.removesuffix('.txt') }} {{ 'a\nb'.splitlines() }} "
             "{{ 'hello world'.title() }} {{ 'Abc'.upper() }} {{ 'é'.upper() }}"),
      "x x ['a', 'b'] Hello World ABC É");
  EXPECT_EQ(render("{{ '<think>r</think>answer'.split('</think>')[-1] }}"), "answer");
}

TEST(Jinja, ListAndDictMethods) {
  EXPECT_EQ(render("{% set l = [3, 1] %}{% do l.extend([2]) %}{{ l.pop() }}{{ l }}{{ l.index(1) }}{{ l.count(3) }}"),
            "2[3, 1]11");
  EXPECT_EQ(render("{% set d = {'a': 1} %}{{ d.get('a') }} {{ d.get('z') }} {{ d.get('z', 0) }} {{ d.keys() }} "
                   "{{ d.values() }} {{ d.items() }}{% do d.update({'b': 2}) %} {{ d }}"),
            "1 None 0 ['a'] [1] [('a', 1)] {'a': 1, 'b': 2}");
}

TEST(Jinja, Globals) {
  EXPECT_EQ(render("{{ range(3) }} {{ range(1, 7, 2) }} {{ range(3, 0, -1) }}"), "[0, 1, 2] [1, 3, 5] [3, 2, 1]");
  EXPECT_EQ(render("{{ dict(a=1, b=2) }}"), "{'a': 1, 'b': 2}");
  EXPECT_EQ(render("{% set j = joiner('|') %}{% for x in 'abc' %}{{ j() }}{{ x }}{% endfor %}"), "a|b|c");
  EXPECT_EQ(error_of("a\n{{ raise_exception('bad role') }}"), "t:2: raise_exception: bad role");
  EXPECT_FALSE(render("{{ strftime_now('%Y') }}").empty());
}

TEST(Jinja, SyntaxErrors) {
  EXPECT_EQ(error_of("{% if x %}"),
            "t:1:11: unexpected end of template: the 'if' block opened at line 1 is not "
            "closed (expected '{% endif %}')");
  EXPECT_EQ(error_of("{{ x"), "t:1:1: unclosed '{{' (missing '}}')");
  EXPECT_EQ(error_of("{{ x ]}}"), "t:1:6: unexpected ']'");
  EXPECT_NE(error_of("a\n{% for %}").find("t:2:"), std::string::npos);
  EXPECT_NE(error_of("{% include 'x' %}").find("not supported"), std::string::npos);
  EXPECT_EQ(error_of("\n\n{{ x|nofilter }}"), "t:3: no filter named 'nofilter'");
  EXPECT_EQ(error_of("{{ x is notatest }}"), "t:1: no test named 'notatest'");
  EXPECT_NE(error_of("{% break %}").find("outside of a loop"), std::string::npos);
  EXPECT_NE(error_of("{% endfor %}").find("endfor"), std::string::npos);
  EXPECT_NE(error_of("{{ 'abc }}").find("unterminated string"), std::string::npos);
}

TEST(Jinja, HostileInputsErrorCleanly) {
  // Deep nesting is a syntax error, not a stack overflow.
  EXPECT_NE(error_of("{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}").find("nesting deeper"),
            std::string::npos);
  std::string ifs;
  for (int k = 0; k < 2000; ++k) ifs += "{% if true %}";
  EXPECT_NE(error_of(ifs).find("nesting deeper"), std::string::npos);
  // Infinite recursion through a macro.
  EXPECT_NE(error_of("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}").find("nested deeper"), std::string::npos);
  // The sandbox's range limit, and a loop-iteration budget for nested loops.
  EXPECT_NE(error_of("{{ range(1000000000) }}").find("Range too big"), std::string::npos);
  EXPECT_NE(error_of("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}")
                .find("loop iterations"),
            std::string::npos);
  // Huge strings.
  EXPECT_NE(error_of("{{ 'x' * 1000000000000 }}").find("cap"), std::string::npos);
  EXPECT_NE(error_of("{{ 9223372036854775807 + 1 }}").find("overflow"), std::string::npos);
  EXPECT_NE(error_of("{{ 1 // 0 }}").find("by zero"), std::string::npos);
}

}  // namespace
}  // namespace dsv3::io::jinja
