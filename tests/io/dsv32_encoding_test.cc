// encode_dsv32 against DeepSeek-V3.2's own encoder (encoding/encoding_dsv32.py, encode_messages): each
// expected prompt below is worked out by hand from that definition, one piece per rule, and written out
// literally; a comment names the rule each piece comes from. (The first case is also the example of the
// checkpoint's encoding README.)
#include "io/dsv32_encoding.h"

#include <gtest/gtest.h>

#include <string>

#include "core/error.h"

namespace dsv3::io {
namespace {

using Json = nlohmann::ordered_json;

const std::string kBos = "<｜begin▁of▁sentence｜>";
const std::string kEos = "<｜end▁of▁sentence｜>";

// TOOLS_SYSTEM_TEMPLATE with dsml_token ｜DSML｜ and the think tokens filled in, up to {tool_schemas}.
const std::string kToolsHead =
    "## Tools\n\n"
    "You have access to a set of tools you can use to answer the user's question.\n"
    "You can invoke functions by writing a \"<｜DSML｜function_calls>\" block like the following as part of "
    "your reply to the user:\n"
    "<｜DSML｜function_calls>\n"
    "<｜DSML｜invoke name=\"$FUNCTION_NAME\">\n"
    "<｜DSML｜parameter name=\"$PARAMETER_NAME\" string=\"true|false\">$PARAMETER_VALUE</｜DSML｜parameter>\n"
    "...\n"
    "</｜DSML｜invoke>\n"
    "<｜DSML｜invoke name=\"$FUNCTION_NAME2\">\n"
    "...\n"
    "</｜DSML｜invoke>\n"
    "</｜DSML｜function_calls>\n\n"
    "String and scalar parameters should be specified as is without any escaping or quotes, while lists and "
    "objects should use JSON format. The \"string\" attribute should be set to \"true\" for string type "
    "parameters and \"false\" for other types (numbers, booleans, arrays, objects).\n\n"
    "If the thinking_mode is enabled, then after function results you should strongly consider outputting a "
    "thinking block. Here is an example:\n\n"
    "<｜DSML｜function_calls>\n...\n</｜DSML｜function_calls>\n\n"
    "<function_results>\n...\n</function_results>\n\n"
    "<think>...thinking about results</think>\n\n"
    "Here are the functions available in JSONSchema format:\n"
    "<functions>\n";

std::string encode(const char* messages, const char* tools = "null", Dsv32EncodeOptions o = {}) {
  return encode_dsv32(Json::parse(messages), Json::parse(tools), o);
}

// The dsv3::Error's message, or "" when none was thrown.
std::string error_of(const char* messages, const char* tools = "null", Dsv32EncodeOptions o = {}) {
  try {
    encode(messages, tools, o);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Dsv32Encoding, PlainChat) {
  // bos_token; user_msg_template "<｜User｜>{content}<｜Assistant｜>"; chat mode closes thinking: "</think>".
  EXPECT_EQ(encode(R"([{"role": "user", "content": "hello"}])"), kBos + "<｜User｜>hello<｜Assistant｜></think>");
}

TEST(Dsv32Encoding, ReadmeExampleThinkingDropsEarlierReasoning) {
  const char* m = R"([{"role": "user", "content": "hello"},
      {"role": "assistant", "content": "Hello! I am DeepSeek.", "reasoning_content": "thinking..."},
      {"role": "user", "content": "1+1=?"}])";
  // Thinking mode: only the last user turn opens "<think>"; the earlier assistant turn (before the last
  // user index) renders without its reasoning: assistant_msg_template with an empty {reasoning}.
  const std::string expected = kBos + "<｜User｜>hello<｜Assistant｜></think>" + "Hello! I am DeepSeek." + kEos +
                               "<｜User｜>1+1=?<｜Assistant｜><think>";
  EXPECT_EQ(encode(m, "null", {.thinking = true}), expected);
  // drop_thinking=False changes nothing here: render_message skips reasoning before the last user turn.
  EXPECT_EQ(encode(m, "null", {.thinking = true, .drop_thinking = false}), expected);
  // Chat mode: "</think>" after every user turn; reasoning never rendered.
  EXPECT_EQ(encode(m), kBos + "<｜User｜>hello<｜Assistant｜></think>" + "Hello! I am DeepSeek." + kEos +
                           "<｜User｜>1+1=?<｜Assistant｜></think>");
}

TEST(Dsv32Encoding, SystemAndMultiTurn) {
  const char* m = R"([{"role": "system", "content": "You are terse."},
      {"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello."},
      {"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}])";
  // system_msg_template "{content}" (no marker); every assistant turn ends in eos. The last message is an
  // assistant turn after the last user: in chat mode it has no thinking part.
  EXPECT_EQ(encode(m), kBos + "You are terse." + "<｜User｜>hi<｜Assistant｜></think>" + "Hello." + kEos +
                           "<｜User｜>2+2?<｜Assistant｜></think>" + "4" + kEos);
}

TEST(Dsv32Encoding, ThinkingKeepsReasoningAfterTheLastUserTurn) {
  const char* m = R"([{"role": "user", "content": "q"},
      {"role": "assistant", "content": "a", "reasoning_content": "r"}])";
  // index > last_user_idx in thinking mode: thinking_template "{reasoning_content}" + "</think>" first.
  EXPECT_EQ(encode(m, "null", {.thinking = true}), kBos + "<｜User｜>q<｜Assistant｜><think>" + "r</think>a" + kEos);
  // vLLM's field name "reasoning" is read when "reasoning_content" is absent.
  EXPECT_EQ(encode(R"([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "reasoning": "r"}])",
                   "null", {.thinking = true}),
            kBos + "<｜User｜>q<｜Assistant｜><think>" + "r</think>a" + kEos);
}

