// tokenizer.json loading, added-token handling, encode/decode. The pipeline order and the added-token rules
// follow HF tokenizers (tokenizer/mod.rs, tokenizer/added_vocabulary.rs); see tokenizer.h.
#include "io/tokenizer.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>
#include <unordered_map>

#include "core/error.h"
#include "io/bpe.h"
#include "io/parallel.h"
#include "io/pretokenizer.h"
#include "io/regex.h"
#include "io/utf8.h"

namespace dsv3::io {

using json = nlohmann::json;

namespace {

// Byte trie over added-token contents for leftmost-longest matching (what HF's Aho-Corasick with
// MatchKind::LeftmostLongest and transformers.js' DictionarySplitter compute).
class AddedTrie {
 public:
  void add(std::string_view s, int32_t index) {
    if (s.empty()) return;
    int32_t node = 0;
    for (unsigned char c : s) {
      auto& kids = nodes_[node].kids;
      auto it = std::find_if(kids.begin(), kids.end(), [c](auto& k) { return k.first == c; });
      if (it == kids.end()) {
        nodes_.push_back({});
        nodes_[node].kids.push_back({c, static_cast<int32_t>(nodes_.size() - 1)});
        node = static_cast<int32_t>(nodes_.size() - 1);
      } else {
        node = it->second;
      }
    }
    nodes_[node].index = index;
    first_[static_cast<unsigned char>(s[0])] = true;
  }
  bool empty() const { return nodes_.size() == 1; }
  bool may_start(unsigned char c) const { return first_[c]; }
  // Length of the longest accepted token starting at text[i] (0: none); its index in *index.
  template <typename Accept>
  size_t longest(std::string_view text, size_t i, const Accept& accept, int32_t* index) const {
    size_t best = 0;
    int32_t node = 0;
    for (size_t j = i; j < text.size(); ++j) {
      unsigned char c = static_cast<unsigned char>(text[j]);
      const auto& kids = nodes_[node].kids;
      auto it = std::find_if(kids.begin(), kids.end(), [c](auto& k) { return k.first == c; });
      if (it == kids.end()) break;
      node = it->second;
      if (nodes_[node].index >= 0 && accept(nodes_[node].index)) {
        best = j + 1 - i;
        *index = nodes_[node].index;
      }
    }
    return best;
  }

