// kernels::linear and friends: decode GEMV in weight bytes per second (to set against stream_bench's read
// bandwidth), prefill GEMM in GFLOP/s, the thread threshold for small shapes, and — when Debian's
// OpenBLAS can be dlopen'ed — its sgemm on the same shape as a data point (no link dependency).
// Results: docs/PERF.md, "Kernels and machine limits". BM_GemvQ / BM_GemvQHot / BM_GemmQ: the int8 / int4
// block formats of `dsv3 quantize` (kernels/quant.h).
//
//   build-k/bench/linear_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//
// GEMV weights rotate through enough copies to exceed 512 MiB, so each call streams from memory as a
// model's decode step does (one weight matrix alone, 29 MB at 7168 × 2048 BF16, would sit in the 32 MiB L3).
#include <benchmark/benchmark.h>
#include <dlfcn.h>
#include <omp.h>
#include <sys/mman.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "kernels/isa.h"
#include "kernels/linear.h"
#include "kernels/ops.h"
#include "kernels/quant.h"
#include "kernels/swiglu.h"

namespace {

using dsv3::DType;
using dsv3::kernels::Isa;
using dsv3::kernels::WeightRef;

struct Buffer {
  void* p = nullptr;
  size_t bytes = 0;
  explicit Buffer(size_t b) : bytes((b + (size_t(2) << 20) - 1) & ~((size_t(2) << 20) - 1)) {
    p = std::aligned_alloc(size_t(2) << 20, bytes);
    if (!p) std::abort();
    madvise(p, bytes, MADV_HUGEPAGE);
  }
  Buffer(Buffer&& o) noexcept : p(o.p), bytes(o.bytes) { o.p = nullptr; }
  ~Buffer() { std::free(p); }
};

// `copies` weight matrices of one shape and dtype, random values (fp8: with random 128×128 scales).
struct WeightSet {
  std::vector<Buffer> data;
  std::vector<float> scales;
  std::vector<WeightRef> refs;
  size_t bytes_each = 0;

