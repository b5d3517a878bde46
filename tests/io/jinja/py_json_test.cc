// py_json_dumps against Python's json.dumps: every expected string below is what CPython 3 prints for the
// same value and arguments, worked out from the json module's documented rules and checked with the
// interpreter. PyJsonOptions defaults to ensure_ascii=False (what tojson and the V3.2 encoder pass), so a
// call written below as json.dumps(v) means json.dumps(v, ensure_ascii=False) unless it says otherwise.
#include "io/jinja/py_json.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "core/error.h"

namespace dsv3::io::jinja {
namespace {

using Json = nlohmann::ordered_json;

std::string dumps(const Json& v, PyJsonOptions o = {}) { return py_json_dumps(v, o); }

TEST(PyJson, DefaultSeparatorsHaveSpaces) {
  // json.dumps({"a": 1, "b": [1, 2]}) — separators (', ', ': '); insertion order kept.
  EXPECT_EQ(dumps(Json::parse(R"({"b": [1, 2], "a": {"x": null, "y": true, "z": false}})")),
            R"({"b": [1, 2], "a": {"x": null, "y": true, "z": false}})");
}

TEST(PyJson, SortKeys) {
  // json.dumps({"b": 1, "a": 2, "B": 3, "é": 4}, sort_keys=True): code-point order, 'B' < 'a' < 'b' < 'é'.
  EXPECT_EQ(dumps(Json::parse(R"({"b": 1, "a": 2, "B": 3, "é": 4})"), {.sort_keys = true}),
            R"({"B": 3, "a": 2, "b": 1, "é": 4})");
}

TEST(PyJson, IndentUsesCommaWithoutSpaceAndKeepsEmptyContainers) {
  // json.dumps({"a": [1, {}], "b": [], "c": {"d": "e"}}, indent=2)
  EXPECT_EQ(dumps(Json::parse(R"({"a": [1, {}], "b": [], "c": {"d": "e"}})"), {.indent = 2}),
            "{\n"
            "  \"a\": [\n"
            "    1,\n"
            "    {}\n"
            "  ],\n"
            "  \"b\": [],\n"
            "  \"c\": {\n"
            "    \"d\": \"e\"\n"
            "  }\n"
            "}");
  // indent=0 still puts every item on its own line.
  EXPECT_EQ(dumps(Json::parse("[1, [2]]"), {.indent = 0}), "[\n1,\n[\n2\n]\n]");
  EXPECT_EQ(dumps(Json::array(), {.indent = 4}), "[]");
  EXPECT_EQ(dumps(Json::object(), {.indent = 4}), "{}");
}

TEST(PyJson, CustomSeparators) {
  // json.dumps({"a": [1, 2]}, separators=(",", ":"))
  EXPECT_EQ(dumps(Json::parse(R"({"a": [1, 2]})"), {.item_separator = ",", .key_separator = ":"}), R"({"a":[1,2]})");
  // json.dumps([1, 2], indent=1, separators=(", ", ": ")) — the item separator keeps its trailing space.
  EXPECT_EQ(dumps(Json::parse("[1, 2]"), {.indent = 1, .item_separator = ", "}), "[\n 1, \n 2\n]");
}

TEST(PyJson, StringEscapes) {
  // json.dumps('q"b\\s/n\nr\rt\tb\bf\f\x00\x1f\x7f'): the short escapes, \u00XX below 0x20, '/' and DEL as is.
  EXPECT_EQ(dumps(std::string("q\"b\\s/n\nr\rt\tb\bf\f") + std::string("\0\x1f\x7f", 3)),
            R"("q\"b\\s/n\nr\rt\tb\bf\f\u0000\u001f)"
            "\x7f\"");
}

TEST(PyJson, NonAsciiKeptByDefaultEscapedWithEnsureAscii) {
  const std::string s = "é中😀\u2028";
  // json.dumps("é中😀\u2028") keeps the characters (ensure_ascii=False, as tojson and the V3.2 encoder use).
  EXPECT_EQ(dumps(s), "\"" + s + "\"");
  // json.dumps("é中😀\u2028\x7f", ensure_ascii=True): lower-case hex, a surrogate pair past the BMP, DEL too.
  EXPECT_EQ(dumps(s + "\x7f", {.ensure_ascii = true}), R"("\u00e9\u4e2d\ud83d\ude00\u2028\u007f")");
  // Keys are escaped the same way.
  EXPECT_EQ(dumps(Json{{"é", 1}}, {.ensure_ascii = true}), R"({"\u00e9": 1})");
}

TEST(PyJson, FloatsAsPythonRepr) {
  // json.dumps([1.0, 0.1, 1e-05, 0.0001, 1e+16, 1e15, 123456789.0, -0.0, 0.0, 2.5, 1e+22, 5e-324,
  //             1.7976931348623157e+308, 0.30000000000000004, -1.5e-07, 9007199254740993.0])
  Json v = Json::array({1.0, 0.1, 1e-05, 0.0001, 1e16, 1e15, 123456789.0, -0.0, 0.0, 2.5, 1e22, 5e-324,
                        1.7976931348623157e308, 0.1 + 0.2, -1.5e-07, 9007199254740993.0});
  EXPECT_EQ(dumps(v),
            "[1.0, 0.1, 1e-05, 0.0001, 1e+16, 1000000000000000.0, 123456789.0, -0.0, 0.0, 2.5, 1e+22, 5e-324, "
            "1.7976931348623157e+308, 0.30000000000000004, -1.5e-07, 9007199254740992.0]");
  // float('inf'), float('-inf'), float('nan') under the default allow_nan=True.
  EXPECT_EQ(dumps(Json::array(
                {std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity(), std::nan("")})),
            "[Infinity, -Infinity, NaN]");
  // 1.5e+300 and 1.2345e-100: three-digit exponents.
  EXPECT_EQ(dumps(Json::array({1.5e300, 1.2345e-100})), "[1.5e+300, 1.2345e-100]");
}

TEST(PyJson, Integers) {
  EXPECT_EQ(dumps(Json::array({0, -1, std::numeric_limits<int64_t>::min(), std::numeric_limits<uint64_t>::max()})),
            "[0, -1, -9223372036854775808, 18446744073709551615]");
}

TEST(PyJson, ScalarsAtTopLevel) {
  EXPECT_EQ(dumps(nullptr), "null");
  EXPECT_EQ(dumps(true), "true");
  EXPECT_EQ(dumps("x"), R"("x")");
  EXPECT_EQ(dumps(""), R"("")");
}

TEST(PyJson, InvalidUtf8IsAnErrorNamingTheOffset) {
  try {
    dumps(std::string("ab\xff"));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("offset 2"), std::string::npos) << e.what();
  }
  EXPECT_THROW(dumps(std::string("\xe4\xb8")), Error);         // truncated 中
  EXPECT_THROW(dumps(std::string("\xc0\xaf")), Error);         // overlong '/'
  EXPECT_THROW(dumps(std::string("\xed\xa0\x80")), Error);     // a UTF-16 surrogate
  EXPECT_THROW(dumps(Json{{std::string("\x80"), 1}}), Error);  // in a key too
  EXPECT_THROW(dumps(Json::binary({1, 2})), Error);
}

}  // namespace
}  // namespace dsv3::io::jinja