 private:
  struct Node {
    int32_t index = -1;
    std::vector<std::pair<unsigned char, int32_t>> kids;
  };
  std::vector<Node> nodes_{1};
  std::array<bool, 256> first_{};
};

// A piece of text between added tokens (token < 0) or an added token (index into Impl::added).
struct Segment {
  size_t b, e;
  int32_t token;
};

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail("{}: cannot open file", path);
  std::ostringstream ss;
  ss << f.rdbuf();
  if (f.bad()) fail("{}: read error", path);
  return ss.str();
}

json parse_json(std::string_view text, const std::string& label) {
  try {
    return json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {
    fail("{}: invalid JSON: {}", label, e.what());
  }
}

// A token named in tokenizer_config.json: "..." or {"content": "...", ...}; empty when null/absent.
std::optional<std::string> config_token(const json& cfg, const char* key, const std::string& label) {
  if (!cfg.is_object() || !cfg.contains(key) || cfg[key].is_null()) return std::nullopt;
  const json& v = cfg[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  fail("{}: \"{}\" must be a string or an object with \"content\"", label, key);
}

}  // namespace

struct Tokenizer::Impl {
  std::string label;
  std::vector<AddedToken> added;
  std::unordered_map<std::string, int32_t> added_by_content;  // content -> id
  AddedTrie raw_trie, norm_trie;
  std::unique_ptr<Normalizer> normalizer;
  std::unique_ptr<PreTokenizer> pre;
  std::unique_ptr<BpeModel> model;
  std::unique_ptr<Regex> word_char;  // Rust regex \w, for single_word
  bool byte_level_decoder = false;   // false: HF's decoder-less join of token strings with " "
  std::vector<std::string> pieces;   // id -> token string ("" if unassigned)
  std::vector<std::string> bytes;    // id -> decoded bytes
  std::vector<uint8_t> flags;        // kAssigned | kSpecial
  std::optional<int32_t> bos, eos, pad;
  bool add_bos = false;
  // Cut rule for encode_parallel (decided by probing at load): 0 none, 1 after "\n" before an ASCII letter,
  // 2 before "\n" after an ASCII letter.
  int cut_rule = 0;

  static constexpr uint8_t kAssigned = 1, kSpecial = 2;

  bool is_word_char_before(std::string_view s) const {  // last char of s is \w
    if (s.empty()) return false;
    size_t i = s.size() - 1;
    while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
    size_t b, e;
    return word_char->find(s.substr(i), 0, &b, &e) && b == 0;
  }
  bool is_word_char_after(std::string_view s) const {  // first char of s is \w
    if (s.empty()) return false;
    size_t i = 0;
    utf8::next(s, i);
    size_t b, e;
    return word_char->find(s.substr(0, i), 0, &b, &e) && b == 0;
  }

  void split_added(std::string_view text, const AddedTrie& trie, bool allow_special, std::vector<Segment>& out) const {
    if (trie.empty()) {
      out.push_back({0, text.size(), -1});
      return;
    }
    auto accept = [&](int32_t idx) { return allow_special || !added[idx].special; };
    size_t start_offset = 0, i = 0;
    while (i < text.size()) {
      if (!trie.may_start(static_cast<unsigned char>(text[i]))) {
        ++i;
        continue;
      }
      int32_t idx = -1;
      size_t len = trie.longest(text, i, accept, &idx);
      if (len == 0) {
        ++i;
        continue;
      }
      size_t s = i, e = i + len;
      const AddedToken& t = added[idx];
      i = e;
      if (t.single_word) {
        bool start_ok = s == 0 || !is_word_char_before(text.substr(0, s));
        bool stop_ok = e == text.size() || !is_word_char_after(text.substr(e));
        if (!start_ok || !stop_ok) continue;  // the match is consumed but not taken (HF semantics)
      }
      if (t.lstrip) {
        size_t ns = s;
        while (ns > start_offset) {
          size_t k = ns - 1;
          while (k > 0 && (static_cast<unsigned char>(text[k]) & 0xC0) == 0x80) --k;
          size_t kk = k;
          if (!utf8::is_white_space(utf8::next(text, kk))) break;
          ns = k;
        }
        s = ns;
      }
      if (t.rstrip) {
        while (e < text.size()) {
          size_t k = e;
          if (!utf8::is_white_space(utf8::next(text, k))) break;
          e = k;
        }
        i = e;
      }
      if (start_offset < s) out.push_back({start_offset, s, -1});
      out.push_back({s, e, idx});
      start_offset = e;
    }
    if (start_offset < text.size()) out.push_back({start_offset, text.size(), -1});
  }

  template <typename F>
  void for_each_piece_normalized(std::string_view text, bool allow_special, std::vector<int32_t>* ids,
                                 const F& piece) const {
    std::vector<Segment> segs;
    split_added(text, norm_trie, allow_special, segs);
    for (const Segment& s : segs) {
      if (s.token >= 0) {
        if (ids) ids->push_back(added[s.token].id);
        continue;
      }
      pre->for_each_piece(text.substr(s.b, s.e - s.b), piece);
    }
  }

  // Runs the pipeline; calls piece(sv) for every pre-token and appends added-token ids to *ids (if given).
  template <typename F>
  void run(std::string_view text, bool allow_special, std::vector<int32_t>* ids, const F& piece) const {
    std::string repaired;
    if (!utf8::is_valid(text)) {
      repaired = utf8::repair(text);
      text = repaired;
    }
    std::vector<Segment> segs;
    split_added(text, raw_trie, allow_special, segs);
    for (const Segment& s : segs) {
      if (s.token >= 0) {
        if (ids) ids->push_back(added[s.token].id);
        continue;
      }
      std::string_view part = text.substr(s.b, s.e - s.b);
      if (normalizer) {
        std::string n(part);
        normalizer->normalize(n);
        for_each_piece_normalized(n, allow_special, ids, piece);
      } else {
        for_each_piece_normalized(part, allow_special, ids, piece);
      }
    }
  }

  void encode(std::string_view text, bool allow_special, std::vector<int32_t>& out) const {
    const bool bl = pre->byte_level();
    struct Ctx {
      const BpeModel* m;
      bool bl;
      std::vector<int32_t>* out;
    } ctx{model.get(), bl, &out};
    run(text, allow_special, &out,
        std::function<void(std::string_view)>([&ctx](std::string_view p) { ctx.m->encode_word(p, ctx.bl, *ctx.out); }));
  }

  const std::string& check_id(int32_t id) const {
    if (id < 0 || static_cast<size_t>(id) >= flags.size() || !(flags[id] & kAssigned)) {
      if (id < 0 || static_cast<size_t>(id) >= flags.size())
        fail("{}: token id {} is out of range [0, {})", label, id, flags.size());
      fail("{}: token id {} is not assigned to any token", label, id);
    }
    return bytes[id];
  }

  void decide_cut_rule();
};

namespace {

std::shared_ptr<Tokenizer::Impl> build(const json& j, const json& cfg, const std::string& label) {
  if (!j.is_object()) fail("{}: top level must be a JSON object", label);
  if (!j.contains("model")) fail("{}: no \"model\"", label);
  auto impl = std::make_shared<Tokenizer::Impl>();
  impl->label = label;
  impl->model = BpeModel::from_json(j["model"], label);
  impl->normalizer = make_normalizer(j.value("normalizer", json()), label);
  impl->pre = PreTokenizer::from_json(j.value("pre_tokenizer", json()), label);
  impl->word_char.reset(new Regex("\\A[\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\x{200C}\\x{200D}]", false, label));

  // Decoder: null, ByteLevel, or a Sequence holding one ByteLevel.
  const json dec = j.value("decoder", json());
  if (!dec.is_null()) {
    auto check_bl = [&](const json& d) {
      std::string t = d.is_object() ? d.value("type", std::string()) : std::string();
      if (t != "ByteLevel")
        fail("{}: unsupported decoder type \"{}\" (supported: ByteLevel, Sequence of it)", label, t);
    };
    std::string t = dec.is_object() ? dec.value("type", std::string()) : std::string();
    if (t == "Sequence") {
      const json ds = dec.value("decoders", json::array());
      if (ds.size() != 1) fail("{}: decoder Sequence must hold exactly one ByteLevel decoder", label);
      check_bl(ds[0]);
    } else {
      check_bl(dec);
    }
    impl->byte_level_decoder = true;
  }

  // Vocab: model tokens, then added tokens (which may reuse or extend ids).
  int64_t size = 0;
  std::string largest;  // where the largest id is, for the error below
  for (auto& [tok, id] : impl->model->vocab())
    if (int64_t{id} + 1 > size) {
      size = int64_t{id} + 1;
      largest = fmt::format("model.vocab[{:?}]", tok);
    }
  const json at = j.value("added_tokens", json::array());
  if (!at.is_array()) fail("{}: \"added_tokens\" must be an array", label);
  for (const json& t : at) {
    if (!t.is_object() || !t.contains("id") || !t["id"].is_number_integer() || !t.contains("content") ||
        !t["content"].is_string())
      fail("{}: added token {} needs an integer \"id\" and a string \"content\"", label, t.dump());
    AddedToken a;
    int64_t id = t["id"].get<int64_t>();
    if (id < 0 || id > INT32_MAX) fail("{}: added token {} has id out of range", label, t.dump());
    a.id = static_cast<int32_t>(id);
    a.content = t["content"].get<std::string>();
    a.special = t.value("special", false);
    a.lstrip = t.value("lstrip", false);
    a.rstrip = t.value("rstrip", false);
    a.single_word = t.value("single_word", false);
    a.normalized = t.value("normalized", !a.special);
    if (!utf8::is_valid(a.content)) fail("{}: added token {} is not valid UTF-8", label, a.id);
    if (id + 1 > size) {
      size = id + 1;
      largest = fmt::format("added_tokens[{}]", impl->added.size());
    }
    impl->added_by_content[a.content] = a.id;
    impl->added.push_back(std::move(a));
  }
  // The tables below hold one entry per id up to the largest: a stray huge id (10^9) would ask for tens of
  // GB. Real vocabularies are dense; at most as many unassigned ids as assigned ones (plus 1024) are allowed.
  const int64_t entries = int64_t(impl->model->vocab().size() + impl->added.size());
  if (size > 2 * entries + 1024)
    fail("{}: {} has id {}, but the file assigns only {} ids (ids must stay below {})", label, largest, size - 1,
         entries, 2 * entries + 1024);
  impl->pieces.assign(size, std::string());
  impl->bytes.assign(size, std::string());
  impl->flags.assign(size, 0);
  for (auto& [tok, id] : impl->model->vocab()) {
    if (impl->flags[id] & Tokenizer::Impl::kAssigned)
      fail("{}: id {} is assigned to both {:?} and {:?}", label, id, impl->pieces[id], tok);
    impl->pieces[id] = tok;
    impl->flags[id] = Tokenizer::Impl::kAssigned;
  }
  for (size_t i = 0; i < impl->added.size(); ++i) {
    const AddedToken& a = impl->added[i];
    impl->pieces[a.id] = a.content;
    impl->flags[a.id] = Tokenizer::Impl::kAssigned | (a.special ? Tokenizer::Impl::kSpecial : 0);
    if (a.normalized) {
      std::string c = a.content;
      if (impl->normalizer) impl->normalizer->normalize(c);
      impl->norm_trie.add(c, static_cast<int32_t>(i));
    } else {
      impl->raw_trie.add(a.content, static_cast<int32_t>(i));
    }
  }
  // Decoded bytes per id. ByteLevel: alphabet characters back to bytes; a token with characters outside
  // the alphabet contributes its own UTF-8 (HF); added tokens are verbatim (transformers.js, and HF for
  // every token that is not made of alphabet characters).
  for (size_t id = 0; id < impl->pieces.size(); ++id) {
    if (!(impl->flags[id] & Tokenizer::Impl::kAssigned)) continue;
    const std::string& p = impl->pieces[id];
    if (!impl->byte_level_decoder || impl->added_by_content.count(p)) {
      impl->bytes[id] = p;
      continue;
    }
    std::string out;
    bool ok = true;
    for (size_t i = 0; i < p.size() && ok;) {
      int b = utf8::piece_char_to_byte(utf8::next(p, i));
      if (b < 0)
        ok = false;
      else
        out.push_back(static_cast<char>(b));
    }
    impl->bytes[id] = ok ? out : p;
  }

  // bos / eos / pad from tokenizer_config.json, else well-known names.
  auto resolve = [&](const char* key, std::initializer_list<const char*> names) -> std::optional<int32_t> {
    if (cfg.is_object() && cfg.contains(key)) {
      auto content = config_token(cfg, key, label + " (tokenizer_config.json)");
      if (!content) return std::nullopt;
      auto it = impl->added_by_content.find(*content);
      if (it != impl->added_by_content.end()) return it->second;
      auto v = impl->model->vocab().find(*content);
      if (v != impl->model->vocab().end()) return v->second;
      fail("{}: tokenizer_config.json {} {:?} is not in the vocabulary", label, key, *content);
    }
    for (const char* n : names) {
      auto it = impl->added_by_content.find(n);
      if (it != impl->added_by_content.end()) return it->second;
    }
    return std::nullopt;
  };
  impl->bos = resolve("bos_token", {"<｜begin▁of▁sentence｜>", "<|begin_of_text|>", "<s>", "<|startoftext|>", "<bos>"});
  impl->eos = resolve("eos_token", {"<｜end▁of▁sentence｜>", "<|end_of_text|>", "<|endoftext|>", "</s>", "<eos>"});
  impl->pad = resolve("pad_token", {"<｜▁pad▁｜>", "<pad>", "<|pad|>"});
  if (cfg.is_object() && cfg.contains("add_bos_token") && cfg["add_bos_token"].is_boolean()) {
    impl->add_bos = cfg["add_bos_token"].get<bool>();
  } else if (impl->bos) {
    // No config: a TemplateProcessing post-processor that starts with the bos token adds it.
    const json pp = j.value("post_processor", json());
    auto starts_with_bos = [&](const json& p) {
      if (!p.is_object() || p.value("type", std::string()) != "TemplateProcessing") return false;
      const json single = p.value("single", json::array());
      return single.is_array() && !single.empty() && single[0].contains("SpecialToken") &&
             single[0]["SpecialToken"].value("id", std::string()) == impl->pieces[*impl->bos];
    };
    if (starts_with_bos(pp)) impl->add_bos = true;
    if (pp.is_object() && pp.value("type", std::string()) == "Sequence")
      for (const json& p : pp.value("processors", json::array()))
        if (starts_with_bos(p)) impl->add_bos = true;
  }
  impl->decide_cut_rule();
  return impl;
}

// build() with JSON type errors (a null where a bool belongs, ...) reported as dsv3::Error naming the file.
std::shared_ptr<Tokenizer::Impl> build_checked(const json& j, const json& cfg, const std::string& label) {
  try {
    return build(j, cfg, label);
  } catch (const json::exception& e) {
    fail("{}: unexpected structure: {}", label, e.what());
  }
}

bool is_ascii_letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

}  // namespace

// Decides where a long text may be cut so that chunks encode independently to the same ids. Regex
// lookahead ((?!\S)) and greedy newline runs make this pipeline-specific, so each candidate rule is probed
// with left/right contexts around the cut; the first rule that holds on every probe is used.
void Tokenizer::Impl::decide_cut_rule() {
  cut_rule = 0;
  if ((normalizer && !normalizer->chunkable()) || pre->adds_prefix_space()) return;
  for (const AddedToken& a : added) {
    if (a.content.find('\n') != std::string::npos) return;
    if ((a.lstrip && !a.content.empty() && is_ascii_letter(a.content.front())) ||
        (a.rstrip && !a.content.empty() && is_ascii_letter(a.content.back())))
      return;
  }
  auto holds = [&](const std::vector<std::string>& lefts, const std::vector<std::string>& rights) {
    for (const auto& l : lefts) {
      for (const auto& r : rights) {
        std::vector<int32_t> whole, parts;
        encode(l + r, true, whole);
        encode(l, true, parts);
        encode(r, true, parts);
        if (whole != parts) return false;
      }
    }
    return true;
  };
  const std::vector<std::string> a_left = {"a\n",  "a.\n",       "a \n",  "\n\n",     "a\n\n",   "a \t\n",
                                           "1\n",  "a,\n",       "a\r\n", " \n",      ".\n\n",   "\xE3\x80\x82\n",
                                           "a:\n", "\xC2\xA0\n", "'\n",   "a  \n \n", "12345\n", "\t\n"};
  const std::vector<std::string> a_right = {"B", "b c", "a.", "Ab1", "the end", "Ill", "s", "ll", "A\n", "x  y"};
  if (holds(a_left, a_right)) {
    cut_rule = 1;
    return;
  }
  const std::vector<std::string> b_left = {"a",
                                           "hello",
                                           "I",
                                           " a",
                                           "1a",
                                           ".a",
                                           "ab",
                                           "'s",
                                           "\xE3\x80\x82"
                                           "a"};
  const std::vector<std::string> b_right = {"\nB", "\n\nb", "\n a",   "\n\tx",          "\n.", "\n1", "\n\n",
                                            "\n",  "\n'll", "\n  \n", "\n \xE3\x80\x82"};
  if (holds(b_left, b_right)) cut_rule = 2;
}

// ---------------------------------------------------------------------------------------------------------
// Public API

Tokenizer Tokenizer::load(const std::string& path_or_dir) {
  namespace fs = std::filesystem;
  fs::path p(path_or_dir);
  std::error_code ec;
  fs::path file = fs::is_directory(p, ec) ? p / "tokenizer.json" : p;
  if (!fs::exists(file, ec)) fail("{}: no such file", file.string());
  std::string text = read_file(file.string());
  fs::path cfg_path = file.parent_path() / "tokenizer_config.json";
  std::string cfg_text;
  if (fs::exists(cfg_path, ec)) cfg_text = read_file(cfg_path.string());
  json j = parse_json(text, file.string());
  json cfg = cfg_text.empty() ? json() : parse_json(cfg_text, cfg_path.string());
  return Tokenizer(build_checked(j, cfg, file.string()));
}

Tokenizer Tokenizer::from_json(std::string_view tokenizer_json, std::string_view config_json,
                               const std::string& label) {
  json j = parse_json(tokenizer_json, label);
  json cfg = config_json.empty() ? json() : parse_json(config_json, label + " (tokenizer_config.json)");
  return Tokenizer(build_checked(j, cfg, label));
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool allow_special) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  impl_->encode(text, allow_special, out);
  return out;
}

void Tokenizer::encode_into(std::string_view text, std::vector<int32_t>& out, bool allow_special) const {
  impl_->encode(text, allow_special, out);
}

std::vector<std::vector<int32_t>> Tokenizer::encode_batch(const std::vector<std::string_view>& texts, int threads,
                                                          bool allow_special) const {
  std::vector<std::vector<int32_t>> out(texts.size());
  parallel_for(texts.size(), resolve_threads(threads, texts.size()),
               [&](size_t i) { impl_->encode(texts[i], allow_special, out[i]); });
  return out;
}

std::vector<std::string_view> Tokenizer::split_for_parallel(std::string_view text, size_t target_bytes) const {
  std::vector<std::string_view> out;
  if (impl_->cut_rule == 0 || target_bytes == 0 || text.size() <= target_bytes) {
    out.push_back(text);
    return out;
  }
  size_t begin = 0;
  while (begin < text.size()) {
    size_t pos = begin + target_bytes;
    for (; pos < text.size(); ++pos) {
      bool ok = impl_->cut_rule == 1 ? text[pos - 1] == '\n' && is_ascii_letter(text[pos])
                                     : text[pos] == '\n' && is_ascii_letter(text[pos - 1]);
      if (ok) break;
    }
    if (pos >= text.size()) pos = text.size();
    out.push_back(text.substr(begin, pos - begin));
    begin = pos;
  }
  return out;
}

std::vector<int32_t> Tokenizer::encode_parallel(std::string_view text, int threads, bool allow_special) const {
  threads = resolve_threads(threads, text.size() / (64 * 1024) + 1);
  if (threads <= 1 || impl_->cut_rule == 0) return encode(text, allow_special);
  // About 4 chunks per thread for balance.
  std::vector<std::string_view> chunks = split_for_parallel(text, text.size() / (threads * 4) + 1);
  std::vector<std::vector<int32_t>> parts(chunks.size());
  parallel_for(parts.size(), threads, [&](size_t i) { impl_->encode(chunks[i], allow_special, parts[i]); });
  std::vector<int32_t> out;
  size_t total = 0;
  for (auto& p : parts) total += p.size();
  out.reserve(total);
  for (auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special) const {
  std::string out;
  bool first = true;
  for (int32_t id : ids) {
    const std::string& b = impl_->check_id(id);
    if (skip_special && (impl_->flags[id] & Impl::kSpecial)) continue;
    if (!impl_->byte_level_decoder && !first) out.push_back(' ');
    out += b;
    first = false;
  }
  return utf8::is_valid(out) ? out : utf8::repair(out);
}

const std::string& Tokenizer::token_bytes(int32_t id) const { return impl_->check_id(id); }

std::string Tokenizer::token_piece(int32_t id) const {
  impl_->check_id(id);
  return impl_->pieces[id];
}

std::optional<int32_t> Tokenizer::token_id(std::string_view token) const {
  std::string t(token);
  auto it = impl_->added_by_content.find(t);
  if (it != impl_->added_by_content.end()) return it->second;
  auto v = impl_->model->vocab().find(t);
  if (v != impl_->model->vocab().end()) return v->second;
  return std::nullopt;
}

int64_t Tokenizer::vocab_size() const { return static_cast<int64_t>(impl_->flags.size()); }

bool Tokenizer::is_valid_id(int32_t id) const {
  return id >= 0 && static_cast<size_t>(id) < impl_->flags.size() && (impl_->flags[id] & Impl::kAssigned);
}

bool Tokenizer::is_special(int32_t id) const { return is_valid_id(id) && (impl_->flags[id] & Impl::kSpecial); }

const std::vector<AddedToken>& Tokenizer::added_tokens() const { return impl_->added; }
std::optional<int32_t> Tokenizer::bos_id() const { return impl_->bos; }
std::optional<int32_t> Tokenizer::eos_id() const { return impl_->eos; }
std::optional<int32_t> Tokenizer::pad_id() const { return impl_->pad; }
bool Tokenizer::add_bos() const { return impl_->add_bos; }

std::vector<std::string> Tokenizer::pre_tokenize(std::string_view text, bool allow_special) const {
  std::vector<std::string> out;
  std::vector<int32_t> ids;
  impl_->run(text, allow_special, &ids,
             std::function<void(std::string_view)>([&out](std::string_view p) { out.emplace_back(p); }));
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// StreamDecoder

bool Tokenizer::byte_level_decoder() const { return impl_->byte_level_decoder; }

std::string StreamDecoder::push(int32_t id) {
  const std::string& b = tok_->token_bytes(id);
  if (skip_special_ && tok_->is_special(id)) return {};
  if (!tok_->byte_level_decoder() && !first_) pending_.push_back(' ');
  first_ = false;
  pending_ += b;
  size_t k = utf8::complete_prefix_length(pending_);
  std::string out = utf8::repair(std::string_view(pending_).substr(0, k));
  pending_.erase(0, k);
  return out;
}

std::string StreamDecoder::finish() {
  std::string out = utf8::repair(pending_);
  pending_.clear();
  first_ = true;
  return out;
}

}  // namespace dsv3::io
