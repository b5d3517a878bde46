// The JSON Schema compiler: hand-written compact documents, valid and invalid, per keyword (what JSON Schema
// says, not what the compiler produced before), and the refusals naming keyword and path.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/grammar/matcher.h"

namespace dsv3::grammar {
namespace {

using json = nlohmann::ordered_json;

struct Case {
  const char* schema;
  std::vector<std::string> valid, invalid;
};

void check(const Case& c) {
  const Grammar g = Grammar::json_schema(json::parse(c.schema));
  for (const auto& d : c.valid) EXPECT_TRUE(matches(g, d)) << c.schema << "\n  should accept: " << d;
  for (const auto& d : c.invalid) EXPECT_FALSE(matches(g, d)) << c.schema << "\n  should reject: " << d;
}

TEST(JsonSchema, Types) {
  check({R"({"type":"null"})", {"null"}, {"0", "\"null\"", "nul"}});
  check({R"({"type":"boolean"})", {"true", "false"}, {"0", "null", "True"}});
  check({R"({"type":"string"})", {"\"\"", "\"a b\"", "\"\\u20ac\\n\"", "\"\xe2\x82\xac\""}, {"1", "\"a", "\"\t\""}});
  check({R"({"type":"integer"})", {"0", "-1", "42", "9999999999999999"}, {"1.5", "01", "-0", "1e3", "\"1\""}});
  check({R"({"type":"number"})", {"0", "-1.25", "3e10", "1E-2"}, {"01", ".5", "1.", "\"1\"", "Infinity"}});
  check({R"({"type":["string","null"]})", {"null", "\"x\""}, {"1", "[]"}});
  check({R"({})", {"1", "{\"a\":[null]}", "\"s\""}, {"", "{", " 1"}});
  check({R"(true)", {"[]"}, {"[,]"}});
}

TEST(JsonSchema, Objects) {
  const char* s = R"({"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"string"},
      "c":{"type":"boolean"}},"required":["b"],"additionalProperties":false})";
  check({s,
         {R"({"b":"x"})", R"({"a":1,"b":"x"})", R"({"b":"x","c":true})", R"({"a":1,"b":"x","c":false})"},
         {"{}", R"({"a":1})", R"({"b":"x","a":1})", R"({"b":"x",})", R"({"b":"x","d":1})", R"({"b":1})",
          R"({ "b":"x"})"}});
  // No required: all optional, still in order; {} allowed.
  check({R"({"properties":{"x":{"type":"null"},"y":{"type":"null"}}})",
         {"{}", R"({"x":null})", R"({"y":null})", R"({"x":null,"y":null})"},
         {R"({"y":null,"x":null})", R"({,"y":null})", R"({"z":null})"}});
  // additionalProperties schema: extra keys other than the declared ones, after them.
  check({R"({"type":"object","properties":{"id":{"type":"integer"}},"required":["id"],
            "additionalProperties":{"type":"string"}})",
         {R"({"id":1})", R"({"id":1,"name":"x"})", R"({"id":1,"i":"x","idx":"y"})"},
         {R"({"id":1,"name":2})", R"({"id":1,"id":"x"})", R"({"name":"x"})"}});
  check({R"({"type":"object"})", {"{}", R"({"k":[1,{}]})"}, {"[]", R"({"k"})"}});
  check({R"({"type":"object","properties":{"a b/\"c":{"const":1}},"required":["a b/\"c"]})",
         {R"({"a b/\"c":1})"},
         {R"({"a b/\"c":2})"}});
}

TEST(JsonSchema, Arrays) {
  check({R"({"type":"array","items":{"type":"integer"},"minItems":1,"maxItems":3})",
         {"[1]", "[1,2]", "[1,2,3]"},
         {"[]", "[1,2,3,4]", "[1,]", "[\"a\"]", "[1 ,2]"}});
  check({R"({"type":"array","prefixItems":[{"type":"string"},{"type":"integer"}],"items":false})",
         {"[]", "[\"a\"]", "[\"a\",1]"},
         {"[1]", "[\"a\",1,2]", "[\"a\",\"b\"]"}});
  check({R"({"type":"array","prefixItems":[{"type":"string"}],"items":{"type":"null"},"minItems":2})",
         {"[\"a\",null]", "[\"a\",null,null]"},
         {"[\"a\"]", "[null,null]", "[\"a\",1]"}});
  check({R"({"type":"array","items":{"type":"boolean"},"maxItems":0})", {"[]"}, {"[true]"}});
  check({R"({"type":"array","prefixItems":[{"const":1},{"const":2},{"const":3}],"maxItems":2})",
         {"[]", "[1]", "[1,2]"},
         {"[1,2,3]"}});
}