  WeightSet(DType dt, int64_t n, int64_t k, size_t min_total_bytes) {
    bytes_each = size_t(n * k) * dsv3::dtype_size(dt);
    const size_t copies = std::max<size_t>(1, (min_total_bytes + bytes_each - 1) / bytes_each);
    scales.assign(size_t(((n + 127) / 128) * ((k + 127) / 128)), 1.0f / 64);
    for (size_t c = 0; c < copies; ++c) {
      data.emplace_back(bytes_each);
      auto* b = static_cast<uint8_t*>(data.back().p);
      std::mt19937 g(uint32_t(c + 1));
      // Values do not matter for speed; keep them finite (fp8 0x7F/0xFF are NaN) and varied.
#pragma omp parallel for schedule(static)
      for (size_t i = 0; i < bytes_each; ++i) b[i] = uint8_t((i * 2654435761u >> 13) & 0x3f);
      WeightRef w;
      w.dtype = dt;
      w.data = b;
      w.n = n;
      w.k = k;
      if (dt == DType::F8_E4M3) w.scale_inv = scales.data();
      refs.push_back(w);
    }
  }
};

std::vector<float> random_vec(size_t n) {
  std::mt19937 g(7);
  std::uniform_real_distribution<float> d(-1, 1);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

// args: dtype, n, k, m, isa
void BM_Gemv(benchmark::State& state) {
  const auto dt = DType(state.range(0));
  const int64_t n = state.range(1), k = state.range(2), m = state.range(3);
  const Isa isa = dsv3::kernels::set_isa(Isa(state.range(4)));
  static std::string last_key;
  static WeightSet* ws = nullptr;  // one set alive at a time (they are 512 MiB+)
  const std::string key = std::to_string(int(dt)) + "/" + std::to_string(n) + "/" + std::to_string(k);
  if (key != last_key) {
    delete ws;
    ws = new WeightSet(dt, n, k, size_t(512) << 20);
    last_key = key;
  }
  const auto x = random_vec(size_t(m * k));
  std::vector<float> y(size_t(m * n));
  size_t c = 0;
  for (auto _ : state) {
    dsv3::kernels::linear(x.data(), m, ws->refs[c], y.data());
    benchmark::DoNotOptimize(y.data());
    c = (c + 1) % ws->refs.size();
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(ws->bytes_each));
  state.SetLabel(std::string(dsv3::dtype_name(dt)) + " " + std::string(dsv3::kernels::isa_name(isa)));
  dsv3::kernels::set_isa(dsv3::kernels::best_isa());
}

void gemv_args(benchmark::internal::Benchmark* b) {
  const int best = int(dsv3::kernels::best_isa());
  for (auto [n, k] : {std::pair<int64_t, int64_t>{7168, 2048}, {2048, 7168}})
    for (DType dt : {DType::BF16, DType::F8_E4M3, DType::F32, DType::F16})
      for (int64_t m : {1, 4}) {
        if (m == 4 && dt == DType::F16) continue;
        b->Args({int64_t(dt), n, k, m, best});
      }
  if (best >= int(Isa::Avx2)) b->Args({int64_t(DType::BF16), 7168, 2048, 1, int(Isa::Avx2)});
}

// args: dtype, m, n, k, bf16 activations, isa
void BM_Gemm(benchmark::State& state) {
  const auto dt = DType(state.range(0));
  const int64_t m = state.range(1), n = state.range(2), k = state.range(3);
  const bool fast = state.range(4) != 0;
  const Isa isa = dsv3::kernels::set_isa(Isa(state.range(5)));
  WeightSet ws(dt, n, k, 0);
  const auto x = random_vec(size_t(m * k));
  std::vector<float> y(size_t(m * n));
  for (auto _ : state) {
    dsv3::kernels::linear(x.data(), m, ws.refs[0], y.data(), {.bf16_activations = fast});
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(double(state.iterations()) * 2.0 * double(m * n * k),
                                                 benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
  state.SetLabel(std::string(dsv3::dtype_name(dt)) + " " + std::string(dsv3::kernels::isa_name(isa)) +
                 (fast ? " bf16-activations" : ""));
  dsv3::kernels::set_isa(dsv3::kernels::best_isa());
}

void gemm_args(benchmark::internal::Benchmark* b) {
  const int best = int(dsv3::kernels::best_isa());
  for (DType dt : {DType::F32, DType::BF16, DType::F8_E4M3}) b->Args({int64_t(dt), 512, 2048, 2048, 0, best});
  b->Args({int64_t(DType::BF16), 512, 2048, 2048, 1, best});
  b->Args({int64_t(DType::BF16), 64, 2048, 2048, 0, best});  // one MoE expert's share of a 512-token batch
  // A medium-preset expert's gate projection at pp512 (512 × 6 / 64 = 48 rows): exact, and bf16 activations
  // (the dot-product form without a panel, linear_avx512.cc).
  b->Args({int64_t(DType::BF16), 48, 1408, 2048, 0, best});
  b->Args({int64_t(DType::BF16), 48, 1408, 2048, 1, best});
  for (int64_t m : {4, 8, 16, 17, 24, 32})
    for (DType dt : {DType::BF16, DType::F8_E4M3}) b->Args({int64_t(dt), m, 2048, 2048, 0, best});
  if (best >= int(Isa::Avx2)) b->Args({int64_t(DType::F32), 512, 2048, 2048, 0, int(Isa::Avx2)});
}

// ---- Int8 / Int4 block-quantized weights (kernels/quant.h). Codes random, scales 2⁻⁸ (values do not matter
// for speed). Bytes processed = codes + f16 scales, what a pass over the weights reads.
using dsv3::kernels::Quant;

struct QWeightSet {
  std::vector<Buffer> data;
  std::vector<std::vector<uint16_t>> scales;
  std::vector<WeightRef> refs;
  size_t bytes_each = 0;

  QWeightSet(Quant q, int64_t n, int64_t k, size_t min_total_bytes) {
    const int64_t rb = dsv3::kernels::qrow_bytes(q, k), kb = dsv3::kernels::qblocks(k);
    const size_t codes = size_t(n * rb);
    bytes_each = codes + size_t(n * kb) * 2;
    const size_t copies = std::max<size_t>(1, (min_total_bytes + bytes_each - 1) / bytes_each);
    for (size_t c = 0; c < copies; ++c) {
      data.emplace_back(codes);
      auto* b = static_cast<uint8_t*>(data.back().p);
#pragma omp parallel for schedule(static)
      for (size_t i = 0; i < codes; ++i) b[i] = uint8_t((i * 2654435761u >> 13) & 0xff);
      scales.emplace_back(size_t(n * kb), dsv3::f32_to_f16(1.0f / 256));
      WeightRef w;
      w.dtype = q == Quant::Int8 ? DType::I8 : DType::U8;
      w.quant = q;
      w.data = b;
      w.qscale = scales.back().data();
      w.n = n;
      w.k = k;
      refs.push_back(w);
    }
  }
};

const char* quant_name(Quant q) { return q == Quant::Int8 ? "int8" : "int4"; }

// args: quant, n, k, m, isa. Streams from memory (512 MiB of copies), as BM_Gemv.
void BM_GemvQ(benchmark::State& state) {
  const auto q = Quant(state.range(0));
  const int64_t n = state.range(1), k = state.range(2), m = state.range(3);
  const Isa isa = dsv3::kernels::set_isa(Isa(state.range(4)));
  static std::string last_key;
  static QWeightSet* ws = nullptr;
  const std::string key = std::to_string(int(q)) + "/" + std::to_string(n) + "/" + std::to_string(k);
  if (key != last_key) {
    delete ws;
    ws = new QWeightSet(q, n, k, size_t(512) << 20);
    last_key = key;
  }
  const auto x = random_vec(size_t(m * k));
  std::vector<float> y(size_t(m * n));
  size_t c = 0;
  for (auto _ : state) {
    dsv3::kernels::linear(x.data(), m, ws->refs[c], y.data());
    benchmark::DoNotOptimize(y.data());
    c = (c + 1) % ws->refs.size();
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(ws->bytes_each));
  state.counters["Gweights/s"] = benchmark::Counter(double(state.iterations()) * double(n * k),
                                                    benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
  state.SetLabel(std::string(quant_name(q)) + " " + std::string(dsv3::kernels::isa_name(isa)) +
                 (isa == Isa::Avx512 && !dsv3::kernels::has_avx512_vnni() ? " (no vnni: avx2 gemv)" : ""));
  dsv3::kernels::set_isa(dsv3::kernels::best_isa());
}

void gemvq_args(benchmark::internal::Benchmark* b) {
  const int best = int(dsv3::kernels::best_isa());
  for (auto [n, k] : {std::pair<int64_t, int64_t>{7168, 2048}, {2048, 7168}})
    for (Quant q : {Quant::Int8, Quant::Int4})
      for (int64_t m : {1, 4}) b->Args({int64_t(q), n, k, m, best});
  if (best >= int(Isa::Avx2))
    for (Quant q : {Quant::Int8, Quant::Int4}) b->Args({int64_t(q), 7168, 2048, 1, int(Isa::Avx2)});
}

// The compute side with weights in L2 (one thread, 128 × 2048). args: quant, m.
void BM_GemvQHot(benchmark::State& state) {
  const auto q = Quant(state.range(0));
  const int64_t m = state.range(1), n = 128, k = 2048;
  QWeightSet ws(q, n, k, 0);
  const auto x = random_vec(size_t(m * k));
  std::vector<float> y(size_t(m * n));
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  for (auto _ : state) {
    dsv3::kernels::linear(x.data(), m, ws.refs[0], y.data());
    benchmark::DoNotOptimize(y.data());
  }
  omp_set_num_threads(saved);
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(ws.bytes_each));
  state.SetItemsProcessed(int64_t(state.iterations()) * n * k);
  state.SetLabel(quant_name(q));
}

// Prefill: the GEMM regime (weights decoded per tile into the fp32 panel, x exact). args: quant, m, n, k.
void BM_GemmQ(benchmark::State& state) {
  const auto q = Quant(state.range(0));
  const int64_t m = state.range(1), n = state.range(2), k = state.range(3);
  QWeightSet ws(q, n, k, 0);
  const auto x = random_vec(size_t(m * k));
  std::vector<float> y(size_t(m * n));
  for (auto _ : state) {
    dsv3::kernels::linear(x.data(), m, ws.refs[0], y.data());
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(double(state.iterations()) * 2.0 * double(m * n * k),
                                                 benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
  state.SetLabel(quant_name(q));
}

// Small GEMV shapes, 1 vs 2 threads: where the parallel threshold (linear.cc) should sit.
void BM_GemvThreads(benchmark::State& state) {
  const int64_t n = state.range(0), k = state.range(1);
  const int threads = int(state.range(2));
  WeightSet ws(DType::BF16, n, k, 0);
  const auto x = random_vec(size_t(k));
  std::vector<float> y(static_cast<size_t>(n));
  const int saved = omp_get_max_threads();
  omp_set_num_threads(threads);
  for (auto _ : state) {
    dsv3::kernels::linear(x.data(), 1, ws.refs[0], y.data());
    benchmark::DoNotOptimize(y.data());
  }
  omp_set_num_threads(saved);
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(ws.bytes_each));
}

// GEMV on weights that stay in L2 (one thread): the compute side of the decode loop (decode + FMA) with
// memory out of the way. args: dtype, m.
void BM_GemvHot(benchmark::State& state) {
  const auto dt = DType(state.range(0));
  const int64_t m = state.range(1), n = 128, k = 2048;
  WeightSet ws(dt, n, k, 0);
  const auto x = random_vec(size_t(m * k));
  std::vector<float> y(size_t(m * n));
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  for (auto _ : state) {
    dsv3::kernels::linear(x.data(), m, ws.refs[0], y.data());
    benchmark::DoNotOptimize(y.data());
  }
  omp_set_num_threads(saved);
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(ws.bytes_each));
  state.SetItemsProcessed(int64_t(state.iterations()) * n * k);
  state.SetLabel(std::string(dsv3::dtype_name(dt)));
}

// OpenBLAS sgemm through dlopen (Debian: libopenblas-dev / libopenblas0). Skips when absent.
using SgemmFn = void (*)(int, int, int, int, int, int, float, const float*, int, const float*, int, float, float*, int);
void BM_OpenblasSgemm(benchmark::State& state) {
  static void* lib = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    state.SkipWithError("libopenblas.so.0 not found");
    return;
  }
  auto sgemm = reinterpret_cast<SgemmFn>(dlsym(lib, "cblas_sgemm"));
  auto set_threads = reinterpret_cast<void (*)(int)>(dlsym(lib, "openblas_set_num_threads"));
  if (!sgemm) {
    state.SkipWithError("no cblas_sgemm");
    return;
  }
  if (set_threads) set_threads(int(state.range(3)));
  const int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  const auto x = random_vec(size_t(m * k)), w = random_vec(size_t(n * k));
  std::vector<float> y(size_t(m * n));
  constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112;
  for (auto _ : state) {  // y = x · wᵀ
    sgemm(kRowMajor, kNoTrans, kTrans, int(m), int(n), int(k), 1.0f, x.data(), int(k), w.data(), int(k), 0.0f, y.data(),
          int(n));
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(double(state.iterations()) * 2.0 * double(m * n * k),
                                                 benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
}

// Element-wise / row-wise ops at decode and prefill sizes.
void BM_LatentAttention(benchmark::State& state) {
  const int64_t h = state.range(0), t = state.range(1), c = 512, r = 64;
  const auto q = random_vec(size_t(h * (c + r)));
  const auto kv = random_vec(size_t(t * (c + r)));
  std::vector<float> o(size_t(h * c)), scratch(static_cast<size_t>(t));
  const Isa isa = dsv3::kernels::set_isa(Isa(state.range(2)));
  for (auto _ : state) {
    dsv3::kernels::latent_attention(q.data(), h, kv.data(), t, c + r, c, r, 0.07f, o.data(), scratch.data());
    benchmark::DoNotOptimize(o.data());
  }
  dsv3::kernels::set_isa(dsv3::kernels::best_isa());
  state.SetBytesProcessed(int64_t(state.iterations()) * t * (c + r) * 4);
  state.counters["GFLOP/s"] = benchmark::Counter(double(state.iterations()) * 2.0 * double(h * t * (2 * c + r)),
                                                 benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
  state.SetLabel(std::string(dsv3::kernels::isa_name(isa)));
}

void BM_Softmax(benchmark::State& state) {
  auto x = random_vec(size_t(state.range(0)));
  const Isa isa = dsv3::kernels::set_isa(Isa(state.range(1)));
  for (auto _ : state) {
    dsv3::kernels::softmax(x.data(), int64_t(x.size()));
    benchmark::DoNotOptimize(x.data());
  }
  dsv3::kernels::set_isa(dsv3::kernels::best_isa());
  state.SetItemsProcessed(int64_t(state.iterations()) * state.range(0));
  state.SetLabel(std::string(dsv3::kernels::isa_name(isa)));
}

void BM_Rmsnorm(benchmark::State& state) {
  const int64_t n = 7168;
  const auto x = random_vec(static_cast<size_t>(n)), w = random_vec(static_cast<size_t>(n));
  std::vector<float> y(static_cast<size_t>(n));
  const Isa isa = dsv3::kernels::set_isa(Isa(state.range(0)));
  for (auto _ : state) {
    dsv3::kernels::rmsnorm(x.data(), w.data(), 1, n, 1e-6f, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  dsv3::kernels::set_isa(dsv3::kernels::best_isa());
  state.SetItemsProcessed(int64_t(state.iterations()) * n);
  state.SetLabel(std::string(dsv3::kernels::isa_name(isa)));
}

void BM_SiluMul(benchmark::State& state) {
  const int64_t n = 18432;
  const auto g = random_vec(static_cast<size_t>(n)), u = random_vec(static_cast<size_t>(n));
  std::vector<float> y(static_cast<size_t>(n));
  const Isa isa = dsv3::kernels::set_isa(Isa(state.range(0)));
  for (auto _ : state) {
    dsv3::kernels::silu_mul(g.data(), u.data(), n, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  dsv3::kernels::set_isa(dsv3::kernels::best_isa());
  state.SetItemsProcessed(int64_t(state.iterations()) * n);
  state.SetLabel(std::string(dsv3::kernels::isa_name(isa)));
}

void isa_args(benchmark::internal::Benchmark* b) {
  for (int i = 0; i <= int(dsv3::kernels::best_isa()); ++i) b->Arg(i);
}

// One decode step's expert FFNs at the medium preset's shapes (hidden 2048, expert width 1408): 8 experts
// (6 routed + the 2 shared, m = 1 each), weights rotating through 512 MiB+ of copies so they stream from
// memory. args: format (0 BF16, 1 int8), fused (1: kernels::swiglu_experts, one parallel region; 0: linear()
// per projection and silu_mul, 24 parallel regions). Bytes = the 24 weight matrices.
void BM_SwigluExperts(benchmark::State& state) {
  const bool int8 = state.range(0) == 1, fused = state.range(1) == 1;
  const int64_t d = 2048, inter = 1408, ne = 8;
  static std::unique_ptr<WeightSet> up_f, down_f;
  static std::unique_ptr<QWeightSet> up_q, down_q;
  std::vector<WeightRef>* up = nullptr;
  std::vector<WeightRef>* down = nullptr;
  size_t bytes = 0;
  if (int8) {
    if (!up_q) {
      up_f.reset(), down_f.reset();
      up_q = std::make_unique<QWeightSet>(Quant::Int8, inter, d, size_t(512) << 20);
      down_q = std::make_unique<QWeightSet>(Quant::Int8, d, inter, size_t(256) << 20);
    }
    up = &up_q->refs, down = &down_q->refs, bytes = 2 * up_q->bytes_each + down_q->bytes_each;
  } else {
    if (!up_f) {
      up_q.reset(), down_q.reset();
      up_f = std::make_unique<WeightSet>(DType::BF16, inter, d, size_t(512) << 20);
      down_f = std::make_unique<WeightSet>(DType::BF16, d, inter, size_t(256) << 20);
    }
    up = &up_f->refs, down = &down_f->refs, bytes = 2 * up_f->bytes_each + down_f->bytes_each;
  }
  const auto x = random_vec(size_t(d));
  const auto gates = random_vec(size_t(ne));
  const int64_t row = 0;
  std::vector<float> out(static_cast<size_t>(d)), g(static_cast<size_t>(inter)), u(static_cast<size_t>(inter)),
      y(static_cast<size_t>(d));
  std::vector<dsv3::kernels::SwigluExpert> experts(static_cast<size_t>(ne));
  dsv3::kernels::SwigluScratch scratch;
  size_t cu = 0, cd = 0;
  for (auto _ : state) {
    for (auto& e : experts) {
      e = {.w1 = (*up)[cu],
           .w3 = (*up)[(cu + 1) % up->size()],
           .w2 = (*down)[cd],
           .x = x.data(),
           .m = 1,
           .rows = &row,
           .gates = &gates[size_t(&e - experts.data())]};
      cu = (cu + 2) % up->size();
      cd = (cd + 1) % down->size();
    }
    std::fill(out.begin(), out.end(), 0.0f);
    if (fused) {
      dsv3::kernels::swiglu_experts(experts, d, out.data(), scratch);
    } else {
      for (const auto& e : experts) {
        dsv3::kernels::linear(x.data(), 1, e.w1, g.data());
        dsv3::kernels::linear(x.data(), 1, e.w3, u.data());
        dsv3::kernels::silu_mul(g.data(), u.data(), inter, g.data());
        dsv3::kernels::linear(g.data(), 1, e.w2, y.data());
        for (int64_t j = 0; j < d; ++j) out[size_t(j)] += *e.gates * y[size_t(j)];
      }
    }
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(ne) * int64_t(bytes));
  state.SetLabel(std::string(int8 ? "int8" : "BF16") + (fused ? " fused" : " per-projection linear()"));
}

BENCHMARK(BM_Gemv)->Apply(gemv_args)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Gemm)->Apply(gemm_args)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_GemvHot)
    ->ArgsProduct({{int64_t(DType::F32), int64_t(DType::BF16), int64_t(DType::F16), int64_t(DType::F8_E4M3)}, {1, 4}})
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_GemvQ)->Apply(gemvq_args)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_GemvQHot)
    ->ArgsProduct({{int64_t(Quant::Int8), int64_t(Quant::Int4)}, {1, 4}})
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_GemmQ)
    ->ArgsProduct({{int64_t(Quant::Int8), int64_t(Quant::Int4)}, {17, 64, 512}, {2048}, {2048}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_OpenblasSgemm)->Args({512, 2048, 2048, 2})->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_GemvThreads)
    ->ArgsProduct({{64, 256, 1024}, {256, 1024}, {1, 2}})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_LatentAttention)
    ->ArgsProduct({{16, 128}, {512, 4096}, {1, 2}})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Softmax)->ArgsProduct({{1000, 102400}, {0, 1, 2}})->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Rmsnorm)->Apply(isa_args)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_SiluMul)->Apply(isa_args)->UseRealTime()->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK(BM_SwigluExperts)->ArgsProduct({{0, 1}, {0, 1}})->UseRealTime()->Unit(benchmark::kMicrosecond);

BENCHMARK_MAIN();
