// dsv3 generate --model DIR (--prompt TEXT | --ids "I1 I2 ..." | --messages FILE) [--chat] [-n N] [--temp T]
//               [--top-k K] [--top-p P] [--seed S] [--spec mtp|none] [--draft N] [--stats] [--ep N] ...
//               [--tools FILE] [--chat-template FILE] [--chat-template-kwargs JSON]   (docs/serving.md)
//               [--json-schema FILE | --json-object]   (structured output, docs/generation.md)
// --chat renders --prompt as one user message with the model's chat template, --messages a whole
// conversation (JSON); the raw reply is printed, special tokens included (the markers of tool calls and
// reasoning show as the model wrote them).
// Streams the generated text to stdout as it is produced (token ids with --print-ids or when the model
// has no tokenizer.json). --batch N generates N continuations together (seeds S, S+1, ...; continuous
// batching as the server does) and prints them at the end; --stats then reports the aggregate throughput.
// Under mpirun -np N with --ep N the sequences and experts are spread over the ranks (cli/dist_flags.h);
// rank 0 prints.
#include <cstdio>
#include <fstream>
#include <sstream>

#include "cli/chat_flags.h"
#include "cli/command.h"
#include "cli/dist_flags.h"
#include "cli/gen_flags.h"
#include "cli/ids.h"
#include "core/error.h"
#include "io/grammar/grammar.h"
#include "runtime/grammar_constraint.h"
#include "runtime/text_stream.h"

