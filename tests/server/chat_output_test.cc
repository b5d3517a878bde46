// The output parser (server/chat_output.h) against outputs written by hand from each family's definition:
// DeepSeek-V3's and V3.1's published chat_template (what they render for an assistant's tool calls is
// what the models generate), DeepSeek-V3.2's encoding_dsv32.py (DSML rendering and its
// parse_message_from_completion_text / decode_dsml_to_arguments, whose arguments text is json.dumps-style
// {"k": v, ...}), and Kimi-K2's chat_template and tool-call guide (ids "functions.NAME:IDX"). Every output
// is also fed one byte at a time and split at every byte into two chunks: the totals must not change, and
// the stream's deltas, concatenated, must equal the parser's totals. Truncation at every byte must give
// the documented result (chat_output.cc: a committed call stays a call, the rest falls back to content).
#include "server/chat_output.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"

namespace dsv3::server {
namespace {

// The markers, spelled from the definitions (｜ U+FF5C, ▁ U+2581).
const std::string kCallsBegin = "<｜tool▁calls▁begin｜>";
const std::string kCallsEnd = "<｜tool▁calls▁end｜>";
const std::string kCallBegin = "<｜tool▁call▁begin｜>";
const std::string kCallEnd = "<｜tool▁call▁end｜>";
const std::string kSep = "<｜tool▁sep｜>";
const std::string kDsml = "｜DSML｜";
const std::string kKimiBegin = "<|tool_calls_section_begin|>";
const std::string kKimiEnd = "<|tool_calls_section_end|>";
const std::string kKimiCall = "<|tool_call_begin|>";
const std::string kKimiArg = "<|tool_call_argument_begin|>";
const std::string kKimiCallEnd = "<|tool_call_end|>";

struct Result {
  std::string reasoning, content;
  std::vector<ToolCallOut> calls;
};

// Feeds the chunks and finishes, rebuilding the totals from the deltas; they must equal the parser's.
Result run(const OutputParserOptions& o, const std::vector<std::string_view>& chunks) {
  OutputParser p(o);
  Result r;
  auto add = [&](const OutputDelta& d) {
    r.reasoning += d.reasoning;
    r.content += d.content;
    for (const ToolCallDelta& t : d.tool_calls) {
      if (t.index == static_cast<int>(r.calls.size())) {  // a call's first piece: id and name
        EXPECT_FALSE(t.id.empty());
        EXPECT_FALSE(t.name.empty());
        r.calls.push_back({t.id, t.name, t.arguments});
      } else {
        ASSERT_EQ(t.index, static_cast<int>(r.calls.size()) - 1) << "pieces go to the newest call";
        EXPECT_TRUE(t.id.empty() && t.name.empty()) << "later pieces carry only arguments";
        EXPECT_FALSE(t.arguments.empty());
        r.calls.back().arguments += t.arguments;
      }
    }
  };
  for (std::string_view c : chunks) add(p.feed(c));
  add(p.finish());
  EXPECT_TRUE(p.finish().empty()) << "a second finish adds nothing";
  EXPECT_EQ(r.reasoning, p.reasoning());
  EXPECT_EQ(r.content, p.content());
  EXPECT_EQ(r.calls.size(), p.tool_calls().size());
  for (size_t i = 0; i < std::min(r.calls.size(), p.tool_calls().size()); ++i) {
    EXPECT_EQ(r.calls[i].id, p.tool_calls()[i].id);
    EXPECT_EQ(r.calls[i].name, p.tool_calls()[i].name);
    EXPECT_EQ(r.calls[i].arguments, p.tool_calls()[i].arguments);
  }
  return r;
}

Result whole(const OutputParserOptions& o, std::string_view text) { return run(o, {text}); }

Result bytewise(const OutputParserOptions& o, std::string_view text) {
  std::vector<std::string_view> chunks;
  for (size_t i = 0; i < text.size(); ++i) chunks.push_back(text.substr(i, 1));
  return run(o, chunks);
}

// Same totals; ids too when the model writes them (Kimi), else only their form.
void expect_same(const Result& a, const Result& b, bool model_ids, const std::string& label) {
  EXPECT_EQ(a.reasoning, b.reasoning) << label;
  EXPECT_EQ(a.content, b.content) << label;
  ASSERT_EQ(a.calls.size(), b.calls.size()) << label;
  for (size_t i = 0; i < a.calls.size(); ++i) {
    EXPECT_EQ(a.calls[i].name, b.calls[i].name) << label;
    EXPECT_EQ(a.calls[i].arguments, b.calls[i].arguments) << label;
    if (model_ids) {
      EXPECT_EQ(a.calls[i].id, b.calls[i].id) << label;
    }
  }
}

void expect_generated_id(const std::string& id) {
  ASSERT_EQ(id.size(), 5u + 24u) << id;
  EXPECT_EQ(id.substr(0, 5), "call_") << id;
  EXPECT_EQ(id.find_first_not_of("0123456789abcdef", 5), std::string::npos) << id;
}

// Whole, byte by byte, and at every split into two chunks: the same totals.
Result parse_all_ways(const OutputParserOptions& o, const std::string& text) {
  const bool model_ids = o.tools == ToolCallFormat::kKimiK2;
  const Result w = whole(o, text);
  expect_same(w, bytewise(o, text), model_ids, "1-byte feeding");
  for (size_t k = 0; k <= text.size(); ++k) {
    const std::string_view v = text;
    expect_same(w, run(o, {v.substr(0, k), v.substr(k)}), model_ids, "split at " + std::to_string(k));
  }
  if (!model_ids) {
    for (const ToolCallOut& c : w.calls) expect_generated_id(c.id);
  }
  return w;
}

struct Call {
  std::string name, arguments;
};

void expect_calls(const Result& r, const std::vector<Call>& want) {
  ASSERT_EQ(r.calls.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(r.calls[i].name, want[i].name) << i;
    EXPECT_EQ(r.calls[i].arguments, want[i].arguments) << i;
    EXPECT_TRUE(nlohmann::json::accept(r.calls[i].arguments)) << r.calls[i].arguments;
  }
}

OutputParserOptions tools(ToolCallFormat f, bool reasoning = false, bool starts_in_reasoning = false) {
  return {.tools = f, .reasoning = reasoning, .starts_in_reasoning = starts_in_reasoning};
}

// --- how each format writes a call --------------------------------------------------------------------

std::string v3_call(const std::string& name, const std::string& args) {
  return kCallBegin + "function" + kSep + name + "\n```json\n" + args + "\n```" + kCallEnd;
}
std::string v3_section(const std::vector<Call>& calls) {
  std::string s = kCallsBegin;
  for (size_t i = 0; i < calls.size(); ++i) s += (i ? "\n" : "") + v3_call(calls[i].name, calls[i].arguments);
  return s + kCallsEnd;
}
std::string v31_section(const std::vector<Call>& calls) {
  std::string s = kCallsBegin;
  for (const Call& c : calls) s += kCallBegin + c.name + kSep + c.arguments + kCallEnd;
  return s + kCallsEnd;
}
std::string kimi_section(const std::vector<Call>& calls) {
  std::string s = kKimiBegin;
  for (size_t i = 0; i < calls.size(); ++i) {
    s += kKimiCall + "functions." + calls[i].name + ":" + std::to_string(i) + kKimiArg + calls[i].arguments +
         kKimiCallEnd;
  }
  return s + kKimiEnd;
}
struct Param {
  std::string name;
  bool is_string;
  std::string value;
};
std::string dsml_invoke(const std::string& name, const std::vector<Param>& params) {
  std::string s = "<" + kDsml + "invoke name=\"" + name + "\">\n";
  for (const Param& p : params) {
    s += "<" + kDsml + "parameter name=\"" + p.name + "\" string=\"" + (p.is_string ? "true" : "false") + "\">" +
         p.value + "</" + kDsml + "parameter>\n";
  }
  return s + "</" + kDsml + "invoke>";
}
// As encoding_dsv32.py renders it: "\n\n" then the block, invokes joined by "\n".
std::string dsml_block(const std::vector<std::string>& invokes) {
  std::string s = "\n\n<" + kDsml + "function_calls>\n";
  for (size_t i = 0; i < invokes.size(); ++i) s += (i ? "\n" : "") + invokes[i];
  return s + "\n</" + kDsml + "function_calls>";
}

const std::string kWeatherArgs = R"({"location": "Hangzhou", "date": "2024-01-16"})";
const std::string kTimeArgs = R"({"tz": "UTC"})";
// Marker-like text, braces and fences inside JSON strings (none is the exact end marker of its format).
const std::string kNestedArgs =
    R"({"a": {"b": [1, {"c": "}{ ```json\n``` <｜tool▁call▁begin｜> <｜tool▁sep｜> <|tool_call_begin|> </think>"}]}, "d": "\"}\""})";
