// DeepSeek-V3.2's encode_messages (encoding/encoding_dsv32.py of deepseek-ai/DeepSeek-V3.2), rule for rule;
// the header lists the format, the request mapping and what differs. Python's truthiness decides wherever
// the reference writes `if x:` / `x or ""` (an empty string, list or object counts as absent).
#include "io/dsv32_encoding.h"

#include <optional>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "io/jinja/py_json.h"

namespace dsv3::io {
namespace {

using Json = nlohmann::ordered_json;

// The format's markers and fixed texts (data the format requires, spelled as the reference spells them).
constexpr std::string_view kBos = "<｜begin▁of▁sentence｜>";
constexpr std::string_view kEos = "<｜end▁of▁sentence｜>";
constexpr std::string_view kUser = "<｜User｜>";
constexpr std::string_view kAssistant = "<｜Assistant｜>";
constexpr std::string_view kThinkStart = "<think>";
constexpr std::string_view kThinkEnd = "</think>";
constexpr std::string_view kDsml = "｜DSML｜";

// The reference's TOOLS_SYSTEM_TEMPLATE with its tokens filled in; the schemas go between the two parts.
constexpr std::string_view kToolsHead =
    "## Tools\n"
    "\n"
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
    "</｜DSML｜function_calls>\n"
    "\n"
    "String and scalar parameters should be specified as is without any escaping or quotes, while lists and "
    "objects should use JSON format. The \"string\" attribute should be set to \"true\" for string type "
    "parameters and \"false\" for other types (numbers, booleans, arrays, objects).\n"
    "\n"
    "If the thinking_mode is enabled, then after function results you should strongly consider outputting a "
    "thinking block. Here is an example:\n"
    "\n"
    "<｜DSML｜function_calls>\n"
    "...\n"
    "</｜DSML｜function_calls>\n"
    "\n"
    "<function_results>\n"
    "...\n"
    "</function_results>\n"
    "\n"
    "<think>...thinking about results</think>\n"
    "\n"
    "Here are the functions available in JSONSchema format:\n"
    "<functions>\n";
constexpr std::string_view kToolsTail = "\n</functions>\n";
constexpr std::string_view kResponseFormatHead =
    "## Response Format:\n\nYou MUST strictly adhere to the following schema to reply:\n";
constexpr std::string_view kDeveloperUserPrefix = "\n\n# The user's message is: ";

// Python's bool(x) for a JSON value.
bool truthy(const Json& v) {
  switch (v.type()) {
    case Json::value_t::null:
      return false;
    case Json::value_t::boolean:
      return v.get<bool>();
    case Json::value_t::number_integer:
      return v.get<int64_t>() != 0;
    case Json::value_t::number_unsigned:
      return v.get<uint64_t>() != 0;
    case Json::value_t::number_float:
      return v.get<double>() != 0.0;
    case Json::value_t::string:
    case Json::value_t::array:
    case Json::value_t::object:
      return !v.empty();
    default:
      return true;
  }
}

std::string to_json(const Json& v) { return jinja::py_json_dumps(v); }  // json.dumps(v, ensure_ascii=False)

struct ToolCall {
  std::string name;
  Json arguments;  // a JSON object, in its key order
};

// One message as the reference reads it (msg.get(...) of each field), after our request mapping.
struct Message {
  std::string where;                   // "messages[3]" (the caller's index), or "tools" for the one we add
  std::string role;                    // "" when absent or not a string (an unknown role)
  std::optional<std::string> content;  // nullopt: null or absent
  Json tools = Json::array();          // OpenAI tools carried by this message
  Json response_format;                // null when absent
  std::optional<std::string> reasoning;
  std::vector<ToolCall> tool_calls;
};

std::optional<std::string> content_text(const Json& content, const std::string& where) {
  if (content.is_null()) return std::nullopt;
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) fail("{}.content: expected a string, null or an array of text parts", where);
  std::string text;
  for (size_t i = 0; i < content.size(); ++i) {
    const Json& part = content[i];
    if (!part.is_object() || part.value("type", Json()) != "text" || !part.contains("text") ||
        !part["text"].is_string()) {
      fail("{}.content[{}]: expected a text part {{\"type\": \"text\", \"text\": \"...\"}}", where, i);
    }
    if (i > 0) text += '\n';
    text += part["text"].get<std::string>();
  }
  return text;
}

ToolCall tool_call_of(const Json& call, const std::string& where) {
  if (!call.is_object()) fail("{}: expected an object", where);
  if (!call.contains("function") || !call["function"].is_object()) fail("{}.function: missing", where);
  const Json& f = call["function"];
  if (!f.contains("name")) fail("{}.function.name: missing", where);
  if (!f["name"].is_string()) fail("{}.function.name: expected a string", where);
  if (!f.contains("arguments")) fail("{}.function.arguments: missing", where);
  ToolCall out{f["name"].get<std::string>(), Json()};
  const Json& args = f["arguments"];
  if (args.is_string()) {  // json.loads(arguments)
    try {
      out.arguments = Json::parse(args.get<std::string>());
    } catch (const Json::exception& e) {
      fail("{}.function.arguments: not valid JSON ({})", where, e.what());
    }
  } else {
    out.arguments = args;
  }
  // The reference iterates arguments.items(): only an object has them.
  if (!out.arguments.is_object()) fail("{}.function.arguments: expected a JSON object", where);
  return out;
}

Message message_of(const Json& m, const std::string& where) {
  if (!m.is_object()) fail("{}: expected an object", where);
  Message out;
  out.where = where;
  if (m.contains("role") && m["role"].is_string()) out.role = m["role"].get<std::string>();
  if (m.contains("content")) out.content = content_text(m["content"], where);
  if (m.contains("tools") && !m["tools"].is_null()) {
    if (!m["tools"].is_array()) fail("{}.tools: expected an array", where);
    out.tools = m["tools"];
    // tools_from_openai_format reads tool["function"] of every message's tools, whatever the role.
    for (size_t i = 0; i < out.tools.size(); ++i) {
      if (!out.tools[i].is_object() || !out.tools[i].contains("function")) {
        fail("{}.tools[{}].function: missing", where, i);
      }
    }
  }
  if (m.contains("response_format")) out.response_format = m["response_format"];
  const char* reasoning_key = m.contains("reasoning_content") ? "reasoning_content" : "reasoning";
  if (m.contains(reasoning_key) && !m[reasoning_key].is_null()) {
    if (!m[reasoning_key].is_string()) fail("{}.{}: expected a string", where, reasoning_key);
    out.reasoning = m[reasoning_key].get<std::string>();
  }
  if (m.contains("tool_calls") && !m["tool_calls"].is_null()) {
    const Json& calls = m["tool_calls"];
    if (!calls.is_array()) fail("{}.tool_calls: expected an array", where);
    for (size_t i = 0; i < calls.size(); ++i) {
      out.tool_calls.push_back(tool_call_of(calls[i], fmt::format("{}.tool_calls[{}]", where, i)));
    }
  }
  return out;
}

// render_tools: the template around the tools' "function" objects, one json.dumps per line.
std::string render_tools(const Json& tools, const std::string& where) {
  std::string out(kToolsHead);
  for (size_t i = 0; i < tools.size(); ++i) {
    const Json& tool = tools[i];
    if (!tool.is_object() || !tool.contains("function")) fail("{}[{}].function: missing", where, i);
    if (i > 0) out += '\n';
    out += to_json(tool["function"]);
  }
  out += kToolsTail;
  return out;
}

// The tools block and the response format, each after "\n\n", as system and developer messages add them.
std::string render_extras(const Message& m) {
  std::string out;
  if (!m.tools.empty()) out += "\n\n" + render_tools(m.tools, m.where + ".tools");
  if (truthy(m.response_format)) {
    out += "\n\n";
    out += kResponseFormatHead;
    out += to_json(m.response_format);
  }
  return out;
}

// encode_arguments_to_dsml: one parameter line per argument, in the arguments' key order.
std::string render_arguments(const Json& arguments) {
  std::string out;
  bool first = true;
  for (const auto& [key, value] : arguments.items()) {
    if (!first) out += '\n';
    first = false;
    const bool is_string = value.is_string();
    out += fmt::format("<{}parameter name=\"{}\" string=\"{}\">{}</{}parameter>", kDsml, key,
                       is_string ? "true" : "false", is_string ? value.get<std::string>() : to_json(value), kDsml);
  }
  return out;
}

std::string render_tool_calls(const std::vector<ToolCall>& calls) {
  std::string out = fmt::format("\n\n<{}function_calls>\n", kDsml);
  for (size_t i = 0; i < calls.size(); ++i) {
    if (i > 0) out += '\n';
    out += fmt::format("<{}invoke name=\"{}\">\n{}\n</{}invoke>", kDsml, calls[i].name,
                       render_arguments(calls[i].arguments), kDsml);
  }
  out += fmt::format("\n</{}function_calls>", kDsml);
  return out;
}

class Encoder {
 public:
  Encoder(std::vector<Message> messages, const Dsv32EncodeOptions& options)
      : msgs_(std::move(messages)), options_(options) {
    for (size_t i = msgs_.size(); i-- > 0;) {
      if (msgs_[i].role == "user" || msgs_[i].role == "developer") {
        last_user_ = static_cast<long>(i);
        break;
      }
    }
  }

