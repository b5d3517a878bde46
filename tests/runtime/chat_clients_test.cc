// Tool calls, reasoning and the Anthropic Messages API end to end, driven by the official SDKs from npm
// (`openai`: chat.completions.runTools and the streaming accumulator; `@anthropic-ai/sdk`: messages.create,
// messages.stream) against `dsv3 serve` (tests/runtime/chat_clients.mjs holds the checks).
//
// The model is random, so its replies are forced by a sampling constraint: `--script-replies FILE` makes
// the n-th chat request's output the n-th string below (runtime/constraint.h, ScriptedReply; the model still
// runs every forward). The replies are written in the formats the chat templates render (DeepSeek-V3's
// tool calls; R1's reasoning before </think>), so what is tested is everything after the model: the
// template rendering (Jinja, the checkpoint's own template), the text stream with special tokens kept,
// the output parser, and the OpenAI / Anthropic response and stream shapes as the SDKs read them.
// Skipped only when node/npm are missing or the registry cannot be reached.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "../server/serve_harness.h"
#include "io/chat_template.h"
#include "test_models.h"

namespace dsv3 {
namespace {

using json = nlohmann::json;
using namespace dsv3::testing_models;
using namespace dsv3::serve_harness;
namespace fs = std::filesystem;

constexpr const char* kKey = "sk-dsv3-clients";

// DeepSeek-V3's tool-call rendering (the published template; server/chat_output.h).
std::string v3_call(const std::string& name, const std::string& args) {
  return "<｜tool▁call▁begin｜>function<｜tool▁sep｜>" + name + "\n```json\n" + args + "\n```<｜tool▁call▁end｜>";
}
std::string v3_calls(const std::vector<std::string>& calls) {
  std::string s = "<｜tool▁calls▁begin｜>";
  for (size_t i = 0; i < calls.size(); ++i) s += (i ? "\n" : "") + calls[i];
  return s + "<｜tool▁calls▁end｜>";
}

const std::string kCallParis = v3_calls({v3_call("get_weather", R"({"city": "Paris"})")});
const std::string kTwoCalls =
    v3_calls({v3_call("get_weather", R"({"city": "Paris"})"), v3_call("get_weather", R"({"city": "東京"})")});
const std::string kSunny = "It is sunny in Paris.";
const std::string kThought = "The user wants a greeting.</think>\n\nHello there!";  // R1: the prompt opened <think>

std::string clients_dir() {
  static std::string dir, failure;
  if (dir.empty() && failure.empty())
    dir = npm_dir("node_clients", "openai@6 @anthropic-ai/sdk@1.17.0", "@anthropic-ai/sdk/package.json", &failure);
  return dir;
}

class ChatClientsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    model_dir_ = write_chat_model(temp_dir("chat_clients_model"), 0.5, 23);
    r1_template_ = model_dir_ + "/../r1_template.jinja";
    std::ofstream(r1_template_) << io::kDeepSeekR1ChatTemplateJinja;
  }

  // Starts the server with `replies` forced and the given extra flags, runs one mode of the client.
  void run_mode(const char* mode, const std::vector<std::string>& replies, std::vector<std::string> flags = {}) {
    const std::string d = clients_dir();
    if (d.empty()) GTEST_SKIP() << "node clients unavailable";
    fs::copy_file(std::string(DSV3_TEST_SRC) + "/runtime/chat_clients.mjs", d + "/chat_clients.mjs",
                  fs::copy_options::overwrite_existing);
    const std::string script = temp_dir("chat_clients_script") + "/" + mode + ".json";
    std::ofstream(script) << json(replies).dump();
    std::vector<std::string> args = {"--model",    model_dir_, "--api-key",        kKey,  "--ctx", "2048",
                                     "--parallel", "2",        "--script-replies", script};
    args.insert(args.end(), flags.begin(), flags.end());
    ServerProcess s;
    std::string why;
    ASSERT_TRUE(s.start(args, &why)) << why;
    std::string out;
    const int rc =
        shell("cd '" + d + "' && node chat_clients.mjs " + mode + " http://127.0.0.1:" + std::to_string(s.port()) +
                  (std::string(mode).rfind("openai", 0) == 0 ? "/v1 " : " ") + kKey,
              &out);
    EXPECT_EQ(rc, 0) << out << "\nserver log:\n" << s.log();
    EXPECT_NE(out.find("checks passed"), std::string::npos) << out;
    EXPECT_EQ(s.stop(), 0) << s.log();
  }

  static inline std::string model_dir_, r1_template_;
};

TEST_F(ChatClientsTest, OpenAIToolCallsRunToolsStreamingParallel) {
  // Requests in order: runTools (call, then answer), the stream, two parallel, parallel off, tool_choice none.
  run_mode("openai-tools", {kCallParis, kSunny, kCallParis, kTwoCalls, kTwoCalls, kCallParis});
}

