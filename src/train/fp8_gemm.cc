#include "train/fp8_gemm.h"

// The promotion step is defined as separately rounded float32 operations (scale product, scaled partial sum,
// addition); keep the compiler from fusing them into FMAs, which would change the bits between builds.
#pragma GCC optimize("fp-contract=off")

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "kernels/matmul.h"

namespace dsv3::train {

namespace {

uint32_t trunc_mask(int bits) { return bits >= 23 ? 0xffffffffu : 0xffffffffu << (23 - bits); }

inline float trunc_bits(float x, uint32_t mask) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  u &= mask;
  std::memcpy(&x, &u, 4);
  return x;
}

// A chunk [k0, k0 + P) must lie inside one scale tile of each operand.
bool chunks_fit(const Fp8Matrix& q, int64_t K, int64_t P) {
  return q.tile_cols >= K || (P > 0 && q.tile_cols % P == 0);
}

void check(const Fp8Matrix& a, const Fp8Matrix& b, int64_t ldc, const Fp8GemmOptions& o, bool limited) {
  if (a.cols != b.cols) fail("fp8_gemm: A is [{}, {}] and B is [{}, {}]: K differs", a.rows, a.cols, b.rows, b.cols);
  if (ldc < b.rows) fail("fp8_gemm: ldc {} < n {}", ldc, b.rows);
  if (o.accum_bits < 1 || o.accum_bits > 23) fail("fp8_gemm: accum_bits must lie in [1, 23], got {}", o.accum_bits);
  if (o.promote_every < 0) fail("fp8_gemm: promote_every must not be negative, got {}", o.promote_every);
  if (!limited) return;
  for (const Fp8Matrix* q : {&a, &b})
    if (!chunks_fit(*q, a.cols, o.promote_every))
      fail(
          "fp8_gemm: promotion every {} products crosses the {}-wide scale tiles along K = {} (promotion must "
          "divide the tile width; never promoting needs scales constant along K)",
          o.promote_every, q->tile_cols, a.cols);
}

// ---- the vectorised limited-accumulator kernel (GCC vector extensions; one instance per ISA) ----
typedef float v4f __attribute__((vector_size(16)));
typedef uint32_t v4u __attribute__((vector_size(16)));
typedef float v8f __attribute__((vector_size(32)));
typedef uint32_t v8u __attribute__((vector_size(32)));
typedef float v16f __attribute__((vector_size(64)));
typedef uint32_t v16u __attribute__((vector_size(64)));

struct Ctx {
  int64_t m, n, K, P, nchunks, mb, np;  // P: chunk length; mb: row blocks; np: column panels
  int MR, NR;
  const float* A;   // [mb·MR, K] E4M3 values (unscaled), zero-padded rows
  const float* Bp;  // [np][K][NR] E4M3 values, panel-major, zero-padded columns
  const float* sa;  // [mb·MR, nchunks] A's scale for each chunk
  const float* sb;  // [np][nchunks][NR] B's scales
  uint32_t mask;
  float* c;
  int64_t ldc;
  bool accumulate;
};

template <typename V, typename VU, int W, int MR>
[[gnu::always_inline]] inline void run_task(const Ctx& x, int64_t task) {
  const int64_t ib = task / x.np, p = task % x.np, i0 = ib * MR, j0 = p * 2 * W;
  const float* A = x.A + i0 * x.K;
  const float* Bp = x.Bp + p * x.K * 2 * W;
  VU mask;
  for (int l = 0; l < W; ++l) mask[l] = x.mask;
  V acc[MR][2];
  for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = V{};
  for (int64_t ci = 0; ci < x.nchunks; ++ci) {
    const int64_t k0 = ci * x.P, k1 = std::min(x.K, k0 + x.P);
    V lim[MR][2];
    for (int r = 0; r < MR; ++r) lim[r][0] = lim[r][1] = V{};
    for (int64_t k = k0; k < k1; ++k) {
      V b0, b1;
      std::memcpy(&b0, Bp + k * 2 * W, sizeof(V));
      std::memcpy(&b1, Bp + k * 2 * W + W, sizeof(V));
      for (int r = 0; r < MR; ++r) {
        const float av = A[r * x.K + k];
        lim[r][0] = (V)((VU)(lim[r][0] + av * b0) & mask);  // the product is exact; the sum rounds, then truncates
        lim[r][1] = (V)((VU)(lim[r][1] + av * b1) & mask);
      }
    }
    V s0, s1;
    std::memcpy(&s0, x.sb + (p * x.nchunks + ci) * 2 * W, sizeof(V));
    std::memcpy(&s1, x.sb + (p * x.nchunks + ci) * 2 * W + W, sizeof(V));
    for (int r = 0; r < MR; ++r) {
      const float sa = x.sa[(i0 + r) * x.nchunks + ci];
      const V t0 = lim[r][0] * (sa * s0), t1 = lim[r][1] * (sa * s1);  // promotion: scale, then add in fp32
      acc[r][0] = acc[r][0] + t0;
      acc[r][1] = acc[r][1] + t1;
    }
  }
  for (int r = 0; r < MR && i0 + r < x.m; ++r) {
    float out[2 * W];
    std::memcpy(out, &acc[r][0], sizeof(V));
    std::memcpy(out + W, &acc[r][1], sizeof(V));
    float* cr = x.c + (i0 + r) * x.ldc;
    for (int64_t j = j0; j < std::min(x.n, j0 + 2 * W); ++j) cr[j] = x.accumulate ? cr[j] + out[j - j0] : out[j - j0];
  }
}

__attribute__((target("avx512f"))) void task_avx512(const Ctx& x, int64_t task) {
  run_task<v16f, v16u, 16, 6>(x, task);
}
__attribute__((target("avx2"))) void task_avx2(const Ctx& x, int64_t task) { run_task<v8f, v8u, 8, 4>(x, task); }
void task_generic(const Ctx& x, int64_t task) { run_task<v4f, v4u, 4, 4>(x, task); }

void limited_gemm(const Fp8Matrix& a, const Fp8Matrix& b, float* c, int64_t ldc, const Fp8GemmOptions& o) {
  static const int isa = __builtin_cpu_supports("avx512f") ? 2 : __builtin_cpu_supports("avx2") ? 1 : 0;
  const int W = isa == 2 ? 16 : isa == 1 ? 8 : 4, MR = isa == 2 ? 6 : 4, NR = 2 * W;
  Ctx x{};
  x.m = a.rows, x.n = b.rows, x.K = a.cols;
  x.P = o.promote_every > 0 ? o.promote_every : std::max<int64_t>(x.K, 1);
  x.nchunks = (x.K + x.P - 1) / x.P;
  x.mb = (x.m + MR - 1) / MR, x.np = (x.n + NR - 1) / NR;
  x.MR = MR, x.NR = NR;
  x.mask = trunc_mask(o.accum_bits);
  x.c = c, x.ldc = ldc, x.accumulate = o.accumulate;
  if (x.m == 0 || x.n == 0) return;
  const int64_t K = x.K, nch = x.nchunks;
  std::vector<float> A(size_t(x.mb * MR * K), 0.0f), Bp(size_t(x.np * K * NR), 0.0f);
  std::vector<float> sa(size_t(x.mb * MR * nch), 0.0f), sb(size_t(x.np * nch * NR), 0.0f);
#pragma omp parallel for schedule(static) if (x.m * K > 65536)
  for (int64_t i = 0; i < x.m; ++i) {
    for (int64_t k = 0; k < K; ++k) A[size_t(i * K + k)] = e4m3_to_f32(a.codes[size_t(i * K + k)]);
    for (int64_t ci = 0; ci < nch; ++ci) sa[size_t(i * nch + ci)] = a.scale(i, ci * x.P);
  }
#pragma omp parallel for schedule(static) if (x.n * K > 65536)
  for (int64_t j = 0; j < x.n; ++j) {
    const int64_t p = j / NR, l = j % NR;
    for (int64_t k = 0; k < K; ++k) Bp[size_t((p * K + k) * NR + l)] = e4m3_to_f32(b.codes[size_t(j * K + k)]);
    for (int64_t ci = 0; ci < nch; ++ci) sb[size_t((p * nch + ci) * NR + l)] = b.scale(j, ci * x.P);
  }
  x.A = A.data(), x.Bp = Bp.data(), x.sa = sa.data(), x.sb = sb.data();
  void (*task)(const Ctx&, int64_t) = isa == 2 ? task_avx512 : isa == 1 ? task_avx2 : task_generic;
  const int64_t tasks = x.mb * x.np;
#pragma omp parallel for schedule(static) if (tasks > 1 && x.m * x.n * K > 262144)
  for (int64_t t = 0; t < tasks; ++t) task(x, t);
}

}  // namespace

