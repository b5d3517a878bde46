#include "kernels/matmul.h"

#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <memory>

#include "kernels/isa.h"
#include "kernels/matmul_internal.h"

namespace dsv3::kernels {

namespace {

using gemm_detail::MicroKernel;

constexpr int64_t kKc = 256;  // depth of one packed slice: an MR×KC panel of A stays in L1
constexpr int64_t kMc = 96;   // rows of one packed A block (a multiple of every MR)
constexpr int64_t kNc = 256;  // columns of B per task at most: a KC×NC packed block stays in L2

// The portable micro-kernel (also the edge-free reference for the SIMD ones): plain loops the compiler
// may vectorise for the baseline target.
void micro_scalar(int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc, float alpha, float beta,
                  int64_t mr, int64_t nr) {
  constexpr int MR = gemm_detail::kMrScalar, NR = gemm_detail::kNrScalar;
  float acc[MR][NR] = {};
  for (int64_t p = 0; p < kc; ++p) {
    for (int i = 0; i < MR; ++i) {
      const float a = ap[i];
      for (int j = 0; j < NR; ++j) acc[i][j] += a * bp[j];
    }
    ap += MR;
    bp += NR;
  }
  for (int64_t i = 0; i < mr; ++i) {
    float* ci = c + i * ldc;
    for (int64_t j = 0; j < nr; ++j) ci[j] = beta == 0.0f ? alpha * acc[i][j] : alpha * acc[i][j] + beta * ci[j];
  }
}

struct Kernel {
  MicroKernel fn;
  int64_t mr, nr;
  bool direct_a = false;  // full MR-row blocks of A are read in place (micro_avx512_direct)
};

Kernel choose_kernel() {
  switch (active_isa()) {
    case Isa::Avx512:
      return {gemm_detail::micro_avx512, gemm_detail::kMrAvx512, gemm_detail::kNrAvx512, true};
    case Isa::Avx2:
      return {gemm_detail::micro_avx2, gemm_detail::kMrAvx2, gemm_detail::kNrAvx2};
    default:
      return {micro_scalar, gemm_detail::kMrScalar, gemm_detail::kNrScalar};
  }
}

// op(A)(i, p) for i in [i0, i0 + mc), p in [p0, p0 + kc), packed as ceil(mc / mr) panels [kc][mr],
// zero-padded past mc.
void pack_a(const MatArg& a, int64_t i0, int64_t p0, int64_t mc, int64_t kc, int64_t mr, float* out) {
  for (int64_t ir = 0; ir < mc; ir += mr) {
    const int64_t rows = std::min(mr, mc - ir);
    float* panel = out + ir * kc;
    if (a.trans) {  // stored [k, m]: row p of the storage holds op(A)(·, p) contiguously
      for (int64_t p = 0; p < kc; ++p) {
        const float* src = a.data + (p0 + p) * a.ld + i0 + ir;
        float* dst = panel + p * mr;
        int64_t i = 0;
        for (; i < rows; ++i) dst[i] = src[i];
        for (; i < mr; ++i) dst[i] = 0.0f;
      }
    } else {
      for (int64_t i = 0; i < rows; ++i) {
        const float* src = a.data + (i0 + ir + i) * a.ld + p0;
        for (int64_t p = 0; p < kc; ++p) panel[p * mr + i] = src[p];
      }
      for (int64_t i = rows; i < mr; ++i)
        for (int64_t p = 0; p < kc; ++p) panel[p * mr + i] = 0.0f;
    }
  }
}

// op(B)(p, j) for p in [p0, p0 + kc), j in [j0, j0 + nc), packed as ceil(nc / nr) panels [kc][nr].
void pack_b(const MatArg& b, int64_t p0, int64_t j0, int64_t kc, int64_t nc, int64_t nr, float* out) {
  for (int64_t jr = 0; jr < nc; jr += nr) {
    const int64_t cols = std::min(nr, nc - jr);
    float* panel = out + jr * kc;
    if (!b.trans) {  // stored [k, n]
      for (int64_t p = 0; p < kc; ++p) {
        const float* src = b.data + (p0 + p) * b.ld + j0 + jr;
        float* dst = panel + p * nr;
        int64_t j = 0;
        for (; j < cols; ++j) dst[j] = src[j];
        for (; j < nr; ++j) dst[j] = 0.0f;
      }
    } else {  // stored [n, k]
      for (int64_t j = 0; j < cols; ++j) {
        const float* src = b.data + (j0 + jr + j) * b.ld + p0;
        for (int64_t p = 0; p < kc; ++p) panel[p * nr + j] = src[p];
      }
      for (int64_t j = cols; j < nr; ++j)
        for (int64_t p = 0; p < kc; ++p) panel[p * nr + j] = 0.0f;
    }
  }
}

// Grow-only, 64-byte aligned, per-thread packing buffer.
float* pack_buffer(int slot, size_t floats) {
  struct Buf {
    std::unique_ptr<float, decltype(&std::free)> p{nullptr, &std::free};
    size_t cap = 0;
  };
  thread_local Buf bufs[2];
  Buf& b = bufs[slot];
  if (b.cap < floats) {
    const size_t bytes = (floats * sizeof(float) + 63) / 64 * 64;
    b.p.reset(static_cast<float*>(std::aligned_alloc(64, bytes)));
    b.cap = floats;
  }
  return b.p.get();
}

void scale_c(int64_t m, int64_t n, float beta, float* c, int64_t ldc) {
  for (int64_t i = 0; i < m; ++i) {
    float* ci = c + i * ldc;
    if (beta == 0.0f)
      std::fill(ci, ci + n, 0.0f);
    else if (beta != 1.0f)
      for (int64_t j = 0; j < n; ++j) ci[j] *= beta;
  }
}

}  // namespace

void gemm(int64_t m, int64_t n, int64_t k, float alpha, MatArg a, MatArg b, float beta, float* c, int64_t ldc) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0 || alpha == 0.0f) {
    scale_c(m, n, beta, c, ldc);
    return;
  }
  const Kernel kern = choose_kernel();
  const int64_t mr = kern.mr, nr = kern.nr;
  // Tasks are (column tile of width nc) × (row range of height mh). Within a task every KC slice of B is
  // packed once and reused over all mh rows (in MC-row blocks of packed A), so packing B costs 1/mh of the
  // multiply. Rows are split (in whole MC blocks) only as far as needed to give every thread work; columns
  // are narrowed (down to 2·NR) when there are still too few tasks.
  const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  const bool parallel = threads > 1 && 2.0 * double(m) * double(n) * double(k) > 4e5;
  int64_t nc = std::min(kNc, (n + nr - 1) / nr * nr);
  const int64_t mblocks = (m + kMc - 1) / kMc;
  int64_t msplit = 1;
  auto ntasks = [&] { return ((n + nc - 1) / nc) * msplit; };
  if (parallel) {
    const int64_t want = 2 * threads;
    while (ntasks() < want && msplit < mblocks) ++msplit;
    while (ntasks() < want && nc > 2 * nr) nc = (nc / 2 + nr - 1) / nr * nr;
  }
  const int64_t mh = (mblocks + msplit - 1) / msplit * kMc;  // rows per task, a multiple of MC
  const int64_t tiles_n = (n + nc - 1) / nc, tasks = tiles_n * ((m + mh - 1) / mh);
  const int64_t kc_max = std::min(kKc, k);

