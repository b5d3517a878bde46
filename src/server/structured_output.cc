#include "server/structured_output.h"

#include <fmt/format.h>

#include <algorithm>
#include <vector>

#include "core/error.h"

namespace dsv3::server {

namespace {

using grammar::Grammar;
using ojson = nlohmann::ordered_json;

Grammar lit(std::string s) { return Grammar::literal(std::move(s)); }

Grammar seq(std::vector<Grammar> parts) { return Grammar::sequence(std::move(parts)); }

// A schema compiled for a field of the request; the compiler's message (which names the keyword and its
// path inside the schema) becomes a 400 naming the field.
Grammar compile(const ojson& schema, const std::string& param) {
  try {
    return Grammar::json_schema(schema);
  } catch (const Error& e) {
    throw ApiError(400, fmt::format("{}: {}", param, e.what()), "invalid_request_error", param,
                   "unsupported_json_schema");
  }
}

const ojson& parameters_of(const ojson& tool) {
  static const ojson any_object = ojson{{"type", "object"}};
  const ojson& f = tool.at("function");
  auto it = f.find("parameters");
  return it == f.end() || it->is_null() ? any_object : *it;
}

// DSML: one parameter line per property (required ones always, optional ones may be left out), in the
// order of `properties`, each value as JSON.
Grammar dsml_parameters(const ojson& schema, const std::string& param) {
  const std::string dsml = "｜DSML｜";
  std::vector<Grammar> lines;
  auto props = schema.find("properties");
  std::vector<std::string> required;
  if (auto r = schema.find("required"); r != schema.end() && r->is_array())
    for (const ojson& n : *r)
      if (n.is_string()) required.push_back(n.get<std::string>());
  auto is_required = [&](const std::string& k) {
    return std::find(required.begin(), required.end(), k) != required.end();
  };
  if (props != schema.end() && props->is_object()) {
    for (const auto& [key, sub] : props->items()) {
      if (key.empty() || key.find_first_of("\"<>\n") != std::string::npos)
        throw ApiError(400, fmt::format("{}: the property name '{}' cannot be written as a DSML parameter", param, key),
                       "invalid_request_error", param, "unsupported_json_schema");
      Grammar line =
          seq({lit(fmt::format("<{}parameter name=\"{}\" string=\"false\">", dsml, key)),
               compile(sub, fmt::format("{}.properties.{}", param, key)), lit(fmt::format("</{}parameter>\n", dsml))});
      lines.push_back(is_required(key) ? std::move(line) : Grammar::repeat(std::move(line), 0, 1, lit("")));
    }
  }
  for (const std::string& k : required)
    if (props == schema.end() || !props->is_object() || !props->contains(k))
      throw ApiError(400,
                     fmt::format("{}: requires '{}', which its 'properties' do not describe (DSML tool calls name "
                                 "each parameter)",
                                 param, k),
                     "invalid_request_error", param, "unsupported_json_schema");
  if (lines.empty()) return lit("");
  return seq(std::move(lines));
}

// One call of `tool` (its index among the calls for Kimi-K2's id is free: 0..kMaxForcedCalls-1).
Grammar one_call(ToolCallFormat format, const ojson& tool, size_t i) {
  const std::string name = tool.at("function").at("name").get<std::string>();
  const std::string param = fmt::format("tools[{}].function.parameters", i);
  switch (format) {
    case ToolCallFormat::kDeepSeekV3:
      return seq({lit("<｜tool▁call▁begin｜>function<｜tool▁sep｜>" + name + "\n```json\n"),
                  compile(parameters_of(tool), param), lit("\n```<｜tool▁call▁end｜>")});
    case ToolCallFormat::kDeepSeekV31:
      return seq({lit("<｜tool▁call▁begin｜>" + name + "<｜tool▁sep｜>"), compile(parameters_of(tool), param),
                  lit("<｜tool▁call▁end｜>")});
    case ToolCallFormat::kDeepSeekV32:
      return seq({lit("<｜DSML｜invoke name=\"" + name + "\">\n"), dsml_parameters(parameters_of(tool), param),
                  lit("</｜DSML｜invoke>")});
    case ToolCallFormat::kKimiK2: {
      std::vector<Grammar> ids;
      for (int64_t k = 0; k < kMaxForcedCalls; ++k) ids.push_back(lit(std::to_string(k)));
      return seq({lit("<|tool_call_begin|>functions." + name + ":"), Grammar::choice(std::move(ids)),
                  lit("<|tool_call_argument_begin|>"), compile(parameters_of(tool), param), lit("<|tool_call_end|>")});
    }
    case ToolCallFormat::kNone:
      break;
  }
  fail("one_call: no tool-call format");
}

}  // namespace

Grammar tool_call_grammar(ToolCallFormat format, const ojson& tools, const std::string& name, bool parallel) {
  std::vector<Grammar> calls;
  for (size_t i = 0; i < tools.size(); ++i)
    if (name.empty() || tools[i].at("function").at("name") == name) calls.push_back(one_call(format, tools[i], i));
  if (calls.empty()) fail("tool_call_grammar: no tool named '{}'", name);
  Grammar call = calls.size() == 1 ? std::move(calls.front()) : Grammar::choice(std::move(calls));
  const int64_t most = parallel ? kMaxForcedCalls : 1;
  switch (format) {
    case ToolCallFormat::kDeepSeekV3:
      return seq({lit("<｜tool▁calls▁begin｜>"), Grammar::repeat(std::move(call), 1, most, lit("\n")),
                  lit("<｜tool▁calls▁end｜>")});
    case ToolCallFormat::kDeepSeekV31:
      return seq({lit("<｜tool▁calls▁begin｜>"), Grammar::repeat(std::move(call), 1, most, lit("")),
                  lit("<｜tool▁calls▁end｜>")});
    case ToolCallFormat::kDeepSeekV32:
      return seq({lit("\n\n<｜DSML｜function_calls>\n"), Grammar::repeat(std::move(call), 1, most, lit("\n")),
                  lit("\n</｜DSML｜function_calls>")});
    case ToolCallFormat::kKimiK2:
      return seq({lit("<|tool_calls_section_begin|>"), Grammar::repeat(std::move(call), 1, most, lit("")),
                  lit("<|tool_calls_section_end|>")});
    case ToolCallFormat::kNone:
      break;
  }
  fail("tool_call_grammar: no tool-call format");
}

std::shared_ptr<const Grammar> request_grammar(const ApiRequest& r, ToolCallFormat format) {
  if (r.endpoint == Endpoint::Chat && (r.tool_choice == "required" || r.tool_choice == "function")) {
    if (format == ToolCallFormat::kNone)
      throw ApiError(400,
                     fmt::format("tool_choice '{}' forces a tool call, but this server's chat template has no "
                                 "tool-call format (see dsv3 serve --tool-call-format)",
                                 r.tool_choice),
                     "invalid_request_error", "tool_choice");
    return std::make_shared<const Grammar>(
        tool_call_grammar(format, r.tools, r.tool_choice_name, r.parallel_tool_calls));
  }
  switch (r.response_format) {
    case ResponseFormat::kText:
      return nullptr;
    case ResponseFormat::kJsonObject:
      return std::make_shared<const Grammar>(Grammar::json_object());
    case ResponseFormat::kJsonSchema:
      return std::make_shared<const Grammar>(compile(r.json_schema, "response_format.json_schema.schema"));
  }
  return nullptr;
}

}  // namespace dsv3::server
