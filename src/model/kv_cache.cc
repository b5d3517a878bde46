#include "model/kv_cache.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"

namespace dsv3 {

KvCache::KvCache(int64_t layers, int64_t width, int64_t capacity, int64_t index_dim, int64_t index_layers)
    : layers_(layers),
      width_(width),
      capacity_(capacity),
      index_dim_(index_dim),
      index_layers_(index_dim > 0 ? (index_layers < 0 ? layers : index_layers) : 0) {}

namespace {

// Moves a [layers, old_cap, w] store into [layers, cap, w], keeping the first `len` rows of each layer.
template <class T>
void regrow(std::vector<T>& v, int64_t layers, int64_t old_cap, int64_t cap, int64_t w, int64_t len) {
  if (v.empty() || w == 0) return;
  std::vector<T> next(static_cast<size_t>(layers * cap * w));
  for (int64_t l = 0; l < layers; ++l)
    std::memcpy(next.data() + l * cap * w, v.data() + l * old_cap * w, size_t(len * w) * sizeof(T));
  v.swap(next);
}

}  // namespace

void KvCache::reserve(int64_t n) {
  if (n <= capacity_) return;
  const int64_t cap = std::max(n, 2 * capacity_);
  regrow(data_, layers_, capacity_, cap, width_, length_);
  regrow(index_keys_, index_layers_, capacity_, cap, index_dim_, length_);
  regrow(index_scales_, index_layers_, capacity_, cap, index_dim_ > 0 ? 1 : 0, length_);
  capacity_ = cap;
}

void KvCache::ensure(int64_t n) {
  reserve(n);
  if (data_.empty()) data_.resize(size_t(layers_ * capacity_ * width_));
  if (index_dim_ > 0 && index_layers_ > 0 && index_keys_.empty()) {
    index_keys_.resize(size_t(index_layers_ * capacity_ * index_dim_));
    index_scales_.resize(size_t(index_layers_ * capacity_));
  }
}

void KvCache::truncate(int64_t n) {
  if (n < 0 || n > length_) fail("KV cache: cannot truncate {} tokens to {}", length_, n);
  length_ = n;
}

}  // namespace dsv3