const std::string kUnicodeArgs = R"({"城市": "杭州", "emoji": "😀", "esc": "\u00e9\n"})";

// --- DeepSeek-V3 ----------------------------------------------------------------------------------------

TEST(ChatOutputV3, ContentOnly) {
  const Result r = parse_all_ways(tools(ToolCallFormat::kDeepSeekV3), "Hello <b>world</b>\n```json\n{}\n```");
  EXPECT_EQ(r.content, "Hello <b>world</b>\n```json\n{}\n```");
  EXPECT_TRUE(r.calls.empty());
  EXPECT_EQ(r.reasoning, "");
}

TEST(ChatOutputV3, OneCall) {
  const Result r = parse_all_ways(tools(ToolCallFormat::kDeepSeekV3), v3_section({{"get_weather", kWeatherArgs}}));
  EXPECT_EQ(r.content, "");
  expect_calls(r, {{"get_weather", kWeatherArgs}});
}

TEST(ChatOutputV3, ParallelCallsAfterContent) {
  const std::vector<Call> calls = {{"get_weather", kWeatherArgs}, {"get_time", kTimeArgs}};
  const Result r = parse_all_ways(tools(ToolCallFormat::kDeepSeekV3), "Let me check." + v3_section(calls));
  EXPECT_EQ(r.content, "Let me check.");
  expect_calls(r, calls);
  EXPECT_NE(r.calls[0].id, r.calls[1].id);
}