TEST(Dsv32Encoding, OneToolCallResultAndAnswerInThinkingMode) {
  const char* tools = R"([{"type": "function", "function": {"name": "get_weather", "description": "Current weather",
      "parameters": {"type": "object", "properties": {"unit": {"type": "string"}, "city": {"type": "string"}},
                     "required": ["city"]}}}])";
  const char* m = R"([{"role": "system", "content": "S"},
      {"role": "user", "content": "Weather in Paris?"},
      {"role": "assistant", "content": null, "reasoning_content": "Need the tool.", "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
      {"role": "tool", "tool_call_id": "call_1", "content": "18°C"},
      {"role": "assistant", "content": "It is 18°C.", "reasoning_content": "Report it."}])";
  const std::string expected =
      kBos +
      // The request's tools go on the leading system message: "{content}" + "\n\n" + render_tools(...), whose
      // schemas are json.dumps(tool["function"], ensure_ascii=False) in the request's key order.
      "S\n\n" + kToolsHead +
      R"({"name": "get_weather", "description": "Current weather", "parameters": {"type": "object", )"
      R"("properties": {"unit": {"type": "string"}, "city": {"type": "string"}}, "required": ["city"]}})" +
      "\n</functions>\n" +
      // The last user turn in thinking mode opens "<think>".
      "<｜User｜>Weather in Paris?<｜Assistant｜><think>" +
      // Assistant after the last user: reasoning + "</think>", content "" (null), then "\n\n" +
      // tool_calls_template around tool_call_template; a string argument is written raw with string="true".
      "Need the tool.</think>" +
      "\n\n<｜DSML｜function_calls>\n<｜DSML｜invoke name=\"get_weather\">\n"
      "<｜DSML｜parameter name=\"city\" string=\"true\">Paris</｜DSML｜parameter>\n"
      "</｜DSML｜invoke>\n</｜DSML｜function_calls>" +
      kEos +
      // The first (and last) result opens and closes <function_results>; after the last user turn in
      // thinking mode "\n\n<think>" follows.
      "\n\n<function_results>\n<result>18°C</result>\n</function_results>\n\n<think>" +
      // The final answer: its reasoning, "</think>", content, eos.
      "Report it.</think>It is 18°C." + kEos;
  EXPECT_EQ(encode(m, tools, {.thinking = true}), expected);
}

