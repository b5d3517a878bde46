#include "io/dataset.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "core/splitmix.h"
#include "io/safetensors.h"

namespace dsv3::io {

namespace fs = std::filesystem;

namespace {

static_assert(std::endian::native == std::endian::little, "shards are little-endian uint32; add a byte swap");

uint64_t mix(uint64_t seed, uint64_t a, uint64_t b = 0) {
  SplitMix64 g{seed ^ (a * 0xd1b54a32d192ed03ull) ^ (b * 0x8cb92ba72f3d8dd7ull)};
  g.next();
  return g.next();
}

constexpr uint64_t kSaltVal = 0x76616c, kSaltFim = 0x66696d, kSaltEpoch = 0x65706f;

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail("{}: cannot open: {}", path, std::strerror(errno));
  std::ostringstream ss;
  ss << f.rdbuf();
  if (f.bad()) fail("{}: read error", path);
  return ss.str();
}

bool blank(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char ch) { return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\f' || ch == '\v'; });
}

// Strips leading/trailing newlines (and whitespace-only edge lines) of a document.
std::string_view trim_doc(std::string_view d) {
  while (!d.empty() && std::isspace(static_cast<unsigned char>(d.front()))) d.remove_prefix(1);
  while (!d.empty() && std::isspace(static_cast<unsigned char>(d.back()))) d.remove_suffix(1);
  return d;
}

void push_doc(std::vector<std::string>& out, std::string_view d) {
  d = trim_doc(d);
  if (!d.empty()) out.emplace_back(d);
}

std::vector<std::string> split_regex(std::string_view text, const std::string& pattern) {
  int err = 0;
  PCRE2_SIZE erroff = 0;
  pcre2_code* re = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.c_str()), pattern.size(),
                                 PCRE2_UTF | PCRE2_MULTILINE, &err, &erroff, nullptr);
  if (!re) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    fail("--doc-sep '{}': bad regex at offset {}: {}", pattern, erroff, reinterpret_cast<char*>(msg));
  }
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(re, nullptr);
  std::vector<std::string> out;
  size_t start = 0, at = 0;
  while (at <= text.size()) {
    const int rc = pcre2_match(re, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), at, 0, md, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      pcre2_match_data_free(md);
      pcre2_code_free(re);
      fail("--doc-sep '{}': match error {}", pattern, rc);
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    const size_t b = ov[0], e = ov[1];
    if (e == b) {  // an empty match (e.g. a lookahead): split there, then move one character on
      if (b > start) push_doc(out, text.substr(start, b - start)), start = b;
      at = b + 1;
      while (at < text.size() && (static_cast<unsigned char>(text[at]) & 0xC0) == 0x80) ++at;
      continue;
    }
    push_doc(out, text.substr(start, b - start));
    start = at = e;
  }
  if (start < text.size()) push_doc(out, text.substr(start));
  pcre2_match_data_free(md);
  pcre2_code_free(re);
  return out;
}

// ---- SHA-256 (FIPS 180-4)

struct Sha256 {
  uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  static constexpr uint32_t k[64] = {
      0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
      0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
      0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
      0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
      0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
      0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
      0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
      0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};
  void block(const uint8_t* p) {
    uint32_t w[64];
    for (int i = 0; i < 16; ++i)
      w[i] = uint32_t(p[4 * i]) << 24 | uint32_t(p[4 * i + 1]) << 16 | uint32_t(p[4 * i + 2]) << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; ++i) {
      const uint32_t s0 = std::rotr(w[i - 15], 7) ^ std::rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
      const uint32_t s1 = std::rotr(w[i - 2], 17) ^ std::rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int i = 0; i < 64; ++i) {
      const uint32_t S1 = std::rotr(e, 6) ^ std::rotr(e, 11) ^ std::rotr(e, 25);
      const uint32_t ch = (e & f) ^ (~e & g);
      const uint32_t t1 = hh + S1 + ch + k[i] + w[i];
      const uint32_t S0 = std::rotr(a, 2) ^ std::rotr(a, 13) ^ std::rotr(a, 22);
      const uint32_t mj = (a & b) ^ (a & c) ^ (b & c);
      const uint32_t t2 = S0 + mj;
      hh = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e, h[5] += f, h[6] += g, h[7] += hh;
  }
};