TEST(ChatOutputV3, ArgumentsClosedWithoutTheFence) {
  const std::string text =
      kCallsBegin + kCallBegin + "function" + kSep + "f\n```json\n{\"a\": 1}" + kCallEnd + kCallsEnd;
  const Result r = parse_all_ways(tools(ToolCallFormat::kDeepSeekV3), text);
  expect_calls(r, {{"f", R"({"a": 1})"}});
  EXPECT_EQ(r.content, "");
}

TEST(ChatOutputV3, ReasoningThenContentThenCall) {
  // R1: the prompt ends with "<think>\n", so the output starts inside the block.
  const std::string text = "The user wants weather.\n</think>\n\nSure." + v3_section({{"get_weather", kWeatherArgs}});
  const Result r = parse_all_ways(tools(ToolCallFormat::kDeepSeekV3, true, true), text);
  EXPECT_EQ(r.reasoning, "The user wants weather.\n");
  EXPECT_EQ(r.content, "Sure.");
  expect_calls(r, {{"get_weather", kWeatherArgs}});
}

TEST(ChatOutputV3, UnicodeAndNestedArguments) {
  const std::vector<Call> calls = {{"天气_查询", kUnicodeArgs}, {"run", kNestedArgs}};
  const Result r = parse_all_ways(tools(ToolCallFormat::kDeepSeekV3), v3_section(calls));
  expect_calls(r, calls);
  EXPECT_EQ(r.content, "");
}

TEST(ChatOutputV3, MalformedIsContent) {
  const auto o = tools(ToolCallFormat::kDeepSeekV3);
  const std::vector<std::string> texts = {
      kCallsBegin + kCallBegin + "function" + kSep + "\n```json\n{}\n```" + kCallEnd + kCallsEnd,  // no name
      kCallsBegin + "oops" + v3_call("f", "{}") + kCallsEnd,                                  // garbage between markers
      kCallsBegin + kCallBegin + "fn" + kSep + "f\n```json\n{}\n```" + kCallEnd + kCallsEnd,  // type != function
      kCallsBegin + "<｜tool▁output▁begin｜>x" + kCallsEnd,                                   // unknown marker
      kCallsBegin + kCallBegin + "function" + kSep + "f" + kCallEnd + kCallsEnd,              // marker out of place
      kCallsBegin + kCallBegin + "function" + kSep + "two\nlines\n```json\n{}\n```" + kCallEnd,  // bad name
      kCallsBegin + kCallBegin + "function" + kSep + std::string(2000, 'a'),                     // endless name
      "a" + kCallsBegin,                                                                         // never closed
  };
  for (const std::string& t : texts) {
    const Result r = parse_all_ways(o, t);
    EXPECT_EQ(r.content, t);
    EXPECT_TRUE(r.calls.empty()) << t;
  }
}

