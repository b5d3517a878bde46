// The incremental output parser of chat_output.h: one state machine over the generated text, whose states
// each look for a small set of markers. Text between markers goes to the state's sink (reasoning, content,
// arguments, or a header field being gathered); a tail that is still a proper prefix of one of the state's
// markers is held back until the next feed decides it, so at most (longest marker − 1) bytes wait.
//
// Marker matching is defined on the whole text, so chunking cannot change the result: the earliest
// position where a marker of the current state starts wins (the longest marker there), and a match is only
// taken when no marker could still be starting at an earlier position of the buffered text.
//
// Formats, as the families' definitions write them:
//   DeepSeek-V3 / R1 (tokenizer_config.json chat_template of deepseek-ai/DeepSeek-V3, see also
//     io/chat_template.h): <｜tool▁calls▁begin｜> { <｜tool▁call▁begin｜> TYPE <｜tool▁sep｜> NAME \n```json\n ARGS
//     \n```<｜tool▁call▁end｜> } <｜tool▁calls▁end｜>, with TYPE "function" and "\n" between calls. An ARGS
//     closed by a bare <｜tool▁call▁end｜> (no fence) is taken as written.
//   DeepSeek-V3.1 (chat_template of deepseek-ai/DeepSeek-V3.1): <｜tool▁call▁begin｜> NAME <｜tool▁sep｜> ARGS
//     <｜tool▁call▁end｜> inside the same section markers.
//   DeepSeek-V3.2 DSML (encoding_dsv32.py, render and parse_tool_calls): "\n\n<｜DSML｜function_calls>\n"
//     then per call <｜DSML｜invoke name="NAME">\n, per parameter <｜DSML｜parameter name="P"
//     string="true|false">VALUE</｜DSML｜parameter>\n, then </｜DSML｜invoke>\n, and
//     </｜DSML｜function_calls>. The "\n\n" before the block is not content (the reference's start token
//     includes it); it is optional here. Arguments are built as decode_dsml_to_arguments builds them:
//     {"P": "VALUE", "Q": VALUE} — keys and string values JSON-encoded (non-ASCII kept), ", " and ": "
//     separators, string="false" values inserted verbatim.
//   Kimi-K2 (moonshotai/Kimi-K2-Instruct chat_template and tool-call guide): <|tool_calls_section_begin|>
//     { <|tool_call_begin|> functions.NAME:IDX <|tool_call_argument_begin|> ARGS <|tool_call_end|> }
//     <|tool_calls_section_end|>; whitespace around the id is ignored, the "functions." prefix is optional
//     and the singular <|tool_call_section_begin|>/<|tool_call_section_end|> spelling is accepted (as the
//     vLLM and SGLang parsers do). The call id is the model's own "functions.NAME:IDX".
//
// Policy for calls that go wrong (the stream has no way to take back what it sent, so the totals follow
// the stream): a call is committed when its name is complete (V3: at "\n```json\n", V3.1: at
// <｜tool▁sep｜>, Kimi: at <|tool_call_argument_begin|>, DSML: at the invoke's closing `">`); its first
// delta (id, name) goes out then, and its arguments stream as they arrive (DSML: per finished parameter,
// the closing "}" at </｜DSML｜invoke>). A committed call stays a call whatever follows: arguments that do
// not parse, or a section cut off inside the arguments, give a call with the text the model wrote
// (ToolCallOut.arguments may then fail nlohmann::json::accept; callers may check). Everything not yet
// committed — a section marker with no call after it, a header with an empty or over-long name, a wrong
// type, garbage between calls, a marker out of place, a DSML parameter cut off — is returned as content,
// verbatim with its markers, and parsing resumes as content from the offending byte. A DSML call broken
// after its commit has its arguments object closed ("}") so that they stay JSON.
//
// Reasoning (R1, V3.1/V3.2 thinking, Kimi-K2-Thinking): text inside <think>…</think>. The block is open at
// the start with starts_in_reasoning, or when the output opens with <think> (after whitespace, at most
// 64 bytes of it); tool markers are not looked for inside it; an unclosed block stays reasoning. Newlines
// right after </think> are dropped from content (DeepSeek's API and SGLang's parser strip them; vLLM's
// deepseek_r1 parser keeps them).
#include "server/chat_output.h"

#include <fmt/format.h>

#include <array>
#include <nlohmann/json.hpp>
#include <random>

#include "core/error.h"