void write_ids_atomic(const std::string& path, const std::vector<int32_t>& ids) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) fail("{}: cannot create: {}", tmp, std::strerror(errno));
    f.write(reinterpret_cast<const char*>(ids.data()), std::streamsize(ids.size() * 4));
    f.flush();
    if (!f) fail("{}: write error", tmp);
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) fail("cannot rename {} to {}: {}", tmp, path, ec.message());
}

// A count: an integer in [0, 2^62) (so that sums of a few and a size in bytes stay far from overflow).
int64_t get_int(const nlohmann::json& j, const char* key, const std::string& label) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number_integer()) fail("{}: missing or non-integer key '{}'", label, key);
  constexpr uint64_t kMax = uint64_t(1) << 62;
  const bool ok = it->is_number_unsigned() ? it->get<uint64_t>() < kMax
                                           : it->get<int64_t>() >= 0 && uint64_t(it->get<int64_t>()) < kMax;
  if (!ok) fail("{}: '{}' is {}, not a count in [0, 2^62)", label, key, it->dump());
  return it->get<int64_t>();
}

std::vector<ShardInfo> read_shards(const nlohmann::json& j, const std::string& split, const std::string& dir,
                                   const std::string& label) {
  std::vector<ShardInfo> out;
  auto s = j.find("splits");
  if (s == j.end() || !s->is_object() || !s->contains(split) || !(*s)[split].contains("shards") ||
      !(*s)[split]["shards"].is_array())
    fail("{}: missing 'splits.{}.shards'", label, split);
  const auto& shards = (*s)[split]["shards"];
  for (size_t k = 0; k < shards.size(); ++k) {
    const auto& e = shards[k];
    const std::string where = fmt::format("{}: splits.{}.shards[{}]", label, split, k);
    if (!e.is_object() || !e.contains("file") || !e["file"].is_string()) fail("{} has no 'file'", where);
    ShardInfo si{e["file"].get<std::string>(), get_int(e, "tokens", where)};
    if (si.file.find('/') != std::string::npos || si.file.find("..") != std::string::npos)
      fail("{}: shard file name '{}' must be a plain name inside the dataset directory", label, si.file);
    const std::string path = dir + "/" + si.file;
    std::error_code ec;
    const auto size = fs::file_size(path, ec);
    if (ec) fail("{}: shard {} missing: {}", label, path, ec.message());
    if (size % 4 != 0 || size / 4 != uint64_t(si.tokens))  // no product: tokens * 4 could wrap
      fail("{}.tokens is {}, but shard {} holds {} bytes ({} tokens of 4 bytes)", where, si.tokens, path, size,
           double(size) / 4);
    out.push_back(std::move(si));
  }
  return out;
}

}  // namespace

std::string sha256_hex(std::string_view bytes) {
  Sha256 s;
  const uint8_t* p = reinterpret_cast<const uint8_t*>(bytes.data());
  size_t n = bytes.size(), i = 0;
  for (; i + 64 <= n; i += 64) s.block(p + i);
  uint8_t tail[128] = {};
  const size_t rem = n - i;
  std::memcpy(tail, p + i, rem);
  tail[rem] = 0x80;
  const size_t tail_len = rem + 9 <= 64 ? 64 : 128;
  const uint64_t bits = uint64_t(n) * 8;
  for (int b = 0; b < 8; ++b) tail[tail_len - 1 - b] = uint8_t(bits >> (8 * b));
  s.block(tail);
  if (tail_len == 128) s.block(tail + 64);
  return fmt::format("{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}", s.h[0], s.h[1], s.h[2], s.h[3], s.h[4], s.h[5],
                     s.h[6], s.h[7]);
}

std::string DocSplitRule::describe() const {
  switch (mode) {
    case DocSplit::BlankLines:
      return "blank-lines";
    case DocSplit::PerLine:
      return "per-line";
    case DocSplit::PerFile:
      return "per-file";
    case DocSplit::Regex:
      return "regex:" + regex;
  }
  return "?";
}

