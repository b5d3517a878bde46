// dsv3 data prepare --input FILE... --tokenizer tokenizer.json --out DIR [--val-frac F] [--fim-rate R]
//                   [--seed S] [--doc-sep REGEX | --doc-per-line | --doc-per-file] [--no-bos] [--threads N]
// dsv3 data info --data DIR
// Text → token shards + manifest.json (src/io/dataset.h; docs/training.md).
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "cli/command.h"
#include "core/error.h"
#include "io/dataset.h"
#include "io/tokenizer.h"

namespace dsv3::cli {
namespace {

struct PrepareFlags {
  std::vector<std::string> inputs;
  std::string tokenizer, out, doc_sep;
  bool per_line = false, per_file = false, no_bos = false;
  double val_frac = 0.01, fim_rate = 0.0;
  uint64_t seed = 0;
  int64_t shard_tokens = int64_t(1) << 26;
  int threads = 0;
};

int run_prepare(const PrepareFlags& f) {
  const auto t0 = std::chrono::steady_clock::now();
  if (int(f.per_line) + int(f.per_file) + int(!f.doc_sep.empty()) > 1)
    fail("give at most one of --doc-sep, --doc-per-line and --doc-per-file");
  const io::Tokenizer tok = io::Tokenizer::load(f.tokenizer);
  io::TokenizerInfo info;
  info.encode = [&tok](std::string_view s) { return tok.encode(s, /*allow_special=*/false); };
  info.encode_batch = [&tok, &f](const std::vector<std::string_view>& texts) {
    return tok.encode_batch(texts, f.threads, /*allow_special=*/false);
  };
  info.bos = tok.bos_id().value_or(-1);
  if (!tok.eos_id())
    fail("{}: the tokenizer has no end-of-sentence token (documents are separated by it)", f.tokenizer);
  info.eos = *tok.eos_id();
  auto special = [&tok](const char* s) { return tok.token_id(s).value_or(-1); };
  info.fim_begin = special("<｜fim▁begin｜>");
  info.fim_hole = special("<｜fim▁hole｜>");
  info.fim_end = special("<｜fim▁end｜>");
  info.vocab_size = tok.vocab_size();
  // The tokenizer file itself (a directory argument means its tokenizer.json).
  info.file = std::filesystem::is_directory(f.tokenizer) ? f.tokenizer + "/tokenizer.json" : f.tokenizer;

  io::PrepareOptions o;
  o.inputs = f.inputs;
  if (f.per_line) o.split.mode = io::DocSplit::PerLine;
  if (f.per_file) o.split.mode = io::DocSplit::PerFile;
  if (!f.doc_sep.empty()) o.split = {.mode = io::DocSplit::Regex, .regex = f.doc_sep};
  o.val_frac = f.val_frac;
  o.fim_rate = f.fim_rate;
  o.seed = f.seed;
  o.shard_tokens = f.shard_tokens;
  o.add_bos = !f.no_bos;
  const io::DatasetManifest m = io::prepare_dataset(o, info, f.out);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf(
      "%s: %lld train documents (%lld FIM) / %lld tokens, %lld val documents / %lld tokens, vocab %lld, "
      "%.1f s\n",
      f.out.c_str(), (long long)m.train_docs, (long long)m.fim_docs, (long long)m.train_tokens, (long long)m.val_docs,
      (long long)m.val_tokens, (long long)m.vocab_size, s);
  return 0;
}

int run_info(const std::string& dir) {
  const io::DatasetManifest m = io::read_manifest(dir);
  std::printf("%s\n", m.raw.dump(2).c_str());
  return 0;
}

Registrar reg("data", "Prepare token shards for training (prepare) or describe them (info)", [](CLI::App& app) {
  app.require_subcommand(1);
  auto f = std::make_shared<PrepareFlags>();
  CLI::App* prep = app.add_subcommand("prepare", "Tokenise text files into train/val shards + manifest.json");
  prep->add_option("--input", f->inputs, "Text files")->required()->check(CLI::ExistingFile);
  prep->add_option("--tokenizer", f->tokenizer, "tokenizer.json (or a directory holding one)")->required();
  prep->add_option("--out", f->out, "Output directory")->required();
  prep->add_option("--val-frac", f->val_frac, "Fraction of documents held out for validation (default 0.01)");
  prep->add_option("--fim-rate", f->fim_rate, "Probability of a PSM fill-in-the-middle rewrite per train document");
  prep->add_option("--seed", f->seed, "Seed of the train/val split and of FIM");
  auto sep = prep->add_option("--doc-sep", f->doc_sep, "Regex (PCRE2, multiline) separating documents");
  auto pl = prep->add_flag("--doc-per-line", f->per_line, "Every non-empty line is a document");
  auto pf = prep->add_flag("--doc-per-file", f->per_file, "Every input file is one document");
  sep->excludes(pl)->excludes(pf);
  pl->excludes(pf);
  prep->add_flag("--no-bos", f->no_bos, "Do not start documents with the bos token");
  prep->add_option("--shard-tokens", f->shard_tokens, "Token ids per shard file");
  prep->add_option("--threads", f->threads, "Tokeniser threads (0: all cores)");
  auto dir = std::make_shared<std::string>();
  CLI::App* info = app.add_subcommand("info", "Print a dataset's manifest");
  info->add_option("--data", *dir, "Dataset directory")->required();
  return [f, dir, prep, info]() -> int {
    if (prep->parsed()) return run_prepare(*f);
    if (info->parsed()) return run_info(*dir);
    return 1;
  };
});

}  // namespace
}  // namespace dsv3::cli