TEST(JsonSchema, StringLengthsCountCodePoints) {
  check({R"({"type":"string","minLength":2,"maxLength":3})",
         {"\"ab\"", "\"abc\"", "\"\xe2\x82\xac\xe2\x82\xac\"", "\"\\n\\u00e9\"", "\"\xf0\x9f\x98\x80x\""},
         {"\"a\"", "\"abcd\"", "\"\xe2\x82\xac\""}});
}

TEST(JsonSchema, IntegerBounds) {
  check({R"({"type":"integer","minimum":-15,"maximum":120})",
         {"-15", "-9", "-1", "0", "7", "99", "100", "120"},
         {"-16", "-100", "121", "200", "1000", "-0"}});
  check({R"({"type":"integer","exclusiveMinimum":0,"exclusiveMaximum":10})", {"1", "5", "9"}, {"0", "10", "-1"}});
  check({R"({"type":"integer","minimum":1000})", {"1000", "1001", "99999", "123456789"}, {"999", "0", "-1000"}});
  check({R"({"type":"integer","maximum":-5})", {"-5", "-6", "-123456"}, {"-4", "0", "5"}});
  check({R"({"type":"integer","minimum":1.5,"maximum":3.5})", {"2", "3"}, {"1", "4"}});
  check({R"({"type":"number","minimum":0})", {"0", "1.5", "2e3"}, {"-1", "-0.5"}});
}

TEST(JsonSchema, EnumConst) {
  check({R"({"enum":["a","b c",1,null,{"x":[1]}]})",
         {"\"a\"", "\"b c\"", "1", "null", R"({"x":[1]})"},
         {"\"c\"", "2", "\"1\"", R"({"x":[2]})"}});
  check({R"({"const":"\u00e9\"x"})", {"\"\xc3\xa9\\\"x\""}, {"\"e\""}});
  check({R"({"type":"string","enum":["a",1]})", {"\"a\""}, {"1"}});
}

TEST(JsonSchema, Combinators) {
  check({R"({"anyOf":[{"type":"integer"},{"type":"string","maxLength":1}]})", {"1", "\"a\""}, {"\"ab\"", "null"}});
  check({R"({"oneOf":[{"type":"null"},{"type":"boolean"}]})", {"null", "true"}, {"0"}});
  check({R"({"allOf":[{"type":"object","properties":{"a":{"type":"integer"}},"required":["a"]},
                      {"properties":{"b":{"type":"string"}}}]})",
         {R"({"a":1})", R"({"a":1,"b":"x"})"},
         {R"({"b":"x"})", "{}"}});
}

TEST(JsonSchema, RefsAndRecursion) {
  check({R"({"$defs":{"node":{"type":"object","properties":{"v":{"type":"integer"},
            "kids":{"type":"array","items":{"$ref":"#/$defs/node"}}},"required":["v"],"additionalProperties":false}},
            "$ref":"#/$defs/node"})",
         {R"({"v":1})", R"({"v":1,"kids":[]})", R"({"v":1,"kids":[{"v":2,"kids":[{"v":3}]},{"v":4}]})"},
         {R"({"v":1,"kids":[{}]})", R"({"kids":[]})"}});
  check({R"({"definitions":{"s":{"type":"string"}},"type":"array","items":{"$ref":"#/definitions/s"}})",
         {"[]", "[\"a\",\"b\"]"},
         {"[1]"}});
  check({R"({"type":"array","items":{"$ref":"#"},"maxItems":2})", {"[]", "[[],[[]]]"}, {"[1]", "[[],[],[]]"}});
}

TEST(JsonSchema, Formats) {
  check({R"({"type":"string","format":"date"})",
         {"\"2024-01-31\"", "\"1999-12-01\"", "\"2023-02-28\"", "\"2023-04-30\""},
         {"\"2024-13-01\"", "\"2024-04-31\"", "\"2024-02-30\"", "\"2024-1-01\"", "\"2024-00-10\""}});
  check({R"({"type":"string","format":"time"})",
         {"\"23:59:59Z\"", "\"00:00:00.123+05:30\""},
         {"\"24:00:00Z\"", "\"12:60:00Z\"", "\"12:00\""}});
  check({R"({"type":"string","format":"date-time"})", {"\"2024-05-06T07:08:09Z\""}, {"\"2024-05-06 07:08:09Z\""}});
  check({R"({"type":"string","format":"uuid"})",
         {"\"123e4567-e89b-12d3-a456-426614174000\"", "\"ABCDEF01-2345-6789-abcd-ef0123456789\""},
         {"\"123e4567e89b12d3a456426614174000\"", "\"123e4567-e89b-12d3-a456-42661417400g\""}});
  check({R"({"type":"string","format":"email"})",
         {"\"john.doe@example.com\"", "\"a+b@x.org\""},
         {"\"@x.com\"", "\"a@b\"", "\"a..b@x.com\"", "\"a b@x.com\""}});
  check({R"({"type":"string","format":"ipv4"})",
         {"\"192.168.0.1\"", "\"255.255.255.255\""},
         {"\"256.1.1.1\"", "\"01.1.1.1\"", "\"1.1.1\""}});
}

TEST(JsonSchema, Patterns) {
  check({R"({"type":"string","pattern":"^[a-z]+-[0-9]{2,3}$"})",
         {"\"ab-12\"", "\"x-123\""},
         {"\"ab-1\"", "\"ab-1234\"", "\"AB-12\"", "\"ab_12\""}});
  check({R"({"type":"string","pattern":"^(foo|ba(r|z))?\\.x$"})",
         {"\".x\"", "\"foo.x\"", "\"baz.x\""},
         {"\"ba.x\"", "\"foo.y\""}});
  check({R"({"type":"string","pattern":"abc"})", {"\"abc\"", "\"xxabcyy\""}, {"\"ab\"", "\"acb\""}});
  check({R"({"type":"string","pattern":"^\\d+(\\.\\d*)?$"})", {"\"1\"", "\"12.\"", "\"1.5\""}, {"\".5\"", "\"a\""}});
  check({R"({"type":"string","pattern":"^[^a-c\"]\\w\\s.$"})",
         {"\"d_ x\"", "\"\\\\a\\n\xc3\xa9\""},
         {"\"a_ x\"", "\"\\\"a x\"", "\"d-\\nx\"", "\"d_ \\n\""}});
}