TEST(Dsv32Encoding, TwoParallelCallsWithStringAndNonStringParameters) {
  const char* tools = R"([{"type": "function", "function": {"name": "get_weather", "parameters": {}}},
                          {"type": "function", "function": {"name": "search"}}])";
  // Arguments as a JSON text (the reference's json.loads) and as an object (the OpenAI form some clients send).
  const char* m = R"([{"role": "user", "content": "東京?"},
      {"role": "assistant", "content": "Checking.", "tool_calls": [
        {"id": "a", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"東京\", \"days\": 3}"}},
        {"id": "b", "type": "function", "function": {"name": "search",
          "arguments": {"query": "a \"b\"", "filters": {"lang": "ja", "safe": true}, "limit": null, "ratio": 0.5, "tags": []}}}]},
      {"role": "tool", "tool_call_id": "a", "content": "sunny"},
      {"role": "tool", "tool_call_id": "b", "content": "[1, 2]"},
      {"role": "assistant", "content": "Sunny."}])";
  const std::string expected =
      kBos +
      // No system message: a new one holding only the tools goes first ("" + "\n\n" + render_tools).
      "\n\n" + kToolsHead + R"({"name": "get_weather", "parameters": {}})" + "\n" + R"({"name": "search"})" +
      "\n</functions>\n" + "<｜User｜>東京?<｜Assistant｜></think>" +
      // Content, then the calls joined by "\n"; non-strings are json.dumps'd (", " and ": " separators,
      // null, 0.5, []), with string="false".
      "Checking.\n\n<｜DSML｜function_calls>\n"
      "<｜DSML｜invoke name=\"get_weather\">\n"
      "<｜DSML｜parameter name=\"city\" string=\"true\">東京</｜DSML｜parameter>\n"
      "<｜DSML｜parameter name=\"days\" string=\"false\">3</｜DSML｜parameter>\n"
      "</｜DSML｜invoke>\n"
      "<｜DSML｜invoke name=\"search\">\n"
      "<｜DSML｜parameter name=\"query\" string=\"true\">a \"b\"</｜DSML｜parameter>\n"
      "<｜DSML｜parameter name=\"filters\" string=\"false\">{\"lang\": \"ja\", \"safe\": true}</｜DSML｜parameter>\n"
      "<｜DSML｜parameter name=\"limit\" string=\"false\">null</｜DSML｜parameter>\n"
      "<｜DSML｜parameter name=\"ratio\" string=\"false\">0.5</｜DSML｜parameter>\n"
      "<｜DSML｜parameter name=\"tags\" string=\"false\">[]</｜DSML｜parameter>\n"
      "</｜DSML｜invoke>\n</｜DSML｜function_calls>" +
      kEos +
      // Results by position: the first opens the block, the second (tool_call_order == 2 == len) closes it;
      // chat mode: "</think>".
      "\n\n<function_results>\n<result>sunny</result>\n<result>[1, 2]</result>\n</function_results>\n\n</think>" +
      "Sunny." + kEos;
  EXPECT_EQ(encode(m, tools), expected);
}

TEST(Dsv32Encoding, EmptyArgumentsAndUnicode) {
  // {} arguments: encode_arguments_to_dsml joins nothing, so the invoke has an empty line. Non-ASCII text
  // and keys pass through raw (json.dumps with ensure_ascii=False for the non-string value).
  const char* m = R"([{"role": "user", "content": "héllo 😀 中文"},
      {"role": "assistant", "content": "", "tool_calls": [
        {"type": "function", "function": {"name": "now", "arguments": "{}"}},
        {"type": "function", "function": {"name": "tag", "arguments": "{\"名\": [\"é\", \"😀\"]}"}}]}])";
  EXPECT_EQ(encode(m), kBos + "<｜User｜>héllo 😀 中文<｜Assistant｜></think>" +
                           "\n\n<｜DSML｜function_calls>\n<｜DSML｜invoke name=\"now\">\n\n</｜DSML｜invoke>\n"
                           "<｜DSML｜invoke name=\"tag\">\n"
                           "<｜DSML｜parameter name=\"名\" string=\"false\">[\"é\", \"😀\"]</｜DSML｜parameter>\n"
                           "</｜DSML｜invoke>\n</｜DSML｜function_calls>" +
                           kEos);
}

