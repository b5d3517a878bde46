// server/anthropic_api.h: Messages requests checked against Anthropic's API reference (every required field,
// wrong types, roles, unsupported blocks, tool_choice, thinking), their conversion to chat-completions bodies
// written out by hand from the mapping in the header, error objects as Anthropic's "Errors" page names them,
// and responses / stream events in the shapes @anthropic-ai/sdk parses (its MessageStream accumulation is
// re-done here: the streamed blocks must add up to the non-streaming response).
#include "server/anthropic_api.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace dsv3::server {
namespace {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

// A valid request with one user message; tests change fields in it.
json base() {
  return json{{"model", "dsv3"}, {"max_tokens", 256}, {"messages", {{{"role", "user"}, {"content", "hi"}}}}};
}

AnthropicRequest parse(const json& body) { return parse_messages_request(body.dump()); }

// The request must be refused with a 400 naming `param`; returns the message.
std::string refused(const std::string& body, const std::string& param) {
  try {
    parse_messages_request(body);
  } catch (const ApiError& e) {
    EXPECT_EQ(e.status, 400) << body;
    EXPECT_EQ(e.type, "invalid_request_error");
    EXPECT_EQ(e.param.value_or("<none>"), param) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "accepted " << body;
  return "";
}
std::string refused(const json& body, const std::string& param) { return refused(body.dump(), param); }

json with(json body, const json::json_pointer& at, json value) {
  body[at] = std::move(value);
  return body;
}
json without(json body, const char* key) {
  body.erase(key);
  return body;
}
json user_blocks(json blocks) { return with(base(), "/messages/0/content"_json_pointer, std::move(blocks)); }

// ---- request validation ------------------------------------------------------------------------------------

TEST(AnthropicRequest, BodyMustBeAJsonObject) {
  for (const char* body : {"{\"model\": ", "[1]", "\"text\"", ""}) {
    try {
      parse_messages_request(body);
      ADD_FAILURE() << "accepted " << body;
    } catch (const ApiError& e) {
      EXPECT_EQ(e.status, 400);
    }
  }
  try {
    parse_messages_request(std::string(100, '[') + std::string(100, ']'));
    ADD_FAILURE();
  } catch (const ApiError& e) {
    EXPECT_EQ(e.code, "json_too_deep");
  }
}

TEST(AnthropicRequest, RequiredFields) {
  for (const char* key : {"model", "max_tokens", "messages"}) {
    const std::string what = refused(without(base(), key), key);
    EXPECT_NE(what.find("required"), std::string::npos) << what;
    refused(with(base(), json::json_pointer(std::string("/") + key), nullptr), key);  // null is absent
  }
}

TEST(AnthropicRequest, WrongTypesAndRanges) {
  refused(with(base(), "/model"_json_pointer, 3), "model");
  for (json v : {json(0), json(-1), json(1.5), json("10"), json(true), json(4294967296LL)})
    refused(with(base(), "/max_tokens"_json_pointer, v), "max_tokens");
  EXPECT_EQ(parse(with(base(), "/max_tokens"_json_pointer, 1)).max_tokens, 1);
  EXPECT_EQ(parse(with(base(), "/max_tokens"_json_pointer, 8.0)).max_tokens, 8);  // an integral number
  refused(with(base(), "/messages"_json_pointer, "hi"), "messages");
  refused(with(base(), "/messages"_json_pointer, json::array()), "messages");
  refused(with(base(), "/stream"_json_pointer, "yes"), "stream");
  refused(with(base(), "/temperature"_json_pointer, 1.5), "temperature");  // Anthropic's range is 0..1
  refused(with(base(), "/temperature"_json_pointer, "hot"), "temperature");
  refused(with(base(), "/top_p"_json_pointer, 2), "top_p");
  refused(with(base(), "/top_k"_json_pointer, -1), "top_k");
  refused(with(base(), "/top_k"_json_pointer, 1.5), "top_k");
  refused(with(base(), "/system"_json_pointer, 7), "system");
  refused(with(base(), "/system"_json_pointer, json::array({{{"type", "image"}}})), "system[0]");
  refused(with(base(), "/system"_json_pointer, json::array({{{"type", "text"}}})), "system[0].text");
}

TEST(AnthropicRequest, Messages) {
  refused(with(base(), "/messages/0"_json_pointer, "hi"), "messages[0]");
  refused(with(base(), "/messages/0/role"_json_pointer, "system"), "messages[0].role");
  refused(with(base(), "/messages/0/role"_json_pointer, "tool"), "messages[0].role");
  refused(with(base(), "/messages/0/role"_json_pointer, 1), "messages[0].role");
  json no_role = base();
  no_role["messages"][0].erase("role");
  refused(no_role, "messages[0].role");
  json no_content = base();
  no_content["messages"][0].erase("content");
  refused(no_content, "messages[0].content");
  refused(with(base(), "/messages/0/content"_json_pointer, 5), "messages[0].content");
  // The second message is the culprit, and named so.
  json second = base();
  second["messages"].push_back({{"role", "assistant"}, {"content", {{{"type", "text"}, {"text", 3}}}}});
  refused(second, "messages[1].content[0].text");
}

TEST(AnthropicRequest, ContentBlocks) {
  refused(user_blocks({"hi"}), "messages[0].content[0]");
  refused(user_blocks({{{"text", "hi"}}}), "messages[0].content[0].type");
  refused(user_blocks({{{"type", 1}, {"text", "hi"}}}), "messages[0].content[0].type");
  refused(user_blocks({{{"type", "text"}}}), "messages[0].content[0].text");
  for (const char* type :
       {"image", "document", "search_result", "server_tool_use", "web_search_tool_result", "no_such_block"}) {
    const std::string what =
        refused(user_blocks({{{"type", "text"}, {"text", "see"}}, {{"type", type}, {"source", json::object()}}}),
                "messages[0].content[1]");
    EXPECT_NE(what.find(type), std::string::npos) << what;
    EXPECT_NE(what.find("not supported"), std::string::npos) << what;
  }
}

TEST(AnthropicRequest, ToolBlocksBelongToTheirRoles) {
  json assistant_result = base();
  assistant_result["messages"].push_back(
      {{"role", "assistant"}, {"content", {{{"type", "tool_result"}, {"tool_use_id", "t1"}, {"content", "x"}}}}});
  refused(assistant_result, "messages[1].content[0]");
  refused(user_blocks({{{"type", "tool_use"}, {"id", "t1"}, {"name", "f"}, {"input", json::object()}}}),
          "messages[0].content[0]");
  refused(user_blocks({{{"type", "thinking"}, {"thinking", "hm"}, {"signature", ""}}}), "messages[0].content[0]");
  refused(user_blocks({{{"type", "redacted_thinking"}, {"data", "x"}}}), "messages[0].content[0]");

  refused(user_blocks({{{"type", "tool_result"}, {"content", "x"}}}), "messages[0].content[0].tool_use_id");
  refused(user_blocks({{{"type", "tool_result"}, {"tool_use_id", 5}}}), "messages[0].content[0].tool_use_id");
  refused(user_blocks({{{"type", "tool_result"}, {"tool_use_id", "t"}, {"content", 5}}}),
          "messages[0].content[0].content");
  refused(user_blocks({{{"type", "tool_result"}, {"tool_use_id", "t"}, {"content", {{{"type", "image"}}}}}}),
          "messages[0].content[0].content[0]");
  refused(user_blocks({{{"type", "tool_result"}, {"tool_use_id", "t"}, {"is_error", "yes"}}}),
          "messages[0].content[0].is_error");

  auto assistant = [](json block) {
    json b = base();
    b["messages"].push_back({{"role", "assistant"}, {"content", {std::move(block)}}});
    return b;
  };
  refused(assistant({{"type", "tool_use"}, {"name", "f"}, {"input", json::object()}}), "messages[1].content[0].id");
  refused(assistant({{"type", "tool_use"}, {"id", "t"}, {"input", json::object()}}), "messages[1].content[0].name");
  refused(assistant({{"type", "tool_use"}, {"id", "t"}, {"name", "f"}}), "messages[1].content[0].input");
  refused(assistant({{"type", "tool_use"}, {"id", "t"}, {"name", "f"}, {"input", "{}"}}),
          "messages[1].content[0].input");
  refused(assistant({{"type", "thinking"}, {"signature", ""}}), "messages[1].content[0].thinking");
  refused(assistant({{"type", "thinking"}, {"thinking", "x"}, {"signature", 1}}), "messages[1].content[0].signature");
}

TEST(AnthropicRequest, StopSequences) {
  refused(with(base(), "/stop_sequences"_json_pointer, "END"), "stop_sequences");
  refused(with(base(), "/stop_sequences"_json_pointer, {"END", 3}), "stop_sequences[1]");
  refused(with(base(), "/stop_sequences"_json_pointer, {"END", ""}), "stop_sequences[1]");
  json many = json::array();
  for (int i = 0; i < 17; ++i) many.push_back("s" + std::to_string(i));
  refused(with(base(), "/stop_sequences"_json_pointer, many), "stop_sequences");
  many.erase(many.begin());  // 16: all passed through (more than OpenAI's 4)
  const AnthropicRequest r = parse(with(base(), "/stop_sequences"_json_pointer, many));
  EXPECT_EQ(r.stop_sequences.size(), 16u);
  EXPECT_EQ(json(r.openai["stop"]), many);
}

json weather_tool() {
  return {{"name", "get_weather"},
          {"description", "Weather by city"},
          {"input_schema", {{"type", "object"}, {"properties", {{"city", {{"type", "string"}}}}}}}};
}

TEST(AnthropicRequest, Tools) {
  refused(with(base(), "/tools"_json_pointer, weather_tool()), "tools");
  refused(with(base(), "/tools"_json_pointer, {"get_weather"}), "tools[0]");
  json server_tool = {{"type", "web_search_20250305"}, {"name", "web_search"}, {"max_uses", 5}};
  const std::string what = refused(with(base(), "/tools"_json_pointer, {weather_tool(), server_tool}), "tools[1].type");
  EXPECT_NE(what.find("web_search_20250305"), std::string::npos) << what;
  json custom = weather_tool();
  custom["type"] = "custom";  // a client tool spelled out
  EXPECT_NO_THROW(parse(with(base(), "/tools"_json_pointer, {custom})));
  json t = weather_tool();
  t.erase("input_schema");
  refused(with(base(), "/tools"_json_pointer, {t}), "tools[0].input_schema");
  t["input_schema"] = "object";
  refused(with(base(), "/tools"_json_pointer, {t}), "tools[0].input_schema");
  t = weather_tool();
  t.erase("name");
  refused(with(base(), "/tools"_json_pointer, {t}), "tools[0].name");
  for (const char* name : {"", "get weather", "a/b"}) {
    t["name"] = name;
    refused(with(base(), "/tools"_json_pointer, {t}), "tools[0].name");
  }
  t["name"] = std::string(65, 'a');
  refused(with(base(), "/tools"_json_pointer, {t}), "tools[0].name");
  t = weather_tool();
  t["description"] = 5;
  refused(with(base(), "/tools"_json_pointer, {t}), "tools[0].description");
  refused(with(base(), "/tools"_json_pointer, {weather_tool(), weather_tool()}), "tools[1].name");
}

TEST(AnthropicRequest, ToolChoice) {
  const json b = with(base(), "/tools"_json_pointer, {weather_tool()});
  refused(with(b, "/tool_choice"_json_pointer, "auto"), "tool_choice");
  refused(with(b, "/tool_choice"_json_pointer, json::object()), "tool_choice.type");
  refused(with(b, "/tool_choice"_json_pointer, {{"type", "required"}}), "tool_choice.type");
  refused(with(b, "/tool_choice"_json_pointer, {{"type", "tool"}}), "tool_choice.name");
  refused(with(b, "/tool_choice"_json_pointer, {{"type", "tool"}, {"name", "nope"}}), "tool_choice.name");
  refused(with(base(), "/tool_choice"_json_pointer, {{"type", "any"}}), "tool_choice");  // no tools
  refused(with(b, "/tool_choice"_json_pointer, {{"type", "auto"}, {"disable_parallel_tool_use", 1}}),
          "tool_choice.disable_parallel_tool_use");
}

TEST(AnthropicRequest, Thinking) {
  const json b = with(base(), "/max_tokens"_json_pointer, 4096);
  refused(with(b, "/thinking"_json_pointer, true), "thinking");
  refused(with(b, "/thinking"_json_pointer, {{"budget_tokens", 2048}}), "thinking.type");
  refused(with(b, "/thinking"_json_pointer, {{"type", "on"}}), "thinking.type");
  refused(with(b, "/thinking"_json_pointer, {{"type", "enabled"}}), "thinking.budget_tokens");
  const std::string what = refused(with(b, "/thinking"_json_pointer, {{"type", "enabled"}, {"budget_tokens", 1023}}),
                                   "thinking.budget_tokens");
  EXPECT_NE(what.find("1024"), std::string::npos) << what;
  refused(with(b, "/thinking"_json_pointer, {{"type", "enabled"}, {"budget_tokens", 4096}}),
          "thinking.budget_tokens");  // must be below max_tokens
  const AnthropicRequest r = parse(with(b, "/thinking"_json_pointer, {{"type", "enabled"}, {"budget_tokens", 1024}}));
  EXPECT_TRUE(r.thinking);
  EXPECT_EQ(r.thinking_budget, 1024);
}

// ---- conversion ------------------------------------------------------------------------------------------

// The converted body, key order ignored (tests of order are separate).
json converted(const json& body) { return json(parse(body).openai); }

TEST(AnthropicConvert, SystemStringAndIgnoredFields) {
  json b = base();
  b["system"] = "Be brief.";
  b["metadata"] = {{"user_id", "u1"}};
  b["service_tier"] = "auto";
  b["anthropic_beta_field"] = {1, 2};  // unknown: ignored
  b["temperature"] = 0.5;
  b["top_p"] = 0.9;
  b["top_k"] = 40;
  b["stop_sequences"] = {"END", "\n\nHuman:"};
  b["stream"] = true;
  const AnthropicRequest r = parse(b);
  EXPECT_EQ(r.model, "dsv3");
  EXPECT_EQ(r.max_tokens, 256);
  EXPECT_TRUE(r.stream);
  EXPECT_FALSE(r.thinking);
  EXPECT_EQ(r.stop_sequences, (std::vector<std::string>{"END", "\n\nHuman:"}));
  EXPECT_EQ(json(r.openai), json::parse(R"({
    "model": "dsv3",
    "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
    "max_tokens": 256, "stream": true, "stop": ["END", "\n\nHuman:"],
    "temperature": 0.5, "top_p": 0.9, "top_k": 40})"));
}

TEST(AnthropicConvert, SystemBlocks) {
  json b = base();
  b["system"] = json::parse(R"([{"type": "text", "text": "You are a coder."},
                                {"type": "text", "text": "Be terse.", "cache_control": {"type": "ephemeral"}}])");
  EXPECT_EQ(converted(b)["messages"], json::parse(R"([{"role": "system", "content": "You are a coder.\nBe terse."},
                                                      {"role": "user", "content": "hi"}])"));
  b["system"] = "";  // empty: no system message
  EXPECT_EQ(converted(b)["messages"], json::parse(R"([{"role": "user", "content": "hi"}])"));
  b["system"] = json::array();
  EXPECT_EQ(converted(b)["messages"], json::parse(R"([{"role": "user", "content": "hi"}])"));
}

TEST(AnthropicConvert, MultiTurn) {
  json b = base();
  b["messages"] = json::parse(R"([
    {"role": "user", "content": "Hello"},
    {"role": "assistant", "content": [{"type": "text", "text": "Hi! "}, {"type": "text", "text": "How can I help?"}]},
    {"role": "user", "content": [{"type": "text", "text": "<reminder>be nice</reminder>"},
                                 {"type": "text", "text": "Add 2 and 2.", "cache_control": {"type": "ephemeral"}}]},
    {"role": "assistant", "content": "The answer is ("}])");
  EXPECT_EQ(converted(b)["messages"], json::parse(R"([
    {"role": "user", "content": "Hello"},
    {"role": "assistant", "content": "Hi! \nHow can I help?"},
    {"role": "user", "content": "<reminder>be nice</reminder>\nAdd 2 and 2."},
    {"role": "assistant", "content": "The answer is ("}])"));
}

