// Helpers shared by the kernel tests: random data, normalised error, and running a check on every
// instruction-set path this CPU has (kernels/isa.h).
#pragma once

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "kernels/isa.h"

namespace dsv3::kernels::testing {

// ‖a − b‖ / ‖b‖ (0 when both are 0); NaN/inf anywhere makes it inf unless both agree exactly.
inline double rel_err(const float* a, const float* b, int64_t n) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(a[i]) || !std::isfinite(b[i])) {
      if (std::isnan(a[i]) && std::isnan(b[i])) continue;
      if (a[i] == b[i]) continue;
      return INFINITY;
    }
    const double d = double(a[i]) - double(b[i]);
    num += d * d;
    den += double(b[i]) * double(b[i]);
  }
  return den == 0 ? std::sqrt(num) : std::sqrt(num / den);
}
inline double rel_err(const std::vector<float>& a, const std::vector<float>& b) {
  return rel_err(a.data(), b.data(), int64_t(b.size()));
}
inline double rel_err(const float* a, const double* b, int64_t n) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double d = double(a[i]) - b[i];
    num += d * d;
    den += b[i] * b[i];
  }
  return den == 0 ? std::sqrt(num) : std::sqrt(num / den);
}

inline std::vector<float> random_floats(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 g(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

// Every path the CPU can run, Scalar first.
inline std::vector<Isa> available_isas() {
  std::vector<Isa> v;
  for (Isa i : {Isa::Scalar, Isa::Avx2, Isa::Avx512})
    if (uint8_t(i) <= uint8_t(best_isa())) v.push_back(i);
  return v;
}

// Forces a path for the lifetime of the object.
struct ForceIsa {
  explicit ForceIsa(Isa isa) { set_isa(isa); }
  ~ForceIsa() { set_isa(best_isa()); }
};

}  // namespace dsv3::kernels::testing
