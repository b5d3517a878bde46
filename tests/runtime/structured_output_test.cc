// Structured output end to end (server/structured_output.h): response_format json_schema / json_object and
// forced tool calls (tool_choice required or named; Anthropic's any / tool) against `dsv3 serve` on a
// random model, through the official SDKs, every output validated by ajv (tests/runtime/structured_output.mjs
// holds the checks). A random model writes valid JSON only because the grammar makes it. Skipped only when
// node/npm are missing or the registry cannot be reached.
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

constexpr const char* kKey = "sk-dsv3-structured";

std::string clients_dir() {
  static std::string dir, failure;
  if (dir.empty() && failure.empty())
    dir = npm_dir("node_structured", "openai@6 @anthropic-ai/sdk@1.17.0 ajv@8 ajv-formats@3",
                  "ajv-formats/package.json", &failure);
  return dir;
}

class StructuredOutputTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    model_dir_ = write_chat_model(temp_dir("structured_model"), 0.5, 29);
    r1_template_ = model_dir_ + "/../r1_template.jinja";
    std::ofstream(r1_template_) << io::kDeepSeekR1ChatTemplateJinja;
  }

  void run_mode(const char* mode, std::vector<std::string> flags = {}) {
    const std::string d = clients_dir();
    if (d.empty()) GTEST_SKIP() << "node clients (openai, @anthropic-ai/sdk, ajv) unavailable";
    fs::copy_file(std::string(DSV3_TEST_SRC) + "/runtime/structured_output.mjs", d + "/structured_output.mjs",
                  fs::copy_options::overwrite_existing);
    std::vector<std::string> args = {"--model", model_dir_, "--api-key", kKey, "--ctx", "2048", "--parallel", "2"};
    args.insert(args.end(), flags.begin(), flags.end());
    ServerProcess s;
    std::string why;
    ASSERT_TRUE(s.start(args, &why)) << why;
    std::string out;
    const bool openai = std::string(mode).rfind("anthropic", 0) != 0;
    const int rc = shell("cd '" + d + "' && node structured_output.mjs " + mode +
                             " http://127.0.0.1:" + std::to_string(s.port()) + (openai ? "/v1 " : " ") + kKey,
                         &out);
    EXPECT_EQ(rc, 0) << out << "\nserver log:\n" << s.log();
    EXPECT_NE(out.find("checks passed"), std::string::npos) << out;
    // The masks' cost is published.
    const HttpResult m = http(s.port(), "GET", "/metrics", "", kKey);
    EXPECT_NE(m.body.find("dsv3_constrained_masks_total"), std::string::npos) << m.body;
    EXPECT_NE(m.body.find("dsv3_time_to_first_token_seconds_count"), std::string::npos) << m.body;
    EXPECT_EQ(s.stop(), 0) << s.log();
  }

  static inline std::string model_dir_, r1_template_;
};

TEST_F(StructuredOutputTest, JsonSchemaAndJsonObjectValidate) { run_mode("openai-json"); }

TEST_F(StructuredOutputTest, ForcedToolCallsValidate) { run_mode("openai-tools"); }

TEST_F(StructuredOutputTest, AnthropicForcedToolUseValidates) { run_mode("anthropic-tools"); }

TEST_F(StructuredOutputTest, ThinkingModeConstrainsAfterReasoning) {
  const std::string script = temp_dir("structured_script") + "/thinking.json";
  std::ofstream(script) << R"([{"prefix": "Let me think.</think>"}])";
  run_mode("thinking", {"--chat-template", r1_template_, "--script-replies", script});
}

}  // namespace
}  // namespace dsv3