std::vector<std::string> split_documents(std::string_view text, const DocSplitRule& rule) {
  std::vector<std::string> out;
  switch (rule.mode) {
    case DocSplit::PerFile:
      push_doc(out, text);
      break;
    case DocSplit::Regex:
      return split_regex(text, rule.regex);
    case DocSplit::PerLine:
    case DocSplit::BlankLines: {
      size_t doc_start = 0, pos = 0;
      while (pos <= text.size()) {
        size_t eol = text.find('\n', pos);
        if (eol == std::string_view::npos) eol = text.size();
        const std::string_view line = text.substr(pos, eol - pos);
        if (rule.mode == DocSplit::PerLine) {
          push_doc(out, line);
        } else if (blank(line)) {
          push_doc(out, text.substr(doc_start, pos - doc_start));
          doc_start = eol + 1;
        }
        pos = eol + 1;
      }
      if (rule.mode == DocSplit::BlankLines && doc_start < text.size()) push_doc(out, text.substr(doc_start));
      break;
    }
  }
  return out;
}

FimSplit fim_split(std::string_view doc, uint64_t rng_seed) {
  // Character (code point) boundaries: 0, every byte that does not continue a UTF-8 sequence, size().
  std::vector<size_t> cuts;
  for (size_t i = 0; i < doc.size(); ++i)
    if ((static_cast<unsigned char>(doc[i]) & 0xC0) != 0x80) cuts.push_back(i);
  cuts.push_back(doc.size());
  SplitMix64 g{rng_seed};
  size_t a = cuts[g.below(cuts.size())], b = cuts[g.below(cuts.size())];
  if (a > b) std::swap(a, b);
  return {std::string(doc.substr(0, a)), std::string(doc.substr(a, b - a)), std::string(doc.substr(b))};
}

DatasetManifest prepare_dataset(const PrepareOptions& o, const TokenizerInfo& tok, const std::string& out_dir) {
  if (o.inputs.empty()) fail("data prepare: no --input files");
  std::vector<std::string> docs;
  for (const std::string& path : o.inputs) {
    const std::string text = read_file(path);
    auto d = split_documents(text, o.split);
    if (d.empty()) fail("{}: no documents (the file is empty or only whitespace)", path);
    for (auto& s : d) docs.push_back(std::move(s));
  }
  return prepare_dataset_from_docs(docs, o, tok, out_dir);
}

