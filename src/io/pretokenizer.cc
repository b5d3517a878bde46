// Normalizers and pre-tokenizers of tokenizer.json; semantics of HF tokenizers (Rust):
// normalizers/{prepend,replace,strip}.rs, pre_tokenizers/{split,byte_level,sequence}.rs and
// NormalizedString::split in tokenizer/normalizer.rs.
#include "io/pretokenizer.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/utf8.h"

namespace dsv3::io {

using json = nlohmann::json;

const char* const kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

const char* const kDeepSeekV3Patterns[3] = {
    R"(\p{N}{1,3})",
    "[\u4E00-\u9FA5\u3040-\u309F\u30A0-\u30FF]+",  // [一-龥぀-ゟ゠-ヿ]+
    R"([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^)"
    "\r\n"
    R"(\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[)"
    "\r\n"
    R"(]*|\s*[)"
    "\r\n"
    R"(]+|\s+(?!\S)|\s+)",
};

const char* const kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// ---------------------------------------------------------------------------------------------------------
// Split

void split_by_regex(const Regex& re, SplitBehavior behavior, bool invert, std::string_view text,
                    const std::function<void(std::string_view)>& f) {
  if (text.empty()) return;
  if (behavior == SplitBehavior::kIsolated) {  // fast path: every part is kept, matches and gaps alike
    size_t prev = 0;
    re.for_each_match(text, [&](size_t b, size_t e) {
      if (prev < b) f(text.substr(prev, b - prev));
      if (b < e) f(text.substr(b, e - b));
      prev = e;
    });
    if (prev < text.size()) f(text.substr(prev));
    return;
  }
  // (begin, end, is_match) covering the text, as Pattern::find_matches returns them.
  struct Part {
    size_t b, e;
    bool m;
  };
  std::vector<Part> parts;
  size_t prev = 0;
  re.for_each_match(text, [&](size_t b, size_t e) {
    if (prev != b) parts.push_back({prev, b, invert});
    parts.push_back({b, e, !invert});
    prev = e;
  });
  if (prev != text.size()) parts.push_back({prev, text.size(), invert});

  // (begin, end, removed) after applying the behavior, mirroring NormalizedString::split.
  std::vector<Part> out;
  switch (behavior) {
    case SplitBehavior::kIsolated:
      break;
    case SplitBehavior::kRemoved:
      out = parts;
      break;
    case SplitBehavior::kContiguous: {
      bool prev_match = false;
      for (const Part& p : parts) {
        if (p.m == prev_match && !out.empty()) {
          out.back().e = p.e;
        } else {
          out.push_back({p.b, p.e, false});
        }
        prev_match = p.m;
      }
      break;
    }
    case SplitBehavior::kMergedWithPrevious: {
      bool prev_match = false;
      for (const Part& p : parts) {
        if (p.m && !prev_match && !out.empty()) {
          out.back().e = p.e;
        } else {
          out.push_back({p.b, p.e, false});
        }
        prev_match = p.m;
      }
      break;
    }
    case SplitBehavior::kMergedWithNext: {
      bool prev_match = false;
      for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
        if (it->m && !prev_match && !out.empty()) {
          out.back().b = it->b;
        } else {
          out.push_back({it->b, it->e, false});
        }
        prev_match = it->m;
      }
      std::reverse(out.begin(), out.end());
      break;
    }
  }
  for (const Part& p : out) {
    if (!p.m && p.b < p.e) f(text.substr(p.b, p.e - p.b));  // for kRemoved, m marks a removed part
  }
}

// ---------------------------------------------------------------------------------------------------------
// Normalizers

namespace {

class SequenceNormalizer : public Normalizer {
 public:
  std::vector<std::unique_ptr<Normalizer>> parts;
  void normalize(std::string& s) const override {
    for (auto& p : parts) p->normalize(s);
  }
  bool chunkable() const override {
    for (auto& p : parts)
      if (!p->chunkable()) return false;
    return true;
  }
};

class PrependNormalizer : public Normalizer {
 public:
  std::string prepend;
  void normalize(std::string& s) const override {
    if (!s.empty()) s.insert(0, prepend);
  }
  bool chunkable() const override { return false; }
};

class ReplaceNormalizer : public Normalizer {
 public:
  std::unique_ptr<Regex> re;
  std::string content;
  void normalize(std::string& s) const override {
    std::string out;
    size_t prev = 0;
    bool any = false;
    re->for_each_match(s, [&](size_t b, size_t e) {
      any = true;
      out.append(s, prev, b - prev);
      out += content;
      prev = e;
    });
    if (!any) return;
    out.append(s, prev, std::string::npos);
    s = std::move(out);
  }
  bool chunkable() const override { return true; }
};

class StripNormalizer : public Normalizer {
 public:
  bool left = false, right = false;
  void normalize(std::string& s) const override {
    size_t b = 0, e = s.size();
    if (left) {
      while (b < e) {
        size_t i = b;
        if (!utf8::is_white_space(utf8::next(s, i))) break;
        b = i;
      }
    }
    if (right) {
      while (e > b) {
        size_t i = e - 1;
        while (i > b && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
        size_t j = i;
        if (!utf8::is_white_space(utf8::next(s, j))) break;
        e = i;
      }
    }
    s = s.substr(b, e - b);
  }
  bool chunkable() const override { return false; }
};

std::string type_of(const json& j, const std::string& where) {
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string())
    fail("{} must be an object with a string \"type\", got {}", where, j.dump());
  return j["type"].get<std::string>();
}

// Pattern {"Regex": "..."} or {"String": "..."}.
std::unique_ptr<Regex> make_pattern(const json& j, const std::string& label) {
  if (j.is_object() && j.contains("Regex") && j["Regex"].is_string())
    return std::make_unique<Regex>(j["Regex"].get<std::string>(), false, label);
  if (j.is_object() && j.contains("String") && j["String"].is_string())
    return std::make_unique<Regex>(j["String"].get<std::string>(), true, label);
  fail("{}: pattern must be {{\"Regex\": ...}} or {{\"String\": ...}}, got {}", label, j.dump());
}

void add_normalizer(SequenceNormalizer& seq, const json& j, const std::string& label) {
  std::string type = type_of(j, label + ": normalizer");
  if (type == "Sequence") {
    if (!j.contains("normalizers") || !j["normalizers"].is_array())
      fail("{}: normalizer Sequence without a \"normalizers\" array", label);
    for (const json& n : j["normalizers"]) add_normalizer(seq, n, label);
  } else if (type == "Prepend") {
    auto p = std::make_unique<PrependNormalizer>();
    p->prepend = j.value("prepend", std::string());
    seq.parts.push_back(std::move(p));
  } else if (type == "Replace") {
    auto r = std::make_unique<ReplaceNormalizer>();
    r->re = make_pattern(j.value("pattern", json()), label + ": Replace normalizer");
    r->content = j.value("content", std::string());
    seq.parts.push_back(std::move(r));
  } else if (type == "Strip") {
    auto s = std::make_unique<StripNormalizer>();
    s->left = j.value("strip_left", false);
    s->right = j.value("strip_right", false);
    seq.parts.push_back(std::move(s));
  } else {
    fail(
        "{}: unsupported normalizer type \"{}\" (supported: Sequence, Prepend, Replace, Strip; Unicode "
        "normalization forms and case mapping are not implemented)",
        label, type);
  }
}

}  // namespace