  std::string encode() {
    // drop_thinking_messages keeps user, system and tool messages and everything from the last user turn
    // on, and strips the reasoning of earlier assistant messages (which render_message would not show
    // anyway); any other earlier message is dropped, and encode_messages then indexes past the shortened
    // list and fails.
    if (options_.thinking && options_.drop_thinking) {
      for (long i = 0; i < last_user_; ++i) {
        const std::string& role = msgs_[i].role;
        if (role == "developer") {
          fail(
              "{}: a developer message before the last user message cannot be encoded in thinking mode with "
              "drop_thinking (the reference drops it and then fails)",
              msgs_[i].where);
        }
        if (role != "user" && role != "system" && role != "tool" && role != "assistant") unknown_role(msgs_[i]);
      }
    }
    std::string prompt = options_.add_bos ? std::string(kBos) : std::string();
    for (size_t i = 0; i < msgs_.size(); ++i) prompt += render(i);
    return prompt;
  }

 private:
  [[noreturn]] static void unknown_role(const Message& m) {
    fail("{}.role: unknown role \"{}\" (expected system, developer, user, assistant or tool)", m.where, m.role);
  }

  bool opener(size_t index) const { return options_.add_generation_prompt || index + 1 != msgs_.size(); }

  // "<think>" where the model is to reason next, "</think>" where it is not.
  std::string_view think_marker(bool open) const { return options_.thinking && open ? kThinkStart : kThinkEnd; }

