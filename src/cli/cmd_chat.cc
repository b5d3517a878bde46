// dsv3 chat --model DIR [--system TEXT] [sampling flags as generate]
// A multi-turn REPL: each line is a user message; the conversation is rendered with the model's chat
// template (tokenizer_config.json) and the reply streams to stdout. The KV cache carries over between turns:
// only the tokens after the longest common prefix with the previous turn are computed again.
// Lines starting with '/' are commands: /reset (forget the conversation), /exit (or end of input).
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "cli/command.h"
#include "cli/gen_flags.h"
#include "core/error.h"
#include "io/chat_template.h"
#include "runtime/text_stream.h"

namespace dsv3::cli {
namespace {

struct Options {
  GenFlags gen;
  std::string system;
};

int run(const Options& o) {
  runtime::ModelBundle g = runtime::ModelBundle::load(o.gen.model, o.gen.options);
  if (!g.tokenizer) fail("{} has no tokenizer.json: chat needs one", o.gen.model);
  const io::ChatTemplate tmpl = g.chat_template.value_or(io::ChatTemplate{});  // none: DeepSeek-V3's
  runtime::Engine engine(*g.model, o.gen.engine());
  const bool tty = ::isatty(STDIN_FILENO);
  const bool spec = engine.options().spec == runtime::SpecMode::Mtp;
  std::vector<io::ChatMessage> messages;
  if (!o.system.empty()) messages.push_back({.role = "system", .content = o.system, .tool_calls = std::nullopt});
  const size_t base = messages.size();
  std::unique_ptr<runtime::Sequence> prev;
  runtime::SamplingParams sp = o.gen.sampling();
  if (tty) std::printf("dsv3 chat: %s. /reset starts over, /exit or Ctrl-D quits.\n", o.gen.model.c_str());
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
      messages.resize(base);
      prev.reset();
      std::printf("(conversation cleared)\n");
      std::fflush(stdout);
      continue;
    }
    messages.push_back({.role = "user", .content = line, .tool_calls = std::nullopt});
    runtime::GenerationRequest req;
    req.prompt = g.tokenizer->encode(tmpl.render(messages, /*add_generation_prompt=*/true), /*allow_special=*/true);
    req.sampling = sp;
    sp.seed += 1;  // each turn draws fresh numbers, reproducibly for a given --seed
    req.max_tokens = o.gen.max_tokens;
    req.eos_ids = g.eos_ids;
    req.ignore_eos = o.gen.ignore_eos;
    runtime::TextStream ts(*g.tokenizer, o.gen.stop);
    std::string reply;
    std::unique_ptr<runtime::Sequence> seq;
    try {
      seq = engine.start(
          std::move(req),
          [&](int32_t tok, const runtime::TokenLogprobs*) {
            const std::string piece = ts.push(tok);
            reply += piece;
            std::fwrite(piece.data(), 1, piece.size(), stdout);
            std::fflush(stdout);
            return !ts.stopped();
          },
          prev.get());
    } catch (const Error& e) {  // e.g. the conversation no longer fits the context
      std::fprintf(stderr, "error: %s (use /reset)\n", e.what());
      messages.pop_back();
      continue;
    }
    const runtime::SequenceStats st = runtime::run_to_completion(engine, *seq);
    const std::string tail = ts.finish();
    reply += tail;
    std::fwrite(tail.data(), 1, tail.size(), stdout);
    std::printf("\n");
    std::fflush(stdout);
    if (o.gen.stats) print_stats(st, spec);
    messages.push_back({.role = "assistant", .content = reply, .tool_calls = std::nullopt});
    prev = std::move(seq);
  }
  return 0;
}

Registrar reg("chat", "Multi-turn chat in the terminal (the model's chat template)", [](CLI::App& app) {
  auto o = std::make_shared<Options>();
  o->gen.add_to(app);
  app.add_option("--system", o->system, "System prompt");
  return [o] { return run(*o); };
});

}  // namespace
}  // namespace dsv3::cli
