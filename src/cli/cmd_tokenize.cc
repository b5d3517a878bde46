// dsv3 tokenize   --tokenizer FILE|DIR (--text STR | --in FILE|-) [--no-special] [--add-bos] [--threads N] [--stats]
//                 [--repeat N]
//   Prints the token ids of the text, space separated, and a newline. --stats reports the encoding speed
//   to stderr (the best of --repeat runs: a benchmark of warm caches, see bench/tokenizer_throughput.sh).
// dsv3 detokenize --tokenizer FILE|DIR --ids "I1 I2 ..." [--skip-special]
//   Prints the decoded text exactly (no newline added).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>
#include <thread>

#include "cli/command.h"
#include "cli/ids.h"
#include "core/error.h"
#include "io/tokenizer.h"

namespace dsv3::cli {
namespace {

struct TokenizeOptions {
  std::string tokenizer, text, in;
  bool has_text = false;  // --text given (it may be empty)
  bool no_special = false, add_bos = false, stats = false;
  int threads = 0, repeat = 1;
};

std::string read_input(const std::string& path) {
  if (path == "-") return std::string(std::istreambuf_iterator<char>(std::cin), {});
  std::ifstream f(path, std::ios::binary);
  if (!f) fail("--in {}: cannot open file", path);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

int run_tokenize(const TokenizeOptions& o) {
  if (!o.has_text && o.in.empty()) fail("give the text with --text STR or --in FILE (- for stdin)");
  const std::string text = o.in.empty() ? o.text : read_input(o.in);
  io::Tokenizer tok = io::Tokenizer::load(o.tokenizer);
  std::vector<int32_t> ids;
  if (o.add_bos) {
    if (!tok.bos_id()) fail("--add-bos: {} has no bos token", o.tokenizer);
    ids.push_back(*tok.bos_id());
  }
  if (o.repeat < 1) fail("--repeat must be at least 1");
  double dt = 0;
  std::vector<int32_t> body;
  for (int r = 0; r < o.repeat; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    body = tok.encode_parallel(text, o.threads, !o.no_special);
    double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    dt = r == 0 ? t : std::min(dt, t);
  }
  ids.insert(ids.end(), body.begin(), body.end());
  fmt::memory_buffer out;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) out.push_back(' ');
    fmt::format_to(std::back_inserter(out), "{}", ids[i]);
  }
  out.push_back('\n');
  std::fwrite(out.data(), 1, out.size(), stdout);
  if (o.stats) {
    int threads = o.threads > 0 ? o.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    std::fprintf(stderr, "%zu bytes -> %zu tokens in %.3f s (%.1f MB/s, %d thread(s)%s)\n", text.size(), ids.size(), dt,
                 dt > 0 ? text.size() / dt / 1e6 : 0.0, threads, o.repeat > 1 ? ", best of --repeat runs" : "");
  }
  return 0;
}

Registrar reg_tokenize("tokenize", "Print the token ids of a text", [](CLI::App& app) {
  auto o = std::make_shared<TokenizeOptions>();
  app.add_option("--tokenizer", o->tokenizer, "tokenizer.json, or a directory holding it")->required();
  auto* text = app.add_option("--text", o->text, "Text to encode");
  app.add_option("--in", o->in, "File to encode (- for stdin)")->excludes(text);
  app.add_flag("--no-special", o->no_special, "Encode special-token strings as plain text");
  app.add_flag("--add-bos", o->add_bos, "Prepend the bos token id");
  app.add_option("--threads", o->threads, "Encoding threads (0: all cores)");
  app.add_flag("--stats", o->stats, "Print size, token count and speed to stderr");
  app.add_option("--repeat", o->repeat, "Encode this many times; --stats reports the fastest");
  return [o, text] {
    o->has_text = text->count() > 0;
    return run_tokenize(*o);
  };
});

struct DetokenizeOptions {
  std::string tokenizer, ids;
  bool skip_special = false;
};

int run_detokenize(const DetokenizeOptions& o) {
  std::vector<int32_t> ids = parse_ids(o.ids);
  io::Tokenizer tok = io::Tokenizer::load(o.tokenizer);
  std::string text = tok.decode(ids, o.skip_special);
  std::fwrite(text.data(), 1, text.size(), stdout);
  return 0;
}

Registrar reg_detokenize("detokenize", "Print the text of token ids", [](CLI::App& app) {
  auto o = std::make_shared<DetokenizeOptions>();
  app.add_option("--tokenizer", o->tokenizer, "tokenizer.json, or a directory holding it")->required();
  app.add_option("--ids", o->ids, "Token ids, space or comma separated")->required();
  app.add_flag("--skip-special", o->skip_special, "Leave special tokens out");
  return [o] { return run_detokenize(*o); };
});

}  // namespace
}  // namespace dsv3::cli
