#include "model/ffn.h"

#include <algorithm>

#include "kernels/linear.h"
#include "kernels/ops.h"

namespace dsv3 {

void ffn_forward(const FfnWeights& w, const float* x, int64_t m, float* y, FfnScratch& s,
                 const kernels::LinearOptions& lin) {
  if (m == 0) return;  // no rows: no pass over the weights
  if (m <= kernels::swiglu_max_rows()) {
    const kernels::SwigluExpert e{.w1 = w.w1, .w3 = w.w3, .w2 = w.w2, .x = x, .m = m};
    std::fill(y, y + m * w.w2.n, 0.0f);
    kernels::swiglu_experts({&e, 1}, w.w2.n, y, s.fused, lin);
    return;
  }
  const int64_t inter = w.w1.n;
  s.gate.resize(size_t(m * inter));
  s.up.resize(size_t(m * inter));
  kernels::linear(x, m, w.w1, s.gate.data(), lin);
  kernels::linear(x, m, w.w3, s.up.data(), lin);
  kernels::silu_mul(s.gate.data(), s.up.data(), m * inter, s.gate.data());
  kernels::linear(s.gate.data(), m, w.w2, y, lin);
}

}  // namespace dsv3
