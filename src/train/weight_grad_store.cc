#include "train/weight_grad_store.h"

#include "train/linear_grad.h"

namespace dsv3::train {

void WeightGradStore::push(const float* dy, const float* x, const float* w, int64_t m, int64_t n, int64_t k, float* dw,
                           const LinearPrecision& p) {
  Item it{.dy = std::vector<float>(dy, dy + m * n),
          .x = std::vector<float>(x, x + m * k),
          .w = w,
          .m = m,
          .n = n,
          .k = k,
          .dw = dw,
          .p = p};
  std::lock_guard<std::mutex> lock(mu_);
  items_.push_back(std::move(it));
}

void WeightGradStore::run() {
  for (const Item& it : items_)
    linear_backward(it.dy.data(), it.x.data(), it.w, it.m, it.n, it.k, nullptr, it.dw, it.p);
  items_.clear();
}

int64_t WeightGradStore::bytes() const {
  int64_t n = 0;
  for (const Item& it : items_) n += int64_t(it.dy.size() + it.x.size()) * 4;
  return n;
}

}  // namespace dsv3::train