TEST(Dsv32Encoding, DeveloperRoleAndResponseFormat) {
  // developer: "<｜User｜>" + [tools] + [response format] + "\n\n# The user's message is: {content}" + the
  // user-turn ending; a developer message counts as a user turn for "<think>".
  EXPECT_EQ(encode(R"([{"role": "developer", "content": "Hi", "response_format": {"type": "json_object"}}])", "null",
                   {.thinking = true}),
            kBos +
                "<｜User｜>\n\n## Response Format:\n\nYou MUST strictly adhere to the following schema to reply:\n"
                "{\"type\": \"json_object\"}\n\n# The user's message is: Hi<｜Assistant｜><think>");
  // system: "{content}" + "\n\n" + response_format_template; an empty response_format is falsy and skipped.
  EXPECT_EQ(encode(R"([{"role": "system", "content": "S", "response_format": {"type": "json_object"}},
                       {"role": "system", "content": null, "response_format": {}}])"),
            kBos +
                "S\n\n## Response Format:\n\nYou MUST strictly adhere to the following schema to reply:\n"
                "{\"type\": \"json_object\"}");
}

TEST(Dsv32Encoding, TextPartsAreJoinedWithNewlines) {
  EXPECT_EQ(encode(R"([{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}])"),
            kBos + "<｜User｜>a\nb<｜Assistant｜></think>");
}

TEST(Dsv32Encoding, WithoutGenerationPromptOrBos) {
  // Our addition: the last message's trailing opener is left out; earlier ones stay.
  EXPECT_EQ(encode(R"([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                       {"role": "user", "content": "c"}])",
                   "null", {.add_generation_prompt = false, .add_bos = false}),
            "<｜User｜>a<｜Assistant｜></think>b" + kEos + "<｜User｜>c");
  EXPECT_EQ(
      encode(R"([{"role": "user", "content": "a"}, {"role": "assistant", "content": "",
                        "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}]},
                       {"role": "tool", "content": "r"}])",
             "null", {.add_generation_prompt = false}),
      kBos + "<｜User｜>a<｜Assistant｜></think>" +
          "\n\n<｜DSML｜function_calls>\n<｜DSML｜invoke name=\"f\">\n\n</｜DSML｜invoke>\n</｜DSML｜function_calls>" +
          kEos + "\n\n<function_results>\n<result>r</result>\n</function_results>");
}

TEST(Dsv32Encoding, FewerResultsThanCallsLeaveTheBlockOpen) {
  // The reference does not check that every call got its result: the block stays open.
  EXPECT_EQ(encode(R"([{"role": "user", "content": "a"}, {"role": "assistant", "content": "", "tool_calls": [
                        {"function": {"name": "f", "arguments": "{}"}}, {"function": {"name": "g", "arguments": "{}"}}]},
                       {"role": "tool", "content": "r"}])"),
            kBos + "<｜User｜>a<｜Assistant｜></think>" +
                "\n\n<｜DSML｜function_calls>\n<｜DSML｜invoke name=\"f\">\n\n</｜DSML｜invoke>\n"
                "<｜DSML｜invoke name=\"g\">\n\n</｜DSML｜invoke>\n</｜DSML｜function_calls>" +
                kEos + "\n\n<function_results>\n<result>r</result>");
}