TEST(ChatOutputV3, GarbageAfterACallKeepsTheCall) {
  const std::string text = kCallsBegin + v3_call("f", "{}") + "junk" + kCallsEnd + " tail";
  const Result r = parse_all_ways(tools(ToolCallFormat::kDeepSeekV3), text);
  expect_calls(r, {{"f", "{}"}});
  EXPECT_EQ(r.content, "junk" + kCallsEnd + " tail");
}

TEST(ChatOutputV3, BadJsonOfACommittedCallStaysACall) {
  // Policy: the call was streamed once its name was known, so it stays a call with the text as written.
  const std::string text = kCallsBegin + v3_call("f", "{bad") + kCallsEnd;
  const Result r = parse_all_ways(tools(ToolCallFormat::kDeepSeekV3), text);
  ASSERT_EQ(r.calls.size(), 1u);
  EXPECT_EQ(r.calls[0].name, "f");
  EXPECT_EQ(r.calls[0].arguments, "{bad");
  EXPECT_FALSE(nlohmann::json::accept(r.calls[0].arguments));
  EXPECT_EQ(r.content, "");
}

TEST(ChatOutputV3, ToolMarkersAreContentWithoutAFormat) {
  const std::string text = "x" + v3_section({{"f", "{}"}});
  const Result r = parse_all_ways(tools(ToolCallFormat::kNone), text);
  EXPECT_EQ(r.content, text);
  EXPECT_TRUE(r.calls.empty());
}

TEST(ChatOutputV3, HoldsBackOnlyWhatMayBeAMarker) {
  OutputParser p(tools(ToolCallFormat::kDeepSeekV3));
  EXPECT_EQ(p.feed("Hello <").content, "Hello ");
  EXPECT_EQ(p.feed("b").content, "<b");
  EXPECT_TRUE(p.feed("<｜tool▁calls").empty());
  EXPECT_EQ(p.feed("X").content, "<｜tool▁callsX");
  EXPECT_TRUE(p.feed(kCallsBegin + kCallBegin + "function" + kSep + "f\n```js").empty());
  OutputDelta d = p.feed("on\n");
  ASSERT_EQ(d.tool_calls.size(), 1u);  // the name is out as soon as the header is complete
  EXPECT_EQ(d.tool_calls[0].index, 0);
  EXPECT_EQ(d.tool_calls[0].name, "f");
  EXPECT_EQ(d.tool_calls[0].arguments, "");
  d = p.feed(R"({"a": )");
  ASSERT_EQ(d.tool_calls.size(), 1u);  // arguments stream as they arrive
  EXPECT_TRUE(d.tool_calls[0].id.empty());
  EXPECT_EQ(d.tool_calls[0].arguments, R"({"a": )");
  d = p.feed("1}\n``");
  ASSERT_EQ(d.tool_calls.size(), 1u);
  EXPECT_EQ(d.tool_calls[0].arguments, "1}");  // "\n``" may be the closing fence
  EXPECT_TRUE(p.feed("`" + kCallEnd + kCallsEnd).empty());
  EXPECT_TRUE(p.finish().empty());
  EXPECT_EQ(p.tool_calls().at(0).arguments, R"({"a": 1})");
  EXPECT_THROW(p.feed("more"), Error);
}

// --- DeepSeek-V3.1 --------------------------------------------------------------------------------------