namespace dsv3::server {
namespace {

constexpr std::string_view kThinkOpen = "<think>";
constexpr std::string_view kThinkClose = "</think>";

// DeepSeek-V3 / V3.1 special tokens (｜ is U+FF5C, ▁ is U+2581).
constexpr std::string_view kDsCallsBegin = "<｜tool▁calls▁begin｜>";
constexpr std::string_view kDsCallsEnd = "<｜tool▁calls▁end｜>";
constexpr std::string_view kDsCallBegin = "<｜tool▁call▁begin｜>";
constexpr std::string_view kDsCallEnd = "<｜tool▁call▁end｜>";
constexpr std::string_view kDsSep = "<｜tool▁sep｜>";
constexpr std::string_view kDsV3ArgsOpen = "\n```json\n";
constexpr std::string_view kDsV3ArgsClose = "\n```<｜tool▁call▁end｜>";

// DeepSeek-V3.2 DSML.
constexpr std::string_view kDsmlBegin = "<｜DSML｜function_calls>";
constexpr std::string_view kDsmlBeginAfterText = "\n\n<｜DSML｜function_calls>";
constexpr std::string_view kDsmlEnd = "</｜DSML｜function_calls>";
constexpr std::string_view kDsmlInvoke = "<｜DSML｜invoke name=\"";
constexpr std::string_view kDsmlInvokeEnd = "</｜DSML｜invoke>";
constexpr std::string_view kDsmlParam = "<｜DSML｜parameter name=\"";
constexpr std::string_view kDsmlParamEnd = "</｜DSML｜parameter>";
constexpr std::string_view kDsmlString = "\" string=\"";
constexpr std::string_view kDsmlAttrEnd = "\">";

// Kimi-K2.
constexpr std::string_view kKimiBegin = "<|tool_calls_section_begin|>";
constexpr std::string_view kKimiBeginAlt = "<|tool_call_section_begin|>";
constexpr std::string_view kKimiEnd = "<|tool_calls_section_end|>";
constexpr std::string_view kKimiEndAlt = "<|tool_call_section_end|>";
constexpr std::string_view kKimiCallBegin = "<|tool_call_begin|>";
constexpr std::string_view kKimiArgBegin = "<|tool_call_argument_begin|>";
constexpr std::string_view kKimiCallEnd = "<|tool_call_end|>";

constexpr size_t kMaxField = 1024;       // longest function name / call header gathered before giving up
constexpr size_t kMaxLeadingSpace = 64;  // whitespace waited through for an opening <think>

enum State : int {
  kStart,       // reasoning enabled, nothing decided yet: is there an opening <think>?
  kReasoning,   // inside <think>…</think>
  kContent,     // ordinary text; looks for a tool-call section
  kBetween,     // in a section, between calls: whitespace, a call, or the section's end
  kHeader,      // gathering a call's header (V3: the type; V3.1: the name; Kimi: the id; DSML: the name)
  kName,        // V3: gathering the name after <｜tool▁sep｜>
  kArgs,        // a committed call's JSON arguments
  kParams,      // DSML: between a committed invoke's parameters
  kParamName,   // DSML: gathering a parameter's name
  kParamKind,   // DSML: gathering string="true|false"
  kParamValue,  // DSML: gathering a parameter's value
  kNumStates
};

struct MarkerSet {
  std::vector<std::string_view> markers;
  std::string first_bytes;  // the bytes a marker of the set can start with
  void add(std::string_view m) {
    markers.push_back(m);
    if (first_bytes.find(m[0]) == std::string::npos) first_bytes += m[0];
  }
};

// Where plain text ends in v: at a marker (index into the set) or where a possibly-unfinished marker
// starts (marker = -1, text_end < v.size()), or at the end (final: nothing is held).
struct ScanResult {
  size_t text_end = 0;
  int marker = -1;
};

ScanResult scan(std::string_view v, const MarkerSet& set, bool final) {
  size_t i = 0;
  while ((i = v.find_first_of(set.first_bytes, i)) != std::string_view::npos) {
    const std::string_view rest = v.substr(i);
    int full = -1;
    bool partial = false;
    for (size_t k = 0; k < set.markers.size(); ++k) {
      const std::string_view m = set.markers[k];
      if (rest.size() >= m.size()) {
        if (rest.substr(0, m.size()) == m && (full < 0 || m.size() > set.markers[full].size())) full = int(k);
      } else if (!final && m.substr(0, rest.size()) == rest) {
        partial = true;  // a longer marker than any full match here may still be arriving
      }
    }
    if (partial) return {i, -1};
    if (full >= 0) return {i, full};
    ++i;
  }
  return {v.size(), -1};
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

// A function or parameter name: non-empty, no control characters, spaces or quotes.
bool valid_name(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == '"' || c == 0x7f) return false;
  }
  return true;
}

// JSON text of a string, non-ASCII kept (Python's json.dumps(..., ensure_ascii=False)); invalid UTF-8 is
// replaced rather than thrown on.
std::string json_string(std::string_view s) {
  return nlohmann::json(std::string(s)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

ToolCallFormat parse_tool_call_format(std::string_view name) {
  for (ToolCallFormat f : {ToolCallFormat::kNone, ToolCallFormat::kDeepSeekV3, ToolCallFormat::kDeepSeekV31,
                           ToolCallFormat::kDeepSeekV32, ToolCallFormat::kKimiK2}) {
    if (name == tool_call_format_name(f)) return f;
  }
  fail("unknown tool-call format '{}' (expected deepseek_v3, deepseek_v31, deepseek_v32, kimi_k2 or none)", name);
}

const char* tool_call_format_name(ToolCallFormat f) {
  switch (f) {
    case ToolCallFormat::kNone:
      return "none";
    case ToolCallFormat::kDeepSeekV3:
      return "deepseek_v3";
    case ToolCallFormat::kDeepSeekV31:
      return "deepseek_v31";
    case ToolCallFormat::kDeepSeekV32:
      return "deepseek_v32";
    case ToolCallFormat::kKimiK2:
      return "kimi_k2";
  }
  return "none";
}

struct OutputParser::Impl {
  OutputParserOptions opt;
  std::array<MarkerSet, kNumStates> sets;
  State state = kContent;
  std::string pending;  // text not yet consumed, from pos
  size_t pos = 0;
  bool finished = false;
  bool drop_newlines = false;  // right after </think>
  // Section bookkeeping.
  std::string raw;       // the section's text since the last committed point (returned as content on failure)
  std::string field;     // the header field or DSML value being gathered
  bool in_call = false;  // DSML: a committed invoke whose arguments object is open
  int params = 0;        // DSML: parameters written into the open invoke
  std::string param_name;
  bool param_string = false;
  // Totals and the delta being built.
  std::string reasoning, content;
  std::vector<ToolCallOut> calls;
  OutputDelta out;
  std::mt19937_64 rng;

  explicit Impl(OutputParserOptions o) : opt(o), rng(std::random_device{}()) {
    state = opt.reasoning ? kStart : kContent;
    build_sets();
  }

  void build_sets() {
    sets[kReasoning].add(kThinkClose);
    auto all = [&](State s, std::initializer_list<std::string_view> ms) {
      for (std::string_view m : ms) sets[s].add(m);
    };
    switch (opt.tools) {
      case ToolCallFormat::kNone:
        break;
      case ToolCallFormat::kDeepSeekV3:
      case ToolCallFormat::kDeepSeekV31: {
        const auto structure = {kDsCallsBegin, kDsCallsEnd, kDsCallBegin, kDsCallEnd, kDsSep};
        all(kContent, {kDsCallsBegin});
        all(kBetween, {kDsCallBegin, kDsCallsEnd});
        all(kHeader, structure);
        if (opt.tools == ToolCallFormat::kDeepSeekV3) {
          all(kName, structure);
          all(kName, {kDsV3ArgsOpen});
          all(kArgs, {kDsV3ArgsClose, kDsCallEnd});
        } else {
          all(kArgs, {kDsCallEnd});
        }
        break;
      }
      case ToolCallFormat::kDeepSeekV32: {
        const auto structure = {kDsmlBegin, kDsmlEnd, kDsmlInvoke, kDsmlInvokeEnd, kDsmlParam, kDsmlParamEnd};
        all(kContent, {kDsmlBegin, kDsmlBeginAfterText});
        all(kBetween, {kDsmlInvoke, kDsmlEnd});
        all(kHeader, structure);
        all(kHeader, {kDsmlAttrEnd});
        all(kParams, {kDsmlParam, kDsmlInvokeEnd});
        all(kParamName, structure);
        all(kParamName, {kDsmlString});
        all(kParamKind, structure);
        all(kParamKind, {kDsmlAttrEnd});
        all(kParamValue, {kDsmlParamEnd});
        break;
      }
      case ToolCallFormat::kKimiK2: {
        const auto structure = {kKimiBegin,     kKimiBeginAlt, kKimiEnd,    kKimiEndAlt,
                                kKimiCallBegin, kKimiArgBegin, kKimiCallEnd};
        all(kContent, {kKimiBegin, kKimiBeginAlt});
        all(kBetween, {kKimiCallBegin, kKimiEnd, kKimiEndAlt});
        all(kHeader, structure);
        all(kArgs, {kKimiCallEnd});
        break;
      }
    }
  }

  std::string new_id() {
    const uint64_t a = rng(), b = rng();
    return fmt::format("call_{:016x}{:08x}", a, static_cast<uint32_t>(b));
  }

  // --- sinks -------------------------------------------------------------------------------------------
  void emit_reasoning(std::string_view t) {
    reasoning += t;
    out.reasoning += t;
  }
  void emit_content(std::string_view t) {
    if (drop_newlines) {
      const size_t k = t.find_first_not_of("\r\n");
      if (k == std::string_view::npos) return;
      t.remove_prefix(k);
      drop_newlines = false;
    }
    content += t;
    out.content += t;
  }
  void open_call(std::string id, std::string name) {
    const int index = static_cast<int>(calls.size());
    calls.push_back({id, name, ""});
    out.tool_calls.push_back({index, std::move(id), std::move(name), ""});
    raw.clear();
  }
  void emit_args(std::string_view t) {
    if (t.empty()) return;
    const int index = static_cast<int>(calls.size()) - 1;
    calls.back().arguments += t;
    if (out.tool_calls.empty() || out.tool_calls.back().index != index) out.tool_calls.push_back({index, "", "", ""});
    out.tool_calls.back().arguments += t;
  }
  // The uncommitted part of the section becomes content; parsing goes on as content.
  void fall_back() {
    if (in_call) {
      emit_args(params > 0 ? "}" : "{}");
      in_call = false;
    }
    state = kContent;
    drop_newlines = false;
    const std::string r = std::move(raw);
    raw.clear();
    field.clear();
    emit_content(r);
  }

  // --- the machine ---------------------------------------------------------------------------------------
  void run(bool final) {
    for (;;) {
      const std::string_view v = std::string_view(pending).substr(pos);
      if (state == kStart) {
        if (!start(v, final)) return;
        continue;
      }
      const State before = state;
      const ScanResult r = scan(v, sets[state], final);
      const size_t used = r.text_end > 0 ? on_text(v.substr(0, r.text_end)) : 0;
      pos += used;
      if (used < r.text_end || state != before) continue;  // fell back: the rest is read as content
      if (r.marker < 0) return;                            // the rest is held (or there is none)
      const std::string_view m = sets[before].markers[r.marker];
      if (on_marker(m)) pos += m.size();  // else fell back, and the marker is read again as content
    }
  }

  // kStart: false to wait for more text.
  bool start(std::string_view v, bool final) {
    const size_t ws = std::min(v.find_first_not_of(" \t\r\n"), v.size());
    if (ws <= kMaxLeadingSpace) {
      const std::string_view rest = v.substr(ws);
      if (rest.substr(0, kThinkOpen.size()) == kThinkOpen) {
        pos += ws + kThinkOpen.size();
        state = kReasoning;
        return true;
      }
      if (!final && rest.size() < kThinkOpen.size() && kThinkOpen.substr(0, rest.size()) == rest) return false;
    }
    state = opt.starts_in_reasoning ? kReasoning : kContent;
    return true;
  }

  // Plain text (no marker of the state in it). Returns the bytes consumed: fewer when the text broke the
  // section's structure, in which case fall_back() ran and the rest is read again as content.
  size_t on_text(std::string_view t) {
    switch (state) {
      case kReasoning:
        emit_reasoning(t);
        return t.size();
      case kContent:
        emit_content(t);
        return t.size();
      case kArgs:
        emit_args(t);
        return t.size();
      case kBetween:
      case kParams: {  // whitespace only; kept for a fall-back only before a call is committed
        size_t k = 0;
        while (k < t.size() && is_space(t[k])) ++k;
        if (state == kBetween) raw += t.substr(0, k);
        if (k < t.size()) fall_back();
        return k;
      }
      case kParamValue:
        field += t;
        raw += t;
        return t.size();
      default: {  // a header field
        const size_t room = kMaxField - std::min(kMaxField, field.size());
        const size_t k = std::min(room, t.size());
        field += t.substr(0, k);
        raw += t.substr(0, k);
        if (k < t.size()) fall_back();
        return k;
      }
    }
  }

  // A marker of the current state at the front of the unread text. Returns whether it was consumed.
  bool on_marker(std::string_view m) {
    switch (state) {
      case kReasoning:  // </think>
        state = kContent;
        drop_newlines = true;
        return true;
      case kContent:  // a section opens
        raw = std::string(m);
        drop_newlines = false;
        state = kBetween;
        return true;
      case kBetween:
        if (m == kDsCallBegin || m == kKimiCallBegin || m == kDsmlInvoke) {
          raw += m;
          field.clear();
          state = kHeader;
        } else {  // the section's end
          raw.clear();
          state = kContent;
        }
        return true;
      case kHeader:
        return on_header_end(m);
      case kName: {  // V3
        const std::string_view name = trim(field);
        if (m != kDsV3ArgsOpen || !valid_name(name)) return fail_structure();
        open_call(new_id(), std::string(name));
        state = kArgs;
        return true;
      }
      case kArgs:  // the call's end
        state = kBetween;
        return true;
      case kParams:
        if (m == kDsmlParam) {
          raw += m;
          field.clear();
          state = kParamName;
        } else {  // </｜DSML｜invoke>
          emit_args(params > 0 ? "}" : "{}");
          in_call = false;
          raw.clear();
          state = kBetween;
        }
        return true;
      case kParamName:
        if (m != kDsmlString || !valid_name(field)) return fail_structure();
        param_name = std::move(field);
        field.clear();
        raw += m;
        state = kParamKind;
        return true;
      case kParamKind:
        if (m != kDsmlAttrEnd || (field != "true" && field != "false")) return fail_structure();
        param_string = field == "true";
        field.clear();
        raw += m;
        state = kParamValue;
        return true;
      case kParamValue: {  // </｜DSML｜parameter>
        std::string piece = params > 0 ? ", " : "{";
        piece += json_string(param_name);
        piece += ": ";
        piece += param_string ? json_string(field) : field;
        emit_args(piece);
        ++params;
        field.clear();
        raw.clear();
        state = kParams;
        return true;
      }
      default:
        return fail_structure();
    }
  }

  bool on_header_end(std::string_view m) {
    switch (opt.tools) {
      case ToolCallFormat::kDeepSeekV3:
        if (m != kDsSep || trim(field) != "function") return fail_structure();
        raw += m;
        field.clear();
        state = kName;
        return true;
      case ToolCallFormat::kDeepSeekV31: {
        const std::string_view name = trim(field);
        if (m != kDsSep || !valid_name(name)) return fail_structure();
        open_call(new_id(), std::string(name));
        state = kArgs;
        return true;
      }
      case ToolCallFormat::kKimiK2: {
        // functions.NAME:IDX, the id kept whole.
        const std::string_view id = trim(field);
        std::string_view name = id;
        if (name.substr(0, 10) == "functions.") name.remove_prefix(10);
        const size_t colon = name.rfind(':');
        const std::string_view idx = colon == std::string_view::npos ? "" : name.substr(colon + 1);
        name = name.substr(0, std::min(colon, name.size()));
        if (m != kKimiArgBegin || !valid_name(name) || idx.empty() ||
            idx.find_first_not_of("0123456789") != std::string_view::npos) {
          return fail_structure();
        }
        open_call(std::string(id), std::string(name));
        state = kArgs;
        return true;
      }
      case ToolCallFormat::kDeepSeekV32:
        if (m != kDsmlAttrEnd || !valid_name(field)) return fail_structure();
        open_call(new_id(), field);
        field.clear();
        in_call = true;
        params = 0;
        state = kParams;
        return true;
      case ToolCallFormat::kNone:
        break;
    }
    return fail_structure();
  }

  // A marker out of place or a bad header: the section so far is content, and the marker is read again.
  bool fail_structure() {
    fall_back();
    return false;
  }

  void finish() {
    run(true);
    // Only a committed call's arguments (kArgs) or plain text may remain open; anything else falls back.
    if (state != kReasoning && state != kContent && state != kArgs) fall_back();
    pending.clear();
    pos = 0;
  }
};

OutputParser::OutputParser(OutputParserOptions options) : impl_(std::make_unique<Impl>(options)) {}
OutputParser::~OutputParser() = default;
OutputParser::OutputParser(OutputParser&&) noexcept = default;
OutputParser& OutputParser::operator=(OutputParser&&) noexcept = default;

OutputDelta OutputParser::feed(std::string_view text) {
  Impl& p = *impl_;
  if (p.finished) fail("OutputParser::feed after finish()");
  p.out = {};
  p.pending.append(text);
  p.run(false);
  p.pending.erase(0, p.pos);
  p.pos = 0;
  return std::move(p.out);
}

OutputDelta OutputParser::finish() {
  Impl& p = *impl_;
  p.out = {};
  if (!p.finished) {
    p.finished = true;
    p.finish();
  }
  return std::move(p.out);
}

const std::string& OutputParser::reasoning() const { return impl_->reasoning; }
const std::string& OutputParser::content() const { return impl_->content; }
const std::vector<ToolCallOut>& OutputParser::tool_calls() const { return impl_->calls; }

}  // namespace dsv3::server
