#include "model/kv_cache.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"

namespace dsv3 {

KvCache::KvCache(int64_t layers, int64_t width, int64_t capacity)
    : layers_(layers), width_(width), capacity_(capacity) {}

void KvCache::reserve(int64_t n) {
  if (n <= capacity_) return;
  const int64_t cap = std::max(n, 2 * capacity_);
  if (!data_.empty()) {
    std::vector<float> next(size_t(layers_ * cap * width_));
    for (int64_t l = 0; l < layers_; ++l)
      std::memcpy(next.data() + l * cap * width_, data_.data() + l * capacity_ * width_,
                  size_t(length_ * width_) * sizeof(float));
    data_.swap(next);
  }
  capacity_ = cap;
}

void KvCache::ensure(int64_t n) {
  reserve(n);
  if (data_.empty()) data_.resize(size_t(layers_ * capacity_ * width_));
}

void KvCache::truncate(int64_t n) {
  if (n < 0 || n > length_) fail("KV cache: cannot truncate {} tokens to {}", length_, n);
  length_ = n;
}

}  // namespace dsv3