TEST(ChatOutputV31, Formats) {
  const auto o = tools(ToolCallFormat::kDeepSeekV31);
  Result r = parse_all_ways(o, "Just text, <｜tool▁sep｜> too.");
  EXPECT_EQ(r.content, "Just text, <｜tool▁sep｜> too.");
  EXPECT_TRUE(r.calls.empty());

  r = parse_all_ways(o, v31_section({{"get_weather", kWeatherArgs}}));
  expect_calls(r, {{"get_weather", kWeatherArgs}});

  const std::vector<Call> calls = {{"get_weather", kWeatherArgs}, {"天气", kUnicodeArgs}, {"run", kNestedArgs}};
  r = parse_all_ways(o, "On it." + v31_section(calls));
  EXPECT_EQ(r.content, "On it.");
  expect_calls(r, calls);
}

TEST(ChatOutputV31, ThinkingThenCall) {
  // V3.1 thinking: the generation prompt ends with "<think>"; the answer follows "</think>".
  const std::string text = "plan</think>Checking." + v31_section({{"get_time", kTimeArgs}});
  const Result r = parse_all_ways(tools(ToolCallFormat::kDeepSeekV31, true, true), text);
  EXPECT_EQ(r.reasoning, "plan");
  EXPECT_EQ(r.content, "Checking.");
  expect_calls(r, {{"get_time", kTimeArgs}});
}

TEST(ChatOutputV31, MalformedIsContent) {
  const auto o = tools(ToolCallFormat::kDeepSeekV31);
  for (const std::string& t : {kCallsBegin + kCallBegin + kSep + "{}" + kCallEnd + kCallsEnd,
                               kCallsBegin + kCallBegin + " " + kSep + "{}" + kCallEnd + kCallsEnd,
                               kCallsBegin + kCallBegin + "f" + kCallEnd + kCallsEnd}) {
    const Result r = parse_all_ways(o, t);
    EXPECT_EQ(r.content, t);
    EXPECT_TRUE(r.calls.empty());
  }
}

// --- DeepSeek-V3.2 DSML ---------------------------------------------------------------------------------

TEST(ChatOutputV32, OneCallAsTheReferenceDecodesIt) {
  // The example of the V3.2 tool-call guide; decode_dsml_to_arguments gives json.dumps-style text.
  const std::string text =
      dsml_block({dsml_invoke("get_weather", {{"location", true, "Hangzhou"}, {"date", true, "2024-01-16"}})});
  const Result r = parse_all_ways(tools(ToolCallFormat::kDeepSeekV32), text);
  EXPECT_EQ(r.content, "");
  expect_calls(r, {{"get_weather", kWeatherArgs}});
}

TEST(ChatOutputV32, ContentThenParallelCallsWithTypedValues) {
  const std::string text =
      "Let me look." +
      dsml_block({dsml_invoke("search", {{"query", true, "say \"hi\"\n杭州 </think> {"},
                                         {"opts", false, R"({"k": [1, 2.5, null], "s": "<｜DSML｜x"})"},
                                         {"n", false, "3"}}),
                  dsml_invoke("ping", {})});
  const Result r = parse_all_ways(tools(ToolCallFormat::kDeepSeekV32), text);
  EXPECT_EQ(r.content, "Let me look.");
  // By hand: json.dumps(value, ensure_ascii=False) of the string value, the others verbatim.
  expect_calls(r, {{"search", R"({"query": "say \"hi\"\n杭州 </think> {", "opts": {"k": [1, 2.5, null], )"
                              R"("s": "<｜DSML｜x"}, "n": 3})"},
                   {"ping", "{}"}});
}

TEST(ChatOutputV32, ReasoningThenCall) {
  const std::string text = "think hard</think>" + dsml_block({dsml_invoke("f", {{"x", false, "true"}})});
  const Result r = parse_all_ways(tools(ToolCallFormat::kDeepSeekV32, true, true), text);
  EXPECT_EQ(r.reasoning, "think hard");
  EXPECT_EQ(r.content, "");
  expect_calls(r, {{"f", R"({"x": true})"}});
}

TEST(ChatOutputV32, BrokenParameterClosesTheCallAndIsContent) {
  const std::string param = "<" + kDsml + "parameter name=\"a\" string=\"maybe\">1</" + kDsml + "parameter>\n";
  const std::string text = "x\n\n<" + kDsml + "function_calls>\n<" + kDsml + "invoke name=\"f\">\n" + param + "</" +
                           kDsml + "invoke>\n</" + kDsml + "function_calls>";
  const Result r = parse_all_ways(tools(ToolCallFormat::kDeepSeekV32), text);
  expect_calls(r, {{"f", "{}"}});
  EXPECT_EQ(r.content, "x" + text.substr(text.find(param)));
}

