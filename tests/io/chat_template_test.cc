// Chat prompts of the DeepSeek-V3 family against strings written out by hand from the published Jinja
// templates (chat_template.cc quotes them); tokenizer_peer_test.cc also renders the templates with a Jinja
// engine and compares.
#include "io/chat_template.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tokenizer_test_util.h"

namespace dsv3::io {
namespace {

using json = nlohmann::json;
using namespace dsv3::io::testing;

const std::string BOS = "<｜begin▁of▁sentence｜>", EOS = "<｜end▁of▁sentence｜>", U = "<｜User｜>",
                  A = "<｜Assistant｜>", CALLS = "<｜tool▁calls▁begin｜>", CALLS_END = "<｜tool▁calls▁end｜>",
                  CALL = "<｜tool▁call▁begin｜>", CALL_END = "<｜tool▁call▁end｜>", SEP = "<｜tool▁sep｜>",
                  OUTS = "<｜tool▁outputs▁begin｜>", OUTS_END = "<｜tool▁outputs▁end｜>",
                  OUT = "<｜tool▁output▁begin｜>", OUT_END = "<｜tool▁output▁end｜>";

ChatTemplate v3() { return ChatTemplate{}; }
ChatTemplate r1() {
  ChatTemplate t;
  t.format = ChatFormat::kDeepSeekR1;
  return t;
}

ChatMessage msg(std::string role, std::optional<std::string> content) {
  return {std::move(role), std::move(content), {}};
}
ChatMessage calls(std::optional<std::string> content, std::vector<ToolCall> tc) {
  return {"assistant", std::move(content), std::move(tc)};
}
ToolCall weather(const std::string& city) { return {"function", "get_weather", "{\"city\": \"" + city + "\"}"}; }
std::string call_text(const std::string& city) {
  return "function" + SEP + "get_weather\n```json\n{\"city\": \"" + city + "\"}\n```" + CALL_END;
}

TEST(ChatTemplate, MultiTurnWithSystemPrompt) {
  std::vector<ChatMessage> m = {msg("system", "You are a helpful assistant."), msg("user", "Hi"),
                                msg("assistant", "Hello! How can I help?"), msg("user", "Tell me a joke.")};
  std::string body =
      BOS + "You are a helpful assistant." + U + "Hi" + A + "Hello! How can I help?" + EOS + U + "Tell me a joke.";
  EXPECT_EQ(v3().render(m, false), body);
  EXPECT_EQ(v3().render(m, true), body + A);
  EXPECT_EQ(r1().render(m, true), body + A + "<think>\n");
  ChatTemplate first_release = r1();
  first_release.think_prefix = false;
  EXPECT_EQ(first_release.render(m, true), body + A);
}

TEST(ChatTemplate, SystemPromptsAreJoinedFirst) {
  std::vector<ChatMessage> m = {msg("system", "A"), msg("user", "q"), msg("system", "B"), msg("assistant", "a")};
  EXPECT_EQ(v3().render(m, false), BOS + "A\n\nB" + U + "q" + A + "a" + EOS);
  EXPECT_EQ(v3().render({}, true), BOS + A);
}

TEST(ChatTemplate, R1DropsPriorReasoning) {
  std::vector<ChatMessage> m = {msg("user", "1+1?"), msg("assistant", "<think>\nsimple math\n</think>\n\n2"),
                                msg("user", "times 3?")};
  EXPECT_EQ(r1().render(m, true), BOS + U + "1+1?" + A + "\n\n2" + EOS + U + "times 3?" + A + "<think>\n");
  EXPECT_EQ(v3().render(m, true),
            BOS + U + "1+1?" + A + "<think>\nsimple math\n</think>\n\n2" + EOS + U + "times 3?" + A);
  std::vector<ChatMessage> several = {msg("user", "x"), msg("assistant", "<think>a</think>b</think>c")};
  EXPECT_EQ(r1().render(several, false), BOS + U + "x" + A + "c" + EOS);  // after the last </think>
}

TEST(ChatTemplate, ToolCallAndResult) {
  std::vector<ChatMessage> m = {msg("system", "Use tools."), msg("user", "What's the weather in Paris?"),
                                calls(std::nullopt, {weather("Paris")}), msg("tool", "{\"temp\": 21}"),
                                msg("assistant", "It is 21°C.")};
  std::string head = BOS + "Use tools." + U + "What's the weather in Paris?" + A + CALLS + CALL + call_text("Paris");
  std::string outputs = OUTS + OUT + "{\"temp\": 21}" + OUT_END;
  // V3 closes the calls only after a second call (published quirk); R1 always closes them.
  EXPECT_EQ(v3().render(m, true), head + outputs + OUTS_END + "It is 21°C." + EOS + A);
  EXPECT_EQ(r1().render(m, true), head + CALLS_END + EOS + outputs + OUTS_END + "It is 21°C." + EOS + A + "<think>\n");
}

TEST(ChatTemplate, TwoCallsTwoOutputs) {
  std::vector<ChatMessage> m = {msg("user", "Paris and Rome?"),
                                calls(std::nullopt, {weather("Paris"), weather("Rome")}), msg("tool", "21"),
                                msg("tool", "25")};
  std::string calls_text = A + CALLS + CALL + call_text("Paris") + "\n" + CALL + call_text("Rome");
  EXPECT_EQ(v3().render(m, true),
            BOS + U + "Paris and Rome?" + calls_text + CALLS_END + EOS + OUTS + OUT + "21" + OUT_END + "\n" + OUT +
                "25" + OUT_END + OUTS_END);  // no generation prompt right after tool outputs
  EXPECT_EQ(r1().render(m, true), BOS + U + "Paris and Rome?" + calls_text + CALLS_END + EOS + OUTS + OUT + "21" +
                                      OUT_END + OUT + "25" + OUT_END + OUTS_END);
}

TEST(ChatTemplate, CallWithContent) {
  std::vector<ChatMessage> m = {msg("user", "Time?"), calls("Let me check.", {{"function", "now", "{}"}})};
  // V3 renders only the text of an assistant message that has content; R1 renders text then calls.
  EXPECT_EQ(v3().render(m, false), BOS + U + "Time?" + A + "Let me check." + EOS);
  EXPECT_EQ(r1().render(m, false), BOS + U + "Time?" + A + "Let me check." + CALLS + CALL + "function" + SEP +
                                       "now\n```json\n{}\n```" + CALL_END + CALLS_END + EOS);
}

TEST(ChatTemplate, Errors) {
  EXPECT_THROW(v3().render({msg("user", std::nullopt)}, false), Error);
  EXPECT_THROW(r1().render({msg("tool", std::nullopt)}, false), Error);
  EXPECT_THROW(ChatTemplate::from_config_json(R"({"chat_template": "{{ messages }}"})"), Error);
  EXPECT_THROW(ChatTemplate::from_config_json("not json"), Error);
  EXPECT_THROW(chat_messages_from_json(R"([{"content": "no role"}])"), Error);
}

TEST(ChatTemplate, LoadsFromTokenizerConfig) {
  json cfg = {{"bos_token", {{"__type", "AddedToken"}, {"content", "<B>"}}},
              {"eos_token", "<E>"},
              {"chat_template", kDeepSeekR1ChatTemplateJinja}};
  std::string dir = scratch_dir("chat_cfg");
  write_file(dir + "/tokenizer_config.json", cfg.dump());
  ChatTemplate t = ChatTemplate::load(dir);
  EXPECT_EQ(t.format, ChatFormat::kDeepSeekR1);
  EXPECT_TRUE(t.think_prefix);
  EXPECT_EQ(t.render({msg("user", "x"), msg("assistant", "y")}, true), "<B>" + U + "x" + A + "y<E>" + A + "<think>\n");
  EXPECT_EQ(ChatTemplate::load(dir + "/tokenizer.json").bos_token, "<B>");
  EXPECT_EQ(detect_chat_format(kDeepSeekV3ChatTemplateJinja), ChatFormat::kDeepSeekV3);
  // The trainer's config carries DeepSeek-V3's template.
  ChatTemplate trained = ChatTemplate::load(trained_tokenizer_dir(PreTokenizerKind::kDeepSeekV3));
  EXPECT_EQ(trained.format, ChatFormat::kDeepSeekV3);
  EXPECT_EQ(trained.bos_token, BOS);
}

TEST(ChatTemplate, MessagesFromOpenAiJson) {
  auto m = chat_messages_from_json(R"({"messages": [
      {"role": "user", "content": "hi"},
      {"role": "assistant", "content": null, "tool_calls": [
          {"type": "function", "function": {"name": "f", "arguments": {"a": 1}}}]}]})");
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0].content, "hi");
  EXPECT_FALSE(m[1].content.has_value());
  ASSERT_TRUE(m[1].tool_calls.has_value());
  EXPECT_EQ((*m[1].tool_calls)[0].arguments, R"({"a":1})");
}

TEST(ChatTemplate, PromptTokenizesWithSpecialTokens) {
  const Tokenizer& tok = trained_tokenizer(PreTokenizerKind::kDeepSeekV3);
  std::string prompt = v3().render({msg("user", "Hello")}, true);
  std::vector<int32_t> ids = tok.encode(prompt);
  EXPECT_EQ(ids.front(), *tok.bos_id());
  EXPECT_EQ(ids[1], *tok.token_id(U));
  EXPECT_EQ(ids.back(), *tok.token_id(A));
  EXPECT_EQ(tok.decode(ids), prompt);
}

}  // namespace
}  // namespace dsv3::io