std::unique_ptr<Normalizer> make_normalizer(const json& j, const std::string& label) {
  if (j.is_null()) return nullptr;
  auto seq = std::make_unique<SequenceNormalizer>();
  add_normalizer(*seq, j, label);
  if (seq->parts.empty()) return nullptr;
  if (seq->parts.size() == 1) return std::move(seq->parts[0]);
  return seq;
}

// ---------------------------------------------------------------------------------------------------------
// Pre-tokenizers

std::unique_ptr<PreTokenizer> PreTokenizer::from_json(const json& j, const std::string& label) {
  auto p = std::unique_ptr<PreTokenizer>(new PreTokenizer());
  if (!j.is_null()) p->add_json(j, label, 0);
  return p;
}

void PreTokenizer::add_json(const json& j, const std::string& label, int depth) {
  std::string type = type_of(j, label + ": pre_tokenizer");
  if (byte_level_) fail("{}: pre_tokenizer ByteLevel must be the last step (found {} after it)", label, type);
  if (type == "Sequence") {
    if (!j.contains("pretokenizers") || !j["pretokenizers"].is_array())
      fail("{}: pre_tokenizer Sequence without a \"pretokenizers\" array", label);
    for (const json& p : j["pretokenizers"]) add_json(p, label, depth + 1);
  } else if (type == "Split") {
    Step s{Step::kSplit, nullptr};
    s.re = make_pattern(j.value("pattern", json()), label + ": Split pre_tokenizer");
    std::string behavior = j.value("behavior", std::string("Isolated"));
    if (behavior == "Removed")
      s.behavior = SplitBehavior::kRemoved;
    else if (behavior == "Isolated")
      s.behavior = SplitBehavior::kIsolated;
    else if (behavior == "MergedWithPrevious")
      s.behavior = SplitBehavior::kMergedWithPrevious;
    else if (behavior == "MergedWithNext")
      s.behavior = SplitBehavior::kMergedWithNext;
    else if (behavior == "Contiguous")
      s.behavior = SplitBehavior::kContiguous;
    else
      fail("{}: Split pre_tokenizer has unknown behavior \"{}\"", label, behavior);
    s.invert = j.value("invert", false);
    steps_.push_back(std::move(s));
  } else if (type == "ByteLevel") {
    if (j.value("add_prefix_space", false)) {
      steps_.push_back({Step::kPrefixSpace, nullptr});
      prefix_space_ = true;
    }
    if (j.value("use_regex", true)) {
      Step s{Step::kSplit, std::make_shared<Regex>(kGpt2Pattern, false, label + ": ByteLevel pre_tokenizer")};
      steps_.push_back(std::move(s));
    }
    byte_level_ = true;
  } else {
    fail("{}: unsupported pre_tokenizer type \"{}\" (supported: Sequence, Split, ByteLevel)", label, type);
  }
}

void PreTokenizer::run(size_t step, std::string_view text, const std::function<void(std::string_view)>& f) const {
  if (step == steps_.size()) {
    f(text);
    return;
  }
  const Step& s = steps_[step];
  if (s.kind == Step::kPrefixSpace) {
    if (!text.empty() && text[0] == ' ') {
      run(step + 1, text, f);
    } else {
      std::string spaced = " " + std::string(text);
      run(step + 1, spaced, f);
    }
    return;
  }
  // One-pointer capture keeps the std::function in its small buffer (no allocation per piece).
  struct Next {
    const PreTokenizer* self;
    size_t step;
    const std::function<void(std::string_view)>* f;
  } next{this, step + 1, &f};
  split_by_regex(*s.re, s.behavior, s.invert, text,
                 [&next](std::string_view piece) { next.self->run(next.step, piece, *next.f); });
}

void PreTokenizer::for_each_piece(std::string_view text, const std::function<void(std::string_view)>& f) const {
  if (text.empty()) return;
  run(0, text, f);
}

std::vector<std::string> PreTokenizer::pieces(std::string_view text) const {
  std::vector<std::string> out;
  for_each_piece(text, [&](std::string_view p) { out.emplace_back(p); });
  return out;
}

}  // namespace dsv3::io
