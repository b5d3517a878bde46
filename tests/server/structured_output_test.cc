// The grammars of structured output (server/structured_output.h) against an independent reader: random
// walks through each family's forced-call grammar give texts that the family's output parser
// (server/chat_output.h, written from the templates, not from the grammar) reads as tool calls whose
// arguments satisfy the tools' schemas; and the request-level errors name their fields.
#include "server/structured_output.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>

#include "io/grammar/matcher.h"

namespace dsv3::server {
namespace {

using ojson = nlohmann::ordered_json;
using json = nlohmann::json;

const ojson kTools = ojson::parse(R"([
  {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "additionalProperties": false, "required": ["city", "unit"],
    "properties": {"city": {"type": "string", "minLength": 1, "maxLength": 8}, "unit": {"enum": ["C", "F"]},
                   "days": {"type": "integer", "minimum": 1, "maximum": 7}}}}},
  {"type": "function", "function": {"name": "add", "parameters": {
    "type": "object", "additionalProperties": false, "required": ["a", "b"],
    "properties": {"a": {"type": "integer", "minimum": 0, "maximum": 99}, "b": {"type": "number"}}}}},
  {"type": "function", "function": {"name": "ping"}}
])");

// A random sentence of the grammar: random allowed bytes until it may finish (then it stops with
// probability 1/3, and always once nothing may follow). Empty when the walk runs past `limit` bytes.
std::string walk(const grammar::Grammar& g, std::mt19937_64& rng, size_t limit = 4000) {
  grammar::Matcher m(std::make_shared<const grammar::Grammar>(g));
  std::string out;
  while (out.size() < limit) {
    if (m.finished_only() || (m.can_finish() && rng() % 3 == 0)) return out;
    const grammar::ByteSet allowed = m.allowed_bytes();
    std::vector<uint8_t> choices;
    for (int b = 0; b < 256; ++b)
      if (allowed[size_t(b)]) choices.push_back(uint8_t(b));
    if (choices.empty()) return m.can_finish() ? out : std::string();
    // Prefer ASCII a little so strings end: a random byte is most often a UTF-8 lead or continuation.
    const uint8_t b = choices[rng() % choices.size()];
    EXPECT_TRUE(m.accept(b));
    out.push_back(char(b));
  }
  return {};
}

// The arguments of a parsed call, checked against its tool's schema by hand.
void check_arguments(const ToolCallOut& call, const std::string& text) {
  SCOPED_TRACE(text);
  ASSERT_TRUE(json::accept(call.arguments)) << call.arguments;
  const json a = json::parse(call.arguments);
  ASSERT_TRUE(a.is_object());
  if (call.name == "get_weather") {
    ASSERT_TRUE(a.contains("city") && a["city"].is_string());
    EXPECT_GE(a["city"].get<std::string>().size(), 1u);  // bytes ≥ code points ≥ 1
    ASSERT_TRUE(a.contains("unit"));
    EXPECT_TRUE(a["unit"] == "C" || a["unit"] == "F");
    if (a.contains("days")) {
      EXPECT_TRUE(a["days"].is_number_integer() && a["days"] >= 1 && a["days"] <= 7);
    }
    for (const auto& [k, v] : a.items()) EXPECT_TRUE(k == "city" || k == "unit" || k == "days") << k;
  } else if (call.name == "add") {
    ASSERT_TRUE(a.contains("a") && a["a"].is_number_integer());
    EXPECT_TRUE(a["a"] >= 0 && a["a"] <= 99);
    ASSERT_TRUE(a.contains("b") && a["b"].is_number());
    EXPECT_EQ(a.size(), 2u);
  } else {
    EXPECT_EQ(call.name, "ping");
  }
}