TEST(AnthropicConvert, ToolRoundTrip) {
  json b = base();
  b["tools"] = {weather_tool(), {{"name", "noop"}, {"input_schema", {{"type", "object"}}}}};
  b["messages"] = json::parse(R"([
    {"role": "user", "content": "Weather in Paris and Rome?"},
    {"role": "assistant", "content": [
      {"type": "text", "text": "Checking."},
      {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
      {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Rome"}}]},
    {"role": "user", "content": [
      {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
      {"type": "text", "text": "Also, hurry."},
      {"type": "tool_result", "tool_use_id": "toolu_2", "is_error": true,
       "content": [{"type": "text", "text": "timeout"}, {"type": "text", "text": "retry later"}]}]},
    {"role": "assistant", "content": [
      {"type": "tool_use", "id": "toolu_3", "name": "noop", "input": {}}]},
    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_3"}]}])");
  EXPECT_EQ(converted(b), json::parse(R"({
    "model": "dsv3", "max_tokens": 256, "stream": false,
    "messages": [
      {"role": "user", "content": "Weather in Paris and Rome?"},
      {"role": "assistant", "content": "Checking.", "tool_calls": [
        {"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
        {"id": "toolu_2", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}}]},
      {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
      {"role": "tool", "tool_call_id": "toolu_2", "content": "timeout\nretry later"},
      {"role": "user", "content": "Also, hurry."},
      {"role": "assistant", "content": null, "tool_calls": [
        {"id": "toolu_3", "type": "function", "function": {"name": "noop", "arguments": "{}"}}]},
      {"role": "tool", "tool_call_id": "toolu_3", "content": ""}],
    "tools": [
      {"type": "function", "function": {"name": "get_weather", "description": "Weather by city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
      {"type": "function", "function": {"name": "noop", "parameters": {"type": "object"}}}]})"));
}

TEST(AnthropicConvert, KeyOrderKept) {
  // The client's key order reaches the chat template: a tool_use input becomes arguments text as written,
  // an input_schema keeps its order.
  const std::string body = R"({"model": "m", "max_tokens": 5,
    "tools": [{"name": "f", "input_schema": {"type": "object", "required": ["z"], "properties": {"z": {}, "a": {}}}}],
    "messages": [{"role": "user", "content": "go"},
                 {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f",
                                                    "input": {"z": 1, "a": [true, null], "m": {"y": "é", "b": 2}}}]},
                 {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "ok"}]}]})";
  const AnthropicRequest r = parse_messages_request(body);
  EXPECT_EQ(r.openai["messages"][1]["tool_calls"][0]["function"]["arguments"].get<std::string>(),
            "{\"z\":1,\"a\":[true,null],\"m\":{\"y\":\"é\",\"b\":2}}");
  EXPECT_EQ(dump_ordered(r.openai["tools"][0]["function"]["parameters"]),
            R"({"type":"object","required":["z"],"properties":{"z":{},"a":{}}})");
  // The body's own keys: model, messages, max_tokens, stream, ..., tools (the order the server reads).
  std::vector<std::string> keys;
  for (const auto& [k, v] : r.openai.items()) keys.push_back(k);
  EXPECT_EQ(keys, (std::vector<std::string>{"model", "messages", "max_tokens", "stream", "tools"}));
}

TEST(AnthropicConvert, ThinkingInHistory) {
  json b = with(base(), "/max_tokens"_json_pointer, 4096);
  b["thinking"] = {{"type", "enabled"}, {"budget_tokens", 2048}};
  b["messages"] = json::parse(R"([
    {"role": "user", "content": "6 times 7?"},
    {"role": "assistant", "content": [
      {"type": "thinking", "thinking": "6*7 is 42.", "signature": ""},
      {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4a"},
      {"type": "text", "text": "42"}]},
    {"role": "user", "content": "And 6 times 8?"},
    {"role": "assistant", "content": [
      {"type": "thinking", "thinking": "48.", "signature": "c2ln"},
      {"type": "tool_use", "id": "t1", "name": "calc", "input": {"e": "6*8"}}]},
    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "48"}]}])");
  const AnthropicRequest r = parse(b);
  EXPECT_TRUE(r.thinking);
  EXPECT_EQ(r.thinking_budget, 2048);
  EXPECT_EQ(json(r.openai), json::parse(R"({
    "model": "dsv3", "max_tokens": 4096, "stream": false,
    "chat_template_kwargs": {"thinking": true},
    "messages": [
      {"role": "user", "content": "6 times 7?"},
      {"role": "assistant", "content": "42", "reasoning_content": "6*7 is 42."},
      {"role": "user", "content": "And 6 times 8?"},
      {"role": "assistant", "content": null, "reasoning_content": "48.", "tool_calls": [
        {"id": "t1", "type": "function", "function": {"name": "calc", "arguments": "{\"e\":\"6*8\"}"}}]},
      {"role": "tool", "tool_call_id": "t1", "content": "48"}]})"));

  b["thinking"] = {{"type", "disabled"}};
  const AnthropicRequest off = parse(b);
  EXPECT_FALSE(off.thinking);
  EXPECT_EQ(json(off.openai["chat_template_kwargs"]), json::parse(R"({"thinking": false})"));
  b["thinking"] = {{"type", "adaptive"}};
  EXPECT_EQ(json(parse(b).openai["chat_template_kwargs"]), json::parse(R"({"thinking": true})"));
  b.erase("thinking");  // absent: the server's default, nothing sent
  EXPECT_FALSE(converted(b).contains("chat_template_kwargs"));
}

