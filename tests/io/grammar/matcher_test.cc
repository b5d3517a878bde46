// The byte-level matcher and the composition API on hand-written grammars and inputs.
#include "io/grammar/matcher.h"

#include <gtest/gtest.h>

#include "core/error.h"

namespace dsv3::grammar {
namespace {

std::shared_ptr<const Grammar> share(Grammar g) { return std::make_shared<const Grammar>(std::move(g)); }

TEST(Matcher, LiteralAcceptsExactlyItsBytes) {
  const Grammar g = Grammar::literal("abc");
  EXPECT_TRUE(matches(g, "abc"));
  EXPECT_FALSE(matches(g, "ab"));
  EXPECT_FALSE(matches(g, "abcd"));
  EXPECT_FALSE(matches(g, "abd"));
  Matcher m(share(g));
  EXPECT_FALSE(m.can_finish());
  EXPECT_TRUE(m.accept("ab"));
  EXPECT_FALSE(m.accept('x'));  // rejected: state unchanged
  EXPECT_TRUE(m.accept('c'));
  EXPECT_TRUE(m.can_finish());
  EXPECT_TRUE(m.finished_only());
  EXPECT_TRUE(matches(Grammar::literal(""), ""));
}

TEST(Matcher, SaveAndRollback) {
  Matcher m(share(Grammar::choice({Grammar::literal("ab"), Grammar::literal("ac")})));
  ASSERT_TRUE(m.accept('a'));
  const auto cp = m.save();
  EXPECT_TRUE(m.accept('b'));
  EXPECT_TRUE(m.finished_only());
  m.rollback(cp);
  EXPECT_FALSE(m.can_finish());
  EXPECT_TRUE(m.accept('c'));
  EXPECT_TRUE(m.can_finish());
  m.reset();
  EXPECT_FALSE(m.accept('c'));
}

TEST(Matcher, AllOrNothingString) {
  Matcher m(share(Grammar::literal("hello")));
  EXPECT_FALSE(m.accept("help"));
  EXPECT_TRUE(m.accept("hel"));  // the failed call left nothing consumed
  EXPECT_TRUE(m.accept("lo"));
}

TEST(Matcher, ChoiceWithCommonPrefixesIsNondeterministic) {
  // "a" "b"* "c" | "a" "b" "d": both branches stay alive through "ab".
  ByteSet b;
  b.set('b');
  const Grammar g = Grammar::choice(
      {Grammar::sequence({Grammar::literal("a"), Grammar::repeat(Grammar::bytes(b), 0, -1, Grammar::literal("")),
                          Grammar::literal("c")}),
       Grammar::literal("abd")});
  EXPECT_TRUE(matches(g, "ac"));
  EXPECT_TRUE(matches(g, "abbbbc"));
  EXPECT_TRUE(matches(g, "abd"));
  EXPECT_FALSE(matches(g, "abbd"));
  EXPECT_FALSE(matches(g, "ab"));
}

TEST(Matcher, RepeatBoundsAndSeparator) {
  const Grammar g =
      Grammar::sequence({Grammar::literal("["), Grammar::repeat(Grammar::literal("x"), 2, 4, Grammar::literal(",")),
                         Grammar::literal("]")});
  EXPECT_FALSE(matches(g, "[]"));
  EXPECT_FALSE(matches(g, "[x]"));
  EXPECT_TRUE(matches(g, "[x,x]"));
  EXPECT_TRUE(matches(g, "[x,x,x]"));
  EXPECT_TRUE(matches(g, "[x,x,x,x]"));
  EXPECT_FALSE(matches(g, "[x,x,x,x,x]"));
  EXPECT_FALSE(matches(g, "[x,,x]"));
  EXPECT_FALSE(matches(g, "[xx]"));
  const Grammar z = Grammar::repeat(Grammar::literal("ab"), 0, 0, Grammar::literal(""));
  EXPECT_TRUE(matches(z, ""));
  EXPECT_FALSE(matches(z, "ab"));
  const Grammar u = Grammar::repeat(Grammar::literal("ab"), 1, -1, Grammar::literal("-"));
  EXPECT_TRUE(matches(u, "ab-ab-ab-ab-ab-ab-ab"));
  EXPECT_FALSE(matches(u, "ab-"));
}

TEST(Matcher, UnboundedLoopsDoNotGrowTheStateSpace) {
  // Right recursion in tail position runs in constant depth: after warm-up, more bytes make no new states.
  const Grammar g = Grammar::repeat(Grammar::literal("ab"), 0, -1, Grammar::literal(""));
  auto space = std::make_shared<StateSpace>(share(g));
  Matcher m(space);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(m.accept("ab"));
  const int64_t n = space->state_count();
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(m.accept("ab"));
  EXPECT_EQ(space->state_count(), n);
  EXPECT_TRUE(m.can_finish());
  EXPECT_FALSE(m.finished_only());
}

TEST(Matcher, AllowedBytes) {
  Matcher m(share(Grammar::choice({Grammar::literal("x"), Grammar::literal("y1"), Grammar::literal("y2")})));
  ByteSet want;
  want.set('x');
  want.set('y');
  EXPECT_EQ(m.allowed_bytes(), want);
  ASSERT_TRUE(m.accept('y'));
  want.reset();
  want.set('1');
  want.set('2');
  EXPECT_EQ(m.allowed_bytes(), want);
}

TEST(Matcher, LeftRecursionIsRefused) {
  // An unbounded repetition of something that can be empty would let expansion loop.
  try {
    (void)Grammar::repeat(Grammar::literal(""), 0, -1, Grammar::literal(""));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("left recursion"), std::string::npos) << e.what();
  }
  EXPECT_THROW((void)Grammar::choice({}), Error);
  EXPECT_THROW((void)Grammar::repeat(Grammar::literal("a"), 3, 2, Grammar::literal("")), Error);
}

TEST(Matcher, ComposedGrammarsKeepParts) {
  const Grammar obj = Grammar::json_object();
  const Grammar call = Grammar::sequence({Grammar::literal("<call>"), obj, Grammar::literal("</call>")});
  EXPECT_TRUE(matches(call, "<call>{\"a\":[1,2.5e3,\"x\"]}</call>"));
  EXPECT_FALSE(matches(call, "<call>[1]</call>"));
  EXPECT_TRUE(matches(obj, "{}"));  // parts unchanged
  const Grammar two = Grammar::repeat(call, 1, 2, Grammar::literal("\n"));
  EXPECT_TRUE(matches(two, "<call>{}</call>\n<call>{\"b\":null}</call>"));
  EXPECT_FALSE(matches(two, "<call>{}</call>\n<call>{}</call>\n<call>{}</call>"));
}

TEST(Matcher, JsonValueIsCompactJson) {
  const Grammar v = Grammar::json_value();
  for (const char* ok :
       {"0", "-0", "1", "-12.5", "1e5", "1E+05", "2.5e-3", "\"\"", "\"a\\\"b\\\\c\\/\\n\\u00e9\"", "true", "false",
        "null", "[]", "[[],{}]", "{\"a\":{\"b\":[1,{}]}}", "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\""})
    EXPECT_TRUE(matches(v, ok)) << ok;
  for (const char* bad : {"",
                          "01",
                          "1.",
                          ".5",
                          "+1",
                          "1e",
                          "--1",
                          "\"\n\"",
                          "\"\\x\"",
                          "\"\\ud800\"",
                          "tru",
                          "[1,]",
                          "{\"a\"}",
                          "{\"a\":1,}",
                          "{a:1}",
                          "[1 ,2]",
                          " 1",
                          "\"\xc3\"",
                          "\"\xc0\x80\"",
                          "\"\xed\xa0\x80\"",
                          "\"\xf4\x90\x80\x80\"",
                          "'a'",
                          "NaN"})
    EXPECT_FALSE(matches(v, bad)) << bad;
}

TEST(Matcher, PartialUtf8IsAState) {
  Matcher m(share(Grammar::json_value()));
  ASSERT_TRUE(m.accept('"'));
  ASSERT_TRUE(m.accept(uint8_t(0xe2)));
  EXPECT_FALSE(m.accept('"'));  // inside a character
  EXPECT_FALSE(m.accept(uint8_t(0xe2)));
  ASSERT_TRUE(m.accept(uint8_t(0x82)));
  ASSERT_TRUE(m.accept(uint8_t(0xac)));
  EXPECT_TRUE(m.accept('"'));
  EXPECT_TRUE(m.finished_only());
}

}  // namespace
}  // namespace dsv3::grammar
