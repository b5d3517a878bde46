#include "runtime/prefix_cache.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <map>

#include "core/error.h"

namespace dsv3::runtime {

size_t PrefixBlock::bytes() const {
  return (rows.size() + index_scales.size() + mtp_rows.size() + mtp_index_scales.size() + hidden.size()) *
             sizeof(float) +
         index_keys.size() + mtp_index_keys.size();
}

// A node's edge: blocks.size() blocks, their tokens (blocks.size() × B). Children are keyed by the tokens of
// their first block (siblings never share a first block, so a path has one place in the tree).
struct PrefixCache::Node {
  Node* parent = nullptr;
  std::vector<int32_t> tokens;
  std::vector<BlockRef> blocks;
  std::map<std::vector<int32_t>, std::unique_ptr<Node>> children;
  uint64_t used = 0;  // LRU tick of the last lookup or insert that passed through this node
};

PrefixCache::PrefixCache(PrefixLayout layout, int64_t max_bytes)
    : layout_(layout), max_bytes_(size_t(max_bytes)), root_(std::make_unique<Node>()) {
  if (layout_.block_tokens < 1) fail("prefix cache: the block size must be >= 1 token, got {}", layout_.block_tokens);
  if (max_bytes < 1) fail("prefix cache: the memory limit must be >= 1 byte, got {}", max_bytes);
  stats_.max_bytes = max_bytes;
}

PrefixCache::~PrefixCache() = default;

namespace {

bool block_equal(const int32_t* a, const int32_t* b, int64_t n) { return std::equal(a, a + n, b); }

}  // namespace

std::vector<BlockRef> PrefixCache::lookup(std::span<const int32_t> tokens, int64_t max_blocks) {
  const int64_t B = layout_.block_tokens;
  const int64_t want = std::min<int64_t>(max_blocks, int64_t(tokens.size()) / B);
  std::vector<BlockRef> out;
  ++stats_.lookups;
  stats_.lookup_tokens += int64_t(tokens.size());
  const uint64_t now = ++tick_;
  Node* n = root_.get();
  while (int64_t(out.size()) < want) {
    const int32_t* key = tokens.data() + out.size() * B;
    auto it = n->children.find(std::vector<int32_t>(key, key + B));
    if (it == n->children.end()) break;
    Node* child = it->second.get();
    child->used = now;
    size_t e = 0;
    while (e < child->blocks.size() && int64_t(out.size()) < want &&
           block_equal(child->tokens.data() + e * B, tokens.data() + out.size() * B, B))
      out.push_back(child->blocks[e++]);
    if (e < child->blocks.size()) break;
    n = child;
  }
  if (!out.empty()) ++stats_.hits;
  stats_.hit_tokens += int64_t(out.size()) * B;
  return out;
}

void PrefixCache::insert(std::span<const int32_t> tokens, int64_t max_blocks,
                         const std::function<PrefixBlock(int64_t)>& make) {
  const int64_t B = layout_.block_tokens;
  const int64_t total = std::min<int64_t>(max_blocks, int64_t(tokens.size()) / B);
  const uint64_t now = ++tick_;
  Node* n = root_.get();
  int64_t i = 0;  // blocks of the path found so far
  while (i < total) {
    const int32_t* key = tokens.data() + i * B;
    auto it = n->children.find(std::vector<int32_t>(key, key + B));
    if (it == n->children.end()) {  // the rest of the path is new: one leaf edge
      auto leaf = std::make_unique<Node>();
      leaf->parent = n;
      leaf->used = now;
      for (int64_t j = i; j < total; ++j) {
        auto b = std::make_shared<const PrefixBlock>(make(j));
        bytes_ += b->bytes();
        leaf->blocks.push_back(std::move(b));
        leaf->tokens.insert(leaf->tokens.end(), tokens.begin() + j * B, tokens.begin() + (j + 1) * B);
        ++stats_.inserted_blocks;
        ++stats_.blocks;
      }
      n->children.emplace(std::vector<int32_t>(key, key + B), std::move(leaf));
      break;
    }
    Node* child = it->second.get();
    const uint64_t before = child->used;
    child->used = now;
    size_t e = 0;
    while (e < child->blocks.size() && i < total && block_equal(child->tokens.data() + e * B, key + e * B, B)) {
      ++e;
      ++i;
    }
    if (e == child->blocks.size()) {
      n = child;
      continue;
    }
    if (i == total) break;  // the path ends inside this edge: nothing new
    // The path leaves the edge after e (>= 1) blocks: split it there. The tail keeps the edge's old LRU
    // tick (only the head is on the path just used) and takes over its children.
    auto tail = std::make_unique<Node>();
    tail->parent = child;
    tail->used = before;
    tail->blocks.assign(child->blocks.begin() + e, child->blocks.end());
    tail->tokens.assign(child->tokens.begin() + e * B, child->tokens.end());
    tail->children = std::move(child->children);
    for (auto& [k, c] : tail->children) c->parent = tail.get();
    child->blocks.resize(e);
    child->tokens.resize(e * B);
    child->children.clear();
    std::vector<int32_t> tail_key(tail->tokens.begin(), tail->tokens.begin() + B);
    child->children.emplace(std::move(tail_key), std::move(tail));
    n = child;
  }
  evict_to(max_bytes_);
  stats_.bytes = int64_t(bytes_);
}

PrefixCache::Node* PrefixCache::oldest_leaf() {
  Node* best = nullptr;
  std::vector<Node*> stack = {root_.get()};
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    if (n != root_.get() && n->children.empty() && (!best || n->used < best->used)) best = n;
    for (auto& [k, c] : n->children) stack.push_back(c.get());
  }
  return best;
}

