// linear(): the reference, the threaded scalar path, and the choice between the SIMD kernels
// (linear_avx512.cc, linear_avx2.cc). Threading lives here; the ISA files hold single-thread kernels.
#include "kernels/linear.h"

#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <new>
#include <vector>

#include "kernels/indexer.h"
#include "kernels/internal.h"
#include "kernels/isa.h"
#include "kernels/quant.h"

namespace dsv3::kernels {

float WeightRef::at(int64_t row, int64_t col) const {
  if (quant != Quant::None) {
    const int64_t b = col / kQBlock, j = col % kQBlock;
    const auto* codes = static_cast<const uint8_t*>(data) + row * qrow_bytes(quant, k);
    const float s = f16_to_f32(qscale[row * qblocks(k) + b]);
    if (quant == Quant::Int8) return float(int8_t(codes[col])) * s;
    const uint8_t byte = codes[b * 16 + j % 16];
    return float(int((j < 16 ? byte : byte >> 4) & 15) - 8) * s;
  }
  const size_t i = size_t(row) * size_t(k) + size_t(col);
  switch (dtype) {
    case DType::F32:
      return static_cast<const float*>(data)[i];
    case DType::BF16:
      return bf16_to_f32(static_cast<const uint16_t*>(data)[i]);
    case DType::F16:
      return f16_to_f32(static_cast<const uint16_t*>(data)[i]);
    case DType::F8_E4M3: {
      const int64_t kb = (k + block_k - 1) / block_k;
      return e4m3_to_f32(static_cast<const uint8_t*>(data)[i]) * scale_inv[(row / block_n) * kb + col / block_k];
    }
    default:
      return 0.0f;
  }
}

int64_t weight_bytes(const WeightRef& w) {
  if (w.quant != Quant::None) return w.n * (qrow_bytes(w.quant, w.k) + 2 * qblocks(w.k));
  int64_t b = w.n * w.k * int64_t(dtype_size(w.dtype));
  if (w.dtype == DType::F8_E4M3 && w.scale_inv)
    b += ((w.n + w.block_n - 1) / w.block_n) * ((w.k + w.block_k - 1) / w.block_k) * 4;
  return b;
}

void weight_row(const WeightRef& w, int64_t row, float* out) {
  for (int64_t j = 0; j < w.k; ++j) out[j] = w.at(row, j);
}

void linear_ref(const float* x, int64_t m, const WeightRef& w, float* y) {
  std::vector<float> wr(size_t(w.k));
  for (int64_t o = 0; o < w.n; ++o) {
    weight_row(w, o, wr.data());
    for (int64_t i = 0; i < m; ++i) {
      const float* xi = x + i * w.k;
      float acc = 0.0f;
      for (int64_t j = 0; j < w.k; ++j) acc += xi[j] * wr[j];
      y[i * w.n + o] = acc;
    }
  }
}

namespace {

// Below these sizes one thread is faster than waking the other (measured: docs/PERF.md).
constexpr int64_t kGemvParallelBytes = 128 << 10;  // weight bytes
constexpr int64_t kGemmParallelMacs = 1 << 18;     // m * n * k
// Up to this many input rows linear() takes the GEMV kernels (measured crossover, docs/PERF.md).
constexpr int64_t kGemvMaxRowsAvx512 = 16;
constexpr int64_t kGemvMaxRowsAvx2 = 4;

// Inside a caller's parallel region the kernels run on the calling thread.
int threads_for(int64_t work, int64_t threshold) {
  return work < threshold || omp_in_parallel() ? 1 : std::max(1, omp_get_max_threads());
}

// Columns [n0, n1) of y = x·Wᵀ with the rows of W decoded one at a time into per-thread scratch, each
// applied to every input row (Isa::Scalar).
void scalar_rows(const float* x, int64_t m, const WeightRef& w, float* y, int64_t n0, int64_t n1) {
  float* wr = detail::thread_scratch(3, size_t(w.k));
  for (int64_t o = n0; o < n1; ++o) {
    weight_row(w, o, wr);
    for (int64_t i = 0; i < m; ++i) {
      const float* xi = x + i * w.k;
      float acc = 0.0f;
      for (int64_t j = 0; j < w.k; ++j) acc += xi[j] * wr[j];
      y[i * w.n + o] = acc;
    }
  }
}

void linear_scalar(const float* x, int64_t m, const WeightRef& w, float* y) {
  const int nt = threads_for(weight_bytes(w) * std::max<int64_t>(1, m / 4), kGemvParallelBytes);
  const int64_t chunk = 16;
#pragma omp parallel for schedule(static) num_threads(nt)
  for (int64_t o = 0; o < w.n; o += chunk) scalar_rows(x, m, w, y, o, std::min(w.n, o + chunk));
}

int64_t gemv_max_rows(Isa isa) { return isa == Isa::Avx2 ? kGemvMaxRowsAvx2 : kGemvMaxRowsAvx512; }

// Int8 / Int4 weights in the GEMM regime on AVX-512 VNNI: x quantized once (compact layout), then the work
// items of run_gemm below (column blocks, and row blocks when there are few column blocks).
void run_gemm_q(const float* x, int64_t m, const WeightRef& w, float* y) {
  void* buf = detail::thread_scratch(1, detail::qacts_bytes(m, w.k) / sizeof(float) + 1);
  detail::QActs xa;
  detail::prepare_qacts_compact(x, m, w.k, buf, &xa);
  const int nt = threads_for(m * w.n * w.k, kGemmParallelMacs);
  constexpr int64_t nbw = 256;
  const int64_t nb = (w.n + nbw - 1) / nbw;
  int64_t mb = 1;
  if (nt > 1 && nb < 4 * nt) mb = std::min<int64_t>((m + 23) / 24, (4 * nt + nb - 1) / nb);
  const int64_t mrows = (m + mb - 1) / mb;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
  for (int64_t it = 0; it < nb * mb; ++it) {
    const int64_t jb = it / mb, ib = it % mb;
    const int64_t m0 = ib * mrows, m1 = std::min(m, m0 + mrows);
    if (m0 < m1) detail::gemm_q_avx512(xa, m0, m1, w, y, jb * nbw, std::min(w.n, (jb + 1) * nbw));
  }
}

// Whether linear() quantizes x for Int8 / Int4 weights: always on AVX-512 VNNI, else in the GEMV regime.
bool quantizes_x(Isa isa, int64_t m) { return m <= gemv_max_rows(isa) || (isa == Isa::Avx512 && has_avx512_vnni()); }

// The GEMV regime: x prepared once by the calling thread (detail::GemvInput), then the output columns split
// into chunks taken dynamically (a thread that loses its core to another process does not hold the call up
// by a whole half).
void run_gemv(const float* x, int64_t m, const WeightRef& w, float* y, bool bf16_x) {
  static thread_local detail::GemvInput in;
  in.prepare(x, m, w, bf16_x);
  const int nt = threads_for(weight_bytes(w), kGemvParallelBytes);
  if (nt == 1) {
    in.rows(w, y, 0, w.n);
    return;
  }
  const int64_t chunk = detail::gemv_chunk(w, nt);
  const int64_t chunks = (w.n + chunk - 1) / chunk;
  const detail::GemvInput& shared = in;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
  for (int64_t c = 0; c < chunks; ++c) shared.rows(w, y, c * chunk, std::min(w.n, (c + 1) * chunk));
}

// GEMM work items: column blocks of kGemmNb (each decodes its own weight tiles), and row blocks when
// there are too few column blocks to keep every thread busy.
constexpr int64_t kGemmNb = 256;

void run_gemm(Isa isa, const float* x, int64_t m, const WeightRef& w, float* y, const uint16_t* xb16) {
  const int nt = threads_for(m * w.n * w.k, kGemmParallelMacs);
  const int64_t nb = (w.n + kGemmNb - 1) / kGemmNb;
  int64_t mb = 1;
  if (nt > 1 && nb < 4 * nt) mb = std::min<int64_t>((m + 31) / 32, (4 * nt + nb - 1) / nb);
  const int64_t mrows = (m + mb - 1) / mb;
  const int64_t items = nb * mb;
  // The AVX-512 kernels decode bf16 / fp8 lines in a permuted order; x follows once per call.
  const bool permute = isa == Isa::Avx512 && !xb16 && detail::gemm_permutes_x_avx512(w);
  float* xp = permute ? detail::thread_scratch(2, size_t(m * w.k)) : nullptr;
  const float* xa = permute ? xp : x;
#pragma omp parallel num_threads(nt)
  {
    if (permute) {
#pragma omp for schedule(static)
      for (int64_t i = 0; i < m; ++i) detail::permute_rows_avx512(w, x + i * w.k, 1, xp + i * w.k);
    }
#pragma omp for schedule(dynamic, 1)
    for (int64_t it = 0; it < items; ++it) {
      const int64_t jb = it / mb, ib = it % mb;
      const int64_t n0 = jb * kGemmNb, n1 = std::min(w.n, n0 + kGemmNb);
      const int64_t m0 = ib * mrows, m1 = std::min(m, m0 + mrows);
      if (m0 >= m1) continue;
      if (isa == Isa::Avx512)
        detail::gemm_avx512(xa, m0, m1, w, y, n0, n1, xb16);
      else
        detail::gemm_avx2(x, m0, m1, w, y, n0, n1);
    }
  }
}

}  // namespace

void linear(const float* x, int64_t m, const WeightRef& w, float* y, const LinearOptions& opt) {
  if (m <= 0 || w.n <= 0) return;
  if (w.k <= 0) {
    std::fill(y, y + m * w.n, 0.0f);
    return;
  }
  if (w.dtype == DType::F8_E4M3 && opt.fp8_input != LinearOptions::Fp8Input::Exact) {
    // x → its E4M3 round trip per row and 128-block (a copy; linear() may run inside a caller's threads).
    thread_local std::vector<float> xq;
    xq.resize(size_t(m * w.k));
    const bool ue8m0 = opt.fp8_input == LinearOptions::Fp8Input::QuantizedUe8m0;
    for (int64_t i = 0; i < m; ++i) fp8_roundtrip(x + i * w.k, w.k, ue8m0, xq.data() + i * w.k);
    LinearOptions exact = opt;
    exact.fp8_input = LinearOptions::Fp8Input::Exact;
    return linear(xq.data(), m, w, y, exact);
  }
  const Isa isa = active_isa();
  // Few rows: one pass over W with the decoded rows applied to every input row (no panel, no
  // transposes); more: the panel GEMM, whose decode cost is amortised over the rows.
  if (m <= gemv_max_rows(isa)) {
    run_gemv(x, m, w, y, opt.bf16_activations);
    return;
  }
  if (w.quant != Quant::None && quantizes_x(isa, m)) {
    run_gemm_q(x, m, w, y);
    return;
  }
  if (isa == Isa::Scalar) {
    linear_scalar(x, m, w, y);
    return;
  }
  const uint16_t* xb16 = nullptr;
  if (opt.bf16_activations && w.dtype == DType::BF16 && isa == Isa::Avx512 && has_avx512_bf16()) {
    const int64_t kp = (w.k + 1) & ~int64_t(1);
    auto* buf = reinterpret_cast<uint16_t*>(detail::thread_scratch(2, size_t(m * kp + 1) / 2 + 16));
    detail::round_bf16_avx512(x, m, w.k, buf);
    xb16 = buf;
  }
  run_gemm(isa, x, m, w, y, xb16);
}

void linear(const float* x, int64_t m, const WeightRef& w, float* y) { linear(x, m, w, y, LinearOptions{}); }

namespace detail {

void GemvInput::Free::operator()(float* p) const { std::free(p); }

void GemvInput::prepare(const float* x, int64_t m, const WeightRef& like, bool bf16_x) {
  const Isa isa = active_isa();
  x_ = x;
  m_ = m;
  auto grow = [&](size_t floats) {
    if (floats > cap_) {
      const size_t bytes = (floats * sizeof(float) + 63) & ~size_t(63);
      own_.reset(static_cast<float*>(std::aligned_alloc(64, bytes)));
      if (!own_) throw std::bad_alloc();
      buf_ = own_.get();
      cap_ = floats;
    }
    return buf_;
  };
  if (like.quant != Quant::None) {
    void* buf = grow(qacts_bytes(m, like.k) / sizeof(float) + 1);
    if (isa == Isa::Avx512 && has_avx512_vnni()) {
      prepare_qacts_avx512(x, m, like.k, like.quant, buf, &qa_);
      path_ = Path::QuantAvx512;
    } else {
      prepare_qacts_compact(x, m, like.k, buf, &qa_);
      path_ = isa == Isa::Scalar ? Path::QuantScalar : Path::QuantAvx2;
    }
  } else if (bf16_x && isa == Isa::Avx512 && like.dtype == DType::BF16 && has_avx512_bf16()) {
    const int64_t kp = (like.k + 1) & ~int64_t(1);
    auto* xb = reinterpret_cast<uint16_t*>(grow(size_t(m * kp + 1) / 2 + 16));
    round_bf16_avx512(x, m, like.k, xb);
    xb_ = xb;
    path_ = Path::Avx512Bf16x;
  } else if (isa == Isa::Avx512 && like.dtype == DType::BF16) {
    float* xp = grow(size_t(m * like.k));
    permute_rows_avx512(like, x, m, xp);
    x_ = xp;
    path_ = Path::Avx512Permuted;
  } else {
    path_ = isa == Isa::Avx512 ? Path::Avx512 : isa == Isa::Avx2 ? Path::Avx2 : Path::Scalar;
  }
}

void GemvInput::rows(const WeightRef& w, float* y, int64_t n0, int64_t n1) const {
  switch (path_) {
    case Path::Avx512Permuted:
      return gemv_permuted_avx512(x_, m_, w, y, n0, n1);
    case Path::Avx512Bf16x:
      return gemv_bf16x_avx512(xb_, m_, w, y, n0, n1);
    case Path::Avx512:
      return gemv_avx512(x_, m_, w, y, n0, n1);
    case Path::Avx2:
      return gemv_avx2(x_, m_, w, y, n0, n1);
    case Path::QuantAvx512:
      return gemv_q_avx512(qa_, m_, w, y, n0, n1);
    case Path::QuantAvx2:
      return gemv_q_avx2(qa_, m_, w, y, n0, n1);
    case Path::QuantScalar:
      return gemv_q_scalar(qa_, m_, w, y, n0, n1);
    case Path::Scalar:
      return scalar_rows(x_, m_, w, y, n0, n1);
  }
}

int64_t gemv_max_rows() { return kernels::gemv_max_rows(active_isa()); }

int64_t gemv_chunk(const WeightRef& w, int threads) {
  const int64_t align = w.quant == Quant::None && w.dtype == DType::F8_E4M3 ? std::max<int64_t>(16, w.block_n) : 16;
  const int64_t want = (w.n + 8 * threads - 1) / (8 * threads);
  return std::max<int64_t>(1, (want + align - 1) / align) * align;
}

}  // namespace detail

bool linear_quantizes_x(int64_t m, const WeightRef& w) {
  return w.quant != Quant::None && quantizes_x(active_isa(), m);
}

}  // namespace dsv3::kernels
