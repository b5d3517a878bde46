// dsv3 chat --model DIR [--system TEXT] [--tools FILE] [--chat-template-kwargs JSON] [--reasoning MODE]
//           [sampling flags as generate]
// A multi-turn REPL: each line is a user message; the conversation is rendered with the model's chat
// template (io/chat_prompt.h) and the reply streams to stdout. The KV cache carries over between turns:
// only the tokens after the longest common prefix with the previous turn are computed again.
// The reply is split as the server splits it (server/chat_output.h): reasoning (R1, V3.1/V3.2 thinking)
// is shown dimmed (--reasoning show, the default on a terminal), as a one-line summary (collapsed; /think
// prints it) or not at all (hidden); tool calls are shown as "→ tool call NAME(ARGUMENTS)" and kept in the
// history, and `/tool TEXT` answers the last call with a tool message.
// Lines starting with '/' are commands: /reset (forget the conversation), /think, /tool TEXT, /exit (or
// end of input).
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "cli/chat_flags.h"
#include "cli/command.h"
#include "cli/gen_flags.h"
#include "core/error.h"
#include "io/chat_prompt.h"
#include "runtime/text_stream.h"
#include "server/chat_family.h"
#include "server/chat_output.h"

namespace dsv3::cli {
namespace {

using ojson = nlohmann::ordered_json;

struct Options {
  GenFlags gen;
  ChatFlags chat;
  std::string system;
  std::string reasoning = "auto";  // show | collapsed | hidden | auto (show)
};

constexpr const char* kDim = "\x1b[2m";
constexpr const char* kReset = "\x1b[0m";

// Writes the parsed pieces of one reply as they arrive.
struct ReplyPrinter {
  bool color = false;
  std::string mode;  // show | collapsed | hidden
  bool in_reasoning = false;
  size_t reasoning_chars = 0;

