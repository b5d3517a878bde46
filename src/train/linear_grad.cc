#include "train/linear_grad.h"

#include "kernels/matmul.h"
#include "train/fp8_linear.h"
#include "train/weight_grad_store.h"

namespace dsv3::train {

void linear_forward(const float* x, const float* w, int64_t m, int64_t n, int64_t k, float* y) {
  kernels::matmul_nt(x, w, m, n, k, y);
}

void linear_backward(const float* dy, const float* x, const float* w, int64_t m, int64_t n, int64_t k, float* dx,
                     float* dw) {
  if (dx) kernels::matmul_nn(dy, w, m, k, n, dx, 1.0f);
  if (dw) kernels::matmul_tn(dy, x, n, k, m, dw, 1.0f);
}

void linear_forward(const float* x, const float* w, int64_t m, int64_t n, int64_t k, float* y,
                    const LinearPrecision& p) {
  if (p.mode == Precision::FP32) return linear_forward(x, w, m, n, k, y);
  lowp_linear_forward(x, w, m, n, k, y, p);
}

void linear_backward(const float* dy, const float* x, const float* w, int64_t m, int64_t n, int64_t k, float* dx,
                     float* dw, const LinearPrecision& p) {
  if (p.mode == Precision::FP32) return linear_backward(dy, x, w, m, n, k, dx, dw);
  lowp_linear_backward(dy, x, w, m, n, k, dx, dw, p);
}

void linear_backward(const float* dy, const float* x, const float* w, int64_t m, int64_t n, int64_t k, float* dx,
                     float* dw, const LinearPrecision& p, WeightGradStore* store) {
  if (!store || !dw) return linear_backward(dy, x, w, m, n, k, dx, dw, p);
  if (dx) linear_backward(dy, x, w, m, n, k, dx, nullptr, p);
  store->push(dy, x, w, m, n, k, dw, p);
}

}  // namespace dsv3::train