  const std::string& required_content(const Message& m) const {
    if (!m.content) fail("{}.content: missing (a {} message needs its text)", m.where, m.role);
    return *m.content;
  }

  std::string render(size_t index) const {
    const Message& m = msgs_[index];
    const long idx = static_cast<long>(index);
    std::string out;
    if (m.role == "system") {
      out += m.content.value_or("");
      out += render_extras(m);
    } else if (m.role == "developer") {
      if (!m.content || m.content->empty()) fail("{}.content: a developer message needs non-empty content", m.where);
      out += kUser;
      out += render_extras(m);
      out += kDeveloperUserPrefix;
      out += *m.content;
      if (opener(index)) {
        out += kAssistant;
        out += think_marker(idx == last_user_);
      }
    } else if (m.role == "user") {
      out += kUser;
      out += required_content(m);
      if (opener(index)) {
        out += kAssistant;
        out += think_marker(idx == last_user_);
      }
    } else if (m.role == "tool") {
      out += render_tool_result(index);
    } else if (m.role == "assistant") {
      if (options_.thinking && idx > last_user_) {
        if (m.reasoning.value_or("").empty() && m.tool_calls.empty()) {
          fail(
              "{}: in thinking mode an assistant message after the last user message needs reasoning_content "
              "or tool_calls",
              m.where);
        }
        out += m.reasoning.value_or("");
        out += kThinkEnd;
      }
      out += m.content.value_or("");
      if (!m.tool_calls.empty()) out += render_tool_calls(m.tool_calls);
      out += kEos;
    } else {
      unknown_role(m);
    }
    return out;
  }

  // The reference walks back over the tool messages to the assistant whose calls they answer; this
  // result's position among them picks its call. (At index 0 Python's messages[-1] makes it read the last
  // message's tool calls; that is kept.)
  std::string render_tool_result(size_t index) const {
    const Message& m = msgs_[index];
    long prev = static_cast<long>(index) - 1;
    while (prev >= 0 && msgs_[prev].role == "tool") --prev;
    const Message* assistant = prev >= 0 ? &msgs_[prev] : &msgs_.back();
    if (index != 0 && (prev < 0 || assistant->role != "assistant")) {
      fail("{}: a tool message must follow an assistant message with tool_calls (or other tool messages)", m.where);
    }
    const size_t order = static_cast<size_t>(static_cast<long>(index) - prev);  // 1 for the first result
    const size_t calls = assistant->tool_calls.size();
    if (calls < order) {
      fail("{}: tool result {} for {} with {} tool call(s)", m.where, order, assistant->where, calls);
    }
    std::string out;
    if (order == 1) out += "\n\n<function_results>";
    out += "\n<result>" + required_content(m) + "</result>";
    if (order == calls) {
      out += "\n</function_results>";
      if (opener(index)) {
        out += "\n\n";
        out += think_marker(static_cast<long>(index) >= last_user_);
      }
    }
    return out;
  }

  std::vector<Message> msgs_;
  Dsv32EncodeOptions options_;
  long last_user_ = -1;  // find_last_user_index: the last user or developer message, -1 when none
};

}  // namespace

std::string encode_dsv32(const nlohmann::ordered_json& messages, const nlohmann::ordered_json& tools,
                         const Dsv32EncodeOptions& options) {
  if (!messages.is_array()) fail("messages: expected an array");
  if (!tools.is_null() && !tools.is_array()) fail("tools: expected an array or null");
  std::vector<Message> msgs;
  msgs.reserve(messages.size() + 1);
  for (size_t i = 0; i < messages.size(); ++i) msgs.push_back(message_of(messages[i], fmt::format("messages[{}]", i)));
  if (tools.is_array() && !tools.empty()) {
    for (size_t i = 0; i < tools.size(); ++i) {
      if (!tools[i].is_object() || !tools[i].contains("function")) fail("tools[{}].function: missing", i);
    }
    if (!msgs.empty() && msgs[0].role == "system" && msgs[0].tools.empty()) {
      msgs[0].tools = tools;
    } else {
      Message system;
      system.where = "tools";
      system.role = "system";
      system.tools = tools;
      msgs.insert(msgs.begin(), std::move(system));
    }
  }
  return Encoder(std::move(msgs), options).encode();
}

}  // namespace dsv3::io