void fp8_gemm(const Fp8Matrix& a, const Fp8Matrix& b, float* c, int64_t ldc, const Fp8GemmOptions& o) {
  const bool limited = o.accum_bits < 23;
  check(a, b, ldc, o, limited);
  if (limited) return limited_gemm(a, b, c, ldc, o);
  // Float32 accumulation: the scales fold into the operands exactly as the promotion would apply them.
  const int64_t m = a.rows, n = b.rows, K = a.cols;
  if (m == 0 || n == 0) return;
  std::vector<float> af(size_t(m * K)), bf(size_t(n * K));
  fp8_dequantize(a, af.data());
  fp8_dequantize(b, bf.data());
  kernels::gemm(m, n, K, 1.0f, {af.data(), K, false}, {bf.data(), K, true}, o.accumulate ? 1.0f : 0.0f, c, ldc);
}

void fp8_gemm_scalar(const Fp8Matrix& a, const Fp8Matrix& b, float* c, int64_t ldc, const Fp8GemmOptions& o) {
  check(a, b, ldc, o, true);
  const int64_t m = a.rows, n = b.rows, K = a.cols;
  const int64_t P = o.promote_every > 0 ? o.promote_every : std::max<int64_t>(K, 1);
  const uint32_t mask = trunc_mask(o.accum_bits);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      float acc = 0.0f;
      for (int64_t k0 = 0; k0 < K; k0 += P) {
        float lim = 0.0f;
        for (int64_t k = k0; k < std::min(K, k0 + P); ++k) {
          const float prod = e4m3_to_f32(a.codes[size_t(i * K + k)]) * e4m3_to_f32(b.codes[size_t(j * K + k)]);
          lim = trunc_bits(lim + prod, mask);
        }
        const float s = a.scale(i, k0) * b.scale(j, k0);
        const float t = lim * s;
        acc = acc + t;
      }
      float& out = c[i * ldc + j];
      out = o.accumulate ? out + acc : acc;
    }
}

}  // namespace dsv3::train
