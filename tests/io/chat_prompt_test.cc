// io/chat_prompt.h: which renderer a checkpoint directory selects (the rules HF transformers applies:
// chat_template.jinja over tokenizer_config.json, a named list's "tool_use" when tools are given), the
// variables a Jinja template sees (HF apply_chat_template's). That the published DeepSeek templates render
// through the Jinja engine as the built-in renderer does is tests/io/jinja/deepseek_template_test.cc.
#include "io/chat_prompt.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"

namespace dsv3::io {
namespace {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

std::string fresh_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("dsv3_chat_prompt_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d.string();
}

void write(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

const ojson kUser = ojson::array({{{"role", "user"}, {"content", "Hi"}}});

TEST(ChatPrompt, SelectionRules) {
  const std::string d = fresh_dir("select");
  // No files: the built-in DeepSeek-V3 renderer; with model_type deepseek_v32, V3.2's encoder.
  EXPECT_EQ(ChatPrompt::load(d).renderer(), PromptRenderer::kBuiltin);
  EXPECT_EQ(ChatPrompt::load(d, "deepseek_v32").renderer(), PromptRenderer::kDeepSeekV32);
  // tokenizer_config.json's template, its special tokens visible to it.
  write(
      d + "/tokenizer_config.json",
      R"({"bos_token": {"content": "<B>"}, "eos_token": "<E>", "chat_template": "{{ bos_token }}cfg{{ eos_token }}"})");
  ChatPrompt p = ChatPrompt::load(d, "deepseek_v32");  // a template wins over the V3.2 encoder
  EXPECT_EQ(p.renderer(), PromptRenderer::kJinja);
  EXPECT_EQ(p.render({.messages = kUser}), "<B>cfg<E>");
  EXPECT_EQ(p.bos_token(), "<B>");
  // chat_template.jinja beside it wins (transformers >= 4.43).
  write(d + "/chat_template.jinja", "file:{{ messages[0].content }}");
  EXPECT_EQ(ChatPrompt::load(d).render({.messages = kUser}), "file:Hi");
  // --chat-template wins over both.
  write(d + "/override.jinja", "override");
  EXPECT_EQ(ChatPrompt::load(d, "", d + "/override.jinja").render({.messages = kUser}), "override");
  fs::remove_all(d);
}

TEST(ChatPrompt, NamedTemplateListPicksToolUseWithTools) {
  const std::string d = fresh_dir("named");
  write(
      d + "/tokenizer_config.json",
      R"({"chat_template": [{"name": "default", "template": "D"}, {"name": "tool_use", "template": "T{{ tools|length }}"}]})");
  const ChatPrompt p = ChatPrompt::load(d);
  EXPECT_EQ(p.render({.messages = kUser}), "D");
  const ojson tools = ojson::array({{{"type", "function"}, {"function", {{"name", "f"}}}}});
  EXPECT_EQ(p.render({.messages = kUser, .tools = tools}), "T1");
  write(d + "/tokenizer_config.json", R"({"chat_template": [{"name": "tool_use", "template": "T"}]})");
  EXPECT_THROW(ChatPrompt::load(d), Error);  // no default
  fs::remove_all(d);
}

TEST(ChatPrompt, VariablesAsApplyChatTemplateGivesThem) {
  // tools is None when absent; kwargs become variables; objects keep the client's key order.
  const ChatPrompt p = ChatPrompt::from_jinja(
      "{{ tools is none }}|{{ add_generation_prompt }}|{{ thinking }}|{% for k in messages[0] %}{{ k }},{% endfor %}",
      R"({"bos_token": "<s>"})");
  const ojson msgs = ojson::parse(R"([{"role": "user", "zeta": 1, "content": "x", "alpha": 2}])");
  EXPECT_EQ(p.render({.messages = msgs, .kwargs = {{"thinking", true}}, .add_generation_prompt = false}),
            "True|False|True|role,zeta,content,alpha,");
  EXPECT_EQ(p.render({.messages = msgs, .tools = ojson::array(), .kwargs = {{"thinking", 0}}}),
            "False|True|0|role,zeta,content,alpha,");
}

TEST(ChatPrompt, SyntaxErrorNamesTheFileAndLine) {
  const std::string d = fresh_dir("syntax");
  write(d + "/chat_template.jinja", "line one\n{% for x in %}\n");
  try {
    ChatPrompt::load(d);
    ADD_FAILURE() << "a broken template loaded";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("chat_template.jinja"), std::string::npos) << m;
    EXPECT_NE(m.find(":2"), std::string::npos) << m;
  }
  // raise_exception at render time is an error naming its message.
  const ChatPrompt r = ChatPrompt::from_jinja("{{ raise_exception('only user and assistant roles') }}");
  try {
    r.render({.messages = kUser});
    ADD_FAILURE() << "raise_exception did not raise";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("only user and assistant roles"), std::string::npos) << e.what();
  }
  fs::remove_all(d);
}

}  // namespace
}  // namespace dsv3::io