TEST(AnthropicConvert, ToolChoiceVariants) {
  const json b = with(base(), "/tools"_json_pointer, {weather_tool()});
  auto choice = [&](const char* tc) {
    json out = converted(with(b, "/tool_choice"_json_pointer, json::parse(tc)));
    out.erase("model");
    out.erase("messages");
    out.erase("max_tokens");
    out.erase("stream");
    out.erase("tools");
    return out;
  };
  EXPECT_EQ(choice(R"({"type": "auto"})"), json::parse(R"({"tool_choice": "auto"})"));
  EXPECT_EQ(choice(R"({"type": "any"})"), json::parse(R"({"tool_choice": "required"})"));
  EXPECT_EQ(choice(R"({"type": "none"})"), json::parse(R"({"tool_choice": "none"})"));
  EXPECT_EQ(choice(R"({"type": "tool", "name": "get_weather"})"),
            json::parse(R"({"tool_choice": {"type": "function", "function": {"name": "get_weather"}}})"));
  EXPECT_EQ(choice(R"({"type": "any", "disable_parallel_tool_use": true})"),
            json::parse(R"({"tool_choice": "required", "parallel_tool_calls": false})"));
  EXPECT_EQ(choice(R"({"type": "auto", "disable_parallel_tool_use": false})"),
            json::parse(R"({"tool_choice": "auto"})"));
  EXPECT_FALSE(converted(b).contains("tool_choice"));  // absent: the server's default (auto with tools)
  EXPECT_FALSE(converted(with(base(), "/tools"_json_pointer, json::array())).contains("tools"));
}