DatasetManifest prepare_dataset_from_docs(const std::vector<std::string>& docs, const PrepareOptions& o,
                                          const TokenizerInfo& tok, const std::string& out_dir) {
  if (!tok.encode) fail("data prepare: no tokenizer");
  if (docs.empty()) fail("data prepare: no documents");
  if (!(o.val_frac >= 0 && o.val_frac < 1)) fail("data prepare: --val-frac must lie in [0, 1), got {}", o.val_frac);
  if (!(o.fim_rate >= 0 && o.fim_rate <= 1)) fail("data prepare: --fim-rate must lie in [0, 1], got {}", o.fim_rate);
  if (o.shard_tokens <= 0) fail("data prepare: shard size must be positive");
  if (tok.eos < 0) fail("data prepare: the tokenizer has no end-of-sentence token");
  if (o.fim_rate > 0 && (tok.fim_begin < 0 || tok.fim_hole < 0 || tok.fim_end < 0))
    fail("data prepare: --fim-rate > 0 needs the tokenizer's <｜fim▁begin｜>, <｜fim▁hole｜> and <｜fim▁end｜> tokens");

  // Train / val assignment: a seeded permutation; its first n_val documents are validation.
  const int64_t n = int64_t(docs.size());
  int64_t n_val = int64_t(std::llround(o.val_frac * double(n)));
  if (o.val_frac > 0 && n >= 2) n_val = std::clamp<int64_t>(n_val, 1, n - 1);
  std::vector<int64_t> perm(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) perm[size_t(i)] = i;
  SplitMix64 g{mix(o.seed, kSaltVal)};
  for (int64_t i = n - 1; i > 0; --i) std::swap(perm[size_t(i)], perm[g.below(uint64_t(i + 1))]);
  std::vector<char> is_val(size_t(n), 0);
  for (int64_t i = 0; i < n_val; ++i) is_val[size_t(perm[size_t(i)])] = 1;

  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) fail("cannot create directory {}: {}", out_dir, ec.message());
  // A stale manifest must not describe the new shards while they are being written.
  fs::remove(out_dir + "/manifest.json", ec);

  struct Writer {
    std::string split, dir;
    int64_t shard_tokens;
    std::vector<int32_t> buf;
    std::vector<ShardInfo> shards;
    int64_t total = 0;
    void flush() {
      if (buf.empty()) return;
      ShardInfo s{fmt::format("{}-{:05d}.bin", split, shards.size()), int64_t(buf.size())};
      write_ids_atomic(dir + "/" + s.file, buf);
      total += s.tokens;
      shards.push_back(std::move(s));
      buf.clear();
    }
    void add(const std::vector<int32_t>& ids) {
      for (int32_t id : ids) {
        buf.push_back(id);
        if (int64_t(buf.size()) >= shard_tokens) flush();
      }
    }
  };
  Writer train{"train", out_dir, o.shard_tokens, {}, {}, 0}, val{"val", out_dir, o.shard_tokens, {}, {}, 0};

  auto check_ids = [&](const std::vector<int32_t>& ids, int64_t doc) {
    for (int32_t id : ids)
      if (id < 0 || (tok.vocab_size > 0 && id >= tok.vocab_size))
        fail("data prepare: document {}: token id {} outside the vocabulary [0, {})", doc, id, tok.vocab_size);
  };
  // Texts to encode: one per plain document, three (prefix, suffix, middle) per FIM document.
  int64_t fim_docs = 0;
  std::vector<FimSplit> fims(static_cast<size_t>(n));
  std::vector<char> is_fim(static_cast<size_t>(n), 0);
  std::vector<std::string_view> texts;
  texts.reserve(size_t(n));
  for (int64_t d = 0; d < n; ++d) {
    SplitMix64 fg{mix(o.seed, kSaltFim, uint64_t(d))};
    if (!is_val[size_t(d)] && o.fim_rate > 0 && fg.uniform() < o.fim_rate) {
      fims[size_t(d)] = fim_split(docs[size_t(d)], fg.next());
      is_fim[size_t(d)] = 1;
      ++fim_docs;
      texts.push_back(fims[size_t(d)].prefix);
      texts.push_back(fims[size_t(d)].suffix);
      texts.push_back(fims[size_t(d)].middle);
    } else {
      texts.push_back(docs[size_t(d)]);
    }
  }
  std::vector<std::vector<int32_t>> enc;
  if (tok.encode_batch) {
    enc = tok.encode_batch(texts);
    if (enc.size() != texts.size())
      fail("data prepare: the tokenizer returned {} encodings for {} texts", enc.size(), texts.size());
  } else {
    enc.reserve(texts.size());
    for (std::string_view t : texts) enc.push_back(t.empty() ? std::vector<int32_t>{} : tok.encode(t));
  }

  std::vector<int32_t> ids;
  size_t next_text = 0;
  for (int64_t d = 0; d < n; ++d) {
    ids.clear();
    if (o.add_bos && tok.bos >= 0) ids.push_back(tok.bos);
    auto put = [&](size_t k) { ids.insert(ids.end(), enc[k].begin(), enc[k].end()); };
    if (is_fim[size_t(d)]) {
      ids.push_back(tok.fim_begin);
      put(next_text);  // prefix
      ids.push_back(tok.fim_hole);
      put(next_text + 1);  // suffix
      ids.push_back(tok.fim_end);
      put(next_text + 2);  // middle
      next_text += 3;
    } else {
      put(next_text++);
    }
    ids.push_back(tok.eos);
    check_ids(ids, d);
    (is_val[size_t(d)] ? val : train).add(ids);
  }
  train.flush();
  val.flush();

  nlohmann::json j;
  j["format"] = "dsv3-tokens-v1";
  j["dtype"] = "uint32-le";
  nlohmann::json tj;
  tj["vocab_size"] = tok.vocab_size;
  tj["bos_id"] = tok.bos;
  tj["eos_id"] = tok.eos;
  if (!tok.file.empty()) {
    const std::string bytes = read_file(tok.file);
    tj["file"] = "tokenizer.json";
    tj["sha256"] = sha256_hex(bytes);
    tj["source"] = fs::absolute(tok.file).string();
    // Copy unless it is the very same file.
    const std::string dst = out_dir + "/tokenizer.json";
    if (!fs::exists(dst) || !fs::equivalent(tok.file, dst)) {
      write_file_atomic(dst, bytes);
      // tokenizer_config.json (bos/eos names, add_bos_token) travels with it when it sits beside it.
      const fs::path cfg = fs::path(tok.file).parent_path() / "tokenizer_config.json";
      if (fs::exists(cfg)) write_file_atomic(out_dir + "/tokenizer_config.json", read_file(cfg.string()));
    }
  }
  j["tokenizer"] = tj;
  j["sources"] = o.inputs;
  j["doc_split"] = o.split.describe();
  j["seed"] = o.seed;
  j["val_frac"] = o.val_frac;
  j["fim_rate"] = o.fim_rate;
  j["fim_form"] = "PSM";
  j["bos_per_document"] = o.add_bos && tok.bos >= 0;
  j["documents"] = {{"train", n - n_val}, {"val", n_val}, {"fim", fim_docs}};
  j["tokens"] = {{"train", train.total}, {"val", val.total}};
  auto shard_json = [](const std::vector<ShardInfo>& v) {
    nlohmann::json a = nlohmann::json::array();
    for (const auto& s : v) a.push_back({{"file", s.file}, {"tokens", s.tokens}});
    return a;
  };
  j["splits"] = {{"train", {{"shards", shard_json(train.shards)}}}, {"val", {{"shards", shard_json(val.shards)}}}};
  write_file_atomic(out_dir + "/manifest.json", j.dump(2) + "\n");
  return read_manifest(out_dir);
}