TEST(ChatOutputV32, MalformedIsContent) {
  const auto o = tools(ToolCallFormat::kDeepSeekV32);
  for (const std::string& t :
       {"<" + kDsml + "function_calls>\nnot a call\n</" + kDsml + "function_calls>",
        "<" + kDsml + "function_calls>\n<" + kDsml + "invoke name=\"\">\n</" + kDsml + "invoke>\n</" + kDsml +
            "function_calls>",
        "<" + kDsml + "function_calls>\n<" + kDsml + "invoke name=\"f\"</" + kDsml + "invoke>"}) {
    const Result r = parse_all_ways(o, t);
    EXPECT_EQ(r.content, t);
    EXPECT_TRUE(r.calls.empty());
  }
}

// --- Kimi-K2 --------------------------------------------------------------------------------------------

TEST(ChatOutputKimi, CallsCarryTheModelsIds) {
  const std::vector<Call> calls = {{"get_weather", kWeatherArgs}, {"天气", kUnicodeArgs}, {"run", kNestedArgs}};
  const Result r = parse_all_ways(tools(ToolCallFormat::kKimiK2), "Checking." + kimi_section(calls));
  EXPECT_EQ(r.content, "Checking.");
  expect_calls(r, calls);
  EXPECT_EQ(r.calls[0].id, "functions.get_weather:0");
  EXPECT_EQ(r.calls[1].id, "functions.天气:1");
  EXPECT_EQ(r.calls[2].id, "functions.run:2");
}

TEST(ChatOutputKimi, ThinkingWhitespaceAndSingularSection) {
  // Kimi-K2-Thinking opens <think> itself; whitespace around the id is ignored; the singular spelling of
  // the section markers is accepted.
  const std::string text = "\n<think>hmm</think>\n" + std::string("<|tool_call_section_begin|>") + kKimiCall +
                           " functions.lookup:7 " + kKimiArg + "{}" + kKimiCallEnd + "<|tool_call_section_end|>";
  const Result r = parse_all_ways(tools(ToolCallFormat::kKimiK2, true, false), text);
  EXPECT_EQ(r.reasoning, "hmm");
  EXPECT_EQ(r.content, "");
  expect_calls(r, {{"lookup", "{}"}});
  EXPECT_EQ(r.calls[0].id, "functions.lookup:7");
}

TEST(ChatOutputKimi, MalformedIsContent) {
  const auto o = tools(ToolCallFormat::kKimiK2);
  for (const std::string& t : {kKimiBegin + kKimiCall + "functions.f" + kKimiArg + "{}" + kKimiCallEnd + kKimiEnd,
                               kKimiBegin + kKimiCall + "functions.:0" + kKimiArg + "{}" + kKimiCallEnd + kKimiEnd,
                               kKimiBegin + kKimiCall + "functions.f:x" + kKimiArg + "{}" + kKimiCallEnd + kKimiEnd,
                               kKimiBegin + "?" + kKimiEnd}) {
    const Result r = parse_all_ways(o, t);
    EXPECT_EQ(r.content, t);
    EXPECT_TRUE(r.calls.empty());
  }
}

// --- truncation at every byte ---------------------------------------------------------------------------

// The output cut after n bytes and finished: calls whose header was complete are calls (complete ones
// with their whole arguments), and the rest is content verbatim. `commit` and `done` are the byte offsets
// after each call's committing marker and after its end.
struct Layout {
  std::string text, content;
  std::vector<Call> calls;
  std::vector<size_t> commit, done;
  size_t section_end = 0;
};

Layout layout(std::string text, std::vector<Call> calls) {
  Layout l;
  l.text = std::move(text);
  l.content = "Hi";
  l.calls = std::move(calls);
  l.section_end = l.text.size();
  return l;
}

