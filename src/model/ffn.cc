#include "model/ffn.h"

#include "kernels/linear.h"
#include "kernels/ops.h"

namespace dsv3 {

void ffn_forward(const FfnWeights& w, const float* x, int64_t m, float* y, FfnScratch& s) {
  const int64_t inter = w.w1.n;
  s.gate.resize(size_t(m * inter));
  s.up.resize(size_t(m * inter));
  kernels::linear(x, m, w.w1, s.gate.data());
  kernels::linear(x, m, w.w3, s.up.data());
  kernels::silu_mul(s.gate.data(), s.up.data(), m * inter, s.gate.data());
  kernels::linear(s.gate.data(), m, w.w2, y);
}

}  // namespace dsv3