// ---- errors ------------------------------------------------------------------------------------------------

TEST(AnthropicError, TypesByStatus) {
  const std::vector<std::pair<int, const char*>> cases = {{400, "invalid_request_error"},
                                                          {401, "authentication_error"},
                                                          {403, "permission_error"},
                                                          {404, "not_found_error"},
                                                          {413, "request_too_large"},
                                                          {429, "rate_limit_error"},
                                                          {500, "api_error"},
                                                          {503, "overloaded_error"},
                                                          {529, "overloaded_error"},
                                                          {422, "invalid_request_error"},
                                                          {502, "api_error"}};
  for (const auto& [status, type] : cases) {
    const ApiError e(status, "something went wrong", "server_error", "p");
    EXPECT_EQ(anthropic_error_json(e),
              (json{{"type", "error"}, {"error", {{"type", type}, {"message", "something went wrong"}}}}))
        << status;
  }
}

TEST(AnthropicError, ValidationMessageNamesTheField) {
  try {
    parse_messages_request(R"({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [
                              {"type": "tool_result", "content": "x"}]}]})");
    FAIL();
  } catch (const ApiError& e) {
    const json j = anthropic_error_json(e);
    EXPECT_EQ(j["error"]["type"], "invalid_request_error");
    EXPECT_NE(j["error"]["message"].get<std::string>().find("messages[0].content[0].tool_use_id"), std::string::npos)
        << j;
  }
}