void expect_truncations(const OutputParserOptions& o, const Layout& l) {
  for (size_t n = 0; n <= l.text.size(); ++n) {
    const std::string_view prefix = std::string_view(l.text).substr(0, n);
    const Result r = whole(o, prefix);
    expect_same(r, bytewise(o, prefix), o.tools == ToolCallFormat::kKimiK2, "cut at " + std::to_string(n));
    size_t committed = 0;
    while (committed < l.commit.size() && l.commit[committed] <= n) ++committed;
    ASSERT_EQ(r.calls.size(), committed) << "cut at " << n;
    for (size_t i = 0; i < committed; ++i) {
      EXPECT_EQ(r.calls[i].name, l.calls[i].name);
      if (l.done[i] <= n) {
        EXPECT_EQ(r.calls[i].arguments, l.calls[i].arguments) << "cut at " << n;
      } else if (o.tools == ToolCallFormat::kDeepSeekV32) {
        EXPECT_TRUE(nlohmann::json::accept(r.calls[i].arguments)) << r.calls[i].arguments;
      } else {  // the arguments so far, perhaps with the start of the closing marker
        const std::string& a = r.calls[i].arguments;
        const std::string& w = l.calls[i].arguments;
        EXPECT_TRUE(a.compare(0, w.size(), w) == 0 || w.compare(0, a.size(), a) == 0) << "cut at " << n << ": " << a;
      }
    }
    if (committed == 0) {
      EXPECT_EQ(r.content, prefix) << "cut at " << n;
    } else if (n >= l.section_end) {
      EXPECT_EQ(r.content, l.content) << "cut at " << n;
    } else if (l.done[committed - 1] <= n) {  // between calls
      EXPECT_EQ(r.content, l.content + std::string(prefix.substr(l.done[committed - 1]))) << "cut at " << n;
    } else if (o.tools != ToolCallFormat::kDeepSeekV32) {  // inside a call's arguments
      EXPECT_EQ(r.content, l.content) << "cut at " << n;
    } else {  // inside an invoke: only its unfinished parameter, if any, is content
      EXPECT_EQ(r.content.compare(0, l.content.size(), l.content), 0) << "cut at " << n;
    }
  }
}

size_t after(const std::string& text, const std::string& what, size_t from = 0) {
  const size_t at = text.find(what, from);
  EXPECT_NE(at, std::string::npos) << what;
  return at + what.size();
}

TEST(ChatOutputTruncation, EveryByteOfEachFormat) {
  const std::vector<Call> calls = {{"get_weather", kWeatherArgs}, {"f", "{}"}};
  {
    Layout l = layout("Hi" + v3_section(calls), calls);
    l.commit = {after(l.text, "get_weather\n```json\n"), after(l.text, "f\n```json\n")};
    l.done = {after(l.text, kCallEnd), after(l.text, kCallEnd, l.commit[1])};
    expect_truncations(tools(ToolCallFormat::kDeepSeekV3), l);
  }
  {
    Layout l = layout("Hi" + v31_section(calls), calls);
    l.commit = {after(l.text, "get_weather" + kSep), after(l.text, "f" + kSep)};
    l.done = {after(l.text, kCallEnd), after(l.text, kCallEnd, l.commit[1])};
    expect_truncations(tools(ToolCallFormat::kDeepSeekV31), l);
  }
  {
    Layout l = layout("Hi" + kimi_section(calls), calls);
    l.commit = {after(l.text, "get_weather:0" + kKimiArg), after(l.text, "f:1" + kKimiArg)};
    l.done = {after(l.text, kKimiCallEnd), after(l.text, kKimiCallEnd, l.commit[1])};
    expect_truncations(tools(ToolCallFormat::kKimiK2), l);
  }
  {
    const std::string text =
        "Hi" + dsml_block({dsml_invoke("get_weather", {{"location", true, "Hangzhou"}, {"date", true, "2024-01-16"}}),
                           dsml_invoke("f", {})});
    Layout l = layout(text, calls);
    l.commit = {after(text, "\"get_weather\">"), after(text, "\"f\">")};
    const std::string invoke_end = "</" + kDsml + "invoke>";
    l.done = {after(text, invoke_end), after(text, invoke_end, l.commit[1])};
    expect_truncations(tools(ToolCallFormat::kDeepSeekV32), l);
  }
}

// --- reasoning ------------------------------------------------------------------------------------------