DatasetManifest read_manifest(const std::string& dir) {
  const std::string path = dir + "/manifest.json";
  if (!fs::exists(path)) fail("{}: no manifest.json (prepare the data with `dsv3 data prepare`)", dir);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    fail("{}: not valid JSON: {}", path, e.what());
  }
  if (!j.is_object() || j.value("format", "") != "dsv3-tokens-v1")
    fail("{}: not a dsv3 token manifest (format must be 'dsv3-tokens-v1')", path);
  DatasetManifest m;
  m.dir = dir;
  if (!j.contains("tokenizer") || !j["tokenizer"].is_object()) fail("{}: missing 'tokenizer'", path);
  const auto& tj = j["tokenizer"];
  m.vocab_size = get_int(tj, "vocab_size", path);
  if (m.vocab_size <= 0) fail("{}: tokenizer.vocab_size must be positive", path);
  m.bos_id = get_int(tj, "bos_id", path);
  m.eos_id = get_int(tj, "eos_id", path);
  if (tj.contains("file")) {
    m.tokenizer_file = tj["file"].get<std::string>();
    m.tokenizer_sha256 = tj.value("sha256", "");
  }
  if (!j.contains("documents") || !j.contains("tokens")) fail("{}: missing 'documents' or 'tokens'", path);
  m.train_docs = get_int(j["documents"], "train", path);
  m.val_docs = get_int(j["documents"], "val", path);
  m.fim_docs = j["documents"].value("fim", int64_t(0));
  m.train_tokens = get_int(j["tokens"], "train", path);
  m.val_tokens = get_int(j["tokens"], "val", path);
  m.train_shards = read_shards(j, "train", dir, path);
  m.val_shards = read_shards(j, "val", dir, path);
  auto sum = [](const std::vector<ShardInfo>& v) {
    int64_t s = 0;
    for (const auto& x : v) s += x.tokens;
    return s;
  };
  if (sum(m.train_shards) != m.train_tokens || sum(m.val_shards) != m.val_tokens)
    fail("{}: token counts disagree with the shard list", path);
  if (!m.tokenizer_file.empty()) {
    // The ids mean what this tokenizer says: a file replaced after preparation would train (and export into
    // every checkpoint) a tokenizer the shards were not made with.
    if (m.tokenizer_file.find('/') != std::string::npos || m.tokenizer_file.find("..") != std::string::npos)
      fail("{}: tokenizer file name '{}' must be a plain name inside the dataset directory", path, m.tokenizer_file);
    if (m.tokenizer_sha256.empty()) fail("{}: tokenizer.file is given without its sha256", path);
    const std::string tok = dir + "/" + m.tokenizer_file;
    std::ifstream f(tok, std::ios::binary);
    if (!f) fail("{}: cannot open the dataset's tokenizer (named in {}): {}", tok, path, std::strerror(errno));
    std::ostringstream bytes;
    bytes << f.rdbuf();
    const std::string got = sha256_hex(bytes.str());
    if (got != m.tokenizer_sha256)
      fail(
          "{}: sha256 {} is not the {} recorded in {}: the tokenizer was changed after the shards were made "
          "(prepare the data again with it, or restore the original)",
          tok, got, m.tokenizer_sha256, path);
  }
  m.raw = std::move(j);
  return m;
}