void expect_error(const char* schema, const std::string& want) {
  try {
    (void)Grammar::json_schema(json::parse(schema));
    ADD_FAILURE() << "no error for " << schema;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << "got: " << e.what() << "\nwant: " << want;
  }
}

TEST(JsonSchema, RefusalsNameKeywordAndPath) {
  expect_error(R"({"type":"object","properties":{"a":{"type":"object","patternProperties":{"x":{}}}}})",
               "json_schema: unsupported keyword 'patternProperties' at /properties/a");
  expect_error(R"({"type":"number","multipleOf":2})", "unsupported keyword 'multipleOf' at /");
  expect_error(R"({"type":"array","items":{"not":{}}})", "unsupported keyword 'not' at /items");
  expect_error(R"({"type":"array","uniqueItems":true})", "unsupported keyword 'uniqueItems' at /");
  expect_error(R"({"type":"object","minProperties":1})", "unsupported keyword 'minProperties' at /");
  expect_error(R"({"$defs":{"a":{"if":{}}},"$ref":"#/$defs/a"})", "unsupported keyword 'if' at /$defs/a");
  expect_error(R"({"type":"string","format":"hostname"})", "unsupported format 'hostname' at /");
  expect_error(R"X({"type":"string","pattern":"^(?=a)"})X", "pattern at /");
  expect_error(R"X({"type":"string","pattern":"(a)\\1"})X", "the escape '\\1'");
  expect_error(R"({"type":"number","maximum":3})", "'maximum' on a number at /");
  expect_error(R"({"$ref":"other.json#/x"})", "only references inside the schema");
  expect_error(R"({"$ref":"#/$defs/missing"})", "names nothing");
  expect_error(R"({"type":"object","properties":{},"required":["x"]})", "required property 'x'");
  expect_error(R"({"allOf":[{"type":"string"},{"maxLength":3}]})", "'allOf' at / cannot be merged");
  expect_error(R"({"type":"strin"})", "unknown type 'strin'");
  expect_error(R"({"type":"integer","minimum":5,"maximum":4})", "no integer");
  expect_error(R"({"properties":{"a":false}})", "the schema false at /properties/a");
  expect_error(R"({"type":"string","format":"date","maxLength":3})", "'format' together with");
}

TEST(JsonSchema, PropertyOrder) {
  const char* s = R"({"properties":{"z":{"const":1},"a":{"const":2}},"required":["z","a"]})";
  EXPECT_TRUE(matches(Grammar::json_schema(json::parse(s)), R"({"z":1,"a":2})"));
  EXPECT_FALSE(matches(Grammar::json_schema(json::parse(s)), R"({"a":2,"z":1})"));
  // nlohmann::json sorts keys before the compiler sees them.
  EXPECT_TRUE(matches(Grammar::json_schema(nlohmann::json::parse(s)), R"({"a":2,"z":1})"));
}

TEST(JsonSchema, AnnotationsAreIgnored) {
  check({R"({"$schema":"https://json-schema.org/draft/2020-12/schema","$id":"x","title":"T","description":"D",
            "default":1,"examples":[1],"$comment":"c","deprecated":true,"readOnly":true,"writeOnly":false,
            "type":"integer","maximum":3})",
         {"3"},
         {"4"}});
}

}  // namespace
}  // namespace dsv3::grammar
