// server/chat_family.h: the output format each family's chat template implies, told from the markers the
// template writes (the published templates' tool-call renderings: DeepSeek-V3's ```json block after
// <｜tool▁sep｜>, V3.1's bare JSON, Kimi-K2's sections, V3.2's DSML), and the call openers forced by
// tool_choice (each must be what the family's parser reads as a call's start).
#include "server/chat_family.h"

#include <gtest/gtest.h>

#include "io/chat_template.h"

namespace dsv3::server {
namespace {

TEST(ChatFamily, DetectedFromTheTemplate) {
  auto fam = [](const std::string& t) { return detect_chat_family(io::ChatPrompt::from_jinja(t)); };
  ChatFamily f = fam(io::kDeepSeekV3ChatTemplateJinja);
  EXPECT_EQ(f.tools, ToolCallFormat::kDeepSeekV3);
  EXPECT_FALSE(f.reasoning);
  f = fam(io::kDeepSeekR1ChatTemplateJinja);
  EXPECT_EQ(f.tools, ToolCallFormat::kDeepSeekV3);
  EXPECT_TRUE(f.reasoning);
  f = fam("{{ '<｜tool▁call▁begin｜>' + name + '<｜tool▁sep｜>' + args }}{{ '</think>' }}");
  EXPECT_EQ(f.tools, ToolCallFormat::kDeepSeekV31);
  EXPECT_TRUE(f.reasoning);
  EXPECT_EQ(fam("{{ '<|tool_calls_section_begin|>' }}").tools, ToolCallFormat::kKimiK2);
  EXPECT_EQ(fam("{{ '<｜DSML｜function_calls>' }}").tools, ToolCallFormat::kDeepSeekV32);
  EXPECT_EQ(fam("{{ messages }}").tools, ToolCallFormat::kNone);
  EXPECT_EQ(detect_chat_family(io::ChatPrompt::builtin()).tools, ToolCallFormat::kDeepSeekV3);
  f = detect_chat_family(io::ChatPrompt::dsv32());
  EXPECT_EQ(f.tools, ToolCallFormat::kDeepSeekV32);
  EXPECT_TRUE(f.reasoning);
}

// A forced opener followed by arguments and the closing markers parses as one call of that name.
TEST(ChatFamily, ForcedOpenersParseAsCalls) {
  struct Case {
    ToolCallFormat f;
    std::string rest;  // what a model would write after the opener
  };
  const Case cases[] = {
      {ToolCallFormat::kDeepSeekV3, "{\"a\": 1}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>"},
      {ToolCallFormat::kDeepSeekV31, "{\"a\": 1}<｜tool▁call▁end｜><｜tool▁calls▁end｜>"},
      {ToolCallFormat::kKimiK2, "{\"a\": 1}<|tool_call_end|><|tool_calls_section_end|>"},
      {ToolCallFormat::kDeepSeekV32,
       "<｜DSML｜parameter name=\"a\" "
       "string=\"false\">1</｜DSML｜parameter>\n</｜DSML｜invoke>\n</｜DSML｜function_calls>"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(tool_call_format_name(c.f));
    OutputParser p({.tools = c.f});
    p.feed(forced_call_prefix(c.f, "get_weather") + c.rest);
    p.finish();
    ASSERT_EQ(p.tool_calls().size(), 1u) << p.content();
    EXPECT_EQ(p.tool_calls()[0].name, "get_weather");
    EXPECT_EQ(nlohmann::json::parse(p.tool_calls()[0].arguments), (nlohmann::json{{"a", 1}}));
    EXPECT_EQ(p.content(), "");
  }
  EXPECT_EQ(forced_call_prefix(ToolCallFormat::kNone, "x"), "");
}

}  // namespace
}  // namespace dsv3::server