namespace dsv3::cli {
namespace {

struct Options {
  GenFlags gen;
  std::string prompt, ids, messages;
  bool print_ids = false, no_bos = false, chat = false;
  ChatFlags chat_flags;
  int64_t batch = 1;
  DistFlags dist;
  std::string json_schema;  // --json-schema FILE
  bool json_object = false;
};

// --json-schema / --json-object: a fresh constraint per sequence (it caches that sequence's matcher
// states); the grammar and the vocabulary are shared. Null when neither flag is given.
struct Structured {
  std::shared_ptr<const grammar::Grammar> grammar;
  std::shared_ptr<const grammar::TokenVocabulary> vocab;
  std::vector<int32_t> eos;
  std::vector<std::shared_ptr<const runtime::GrammarConstraint>> made;
  std::shared_ptr<const runtime::TokenConstraint> make() {
    if (!grammar) return nullptr;
    made.push_back(std::make_shared<runtime::GrammarConstraint>(grammar, vocab,
                                                                runtime::GrammarConstraintOptions{.eos_ids = eos}));
    return made.back();
  }
  void print_stats() const {
    runtime::GrammarConstraintStats t;
    for (auto& c : made) {
      const auto s = c->stats();
      t.mask_seconds += s.mask_seconds, t.masks += s.masks, t.states += s.states;
      t.cache_hits += s.cache_hits, t.cache_misses += s.cache_misses;
      t.prepared += s.prepared, t.prepare_seconds += s.prepare_seconds;
    }
    if (!made.empty())
      std::fprintf(stderr,
                   "grammar: %lld masks, %.3f s on the decode path (%.3f ms/mask); %lld computed during the forward "
                   "(%.3f s); %lld cache hits, %lld states\n",
                   (long long)t.masks, t.mask_seconds, t.masks ? 1e3 * t.mask_seconds / double(t.masks) : 0.0,
                   (long long)t.prepared, t.prepare_seconds, (long long)t.cache_hits, (long long)t.states);
  }
};

Structured structured(const Options& o, const runtime::ModelBundle& g) {
  Structured s;
  if (o.json_schema.empty() && !o.json_object) return s;
  if (!o.json_schema.empty() && o.json_object) fail("give one of --json-schema and --json-object");
  if (!g.tokenizer) fail("{} has no tokenizer.json: --json-schema and --json-object need one", o.gen.model);
  if (o.json_object) {
    s.grammar = std::make_shared<const grammar::Grammar>(grammar::Grammar::json_object());
  } else {
    std::ifstream f(o.json_schema);
    if (!f) fail("--json-schema: cannot read {}", o.json_schema);
    std::stringstream ss;
    ss << f.rdbuf();
    nlohmann::ordered_json schema;  // ordered: properties are emitted in the schema's order
    try {
      schema = nlohmann::ordered_json::parse(ss.str());
    } catch (const std::exception& e) {
      fail("--json-schema {}: not JSON: {}", o.json_schema, e.what());
    }
    try {
      s.grammar = std::make_shared<const grammar::Grammar>(grammar::Grammar::json_schema(schema));
    } catch (const Error& e) {
      fail("--json-schema {}: {}", o.json_schema, e.what());
    }
  }
  s.vocab = runtime::make_token_vocabulary(*g.tokenizer);
  s.eos = g.eos_ids;
  return s;
}

// --batch N: N sequences stepped together; texts printed at the end.
int run_batch(const Options& o, runtime::ModelBundle& g, runtime::Engine& engine,
              const runtime::GenerationRequest& base, bool text, Structured& st) {
  std::vector<std::unique_ptr<runtime::Sequence>> seqs;
  std::vector<std::optional<runtime::TextStream>> ts(size_t(o.batch));
  std::vector<std::string> out(size_t(o.batch));
  for (int64_t i = 0; i < o.batch; ++i) {
    runtime::GenerationRequest req = base;
    req.sampling.seed = base.sampling.seed + uint64_t(i);
    if (st.grammar) req.constraint = st.make();
    if (text) ts[size_t(i)].emplace(*g.tokenizer, o.gen.stop);
    seqs.push_back(engine.start(std::move(req), [&, i](int32_t tok, const runtime::TokenLogprobs*) {
      auto& t = ts[size_t(i)];
      out[size_t(i)] += t ? t->push(tok) : std::to_string(tok) + " ";
      return !(t && t->stopped());
    }));
  }
  std::vector<runtime::Sequence*> live;
  for (;;) {
    live.clear();
    for (auto& s : seqs)
      if (!s->done()) live.push_back(s.get());
    if (live.empty()) break;
    engine.step(live);
  }
  for (int64_t i = 0; i < o.batch; ++i) {
    if (ts[size_t(i)]) out[size_t(i)] += ts[size_t(i)]->finish();
    std::printf("[%lld] %s\n", (long long)i, out[size_t(i)].c_str());
  }
  std::fflush(stdout);
  if (o.gen.stats) {
    const runtime::EngineStats& e = engine.stats();
    std::fprintf(stderr, "\nprefill: %lld tokens in %.3f s (%.1f tok/s)\n", (long long)e.prefill_tokens, e.prefill_s,
                 e.prefill_s > 0 ? double(e.prefill_tokens) / e.prefill_s : 0.0);
    std::fprintf(stderr, "decode: %lld tokens in %.3f s (%.1f tok/s, %lld streams)\n", (long long)e.decode_tokens,
                 e.decode_s, e.decode_s > 0 ? double(e.decode_tokens) / e.decode_s : 0.0, (long long)o.batch);
    if (engine.options().spec == runtime::SpecMode::Mtp) {
      int64_t verify = 0;
      for (auto& s : seqs) verify += s->stats.verify_steps;
      std::fprintf(stderr, "mtp: %lld drafted, %lld accepted (acceptance %.1f%%), mean accepted length %.2f\n",
                   (long long)e.drafted, (long long)e.accepted,
                   e.drafted ? 100.0 * double(e.accepted) / double(e.drafted) : 0.0,
                   verify ? double(e.accepted) / double(verify) : 0.0);
    }
    st.print_stats();
  }
  return 0;
}

int run(const Options& o) {
  if (int(!o.prompt.empty()) + int(!o.ids.empty()) + int(!o.messages.empty()) != 1)
    fail("give exactly one of --prompt, --ids and --messages");
  if (o.chat && o.prompt.empty()) fail("--chat renders --prompt as a user message: give --prompt");
  const bool chat = o.chat || !o.messages.empty();
  if (!chat &&
      (!o.chat_flags.tools_file.empty() || !o.chat_flags.kwargs_json.empty() || !o.chat_flags.template_file.empty()))
    fail("--tools, --chat-template and --chat-template-kwargs need --chat or --messages");
  ModelOptions options = o.gen.options;
  auto job = o.dist.start(o.gen.model, options);
  if (job && !job->leads()) return follow(*job, o.gen.model, options);
  JobStopper stopper{job};
  runtime::ModelBundle g = runtime::ModelBundle::load(o.gen.model, options, o.chat_flags.template_file);
  runtime::Engine engine(*g.model, o.gen.engine());
  runtime::GenerationRequest req;
  if (!o.ids.empty()) {
    req.prompt = parse_ids(o.ids);
  } else if (chat) {
    if (!g.tokenizer) fail("{} has no tokenizer.json: --chat and --messages need one", o.gen.model);
    nlohmann::ordered_json msgs = o.messages.empty()
                                      ? nlohmann::ordered_json::array({{{"role", "user"}, {"content", o.prompt}}})
                                      : read_messages_file(o.messages);
    const std::string text = g.chat_prompt->render({.messages = msgs,
                                                    .tools = o.chat_flags.tools(),
                                                    .kwargs = o.chat_flags.kwargs(),
                                                    .add_generation_prompt = true});
    req.prompt = g.tokenizer->encode(text, /*allow_special=*/true);  // the template wrote the BOS text
  } else {
    if (!g.tokenizer) fail("{} has no tokenizer.json: give the prompt as token ids with --ids", o.gen.model);
    if (g.tokenizer->add_bos() && g.tokenizer->bos_id() && !o.no_bos) req.prompt.push_back(*g.tokenizer->bos_id());
    g.tokenizer->encode_into(o.prompt, req.prompt);
  }
  const bool text = g.tokenizer && !o.print_ids;
  if (!o.gen.stop.empty() && !text) fail("--stop needs text output (a tokenizer.json, no --print-ids)");
  req.sampling = o.gen.sampling();
  req.max_tokens = o.gen.max_tokens;
  req.eos_ids = g.eos_ids;
  req.emit_vocab = g.emit_vocab();
  req.ignore_eos = o.gen.ignore_eos;
  Structured st = structured(o, g);
  if (o.batch > 1) {
    const int rc = run_batch(o, g, engine, req, text, st);
    if (o.gen.stats && job) print_placement(*job);
    return rc;
  }
  req.constraint = st.make();
  std::optional<runtime::TextStream> ts;
  if (text) ts.emplace(*g.tokenizer, o.gen.stop, /*skip_special=*/!chat);
  auto seq = engine.start(std::move(req), [&](int32_t tok, const runtime::TokenLogprobs*) {
    if (!ts) {
      std::printf("%d ", tok);
    } else {
      const std::string piece = ts->push(tok);
      std::fwrite(piece.data(), 1, piece.size(), stdout);
    }
    std::fflush(stdout);
    return !(ts && ts->stopped());
  });
  const runtime::SequenceStats stats = runtime::run_to_completion(engine, *seq);
  if (ts) {
    const std::string tail = ts->finish();
    std::fwrite(tail.data(), 1, tail.size(), stdout);
  }
  std::printf("\n");
  std::fflush(stdout);
  if (o.gen.stats) {
    print_stats(stats, engine.options().spec == runtime::SpecMode::Mtp);
    st.print_stats();
    std::fprintf(stderr, "finish: %s\n", runtime::finish_reason_name(seq->finish));
    if (job) print_placement(*job);
  }
  return 0;
}

Registrar reg("generate", "Generate text from a prompt (streams to stdout)", [](CLI::App& app) {
  auto o = std::make_shared<Options>();
  o->gen.add_to(app);
  app.add_option("-p,--prompt", o->prompt, "Prompt text (encoded with the model's tokenizer.json)");
  app.add_option("--ids", o->ids, "Prompt as token ids, space separated (no tokenizer needed)");
  app.add_flag("--print-ids", o->print_ids, "Print generated token ids instead of text");
  app.add_flag("--no-bos", o->no_bos, "Do not prepend the tokenizer's BOS token to --prompt");
  app.add_flag("--chat", o->chat, "Render --prompt as a user message with the model's chat template");
  app.add_option("--messages", o->messages, "JSON file of chat messages, rendered with the model's chat template");
  o->chat_flags.add_to(app);
  app.add_option("--batch", o->batch, "Generate N continuations together (seeds S, S+1, ...)")
      ->check(CLI::PositiveNumber);
  app.add_option("--json-schema", o->json_schema,
                 "Constrain the output to compact JSON valid against this JSON Schema file (docs/generation.md)");
  app.add_flag("--json-object", o->json_object, "Constrain the output to a JSON object");
  o->dist.add_to(app);
  return [o] { return run(*o); };
});

}  // namespace
}  // namespace dsv3::cli
