// The published DeepSeek-V3 and DeepSeek-R1 chat templates (src/io/chat_template.h holds them) rendered by
// the Jinja interpreter, against io::ChatTemplate, the hand-written renderer of the same formats that was
// verified against transformers.js: both must give the same prompt for the same messages.
#include <gtest/gtest.h>

#include "io/chat_template.h"
#include "io/jinja/template.h"

namespace dsv3::io::jinja {
namespace {

using Json = nlohmann::ordered_json;

const char* const kConversations[] = {
    R"([{"role": "user", "content": "Hi"}])",
    R"([{"role": "system", "content": "Be brief."}, {"role": "system", "content": "Second."},
        {"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"},
        {"role": "user", "content": "é and 中文"}])",
    R"([{"role": "user", "content": "weather?"},
        {"role": "assistant", "content": null, "tool_calls": [
          {"type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}},
          {"type": "function", "function": {"name": "get_time", "arguments": "{}"}}]},
        {"role": "tool", "content": "sunny"}, {"role": "tool", "content": "noon"},
        {"role": "assistant", "content": "Sunny at noon."}, {"role": "user", "content": "thanks"}])",
    R"([{"role": "user", "content": "q"}, {"role": "assistant", "content": "<think>hmm</think>answer"},
        {"role": "user", "content": "again"}])",
    R"([{"role": "user", "content": "q"},
        {"role": "assistant", "content": null, "tool_calls": [
          {"type": "function", "function": {"name": "f", "arguments": "{\"a\": 1}"}}]},
        {"role": "tool", "content": "r"}])",
};

void check_family(const char* jinja, ChatFormat format) {
  const Template t(jinja, "deepseek");
  for (const char* conversation : kConversations) {
    for (bool add_generation_prompt : {false, true}) {
      ChatTemplate reference;
      reference.format = format;
      const std::string expected = reference.render(chat_messages_from_json(conversation), add_generation_prompt);
      const Json context = {{"messages", Json::parse(conversation)},
                            {"bos_token", reference.bos_token},
                            {"eos_token", reference.eos_token},
                            {"add_generation_prompt", add_generation_prompt}};
      EXPECT_EQ(t.render(context), expected) << conversation << " add_generation_prompt=" << add_generation_prompt;
    }
  }
}

TEST(JinjaDeepSeek, V3TemplateMatchesTheBuiltInRenderer) {
  check_family(kDeepSeekV3ChatTemplateJinja, ChatFormat::kDeepSeekV3);
}

TEST(JinjaDeepSeek, R1TemplateMatchesTheBuiltInRenderer) {
  check_family(kDeepSeekR1ChatTemplateJinja, ChatFormat::kDeepSeekR1);
}

TEST(JinjaDeepSeek, V3FirstTurnByHand) {
  // The V3 template: bos + system prompt + <｜User｜>content, then the generation prompt.
  const Template t(kDeepSeekV3ChatTemplateJinja);
  const Json context = {
      {"messages", Json::parse(R"([{"role": "system", "content": "S"}, {"role": "user", "content": "U"}])")},
      {"bos_token", "<BOS>"},
      {"add_generation_prompt", true}};
  EXPECT_EQ(t.render(context), "<BOS>S<｜User｜>U<｜Assistant｜>");
}

}  // namespace
}  // namespace dsv3::io::jinja
