// Machine limits for the kernels (issue #7 item 1): memory read bandwidth and STREAM triad over both
// cores, on arrays far larger than the last-level cache. Results and method: docs/PERF.md, "Kernels and
// machine limits".
//
//   build-k/bench/stream_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//
// Read: each thread sums its contiguous half of a 1 GiB array with 8 independent AVX-512 (or AVX2)
// accumulators; ReadStreams walks R parts of that half side by side with software prefetch (a GEMV's
// pattern), which is the bandwidth the decode roofline uses (bench/vs_llamacpp.sh). Triad a[i] = b[i] + s·c[i] over 3 ×
// 512 MiB (STREAM's convention: 3 × 4 bytes per element; the write-allocate read of a is not counted), with ordinary
// and with non-temporal stores. Arrays are 2 MiB aligned and madvise(MADV_HUGEPAGE)'d unless the name says 4k, and
// first touched by the thread that later reads them.
#include <benchmark/benchmark.h>
#include <immintrin.h>
#include <omp.h>
#include <sys/mman.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace {

constexpr size_t kReadBytes = size_t(1) << 30;
constexpr size_t kTriadBytes = size_t(512) << 20;

float* alloc_array(size_t bytes, bool huge) {
  void* p = std::aligned_alloc(size_t(2) << 20, bytes);
  if (!p) std::abort();
  madvise(p, bytes, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
  auto* f = static_cast<float*>(p);
  const size_t n = bytes / sizeof(float);
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; ++i) f[i] = float(i & 1023) * 1e-3f;
  return f;
}

struct Arrays {
  float* read = alloc_array(kReadBytes, true);
  float* read4k = nullptr;
  float *a = alloc_array(kTriadBytes, true), *b = alloc_array(kTriadBytes, true), *c = alloc_array(kTriadBytes, true);
  float* read_4k() {
    if (!read4k) read4k = alloc_array(kReadBytes, false);
    return read4k;
  }
};
Arrays& arrays() {
  static Arrays a;
  return a;
}

__attribute__((target("avx512f"))) float sum_avx512(const float* p, size_t n) {
  __m512 s[8];
  for (auto& v : s) v = _mm512_setzero_ps();
  for (size_t i = 0; i + 128 <= n; i += 128)
#pragma GCC unroll 8
    for (int u = 0; u < 8; ++u) s[u] = _mm512_add_ps(s[u], _mm512_load_ps(p + i + 16 * u));
  for (int u = 1; u < 8; ++u) s[0] = _mm512_add_ps(s[0], s[u]);
  return _mm512_reduce_add_ps(s[0]);
}

__attribute__((target("avx2"))) float sum_avx2(const float* p, size_t n) {
  __m256 s[8];
  for (auto& v : s) v = _mm256_setzero_ps();
  for (size_t i = 0; i + 64 <= n; i += 64)
#pragma GCC unroll 8
    for (int u = 0; u < 8; ++u) s[u] = _mm256_add_ps(s[u], _mm256_load_ps(p + i + 8 * u));
  for (int u = 1; u < 8; ++u) s[0] = _mm256_add_ps(s[0], s[u]);
  alignas(32) float t[8];
  _mm256_store_ps(t, s[0]);
  return t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
}

// Rows of the same thread's share, as the kernels split work: thread t reads [t·n/T, (t+1)·n/T).
template <bool kAvx512>
void read_bw(benchmark::State& state, bool huge) {
  const int threads = int(state.range(0));
  const float* p = huge ? arrays().read : arrays().read_4k();
  const size_t n = kReadBytes / sizeof(float);
  for (auto _ : state) {
    float total = 0;
#pragma omp parallel num_threads(threads) reduction(+ : total)
    {
      const size_t t = size_t(omp_get_thread_num()), T = size_t(omp_get_num_threads());
      const size_t i0 = n * t / T / 128 * 128, i1 = n * (t + 1) / T / 128 * 128;
      total += kAvx512 ? sum_avx512(p + i0, i1 - i0) : sum_avx2(p + i0, i1 - i0);
    }
    benchmark::DoNotOptimize(total);
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(kReadBytes));
}

// R streams per thread, as a GEMV reads R weight rows at once: the thread's share is cut into R equal
// parts walked side by side, one 64-byte line of each per step, with a software prefetch `dist` bytes
// ahead in every stream. Several independent streams keep more DRAM pages and prefetchers busy than one
// does, which is how llama.cpp's and dsv3's decode kernels exceed the single-stream figure.
template <int R>
__attribute__((target("avx512f"))) float sum_streams_avx512(const float* p, size_t n, size_t dist) {
  const size_t len = n / R / 16 * 16;
  __m512 s[R];
  for (auto& v : s) v = _mm512_setzero_ps();
  for (size_t i = 0; i < len; i += 16) {
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const float* q = p + size_t(r) * len + i;
      _mm_prefetch(reinterpret_cast<const char*>(q) + dist, _MM_HINT_T0);
      s[r] = _mm512_add_ps(s[r], _mm512_load_ps(q));
    }
  }
  for (int r = 1; r < R; ++r) s[0] = _mm512_add_ps(s[0], s[r]);
  return _mm512_reduce_add_ps(s[0]);
}