  void put(const std::string& s) const { std::fwrite(s.data(), 1, s.size(), stdout); }
  void show(const server::OutputDelta& d) {
    if (!d.reasoning.empty()) {
      reasoning_chars += d.reasoning.size();
      if (mode == "show") {
        if (!in_reasoning && color) put(kDim);
        put(d.reasoning);
      }
      in_reasoning = true;
    }
    if (!d.content.empty() || !d.tool_calls.empty()) end_reasoning();
    put(d.content);
    for (const server::ToolCallDelta& c : d.tool_calls) {
      if (!c.name.empty()) put((c.index ? ")\n→ tool call " : "\n→ tool call ") + c.name + "(");
      put(c.arguments);
    }
    std::fflush(stdout);
  }
  void end_reasoning() {
    if (!in_reasoning) return;
    in_reasoning = false;
    if (mode == "show") {
      if (color) put(kReset);
      put("\n");
    } else if (mode == "collapsed") {
      put(fmt::format("{}[reasoning: {} bytes; /think shows it]{}\n", color ? kDim : "", reasoning_chars,
                      color ? kReset : ""));
    }
  }
};

int run(const Options& o) {
  runtime::ModelBundle g = runtime::ModelBundle::load(o.gen.model, o.gen.options, o.chat.template_file);
  if (!g.tokenizer) fail("{} has no tokenizer.json: chat needs one", o.gen.model);
  const io::ChatPrompt& tmpl = *g.chat_prompt;
  const server::ChatFamily family = server::detect_chat_family(tmpl);
  const ojson tools = o.chat.tools(), kwargs = o.chat.kwargs();
  runtime::Engine engine(*g.model, o.gen.engine());
  const bool tty = ::isatty(STDIN_FILENO), color = ::isatty(STDOUT_FILENO);
  const std::string mode = o.reasoning == "auto" ? "show" : o.reasoning;
  const bool spec = engine.options().spec == runtime::SpecMode::Mtp;
  ojson messages = ojson::array();
  if (!o.system.empty()) messages.push_back({{"role", "system"}, {"content", o.system}});
  const size_t base = messages.size();
  std::unique_ptr<runtime::Sequence> prev;
  runtime::SamplingParams sp = o.gen.sampling();
  std::string last_reasoning, last_call_id;
  if (tty)
    std::printf(
        "dsv3 chat: %s (template: %s). /reset starts over, /think shows reasoning, /tool TEXT answers a "
        "tool call, /exit or Ctrl-D quits.\n",
        o.gen.model.c_str(), tmpl.origin().c_str());
  std::string line;
  for (;;) {
    if (tty) {
      std::printf("> ");
      std::fflush(stdout);
    }
    if (!std::getline(std::cin, line)) break;
    if (line.empty()) continue;
    if (line == "/exit" || line == "/quit") break;
    if (line == "/reset") {
      messages.erase(messages.begin() + ojson::difference_type(base), messages.end());
      prev.reset();
      std::printf("(conversation cleared)\n");
      std::fflush(stdout);
      continue;
    }
    if (line == "/think") {
      std::printf("%s\n", last_reasoning.empty() ? "(no reasoning in the last reply)" : last_reasoning.c_str());
      continue;
    }
    if (line.rfind("/tool ", 0) == 0) {
      if (last_call_id.empty()) {
        std::printf("(the last reply made no tool call)\n");
        continue;
      }
      messages.push_back({{"role", "tool"}, {"tool_call_id", last_call_id}, {"content", line.substr(6)}});
    } else {
      messages.push_back({{"role", "user"}, {"content", line}});
    }
    std::string prompt;
    try {
      prompt = tmpl.render({.messages = messages, .tools = tools, .kwargs = kwargs, .add_generation_prompt = true});
    } catch (const Error& e) {
      std::fprintf(stderr, "error: %s\n", e.what());
      messages.erase(messages.end() - 1);
      continue;
    }
    const bool tool_parse = family.tools != server::ToolCallFormat::kNone && !tools.is_null();
    server::OutputParser parser({.tools = tool_parse ? family.tools : server::ToolCallFormat::kNone,
                                 .reasoning = family.reasoning,
                                 .starts_in_reasoning = family.reasoning && server::prompt_opens_reasoning(prompt)});
    runtime::GenerationRequest req;
    req.prompt = g.tokenizer->encode(prompt, /*allow_special=*/true);
    req.sampling = sp;
    sp.seed += 1;  // each turn draws fresh numbers, reproducibly for a given --seed
    req.max_tokens = o.gen.max_tokens;
    req.eos_ids = g.eos_ids;
    req.emit_vocab = g.emit_vocab();
    req.ignore_eos = o.gen.ignore_eos;
    runtime::TextStream ts(*g.tokenizer, o.gen.stop, /*skip_special=*/false);
    ReplyPrinter out{.color = color, .mode = mode};
    std::unique_ptr<runtime::Sequence> seq;
    try {
      seq = engine.start(
          std::move(req),
          [&](int32_t tok, const runtime::TokenLogprobs*) {
            out.show(parser.feed(ts.push(tok)));
            return !ts.stopped();
          },
          prev.get());
    } catch (const Error& e) {  // e.g. the conversation no longer fits the context
      std::fprintf(stderr, "error: %s (use /reset)\n", e.what());
      messages.erase(messages.end() - 1);
      continue;
    }
    const runtime::SequenceStats st = runtime::run_to_completion(engine, *seq);
    out.show(parser.feed(ts.finish()));
    out.show(parser.finish());
    out.end_reasoning();
    std::printf(parser.tool_calls().empty() ? "\n" : ")\n");
    std::fflush(stdout);
    if (o.gen.stats) print_stats(st, spec);
    ojson reply = {{"role", "assistant"},
                   {"content", parser.content().empty() && !parser.tool_calls().empty() ? ojson(nullptr)
                                                                                        : ojson(parser.content())}};
    if (!parser.reasoning().empty()) reply["reasoning_content"] = parser.reasoning();
    last_call_id.clear();
    if (!parser.tool_calls().empty()) {
      ojson calls = ojson::array();
      for (const server::ToolCallOut& c : parser.tool_calls())
        calls.push_back(
            {{"id", c.id}, {"type", "function"}, {"function", {{"name", c.name}, {"arguments", c.arguments}}}});
      reply["tool_calls"] = calls;
      last_call_id = parser.tool_calls().back().id;
    }
    last_reasoning = parser.reasoning();
    messages.push_back(std::move(reply));
    prev = std::move(seq);
  }
  return 0;
}

Registrar reg("chat", "Multi-turn chat in the terminal (the model's chat template)", [](CLI::App& app) {
  auto o = std::make_shared<Options>();
  o->gen.add_to(app);
  o->chat.add_to(app);
  app.add_option("--system", o->system, "System prompt");
  app.add_option("--reasoning", o->reasoning,
                 "How reasoning is shown: show (dimmed, the default), collapsed (a summary; /think prints it), "
                 "hidden")
      ->check(CLI::IsMember({"auto", "show", "collapsed", "hidden"}));
  return [o] { return run(*o); };
});

}  // namespace
}  // namespace dsv3::cli
