// BPE model: loading and the merge loop (HF tokenizers models/bpe/{model,word}.rs semantics).
#include "io/bpe.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstring>
#include <nlohmann/json.hpp>
#include <queue>

#include "core/error.h"
#include "io/utf8.h"

namespace dsv3::io {

using json = nlohmann::json;

namespace {
std::atomic<uint64_t> next_model_id{1};  // BpeModel cache owner ids
}  // namespace

// ---------------------------------------------------------------------------------------------------------
// PairRankMap

void PairRankMap::reserve(size_t n) {
  size_t cap = 16;
  while (cap < 2 * n) cap <<= 1;
  if (cap <= keys_.size()) return;
  std::vector<uint64_t> old_keys = std::move(keys_);
  std::vector<Merge> old_vals = std::move(vals_);
  keys_.assign(cap, kEmpty);
  vals_.assign(cap, Merge{0, 0});
  mask_ = cap - 1;
  size_ = 0;
  for (size_t i = 0; i < old_keys.size(); ++i) {
    if (old_keys[i] == kEmpty) continue;
    insert(static_cast<int32_t>(old_keys[i] >> 32), static_cast<int32_t>(old_keys[i] & 0xffffffffu), old_vals[i]);
  }
}

void PairRankMap::grow() { reserve(std::max<size_t>(16, size_ * 2 + 2)); }

bool PairRankMap::insert(int32_t a, int32_t b, Merge m) {
  if (keys_.empty() || 2 * (size_ + 1) > keys_.size()) grow();
  uint64_t k = key(a, b);
  for (size_t i = hash(k) & mask_;; i = (i + 1) & mask_) {
    if (keys_[i] == k) {
      vals_[i] = m;  // a later duplicate wins, as in HF tokenizers and transformers.js
      return false;
    }
    if (keys_[i] == kEmpty) {
      keys_[i] = k;
      vals_[i] = m;
      ++size_;
      return true;
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Loading

std::unique_ptr<BpeModel> BpeModel::from_json(const json& m, const std::string& label) {
  if (!m.is_object()) fail("{}: \"model\" must be an object", label);
  std::string type = m.contains("type") && m["type"].is_string() ? m["type"].get<std::string>() : "BPE";
  if (type != "BPE") fail("{}: unsupported model type \"{}\" (only BPE is implemented)", label, type);
  if (m.contains("dropout") && !m["dropout"].is_null() &&
      !(m["dropout"].is_number() && m["dropout"].get<double>() == 0.0)) {
    fail("{}: BPE dropout {} is not supported (encoding must be deterministic)", label, m["dropout"].dump());
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (m.contains(key) && !m[key].is_null() && !(m[key].is_string() && m[key].get<std::string>().empty()))
      fail("{}: BPE {} is not supported", label, key);
  }
  if (!m.contains("vocab") || !m["vocab"].is_object()) fail("{}: BPE model without a \"vocab\" object", label);

  auto model = std::unique_ptr<BpeModel>(new BpeModel());
  model->cache_owner_ = next_model_id.fetch_add(1);
  model->vocab_.reserve(m["vocab"].size() * 2);
  for (auto it = m["vocab"].begin(); it != m["vocab"].end(); ++it) {
    if (!it.value().is_number_integer()) fail("{}: vocab entry {:?} has a non-integer id", label, it.key());
    int64_t id = it.value().get<int64_t>();
    if (id < 0 || id > INT32_MAX) fail("{}: vocab entry {:?} has id {} out of range", label, it.key(), id);
    model->vocab_.emplace(it.key(), static_cast<int32_t>(id));
  }
  auto lookup = [&](const std::string& tok) -> int32_t {
    auto it = model->vocab_.find(tok);
    return it == model->vocab_.end() ? -1 : it->second;
  };

  if (m.contains("unk_token") && !m["unk_token"].is_null()) {
    if (!m["unk_token"].is_string()) fail("{}: BPE unk_token must be a string or null", label);
    int32_t id = lookup(m["unk_token"].get<std::string>());
    if (id < 0) fail("{}: BPE unk_token {:?} is not in the vocab", label, m["unk_token"].get<std::string>());
    model->unk_id_ = id;
  }
  model->fuse_unk_ = m.value("fuse_unk", false);
  model->byte_fallback_ = m.value("byte_fallback", false);
  model->ignore_merges_ = m.value("ignore_merges", false);

  for (int b = 0; b < 256; ++b) {
    model->byte_ids_[b] = lookup(utf8::byte_to_piece(static_cast<uint8_t>(b)));
    model->fallback_ids_[b] = lookup(fmt::format("<0x{:02X}>", b));
  }

  if (m.contains("merges") && !m["merges"].is_null()) {
    const json& merges = m["merges"];
    if (!merges.is_array()) fail("{}: BPE \"merges\" must be an array", label);
    model->merges_.reserve(merges.size());
    std::string a, b;
    for (size_t rank = 0; rank < merges.size(); ++rank) {
      const json& e = merges[rank];
      if (e.is_string()) {  // legacy "a b" form
        const std::string& s = e.get_ref<const std::string&>();
        size_t sp = s.find(' ');
        if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
          fail("{}: merge {} {:?} is not two tokens separated by one space", label, rank, s);
        a = s.substr(0, sp);
        b = s.substr(sp + 1);
      } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
        a = e[0].get<std::string>();
        b = e[1].get<std::string>();
      } else {
        fail("{}: merge {} must be \"a b\" or [\"a\", \"b\"], got {}", label, rank, e.dump());
      }
      int32_t ia = lookup(a), ib = lookup(b), im = lookup(a + b);
      if (ia < 0 || ib < 0 || im < 0) {
        fail("{}: merge {} ({:?}, {:?}) refers to a token missing from the vocab ({:?})", label, rank, a, b,
             ia < 0   ? a
             : ib < 0 ? b
                      : a + b);
      }
      model->merges_.insert(ia, ib, {static_cast<int32_t>(rank), im});
    }
  }
  return model;
}

// ---------------------------------------------------------------------------------------------------------
// Encoding

void BpeModel::initial_symbols(std::string_view word, bool byte_level, std::vector<int32_t>& syms) const {
  int32_t pending_unk = -1;
  auto known = [&](int32_t id) {
    if (pending_unk >= 0) {
      syms.push_back(pending_unk);
      pending_unk = -1;
    }
    syms.push_back(id);
  };
  auto unknown = [&](std::string_view ch) {
    if (byte_fallback_) {
      bool all = true;
      for (unsigned char c : ch) all = all && fallback_ids_[c] >= 0;
      if (all) {
        for (unsigned char c : ch) known(fallback_ids_[c]);
        return;
      }
    }
    if (!unk_id_) return;  // no unk token: the character is dropped (HF tokenizers behaviour)
    if (pending_unk >= 0 && !fuse_unk_) syms.push_back(pending_unk);
    pending_unk = *unk_id_;
  };
  if (byte_level) {
    for (unsigned char c : word) {
      int32_t id = byte_ids_[c];
      if (id >= 0)
        known(id);
      else
        unknown(utf8::byte_to_piece(c));
    }
  } else {
    size_t i = 0;
    while (i < word.size()) {
      size_t start = i;
      utf8::next(word, i);
      std::string_view ch = word.substr(start, i - start);
      auto it = vocab_.find(std::string(ch));
      if (it != vocab_.end())
        known(it->second);
      else
        unknown(ch);
    }
  }
  if (pending_unk >= 0) syms.push_back(pending_unk);
}

void BpeModel::merge(std::vector<int32_t>& syms) const {
  size_t n = syms.size();
  if (n < 2) return;
  if (n > 64) {
    merge_long(syms);
    return;
  }
  // Linear scan over cached pair ranks: O(n) per merge, no allocation.
  int32_t s[64], rank[64], merged[64];
  std::copy(syms.begin(), syms.end(), s);
  auto set_pair = [&](size_t i) {
    const PairRankMap::Merge* m = merges_.find(s[i], s[i + 1]);
    rank[i] = m ? m->rank : INT32_MAX;
    merged[i] = m ? m->id : -1;
  };
  for (size_t i = 0; i + 1 < n; ++i) set_pair(i);
  while (n > 1) {
    size_t best = 0;
    for (size_t i = 1; i + 1 < n; ++i)
      if (rank[i] < rank[best]) best = i;
    if (rank[best] == INT32_MAX) break;
    s[best] = merged[best];
    for (size_t i = best + 1; i + 1 < n; ++i) s[i] = s[i + 1];
    for (size_t i = best + 1; i + 2 < n; ++i) {
      rank[i] = rank[i + 1];
      merged[i] = merged[i + 1];
    }
    --n;
    if (best > 0) set_pair(best - 1);
    if (best + 1 < n) set_pair(best);
  }
  syms.assign(s, s + n);
}

void BpeModel::merge_long(std::vector<int32_t>& syms) const {
  // Doubly linked list over symbol positions plus a min-heap of candidate merges ordered by (rank, position);
  // positions are original indices, so the smallest one is the leftmost pair (HF's Word::merge_all).
  const int n = static_cast<int>(syms.size());
  std::vector<int> prev(n), next(n);
  for (int i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  struct Cand {
    int32_t rank;
    int pos;
    int32_t left, right;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
  auto push = [&](int i) {
    int j = next[i];
    if (j < 0) return;
    if (const PairRankMap::Merge* m = merges_.find(syms[i], syms[j])) heap.push({m->rank, i, syms[i], syms[j]});
  };
  for (int i = 0; i + 1 < n; ++i) push(i);
  std::vector<char> alive(n, 1);
  while (!heap.empty()) {
    Cand c = heap.top();
    heap.pop();
    int i = c.pos, j = next[i];
    if (!alive[i] || j < 0 || syms[i] != c.left || syms[j] != c.right) continue;  // stale
    const PairRankMap::Merge* m = merges_.find(syms[i], syms[j]);
    syms[i] = m->id;
    alive[j] = 0;
    next[i] = next[j];
    if (next[j] >= 0) prev[next[j]] = i;
    if (prev[i] >= 0) push(prev[i]);
    push(i);
  }
  size_t w = 0;
  for (int i = 0; i >= 0 && i < n; i = next[i]) syms[w++] = syms[i];
  syms.resize(w);
}

namespace {

// Open-addressing word cache: one probe usually touches one entry and the word's bytes; words and ids
// live in two arenas. Cleared wholesale when half full.
class WordCache {
 public:
  static constexpr size_t kSlots = size_t{1} << 16;  // capacity kSlots / 2 words
  WordCache() : slots_(kSlots) {}

  static uint64_t hash(std::string_view w) {
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ w.size();
    size_t i = 0;
    for (; i + 8 <= w.size(); i += 8) {
      uint64_t v;
      std::memcpy(&v, w.data() + i, 8);
      h = (h ^ v) * 0xff51afd7ed558ccdULL;
      h ^= h >> 32;
    }
    uint64_t v = 0;
    std::memcpy(&v, w.data() + i, w.size() - i);
    h = (h ^ v) * 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 29;
    return h;
  }

  // The cached ids of w (hash h) or nullptr; *n receives their count.
  const int32_t* find(std::string_view w, uint64_t h, size_t* n) const {
    const uint32_t tag = tag_of(h);
    for (size_t i = h & (kSlots - 1);; i = (i + 1) & (kSlots - 1)) {
      const Slot& s = slots_[i];
      if (s.tag == 0) return nullptr;
      if (s.tag == tag && s.len == w.size() && std::memcmp(words_.data() + s.off, w.data(), w.size()) == 0) {
        *n = s.n_ids;
        return ids_.data() + s.ids_off;
      }
    }
  }

  void insert(std::string_view w, uint64_t h, const std::vector<int32_t>& ids) {
    if (2 * (count_ + 1) > kSlots) clear();
    if (ids.size() > UINT16_MAX) return;
    size_t i = h & (kSlots - 1);
    while (slots_[i].tag != 0) i = (i + 1) & (kSlots - 1);
    slots_[i] = {tag_of(h), static_cast<uint32_t>(words_.size()), static_cast<uint32_t>(ids_.size()),
                 static_cast<uint16_t>(w.size()), static_cast<uint16_t>(ids.size())};
    words_.append(w);
    ids_.insert(ids_.end(), ids.begin(), ids.end());
    ++count_;
  }

  void clear() {
    std::fill(slots_.begin(), slots_.end(), Slot{});
    words_.clear();
    ids_.clear();
    count_ = 0;
  }

 private:
  static uint32_t tag_of(uint64_t h) { return static_cast<uint32_t>(h >> 32) | 1; }  // 0: empty slot
  struct Slot {                                                                      // 16 bytes
    uint32_t tag = 0, off = 0, ids_off = 0;
    uint16_t len = 0, n_ids = 0;
  };
  std::vector<Slot> slots_;
  std::string words_;
  std::vector<int32_t> ids_;
  size_t count_ = 0;
};

// The calling thread's cache for model `owner` (ids are never reused, so a stale entry cannot be mistaken).
WordCache& thread_cache(uint64_t owner) {
  struct Slot {
    uint64_t owner = 0;
    uint64_t last_use = 0;
    std::unique_ptr<WordCache> cache;
  };
  thread_local Slot slots[4];
  thread_local uint64_t clock = 0;
  ++clock;
  Slot* victim = &slots[0];
  for (Slot& s : slots) {
    if (s.owner == owner) {
      s.last_use = clock;
      return *s.cache;
    }
    if (s.last_use < victim->last_use) victim = &s;
  }
  victim->owner = owner;
  victim->last_use = clock;
  if (victim->cache)
    victim->cache->clear();
  else
    victim->cache = std::make_unique<WordCache>();
  return *victim->cache;
}

}  // namespace

void BpeModel::encode_word(std::string_view word, bool byte_level, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (byte_level && word.size() == 1 && byte_ids_[static_cast<unsigned char>(word[0])] >= 0) {
    out.push_back(byte_ids_[static_cast<unsigned char>(word[0])]);
    return;
  }
  WordCache* cache = nullptr;
  uint64_t h = 0;
  if (word.size() <= kMaxCachedWord) {
    cache = &thread_cache(cache_owner_);
    h = WordCache::hash(word);
    size_t n;
    if (const int32_t* ids = cache->find(word, h, &n)) {
      out.insert(out.end(), ids, ids + n);
      return;
    }
  }
  std::vector<int32_t> syms;
  bool done = false;
  if (ignore_merges_) {
    std::string mapped;
    if (byte_level) {
      for (unsigned char c : word) mapped += utf8::byte_to_piece(c);
    } else {
      mapped = word;
    }
    auto it = vocab_.find(mapped);
    if (it != vocab_.end()) {
      syms.push_back(it->second);
      done = true;
    }
  }
  if (!done) {
    syms.reserve(word.size());
    initial_symbols(word, byte_level, syms);
    merge(syms);
  }
  out.insert(out.end(), syms.begin(), syms.end());
  if (cache) cache->insert(word, h, syms);
}

}  // namespace dsv3::io