// ---------------------------------------------------------------- loading

TokenStream TokenStream::open(const DatasetManifest& m, const std::string& split) {
  if (split != "train" && split != "val") fail("dataset split must be 'train' or 'val', got '{}'", split);
  const auto& shards = split == "train" ? m.train_shards : m.val_shards;
  TokenStream s;
  s.ids_.reserve(size_t(split == "train" ? m.train_tokens : m.val_tokens));
  for (const ShardInfo& sh : shards) {
    const std::string path = m.dir + "/" + sh.file;
    std::ifstream f(path, std::ios::binary);
    if (!f) fail("{}: cannot open: {}", path, std::strerror(errno));
    const size_t at = s.ids_.size();
    s.ids_.resize(at + size_t(sh.tokens));
    f.read(reinterpret_cast<char*>(s.ids_.data() + at), std::streamsize(sh.tokens * 4));
    if (f.gcount() != std::streamsize(sh.tokens * 4)) fail("{}: truncated shard", path);
    for (size_t i = at; i < s.ids_.size(); ++i)
      if (uint32_t(s.ids_[i]) >= uint64_t(m.vocab_size))
        fail("{}: token {} at position {} is outside the vocabulary [0, {})", path, uint32_t(s.ids_[i]), i - at,
             m.vocab_size);
  }
  return s;
}

SequenceLoader::SequenceLoader(const TokenStream& stream, int64_t seq_len, uint64_t seed, bool shuffle)
    : stream_(stream), seq_len_(seq_len), seed_(seed), shuffle_(shuffle) {
  if (seq_len <= 1) fail("loader: seq_len must be at least 2, got {}", seq_len);
  if (stream.size() < 2 * seq_len)
    fail("loader: the split holds {} tokens, fewer than two sequences of {} (use more data or a shorter seq_len)",
         stream.size(), seq_len);
  start_epoch(0);
}

void SequenceLoader::start_epoch(int64_t epoch) {
  pos_ = {epoch, 0};
  SplitMix64 g{mix(seed_, kSaltEpoch, uint64_t(epoch))};
  offset_ = shuffle_ ? int64_t(g.below(uint64_t(seq_len_))) : 0;
  const int64_t windows = (stream_.size() - offset_) / seq_len_;
  order_.resize(size_t(windows));
  for (int64_t i = 0; i < windows; ++i) order_[size_t(i)] = i;
  if (shuffle_)
    for (int64_t i = windows - 1; i > 0; --i) std::swap(order_[size_t(i)], order_[g.below(uint64_t(i + 1))]);
}

void SequenceLoader::seek(const LoaderPosition& p) {
  if (p.epoch < 0 || p.index < 0) fail("loader: bad position (epoch {}, index {})", p.epoch, p.index);
  start_epoch(p.epoch);
  if (p.index > int64_t(order_.size()))
    fail("loader: position {} beyond the {} sequences of epoch {} (was the dataset changed?)", p.index, order_.size(),
         p.epoch);
  pos_.index = p.index;
}

void SequenceLoader::next(int64_t n, int32_t* out) {
  for (int64_t r = 0; r < n; ++r) {
    if (pos_.index >= int64_t(order_.size())) start_epoch(pos_.epoch + 1);
    const int64_t w = order_[size_t(pos_.index++)];
    std::memcpy(out + r * seq_len_, stream_.data() + offset_ + w * seq_len_, size_t(seq_len_) * 4);
  }
}

}  // namespace dsv3::io