// args: threads, streams per thread, prefetch distance in bytes (0: none)
void BM_ReadStreams(benchmark::State& state) {
  const int threads = int(state.range(0)), R = int(state.range(1));
  const size_t dist = size_t(state.range(2));
  const float* p = arrays().read;
  const size_t n = kReadBytes / sizeof(float);
  for (auto _ : state) {
    float total = 0;
#pragma omp parallel num_threads(threads) reduction(+ : total)
    {
      const size_t t = size_t(omp_get_thread_num()), T = size_t(omp_get_num_threads());
      const size_t i0 = n * t / T / 256 * 256, i1 = n * (t + 1) / T / 256 * 256;
      switch (R) {
        case 1:
          total += sum_streams_avx512<1>(p + i0, i1 - i0, dist);
          break;
        case 4:
          total += sum_streams_avx512<4>(p + i0, i1 - i0, dist);
          break;
        case 8:
          total += sum_streams_avx512<8>(p + i0, i1 - i0, dist);
          break;
        default:
          total += sum_streams_avx512<16>(p + i0, i1 - i0, dist);
          break;
      }
    }
    benchmark::DoNotOptimize(total);
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(kReadBytes));
}

void BM_ReadAvx512(benchmark::State& s) { read_bw<true>(s, true); }
void BM_ReadAvx2(benchmark::State& s) { read_bw<false>(s, true); }
void BM_ReadAvx512_4k(benchmark::State& s) { read_bw<true>(s, false); }

template <bool kStream>
__attribute__((target("avx512f"))) void triad_part(float* a, const float* b, const float* c, float s, size_t n) {
  const __m512 sv = _mm512_set1_ps(s);
  for (size_t i = 0; i < n; i += 16) {
    const __m512 v = _mm512_fmadd_ps(sv, _mm512_load_ps(c + i), _mm512_load_ps(b + i));
    if constexpr (kStream)
      _mm512_stream_ps(a + i, v);
    else
      _mm512_store_ps(a + i, v);
  }
}

template <bool kStream>
void BM_Triad(benchmark::State& state) {
  const int threads = int(state.range(0));
  Arrays& A = arrays();
  const size_t n = kTriadBytes / sizeof(float);
  for (auto _ : state) {
#pragma omp parallel num_threads(threads)
    {
      const size_t t = size_t(omp_get_thread_num()), T = size_t(omp_get_num_threads());
      const size_t i0 = n * t / T / 16 * 16, i1 = n * (t + 1) / T / 16 * 16;
      triad_part<kStream>(A.a + i0, A.b + i0, A.c + i0, 0.5f, i1 - i0);
    }
    if (kStream) _mm_sfence();
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(3 * kTriadBytes));
}

// Peak arithmetic: 24 independent accumulators (more than FMA latency × ports), registers only.
// fp32 counts 2 flops per lane per vfmadd231ps; bf16 counts 2 flops per bf16 product of vdpbf16ps (32 per
// instruction).
template <bool kBf16>
__attribute__((target("avx512f,avx512bf16"), noinline)) float peak_loop(int64_t iters) {
  const __m512 a = _mm512_set1_ps(0.999f), b = _mm512_set1_ps(1e-4f);
  const __m512bh ab = _mm512_cvtne2ps_pbh(a, a), bb = _mm512_cvtne2ps_pbh(b, b);
#define DSV3_ACC(i) __m512 c##i = _mm512_set1_ps(float(i) * 1e-3f);
#define DSV3_STEP(i) c##i = kBf16 ? _mm512_dpbf16_ps(c##i, ab, bb) : _mm512_fmadd_ps(c##i, a, b);
// clang-format does not settle on one layout for this macro.
// clang-format off
#define DSV3_X(F) \
  F(0) F(1) F(2) F(3) F(4) F(5) F(6) F(7) F(8) F(9) F(10) F(11) \
  F(12) F(13) F(14) F(15) F(16) F(17) F(18) F(19) F(20) F(21) F(22) F(23)
  // clang-format on
  DSV3_X(DSV3_ACC)
  for (int64_t it = 0; it < iters; ++it) {
    DSV3_X(DSV3_STEP)
  }
#define DSV3_SUM(i) s = _mm512_add_ps(s, c##i);
  __m512 s = _mm512_setzero_ps();
  DSV3_X(DSV3_SUM)
#undef DSV3_ACC
#undef DSV3_STEP
#undef DSV3_X
#undef DSV3_SUM
  return _mm512_reduce_add_ps(s);
}

template <bool kBf16>
void BM_Peak(benchmark::State& state) {
  if (kBf16 && !__builtin_cpu_supports("avx512bf16")) {
    state.SkipWithError("no AVX-512 BF16");
    return;
  }
  const int threads = int(state.range(0));
  constexpr int64_t kIters = 1 << 20;
  for (auto _ : state) {
    float total = 0;
#pragma omp parallel num_threads(threads) reduction(+ : total)
    total += peak_loop<kBf16>(kIters);
    benchmark::DoNotOptimize(total);
  }
  const double flops_per_iter = 24.0 * (kBf16 ? 64 : 32);
  state.counters["GFLOP/s"] = benchmark::Counter(double(state.iterations()) * threads * kIters * flops_per_iter,
                                                 benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
}

BENCHMARK_TEMPLATE(BM_Peak, false)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_Peak, true)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ReadAvx512)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ReadStreams)
    ->ArgsProduct({{1, 2}, {1, 4, 8, 16}, {0, 512, 2048}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ReadAvx2)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ReadAvx512_4k)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_Triad, false)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_Triad, true)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