// ---- responses ---------------------------------------------------------------------------------------------

const ResponseMeta kMeta{.id = "msg_0123456789abcdef01234567", .model = "dsv3", .created = 0};

json response(const std::string& reasoning, const std::string& content, const std::vector<ToolCallOut>& calls,
              const MessagesEnd& end) {
  return json(messages_response(kMeta, reasoning, content, calls, end));
}

TEST(AnthropicResponse, Text) {
  EXPECT_EQ(response("", "Hello!", {}, {.finish = runtime::FinishReason::Stop, .input_tokens = 12, .output_tokens = 3}),
            json::parse(R"({"id": "msg_0123456789abcdef01234567", "type": "message", "role": "assistant",
                            "model": "dsv3", "content": [{"type": "text", "text": "Hello!"}],
                            "stop_reason": "end_turn", "stop_sequence": null,
                            "usage": {"input_tokens": 12, "output_tokens": 3}})"));
  // Nothing generated: no blocks.
  EXPECT_EQ(response("", "", {}, {})["content"], json::array());
}

TEST(AnthropicResponse, ThinkingAndText) {
  const json r = response("Think.", "Answer.", {}, {.input_tokens = 1, .output_tokens = 2});
  EXPECT_EQ(r["content"], json::parse(R"([{"type": "thinking", "thinking": "Think.", "signature": ""},
                                          {"type": "text", "text": "Answer."}])"));
  EXPECT_EQ(r["stop_reason"], "end_turn");
}