void PrefixCache::evict_to(size_t limit) {
  const int64_t B = layout_.block_tokens;
  while (bytes_ > limit) {
    Node* leaf = oldest_leaf();
    if (!leaf) break;
    // Drop the leaf's blocks from its end (a block is only useful with its whole path before it) while the
    // cache is over the limit; a leaf left with no block goes, and its parent may become the next leaf.
    while (bytes_ > limit && leaf->blocks.size() > 1) {
      bytes_ -= leaf->blocks.back()->bytes();
      leaf->blocks.pop_back();
      leaf->tokens.resize(leaf->blocks.size() * B);
      ++stats_.evicted_blocks;
      --stats_.blocks;
    }
    if (bytes_ > limit) {
      bytes_ -= leaf->blocks.front()->bytes();
      ++stats_.evicted_blocks;
      --stats_.blocks;
      leaf->parent->children.erase(std::vector<int32_t>(leaf->tokens.begin(), leaf->tokens.begin() + B));
    }
  }
  stats_.bytes = int64_t(bytes_);
}

void PrefixCache::clear() {
  root_->children.clear();
  bytes_ = 0;
  stats_.blocks = 0;
  stats_.bytes = 0;
}

namespace {

// Copies `n` rows of every layer from a [layers, cap, w] store at position `from` into a [layers, n, w] one.
template <class T>
void gather(std::vector<T>& dst, const T* src, int64_t layers, int64_t cap, int64_t w, int64_t from, int64_t n) {
  dst.resize(size_t(layers * n * w));
  for (int64_t l = 0; l < layers; ++l)
    std::memcpy(dst.data() + l * n * w, src + (l * cap + from) * w, size_t(n * w) * sizeof(T));
}

template <class T>
void scatter(T* dst, const std::vector<T>& src, int64_t layers, int64_t cap, int64_t w, int64_t at, int64_t n) {
  for (int64_t l = 0; l < layers; ++l)
    std::memcpy(dst + (l * cap + at) * w, src.data() + l * n * w, size_t(n * w) * sizeof(T));
}

void check_shape(const KvCache& c, int64_t layers, int64_t width, int64_t index_dim, int64_t index_layers,
                 const char* which) {
  if (c.layers() != layers || c.width() != width || c.index_dim() != index_dim || c.index_layers() != index_layers)
    fail(
        "prefix cache: the {} cache has {} layers × {} values (index {} × {}), the cache was made for {} × {} ({} × "
        "{})",
        which, c.layers(), c.width(), c.index_layers(), c.index_dim(), layers, width, index_layers, index_dim);
}

}  // namespace

PrefixBlock PrefixCache::make_block(int64_t j, KvCache& cache, KvCache* mtp_cache, const float* hidden) const {
  const PrefixLayout& L = layout_;
  const int64_t B = L.block_tokens;
  check_shape(cache, L.layers, L.width, L.index_dim, L.index_layers, "main");
  if (cache.length() < (j + 1) * B)
    fail("prefix cache: block {} needs {} cached tokens, the sequence has {}", j, (j + 1) * B, cache.length());
  PrefixBlock b;
  const int64_t cap = cache.capacity();
  gather(b.rows, cache.layer_rows(0), L.layers, cap, L.width, j * B, B);
  if (L.index_dim > 0 && L.index_layers > 0) {
    gather(b.index_keys, cache.index_keys(0), L.index_layers, cap, L.index_dim, j * B, B);
    gather(b.index_scales, cache.index_scales(0), L.index_layers, cap, 1, j * B, B);
  }
  if (L.mtp_layers > 0) {
    if (!mtp_cache || !hidden) fail("prefix cache: block {} needs the MTP cache and hidden state", j);
    check_shape(*mtp_cache, L.mtp_layers, L.width, L.mtp_index_dim, L.mtp_index_layers, "MTP");
    const int64_t from = std::max<int64_t>(j * B - 1, 0), n = (j + 1) * B - 1 - from;
    if (mtp_cache->length() < from + n)
      fail("prefix cache: block {} needs {} MTP rows, the sequence has {}", j, from + n, mtp_cache->length());
    const int64_t mcap = mtp_cache->capacity();
    gather(b.mtp_rows, mtp_cache->layer_rows(0), L.mtp_layers, mcap, L.width, from, n);
    if (L.mtp_index_dim > 0 && L.mtp_index_layers > 0) {
      gather(b.mtp_index_keys, mtp_cache->index_keys(0), L.mtp_index_layers, mcap, L.mtp_index_dim, from, n);
      gather(b.mtp_index_scales, mtp_cache->index_scales(0), L.mtp_index_layers, mcap, 1, from, n);
    }
    b.hidden.assign(hidden, hidden + L.hidden);
  }
  return b;
}