#pragma omp parallel for schedule(dynamic, 1) if (parallel && tasks > 1)
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t r0 = (t / tiles_n) * mh, j0 = (t % tiles_n) * nc;
    const int64_t r1 = std::min(m, r0 + mh), nt = std::min(nc, n - j0);
    const int64_t nt_pad = (nt + nr - 1) / nr * nr;
    float* ap = pack_buffer(0, size_t((kMc + mr) * kc_max));
    float* bp = pack_buffer(1, size_t(nt_pad * kc_max));
    for (int64_t p0 = 0; p0 < k; p0 += kKc) {
      const int64_t kc = std::min(kKc, k - p0);
      const float bt = p0 == 0 ? beta : 1.0f;
      pack_b(b, p0, j0, kc, nt, nr, bp);
      for (int64_t i0 = r0; i0 < r1; i0 += kMc) {
        const int64_t mt = std::min(kMc, r1 - i0);
        if (kern.direct_a) {
          // Full row blocks straight from A; only a ragged last block is packed.
          const int64_t full = mt / mr * mr;
          for (int64_t ir = 0; ir < full; ir += mr) {
            const int64_t row = i0 + ir;
            const float* ablk = a.trans ? a.data + p0 * a.ld + row : a.data + row * a.ld + p0;
            for (int64_t jr = 0; jr < nt; jr += nr)
              gemm_detail::micro_avx512_direct(kc, ablk, a.ld, a.trans, bp + jr * kc, c + row * ldc + j0 + jr, ldc,
                                               alpha, bt, std::min(nr, nt - jr));
          }
          if (full < mt) {
            pack_a(a, i0 + full, p0, mt - full, kc, mr, ap);
            for (int64_t jr = 0; jr < nt; jr += nr)
              kern.fn(kc, ap, bp + jr * kc, c + (i0 + full) * ldc + j0 + jr, ldc, alpha, bt, mt - full,
                      std::min(nr, nt - jr));
          }
          continue;
        }
        pack_a(a, i0, p0, mt, kc, mr, ap);
        for (int64_t ir = 0; ir < mt; ir += mr)
          for (int64_t jr = 0; jr < nt; jr += nr)
            kern.fn(kc, ap + ir * kc, bp + jr * kc, c + (i0 + ir) * ldc + j0 + jr, ldc, alpha, bt,
                    std::min(mr, mt - ir), std::min(nr, nt - jr));
      }
    }
  }
}

void gemm_ref(int64_t m, int64_t n, int64_t k, float alpha, MatArg a, MatArg b, float beta, float* c, int64_t ldc) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double acc = 0.0;
      for (int64_t p = 0; p < k; ++p) {
        const float av = a.trans ? a.data[p * a.ld + i] : a.data[i * a.ld + p];
        const float bv = b.trans ? b.data[j * b.ld + p] : b.data[p * b.ld + j];
        acc += double(av) * double(bv);
      }
      float& cij = c[i * ldc + j];
      cij = beta == 0.0f ? float(alpha * acc) : float(alpha * acc + double(beta) * double(cij));
    }
}

}  // namespace dsv3::kernels