TEST(StructuredOutput, ForcedCallGrammarsParseAsValidCallsInEveryFamily) {
  const ToolCallFormat formats[] = {ToolCallFormat::kDeepSeekV3, ToolCallFormat::kDeepSeekV31,
                                    ToolCallFormat::kDeepSeekV32, ToolCallFormat::kKimiK2};
  std::mt19937_64 rng(7);
  for (ToolCallFormat f : formats) {
    for (const bool parallel : {false, true}) {
      for (const std::string name : {"", "add"}) {
        SCOPED_TRACE(fmt::format("{} parallel={} name='{}'", tool_call_format_name(f), parallel, name));
        const grammar::Grammar g = tool_call_grammar(f, kTools, name, parallel);
        int walks = 0;
        size_t most_calls = 0;
        for (int i = 0; i < 60; ++i) {
          const std::string text = walk(g, rng);
          if (text.empty()) continue;
          ++walks;
          OutputParser p({.tools = f});
          p.feed(text);
          p.finish();
          ASSERT_FALSE(p.tool_calls().empty()) << text;
          EXPECT_EQ(p.content(), "") << text;
          if (!parallel) {
            EXPECT_EQ(p.tool_calls().size(), 1u) << text;
          }
          most_calls = std::max(most_calls, p.tool_calls().size());
          EXPECT_LE(p.tool_calls().size(), size_t(kMaxForcedCalls));
          for (const ToolCallOut& c : p.tool_calls()) {
            if (!name.empty()) {
              EXPECT_EQ(c.name, name);
            }
            check_arguments(c, text);
          }
        }
        EXPECT_GE(walks, 50);  // the grammars are bounded: walks end
        if (parallel) {
          EXPECT_GT(most_calls, 1u);
        }
      }
    }
  }
}

ApiRequest chat_request() {
  ApiRequest r;
  r.endpoint = Endpoint::Chat;
  return r;
}

TEST(StructuredOutput, RequestGrammarErrorsNameTheField) {
  ApiRequest r = chat_request();
  EXPECT_EQ(request_grammar(r, ToolCallFormat::kDeepSeekV3), nullptr);  // free text
  r.response_format = ResponseFormat::kJsonSchema;
  r.json_schema =
      ojson::parse(R"({"type": "object", "properties": {"a": {"type": "string", "contentMediaType": "x"}}})");
  try {
    request_grammar(r, ToolCallFormat::kDeepSeekV3);
    ADD_FAILURE() << "accepted";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status, 400);
    EXPECT_EQ(e.param, "response_format.json_schema.schema");
    EXPECT_NE(std::string(e.what()).find("contentMediaType"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("/properties/a"), std::string::npos) << e.what();
  }
  // A forced call needs a tool-call format; its schema errors name the tool.
  ApiRequest t = chat_request();
  t.tools = ojson::parse(R"([{"type": "function", "function": {"name": "f", "parameters": {"type": "object",
                                "propertyNames": {"maxLength": 3}}}}])");
  t.tool_choice = "required";
  try {
    request_grammar(t, ToolCallFormat::kNone);
    ADD_FAILURE() << "accepted";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.param, "tool_choice");
  }
  try {
    request_grammar(t, ToolCallFormat::kDeepSeekV3);
    ADD_FAILURE() << "accepted";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.param, "tools[0].function.parameters");
    EXPECT_NE(std::string(e.what()).find("propertyNames"), std::string::npos) << e.what();
  }
  // DSML names every parameter: a required one its properties do not describe cannot be written.
  t.tools = ojson::parse(R"([{"type": "function", "function": {"name": "f", "parameters": {"type": "object",
                                "required": ["x"]}}}])");
  try {
    request_grammar(t, ToolCallFormat::kDeepSeekV32);
    ADD_FAILURE() << "accepted";
  } catch (const ApiError& e) {
    EXPECT_EQ(e.param, "tools[0].function.parameters");
  }
  // A forced call wins over response_format.
  t.tools = kTools;
  t.response_format = ResponseFormat::kJsonObject;
  const auto g = request_grammar(t, ToolCallFormat::kDeepSeekV3);
  ASSERT_NE(g, nullptr);
  grammar::Matcher m(g);
  EXPECT_FALSE(m.accept(std::string_view("{")));
}

}  // namespace
}  // namespace dsv3::server