void PrefixCache::copy_in(std::span<const BlockRef> blocks, KvCache& cache, KvCache* mtp_cache) const {
  const PrefixLayout& L = layout_;
  const int64_t B = L.block_tokens, k = int64_t(blocks.size());
  if (k == 0) return;
  check_shape(cache, L.layers, L.width, L.index_dim, L.index_layers, "main");
  if (cache.length() != 0) fail("prefix cache: rows copied into a cache that holds {} tokens", cache.length());
  cache.ensure(k * B);
  const int64_t cap = cache.capacity();
  for (int64_t j = 0; j < k; ++j) {
    const PrefixBlock& b = *blocks[size_t(j)];
    scatter(cache.row(0, 0), b.rows, L.layers, cap, L.width, j * B, B);
    if (L.index_dim > 0 && L.index_layers > 0) {
      scatter(cache.index_key(0, 0), b.index_keys, L.index_layers, cap, L.index_dim, j * B, B);
      scatter(cache.index_scale(0, 0), b.index_scales, L.index_layers, cap, 1, j * B, B);
    }
  }
  cache.advance(k * B);
  if (L.mtp_layers > 0 && mtp_cache) {
    check_shape(*mtp_cache, L.mtp_layers, L.width, L.mtp_index_dim, L.mtp_index_layers, "MTP");
    if (mtp_cache->length() != 0) fail("prefix cache: MTP rows copied into a cache that holds {}", mtp_cache->length());
    mtp_cache->ensure(k * B);
    const int64_t mcap = mtp_cache->capacity();
    for (int64_t j = 0; j < k; ++j) {
      const PrefixBlock& b = *blocks[size_t(j)];
      const int64_t from = std::max<int64_t>(j * B - 1, 0), n = (j + 1) * B - 1 - from;
      scatter(mtp_cache->row(0, 0), b.mtp_rows, L.mtp_layers, mcap, L.width, from, n);
      if (L.mtp_index_dim > 0 && L.mtp_index_layers > 0) {
        scatter(mtp_cache->index_key(0, 0), b.mtp_index_keys, L.mtp_index_layers, mcap, L.mtp_index_dim, from, n);
        scatter(mtp_cache->index_scale(0, 0), b.mtp_index_scales, L.mtp_index_layers, mcap, 1, from, n);
      }
    }
    mtp_cache->advance(k * B - 1);
  }
}

int64_t parse_byte_size(const std::string& s, const char* flag) {
  auto bad = [&]() -> int64_t {
    fail("{}: '{}' is not a size (expected bytes or a number with a unit, e.g. 2GiB, 512MiB, 100MB; 0 disables)", flag,
         s);
  };
  size_t i = 0;
  while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
  if (i == 0) return bad();
  double v = 0;
  try {
    size_t used = 0;
    v = std::stod(s.substr(0, i), &used);
    if (used != i) return bad();
  } catch (const std::exception&) {
    return bad();
  }
  std::string unit = s.substr(i);
  while (!unit.empty() && unit.front() == ' ') unit.erase(unit.begin());
  std::string u;
  for (char c : unit) u += char(std::tolower(static_cast<unsigned char>(c)));
  static const std::map<std::string, double> units = {
      {"", 1},         {"b", 1},       {"k", 0x1p10},   {"ki", 0x1p10}, {"kib", 0x1p10}, {"kb", 1e3},
      {"m", 0x1p20},   {"mi", 0x1p20}, {"mib", 0x1p20}, {"mb", 1e6},    {"g", 0x1p30},   {"gi", 0x1p30},
      {"gib", 0x1p30}, {"gb", 1e9},    {"t", 0x1p40},   {"ti", 0x1p40}, {"tib", 0x1p40}, {"tb", 1e12}};
  auto it = units.find(u);
  if (it == units.end()) return bad();
  const double bytes = v * it->second;
  if (!std::isfinite(bytes) || bytes >= 0x1p62) fail("{}: '{}' is too large", flag, s);
  return int64_t(std::llround(bytes));
}

}  // namespace dsv3::runtime
