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

}  // namespace
}  // namespace dsv3::server