TEST(AnthropicResponse, ToolUse) {
  const std::vector<ToolCallOut> calls = {{"call_a", "get_weather", R"({"city": "Paris"})"}, {"call_b", "noop", "{}"}};
  const json r = response("", "Checking.", calls, {.input_tokens = 5, .output_tokens = 9});
  EXPECT_EQ(r["content"], json::parse(R"([{"type": "text", "text": "Checking."},
    {"type": "tool_use", "id": "call_a", "name": "get_weather", "input": {"city": "Paris"}},
    {"type": "tool_use", "id": "call_b", "name": "noop", "input": {}}])"));
  EXPECT_EQ(r["stop_reason"], "tool_use");
  EXPECT_EQ(r["stop_sequence"], nullptr);
  // The input object keeps the model's key order on the wire.
  const ojson o = messages_response(kMeta, "", "", {{"c", "f", R"({"z": 1, "a": 2})"}}, {});
  EXPECT_EQ(dump_ordered(o["content"][0]["input"]), R"({"z":1,"a":2})");
}

TEST(AnthropicResponse, ArgumentsThatAreNotAnObject) {
  // Cut off, or an array: the block stays a tool_use with input {}, the raw text follows as text.
  const std::vector<ToolCallOut> calls = {{"call_a", "f", R"({"city": "Par)"}, {"call_b", "g", "[1, 2]"}};
  const json r = response("", "", calls, {.finish = runtime::FinishReason::Length});
  EXPECT_EQ(r["content"], json::parse(R"([
    {"type": "tool_use", "id": "call_a", "name": "f", "input": {}}, {"type": "text", "text": "{\"city\": \"Par"},
    {"type": "tool_use", "id": "call_b", "name": "g", "input": {}}, {"type": "text", "text": "[1, 2]"}])"));
  // Arguments nested past the depth limit are not built either.
  const std::string deep = "{\"a\":" + std::string(200, '[') + std::string(200, ']') + "}";
  EXPECT_EQ(response("", "", {{"c", "f", deep}}, {})["content"][0]["input"], json::object());
}

TEST(AnthropicResponse, StopReasons) {
  const std::vector<ToolCallOut> call = {{"c", "f", "{}"}};
  const MessagesEnd length{.finish = runtime::FinishReason::Length};
  const MessagesEnd stop{.finish = runtime::FinishReason::Stop, .matched_stop = "END"};
  EXPECT_EQ(response("", "abc", {}, length)["stop_reason"], "max_tokens");
  EXPECT_EQ(response("", "abc", call, length)["stop_reason"], "max_tokens");  // the limit ended it
  const json s = response("", "abc", {}, stop);
  EXPECT_EQ(s["stop_reason"], "stop_sequence");
  EXPECT_EQ(s["stop_sequence"], "END");
  EXPECT_EQ(response("", "", call, stop)["stop_reason"], "tool_use");
  EXPECT_STREQ(messages_stop_reason({}, false), "end_turn");
}

// ---- streaming ---------------------------------------------------------------------------------------------

struct Event {
  std::string name;
  json data;
};

// Server-sent events as the SDK's decoder splits them: blocks separated by a blank line, "event:" and
// "data:" lines in each. Every event's data "type" equals its event name.
std::vector<Event> parse_sse(const std::string& text) {
  std::vector<Event> events;
  size_t at = 0;
  while (at < text.size()) {
    const size_t end = text.find("\n\n", at);
    EXPECT_NE(end, std::string::npos) << "unterminated event: " << text.substr(at);
    if (end == std::string::npos) break;
    const std::string block = text.substr(at, end - at);
    at = end + 2;
    const size_t nl = block.find('\n');
    EXPECT_EQ(block.rfind("event: ", 0), 0u) << block;
    EXPECT_NE(nl, std::string::npos) << block;
    if (nl == std::string::npos) continue;
    EXPECT_EQ(block.compare(nl + 1, 6, "data: "), 0) << block;
    Event e{block.substr(7, nl - 7), json::parse(block.substr(nl + 7))};
    EXPECT_EQ(e.data["type"], e.name) << block;
    events.push_back(std::move(e));
  }
  return events;
}

OutputDelta reasoning(std::string s) { return {.reasoning = std::move(s)}; }
OutputDelta content(std::string s) { return {.content = std::move(s)}; }
OutputDelta call(int index, std::string id, std::string name, std::string args) {
  return {.tool_calls = {{.index = index, .id = std::move(id), .name = std::move(name), .arguments = std::move(args)}}};
}

json start_event(int64_t input_tokens) {
  return {{"type", "message_start"},
          {"message",
           {{"id", kMeta.id},
            {"type", "message"},
            {"role", "assistant"},
            {"model", "dsv3"},
            {"content", json::array()},
            {"stop_reason", nullptr},
            {"stop_sequence", nullptr},
            {"usage", {{"input_tokens", input_tokens}, {"output_tokens", 0}}}}}};
}
json block_start(int i, json block) {
  return {{"type", "content_block_start"}, {"index", i}, {"content_block", block}};
}
json block_delta(int i, json delta) { return {{"type", "content_block_delta"}, {"index", i}, {"delta", delta}}; }
json block_stop(int i) { return {{"type", "content_block_stop"}, {"index", i}}; }
json message_delta(const char* stop_reason, json stop_sequence, int64_t output_tokens) {
  return {{"type", "message_delta"},
          {"delta", {{"stop_reason", stop_reason}, {"stop_sequence", stop_sequence}}},
          {"usage", {{"output_tokens", output_tokens}}}};
}

// What @anthropic-ai/sdk's MessageStream builds from the events (#accumulateMessage): the message from
// message_start, blocks pushed at content_block_start, text / thinking / signature deltas added to the
// block at `index`, input_json_delta pieces concatenated and parsed at the end, message_delta's fields.
json accumulate(const std::vector<Event>& events) {
  json m;
  std::vector<std::string> json_buf;
  for (const Event& e : events) {
    const json& d = e.data;
    if (e.name == "message_start") {
      m = d["message"];
    } else if (e.name == "content_block_start") {
      EXPECT_EQ(d["index"], m["content"].size());
      m["content"].push_back(d["content_block"]);
      json_buf.emplace_back();
    } else if (e.name == "content_block_delta") {
      json& b = m["content"][d["index"].get<size_t>()];
      const json& x = d["delta"];
      if (x["type"] == "text_delta") b["text"] = b["text"].get<std::string>() + x["text"].get<std::string>();
      if (x["type"] == "thinking_delta")
        b["thinking"] = b["thinking"].get<std::string>() + x["thinking"].get<std::string>();
      if (x["type"] == "signature_delta") b["signature"] = x["signature"];
      if (x["type"] == "input_json_delta") json_buf[d["index"].get<size_t>()] += x["partial_json"].get<std::string>();
    } else if (e.name == "content_block_stop") {
      const size_t i = d["index"].get<size_t>();
      if (m["content"][i]["type"] == "tool_use" && !json_buf[i].empty())
        m["content"][i]["input"] = json::parse(json_buf[i]);
    } else if (e.name == "message_delta") {
      m["stop_reason"] = d["delta"]["stop_reason"];
      m["stop_sequence"] = d["delta"]["stop_sequence"];
      m["usage"]["output_tokens"] = d["usage"]["output_tokens"];
    }
  }
  return m;
}

TEST(AnthropicStream, ReasoningTextAndTwoToolCalls) {
  MessagesStream s(kMeta, 11);
  std::string wire = s.start();
  EXPECT_EQ(s.start(), "");  // once
  const std::vector<OutputDelta> deltas = {reasoning("Let me "),
                                           reasoning("think."),
                                           content("The answer"),
                                           {},  // an empty piece opens nothing
                                           content(" is 42."),
                                           call(0, "call_a", "get_weather", R"({"city":)"),
                                           call(0, "", "", R"( "Paris"})"),
                                           call(1, "call_b", "noop", ""),
                                           call(1, "", "", "{}")};
  for (const OutputDelta& d : deltas) wire += s.feed(d);
  const MessagesEnd end{.finish = runtime::FinishReason::Stop, .input_tokens = 11, .output_tokens = 30};
  wire += s.finish(end);
  EXPECT_EQ(s.finish(end), "");
  EXPECT_EQ(s.feed(content("late")), "");

  const std::vector<Event> ev = parse_sse(wire);
  const std::vector<json> expected = {
      start_event(11),
      {{"type", "ping"}},
      block_start(0, {{"type", "thinking"}, {"thinking", ""}, {"signature", ""}}),
      block_delta(0, {{"type", "thinking_delta"}, {"thinking", "Let me "}}),
      block_delta(0, {{"type", "thinking_delta"}, {"thinking", "think."}}),
      block_delta(0, {{"type", "signature_delta"}, {"signature", ""}}),
      block_stop(0),
      block_start(1, {{"type", "text"}, {"text", ""}}),
      block_delta(1, {{"type", "text_delta"}, {"text", "The answer"}}),
      block_delta(1, {{"type", "text_delta"}, {"text", " is 42."}}),
      block_stop(1),
      block_start(2, {{"type", "tool_use"}, {"id", "call_a"}, {"name", "get_weather"}, {"input", json::object()}}),
      block_delta(2, {{"type", "input_json_delta"}, {"partial_json", R"({"city":)"}}),
      block_delta(2, {{"type", "input_json_delta"}, {"partial_json", R"( "Paris"})"}}),
      block_stop(2),
      block_start(3, {{"type", "tool_use"}, {"id", "call_b"}, {"name", "noop"}, {"input", json::object()}}),
      block_delta(3, {{"type", "input_json_delta"}, {"partial_json", "{}"}}),
      block_stop(3),
      message_delta("tool_use", nullptr, 30),
      {{"type", "message_stop"}}};
  ASSERT_EQ(ev.size(), expected.size()) << wire;
  for (size_t i = 0; i < ev.size(); ++i) EXPECT_EQ(ev[i].data, expected[i]) << "event " << i;
  // Wire format of one event, byte for byte.
  EXPECT_EQ(wire.substr(0, wire.find("\n\n") + 2).substr(0, 29), "event: message_start\ndata: {\"");

  // What the SDK accumulates equals the non-streaming response for the same output.
  const std::vector<ToolCallOut> calls = {{"call_a", "get_weather", R"({"city": "Paris"})"}, {"call_b", "noop", "{}"}};
  EXPECT_EQ(accumulate(ev), response("Let me think.", "The answer is 42.", calls, end));
}

TEST(AnthropicStream, OneDeltaWithSeveralKinds) {
  MessagesStream s(kMeta, 2);
  OutputDelta d{
      .reasoning = "r", .content = "c", .tool_calls = {{.index = 0, .id = "id0", .name = "f", .arguments = "{}"}}};
  std::string wire = s.feed(d);  // feed starts the message
  wire += s.finish({.matched_stop = "", .output_tokens = 4});
  const std::vector<Event> ev = parse_sse(wire);
  std::vector<std::string> names;
  for (const Event& e : ev) names.push_back(e.name);
  EXPECT_EQ(names,
            (std::vector<std::string>{"message_start", "ping", "content_block_start", "content_block_delta",
                                      "content_block_delta", "content_block_stop", "content_block_start",
                                      "content_block_delta", "content_block_stop", "content_block_start",
                                      "content_block_delta", "content_block_stop", "message_delta", "message_stop"}));
  EXPECT_EQ(accumulate(ev), response("r", "c", {{"id0", "f", "{}"}}, {.input_tokens = 2, .output_tokens = 4}));
}

TEST(AnthropicStream, TextWithStopSequenceAndMaxTokens) {
  {
    MessagesStream s(kMeta, 3);
    std::string wire = s.start();  // (one call per statement: the order of a + b's operands is unspecified)
    wire += s.feed(content("a"));
    wire += s.finish({.matched_stop = "END", .output_tokens = 1});
    const std::vector<Event> ev = parse_sse(wire);
    ASSERT_EQ(ev.size(), 7u);
    EXPECT_EQ(ev[5].data, message_delta("stop_sequence", "END", 1));
    EXPECT_EQ(accumulate(ev), response("", "a", {}, {.matched_stop = "END", .input_tokens = 3, .output_tokens = 1}));
  }
  {
    MessagesStream s(kMeta, 3);
    std::string wire = s.feed(reasoning("cut"));
    wire += s.finish({.finish = runtime::FinishReason::Length, .output_tokens = 8});
    const std::vector<Event> ev = parse_sse(wire);
    ASSERT_EQ(ev.size(), 8u);  // start, ping, block start, delta, signature, stop, message_delta, message_stop
    EXPECT_EQ(ev[6].data, message_delta("max_tokens", nullptr, 8));
  }
}

TEST(AnthropicStream, NothingGenerated) {
  MessagesStream s(kMeta, 4);
  const std::vector<Event> ev = parse_sse(s.finish({.output_tokens = 0}));
  ASSERT_EQ(ev.size(), 4u);
  EXPECT_EQ(ev[0].data, start_event(4));
  EXPECT_EQ(ev[2].data, message_delta("end_turn", nullptr, 0));
  EXPECT_EQ(accumulate(ev), response("", "", {}, {.input_tokens = 4}));
}

TEST(AnthropicStream, ErrorMidStream) {
  MessagesStream s(kMeta, 4);
  std::string wire = s.start();
  wire += s.feed(content("par"));
  wire += s.error(ApiError(500, "generation failed: boom", "server_error"));
  EXPECT_EQ(s.finish({}), "");  // the stream has ended
  EXPECT_EQ(s.error(ApiError(500, "again")), "");
  const std::vector<Event> ev = parse_sse(wire);
  ASSERT_EQ(ev.size(), 5u);
  EXPECT_EQ(ev.back().name, "error");
  EXPECT_EQ(ev.back().data, json::parse(R"({"type": "error", "error": {"type": "api_error",
                                                                        "message": "generation failed: boom"}})"));
}

}  // namespace
}  // namespace dsv3::server