TEST(ChatOutputReasoning, Blocks) {
  const auto r1 = tools(ToolCallFormat::kDeepSeekV3, true, true);
  const auto open = tools(ToolCallFormat::kDeepSeekV3, true, false);
  Result r = parse_all_ways(open, " \n<think>abc</think>\n\n\nxyz\n");
  EXPECT_EQ(r.reasoning, "abc");
  EXPECT_EQ(r.content, "xyz\n");  // only the newlines right after </think> go
  r = parse_all_ways(open, "hello <think>no</think>");
  EXPECT_EQ(r.reasoning, "");
  EXPECT_EQ(r.content, "hello <think>no</think>");
  r = parse_all_ways(r1, "unfinished " + v3_section({{"f", "{}"}}));  // no tool calls inside reasoning
  EXPECT_EQ(r.reasoning, "unfinished " + v3_section({{"f", "{}"}}));
  EXPECT_EQ(r.content, "");
  EXPECT_TRUE(r.calls.empty());
  r = parse_all_ways(r1, "<think>x</think>y");  // a repeated opening is not reasoning text
  EXPECT_EQ(r.reasoning, "x");
  EXPECT_EQ(r.content, "y");
  r = parse_all_ways(r1, "</think>");
  EXPECT_EQ(r.reasoning, "");
  EXPECT_EQ(r.content, "");
  r = parse_all_ways(tools(ToolCallFormat::kNone), "<think>x</think>y");  // reasoning off: all content
  EXPECT_EQ(r.content, "<think>x</think>y");
  r = parse_all_ways(open, std::string(100, ' ') + "<think>x");  // too much leading space: content
  EXPECT_EQ(r.content, std::string(100, ' ') + "<think>x");
}

// --- size -----------------------------------------------------------------------------------------------

TEST(ChatOutputSize, MegabyteFedByteByByteHoldsBackLittle) {
  std::string text;
  while (text.size() < (1u << 20)) text += "a <b> \n``` <｜tool▁call <｜DSML｜ </thin\n";
  OutputParser p(tools(ToolCallFormat::kDeepSeekV32, true, false));
  for (size_t i = 0; i < text.size(); ++i) {
    p.feed(std::string_view(text).substr(i, 1));
    ASSERT_GE(p.content().size() + 64, i + 1) << "held back more than a marker's length at " << i;
  }
  p.finish();
  EXPECT_EQ(p.content(), text);
}

TEST(ChatOutputSize, MegabyteOfArgumentsAndOfADsmlValue) {
  const std::string big(1u << 20, 'x');
  {
    OutputParser p(tools(ToolCallFormat::kDeepSeekV3));
    p.feed(kCallsBegin + kCallBegin + "function" + kSep + "f\n```json\n{\"s\": \"");
    for (char c : big) p.feed(std::string_view(&c, 1));
    p.feed("\"}\n```" + kCallEnd + kCallsEnd);
    p.finish();
    ASSERT_EQ(p.tool_calls().size(), 1u);
    EXPECT_EQ(p.tool_calls()[0].arguments, "{\"s\": \"" + big + "\"}");
  }
  {
    OutputParser p(tools(ToolCallFormat::kDeepSeekV32));
    const std::string text = dsml_block({dsml_invoke("f", {{"s", true, big}})});
    for (char c : text) p.feed(std::string_view(&c, 1));
    p.finish();
    ASSERT_EQ(p.tool_calls().size(), 1u);
    EXPECT_EQ(p.tool_calls()[0].arguments, "{\"s\": \"" + big + "\"}");
  }
}

// --- format names ---------------------------------------------------------------------------------------

TEST(ChatOutputFormat, NamesRoundTrip) {
  for (ToolCallFormat f : {ToolCallFormat::kNone, ToolCallFormat::kDeepSeekV3, ToolCallFormat::kDeepSeekV31,
                           ToolCallFormat::kDeepSeekV32, ToolCallFormat::kKimiK2}) {
    EXPECT_EQ(parse_tool_call_format(tool_call_format_name(f)), f);
  }
  EXPECT_STREQ(tool_call_format_name(ToolCallFormat::kDeepSeekV31), "deepseek_v31");
  try {
    parse_tool_call_format("hermes");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'hermes'"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace dsv3::server
