// dsv3 tokenizer train --input FILE... --vocab-size N --out tokenizer.json [--pretokenizer deepseek-v3|gpt2|llama3]
//                      [--min-frequency N] [--threads N]
//   Trains a byte-level BPE and writes tokenizer.json plus tokenizer_config.json beside it.
// dsv3 tokenizer info --tokenizer FILE|DIR
//   Vocabulary size, special ids, added tokens.
// dsv3 tokenizer chat --config DIR|tokenizer_config.json --messages FILE.json [--generation-prompt]
//                     [--ids --tokenizer FILE|DIR]
//   Renders OpenAI-style messages with the DeepSeek chat template (or prints their token ids).
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "cli/chat_flags.h"
#include "cli/command.h"
#include "core/error.h"
#include "io/bpe_trainer.h"
#include "io/chat_prompt.h"
#include "io/tokenizer.h"

namespace dsv3::cli {
namespace {

std::string read_whole(const std::string& path, const char* what) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail("{} {}: cannot open file", what, path);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

struct TrainOptions {
  std::vector<std::string> inputs;
  std::string out, pretokenizer = "deepseek-v3";
  int64_t vocab_size = 0, min_frequency = 2;
  int threads = 0;
};

int run_train(const TrainOptions& o) {
  io::BpeTrainerOptions opt;
  opt.vocab_size = o.vocab_size;
  opt.pretokenizer = io::parse_pretokenizer_kind(o.pretokenizer);
  opt.min_frequency = o.min_frequency;
  opt.threads = o.threads;
  auto t0 = std::chrono::steady_clock::now();
  std::vector<std::string> texts;
  size_t bytes = 0;
  for (const std::string& p : o.inputs) {
    texts.push_back(read_whole(p, "--input"));
    bytes += texts.back().size();
  }
  std::vector<std::string_view> views(texts.begin(), texts.end());
  io::BpeTrainerResult r = io::train_bpe(views, opt);
  std::filesystem::path out(o.out);
  if (out.has_parent_path()) std::filesystem::create_directories(out.parent_path());
  io::write_trained_tokenizer(r, o.out);
  double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::fprintf(stderr,
               "trained %lld tokens (%lld merges) on %.2f MB: %lld words, %lld distinct; %.2f s "
               "(pre-tokenize %.2f s, merges %.2f s)\nwrote %s and tokenizer_config.json beside it\n",
               static_cast<long long>(r.vocab_size), static_cast<long long>(r.num_merges), bytes / 1e6,
               static_cast<long long>(r.num_words), static_cast<long long>(r.num_unique_words), dt,
               r.seconds_pretokenize, r.seconds_merge, o.out.c_str());
  return 0;
}

int run_info(const std::string& path) {
  io::Tokenizer tok = io::Tokenizer::load(path);
  auto id = [](std::optional<int32_t> v) { return v ? std::to_string(*v) : std::string("none"); };
  std::printf("vocab_size %lld\nbos %s\neos %s\npad %s\nadd_bos %s\nadded_tokens %zu\n",
              static_cast<long long>(tok.vocab_size()), id(tok.bos_id()).c_str(), id(tok.eos_id()).c_str(),
              id(tok.pad_id()).c_str(), tok.add_bos() ? "true" : "false", tok.added_tokens().size());
  for (const io::AddedToken& a : tok.added_tokens())
    std::printf("  %d %s%s\n", a.id, a.content.c_str(), a.special ? " (special)" : "");
  return 0;
}

struct ChatOptions {
  std::string config, messages, tokenizer, model_type;
  bool generation_prompt = false, ids = false;
  ChatFlags chat;
};

int run_chat(const ChatOptions& o) {
  const io::ChatPrompt tmpl = io::ChatPrompt::load(o.config, o.model_type, o.chat.template_file);
  const std::string prompt = tmpl.render({.messages = read_messages_file(o.messages),
                                          .tools = o.chat.tools(),
                                          .kwargs = o.chat.kwargs(),
                                          .add_generation_prompt = o.generation_prompt});
  if (!o.ids) {
    std::fwrite(prompt.data(), 1, prompt.size(), stdout);
    return 0;
  }
  io::Tokenizer tok = io::Tokenizer::load(o.tokenizer.empty() ? o.config : o.tokenizer);
  std::vector<int32_t> ids = tok.encode(prompt, /*allow_special=*/true);
  for (size_t i = 0; i < ids.size(); ++i) std::printf(i ? " %d" : "%d", ids[i]);
  std::printf("\n");
  return 0;
}

Registrar reg("tokenizer", "Train, inspect and apply tokenizers", [](CLI::App& app) {
  app.require_subcommand(1);
  auto t = std::make_shared<TrainOptions>();
  CLI::App* train = app.add_subcommand("train", "Train a byte-level BPE tokenizer (HF tokenizer.json)");
  train->add_option("--input", t->inputs, "Training text files")->required()->expected(1, -1);
  train->add_option("--vocab-size", t->vocab_size, "Total vocabulary size (added + 256 bytes + merges)")->required();
  train->add_option("--out", t->out, "Output tokenizer.json (tokenizer_config.json goes beside it)")->required();
  train->add_option("--pretokenizer", t->pretokenizer, "deepseek-v3 | gpt2 | llama3 (default deepseek-v3)");
  train->add_option("--min-frequency", t->min_frequency, "Never merge a pair seen fewer times (default 2)");
  train->add_option("--threads", t->threads, "Pre-tokenization threads (0: all cores)");

  auto info_path = std::make_shared<std::string>();
  CLI::App* info = app.add_subcommand("info", "Summarise a tokenizer");
  info->add_option("--tokenizer", *info_path, "tokenizer.json, or a directory holding it")->required();

  auto c = std::make_shared<ChatOptions>();
  CLI::App* chat =
      app.add_subcommand("chat", "Render chat messages with the model's chat template (prints the prompt)");
  chat->add_option("--config", c->config,
                   "tokenizer_config.json, or its directory (where chat_template.jinja is also looked for)")
      ->required();
  chat->add_option("--model-type", c->model_type,
                   "config.json model_type, for a directory without a template (deepseek_v32: V3.2's encoder)");
  c->chat.add_to(*chat);
  chat->add_option("--messages", c->messages, "JSON file: [{\"role\", \"content\", \"tool_calls\"}, ...]")->required();
  chat->add_flag("--generation-prompt", c->generation_prompt, "End with the assistant prompt");
  chat->add_flag("--ids", c->ids, "Print token ids instead of text");
  chat->add_option("--tokenizer", c->tokenizer, "Tokenizer for --ids (default: --config's directory)");

  return [=]() {
    if (train->parsed()) return run_train(*t);
    if (info->parsed()) return run_info(*info_path);
    return run_chat(*c);
  };
});

}  // namespace
}  // namespace dsv3::cli