TEST(Dsv32Encoding, ErrorsNameTheMessageAndField) {
  const auto has = [](const std::string& what, const char* part) {
    return what.find(part) != std::string::npos
               ? testing::AssertionSuccess()
               : testing::AssertionFailure() << "'" << what << "' lacks '" << part << "'";
  };
  EXPECT_TRUE(has(error_of(R"({"role": "user"})"), "messages: expected an array"));
  EXPECT_TRUE(has(error_of("[]", R"({"type": "function"})"), "tools: expected an array"));
  EXPECT_TRUE(has(error_of("[]", R"([{"type": "function"}])"), "tools[0].function"));
  EXPECT_TRUE(has(error_of(R"([{"role": "user", "content": "a"}, "x"])"), "messages[1]: expected an object"));
  // render_message raises NotImplementedError for a role it does not know (or a missing one).
  EXPECT_TRUE(
      has(error_of(R"([{"role": "user", "content": "a"}, {"role": "function", "content": "b"}])"), "messages[1].role"));
  EXPECT_TRUE(has(error_of(R"([{"content": "b"}])"), "messages[0].role"));
  // assert content for developer messages.
  EXPECT_TRUE(has(error_of(R"([{"role": "developer", "content": ""}])"), "messages[0].content"));
  // User and tool text is required (the reference would print "None").
  EXPECT_TRUE(has(error_of(R"([{"role": "user", "content": null}])"), "messages[0].content"));
  EXPECT_TRUE(has(error_of(R"([{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}])"),
                  "messages[0].content[0]"));
  // A tool message must follow an assistant with tool_calls; not more results than calls.
  EXPECT_TRUE(has(error_of(R"([{"role": "user", "content": "a"}, {"role": "tool", "content": "r"}])"), "messages[1]"));
  EXPECT_TRUE(has(error_of(R"([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                                {"role": "tool", "content": "r"}])"),
                  "messages[2]"));
  EXPECT_TRUE(has(error_of(R"([{"role": "user", "content": "a"}, {"role": "assistant", "content": "",
                                "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}]},
                                {"role": "tool", "content": "r"}, {"role": "tool", "content": "s"}])"),
                  "messages[3]"));
  // A tool message first reads the last message's tool calls (Python's messages[-1]): none here.
  EXPECT_TRUE(has(error_of(R"([{"role": "tool", "content": "r"}])"), "messages[0]"));
  // Thinking mode: an assistant turn after the last user needs reasoning_content or tool_calls.
  EXPECT_TRUE(has(error_of(R"([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}])", "null",
                           {.thinking = true}),
                  "messages[1]"));
  // Tool call fields: function.name, function.arguments (json.loads, then .items()).
  EXPECT_TRUE(has(error_of(R"([{"role": "assistant", "tool_calls": [{"function": {"arguments": "{}"}}]}])"),
                  "messages[0].tool_calls[0].function.name"));
  EXPECT_TRUE(has(error_of(R"([{"role": "assistant", "tool_calls": [{"function": {"name": "f"}}]}])"),
                  "messages[0].tool_calls[0].function.arguments"));
  EXPECT_TRUE(
      has(error_of(R"([{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{x"}}]}])"),
          "messages[0].tool_calls[0].function.arguments"));
  EXPECT_TRUE(
      has(error_of(R"([{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "[1]"}}]}])"),
          "messages[0].tool_calls[0].function.arguments"));
  EXPECT_TRUE(has(error_of(R"([{"role": "assistant", "tool_calls": [{"type": "function"}]}])"),
                  "messages[0].tool_calls[0].function"));
  EXPECT_TRUE(has(error_of(R"([{"role": "system", "tools": [{"name": "f"}]}])"), "messages[0].tools[0].function"));
  // drop_thinking (thinking mode) drops a developer message before the last user turn, then the reference
  // indexes past the shortened list. Chat mode, or drop_thinking off, renders it.
  const char* dev_first = R"([{"role": "developer", "content": "d"}, {"role": "user", "content": "u"}])";
  EXPECT_TRUE(has(error_of(dev_first, "null", {.thinking = true}), "messages[0]"));
  EXPECT_EQ(encode(dev_first, "null", {.thinking = true, .drop_thinking = false}),
            kBos + "<｜User｜>\n\n# The user's message is: d<｜Assistant｜></think><｜User｜>u<｜Assistant｜><think>");
  EXPECT_EQ(encode(dev_first), kBos + "<｜User｜>\n\n# The user's message is: d<｜Assistant｜></think>" +
                                   "<｜User｜>u<｜Assistant｜></think>");
}

}  // namespace
}  // namespace dsv3::io