TEST_F(ChatClientsTest, OpenAIReasoningContent) {
  run_mode("openai-reasoning", {kThought, kThought}, {"--chat-template", r1_template_});
}

TEST_F(ChatClientsTest, AnthropicMessagesTextStreamAndToolRoundTrip) {
  run_mode("anthropic", {"Hello from dsv3.", "Hello from dsv3.", kCallParis, kSunny, kCallParis});
}

TEST_F(ChatClientsTest, AnthropicThinkingBlocks) {
  run_mode("anthropic-thinking", {kThought}, {"--chat-template", r1_template_});
}

// The server extras (llama.cpp's and vLLM's): GET /props, POST /tokenize and /detokenize, over raw HTTP; and
// tool_choice naming a function, which makes even a random model's reply that call.
TEST_F(ChatClientsTest, PropsTokenizeDetokenizeAndForcedToolChoice) {
  ServerProcess s;
  std::string why;
  ASSERT_TRUE(
      s.start({"--model", model_dir_, "--ctx", "1024", "--chat-template-kwargs", R"({"greeting": "hi"})"}, &why))
      << why;
  const HttpResult props = http(s.port(), "GET", "/props");
  ASSERT_EQ(props.status, 200) << props.body;
  const json p = json::parse(props.body);
  EXPECT_EQ(p["chat_template"], io::kDeepSeekV3ChatTemplateJinja);  // the checkpoint's tokenizer_config.json
  EXPECT_EQ(p["chat_template_renderer"], "jinja");
  EXPECT_EQ(p["tool_call_format"], "deepseek_v3");
  EXPECT_EQ(p["reasoning"], false);
  EXPECT_EQ(p["chat_template_kwargs"], (json{{"greeting", "hi"}}));
  EXPECT_EQ(p["n_ctx"], 1024);
  EXPECT_NE(s.log().find("chat template:"), std::string::npos) << s.log();  // logged at start

  const HttpResult t = http(s.port(), "POST", "/tokenize", R"({"content": "the king said", "with_pieces": true})");
  ASSERT_EQ(t.status, 200) << t.body;
  const json tj = json::parse(t.body);
  std::string joined;
  json ids = json::array();
  for (const json& e : tj["tokens"]) {
    joined += e["piece"].get<std::string>();
    ids.push_back(e["id"]);
  }
  EXPECT_EQ(joined, "the king said");
  EXPECT_EQ(tj["count"], ids.size());
  const HttpResult d = http(s.port(), "POST", "/detokenize", json{{"tokens", ids}}.dump());
  ASSERT_EQ(d.status, 200) << d.body;
  EXPECT_EQ(json::parse(d.body)["content"], "the king said");
  // A chat body: the rendered prompt (the template's own text around the message) and its tokens.
  const HttpResult c = http(s.port(), "POST", "/tokenize", R"({"messages": [{"role": "user", "content": "Hi"}]})");
  ASSERT_EQ(c.status, 200) << c.body;
  const json cj = json::parse(c.body);
  EXPECT_EQ(cj["prompt"], "<｜begin▁of▁sentence｜><｜User｜>Hi<｜Assistant｜>");
  EXPECT_GT(cj["count"].get<int>(), 2);
  // Bad input: 400s naming the field.
  EXPECT_EQ(http(s.port(), "POST", "/detokenize", R"({"tokens": [-1]})").status, 400);
  EXPECT_EQ(http(s.port(), "POST", "/detokenize", R"({"tokens": "x"})").status, 400);
  EXPECT_EQ(http(s.port(), "POST", "/tokenize", R"({"content": 5})").status, 400);
  EXPECT_EQ(http(s.port(), "POST", "/tokenize", "not json").status, 400);

  // tool_choice naming get_weather: the reply opens with the call and the name, whatever the model says next.
  const json req = {
      {"messages", {{{"role", "user"}, {"content", "Weather?"}}}},
      {"max_tokens", 160},  // the opener alone is ~100 byte-level tokens here
      {"tools",
       {{{"type", "function"}, {"function", {{"name", "get_weather"}, {"parameters", {{"type", "object"}}}}}}}},
      {"tool_choice", {{"type", "function"}, {"function", {{"name", "get_weather"}}}}}};
  const HttpResult f = http(s.port(), "POST", "/v1/chat/completions", req.dump());
  ASSERT_EQ(f.status, 200) << f.body;
  const json fj = json::parse(f.body);
  const json& msg = fj["choices"][0]["message"];
  ASSERT_TRUE(msg.contains("tool_calls")) << f.body;
  EXPECT_EQ(msg["tool_calls"][0]["function"]["name"], "get_weather") << f.body;
  EXPECT_EQ(s.stop(), 0) << s.log();
}

}  // namespace
}  // namespace dsv3
