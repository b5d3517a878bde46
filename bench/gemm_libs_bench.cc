// dsv3's own linear/GEMM kernels against the BLAS-like libraries Debian ships (issue #7, "which library"):
// OpenBLAS (libopenblas-dev), BLIS (libblis-dev, OpenMP flavour) and oneDNN (libdnnl-dev). None of them is a
// dependency of dsv3: bench/CMakeLists.txt builds one executable per library it finds
// (gemm_libs_bench = dsv3 only, gemm_openblas_bench, gemm_blis_bench, gemm_dnnl_bench), each also timing
// dsv3's kernels in the same process so that rows can be compared within one run. Results and the choice:
// docs/PERF.md, "Library comparison".
//
//   build-perf/bench/gemm_openblas_bench --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
//
// Shapes are the linear layers of the small and medium presets of ../shared/bench/llamacpp (y = x · Wᵀ,
// W [n, k]): decode m = 1, 2, 4 (GEMV: each call reads a different copy of W, 256 MiB+ of copies in all, so
// the weights come from memory as in a model's decode step); prefill m = 512 (dense layers, q projection)
// and m = 48 (one routed expert's share of a 512-token batch: 512 × 6 / 64). Weight types: F32 everywhere;
// BF16 where the library has a BF16 path (dsv3: BF16 weights decoded in registers, exact fp32 products, or
// with x rounded to bf16 and vdpbf16ps; oneDNN: bf16 × bf16 → f32, the activation conversion included in the
// timing). Debian's OpenBLAS 0.3.21 is built without BUILD_BFLOAT16 (no sbgemm) and BLIS 0.9 has no bf16.
// Threads: OMP_NUM_THREADS (dsv3, BLIS, oneDNN), OPENBLAS_NUM_THREADS via openblas_set_num_threads.
#include <benchmark/benchmark.h>
#include <omp.h>
#include <sys/mman.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "kernels/linear.h"
#include "kernels/matmul.h"

#if defined(DSV3_BENCH_OPENBLAS) || defined(DSV3_BENCH_BLIS)
#include <cblas.h>
#endif
#ifdef DSV3_BENCH_BLIS
#include <blis.h>
#endif
#ifdef DSV3_BENCH_DNNL
#include <oneapi/dnnl/dnnl.hpp>
#endif
#ifdef DSV3_BENCH_OPENBLAS
extern "C" {
void openblas_set_num_threads(int);
char* openblas_get_corename(void);
}
#endif

namespace {

using dsv3::DType;
using dsv3::kernels::WeightRef;

struct Shape {
  const char* name;
  int64_t n, k;
};
// small preset: hidden 1024, q_lora 384, 16 heads × (64+32), dense ffn 2048, experts 128, vocab 16384.
// medium preset: hidden 2048, q_proj 16 × (128+64), dense ffn 10944, experts 1408, vocab 102400.
constexpr Shape kShapes[] = {
    {"small.ffn_up", 2048, 1024},     {"small.q_b", 1536, 384},         {"small.expert_up", 128, 1024},
    {"medium.ffn_up", 10944, 2048},   {"medium.ffn_down", 2048, 10944}, {"medium.q_proj", 3072, 2048},
    {"medium.expert_up", 1408, 2048}, {"medium.head", 102400, 2048},
};

enum Impl : int64_t {
  kDsv3F32,        // kernels::linear, F32 weights
  kDsv3Bf16,       // kernels::linear, BF16 weights, exact fp32 products
  kDsv3Bf16Fast,   // kernels::linear, BF16 weights, bf16 activations (vdpbf16ps) for m > 16
  kDsv3Gemm,       // kernels::matmul_nt (the training GEMM), F32
  kOpenblasSgemm,  // cblas_sgemm (m = 1: cblas_sgemv)
  kBlisSgemm,      // BLIS cblas_sgemm (m = 1: cblas_sgemv)
  kDnnlF32,        // oneDNN matmul f32
  kDnnlBf16,       // oneDNN matmul bf16 × bf16 → f32 (+ f32 → bf16 conversion of x, timed)
};
const char* impl_name(int64_t i) {
  static const char* names[] = {"dsv3.linear.f32",   "dsv3.linear.bf16",  "dsv3.linear.bf16+bf16act",
                                "dsv3.gemm.f32",     "openblas.sgemm",    "blis.sgemm",
                                "onednn.matmul.f32", "onednn.matmul.bf16"};
  return names[i];
}
bool weights_bf16(int64_t i) { return i == kDsv3Bf16 || i == kDsv3Bf16Fast || i == kDnnlBf16; }

void* huge_alloc(size_t bytes) {
  const size_t al = size_t(2) << 20;
  void* p = std::aligned_alloc(al, (bytes + al - 1) / al * al);
  if (!p) std::abort();
  madvise(p, bytes, MADV_HUGEPAGE);
  return p;
}
struct Free {
  void operator()(void* p) const { std::free(p); }
};

// `copies` weight matrices (f32 or bf16 values; every value bf16-representable so that both types hold the
// same numbers).
struct Weights {
  std::vector<std::unique_ptr<void, Free>> mats;
  size_t bytes_each = 0;
  Weights(bool bf16, int64_t n, int64_t k, size_t copies) {
    bytes_each = size_t(n * k) * (bf16 ? 2 : 4);
    for (size_t c = 0; c < copies; ++c) {
      void* p = huge_alloc(bytes_each);
      const size_t cnt = size_t(n * k);
#pragma omp parallel for schedule(static)
      for (size_t i = 0; i < cnt; ++i) {
        const uint32_t h = uint32_t((i + c * 7919) * 2654435761u);
        const float v = float(int(h >> 24) - 128) * (1.0f / 4096);  // 8 significant bits: exact in bf16
        if (bf16) {
          uint32_t u;
          std::memcpy(&u, &v, 4);
          static_cast<uint16_t*>(p)[i] = uint16_t(u >> 16);
        } else {
          static_cast<float*>(p)[i] = v;
        }
      }
      mats.emplace_back(p);
    }
  }
};

std::vector<float> input(int64_t m, int64_t k) {
  std::vector<float> x(size_t(m * k));
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(int((i * 40503u >> 7) & 255) - 128) * (1.0f / 128);
  return x;
}

#ifdef DSV3_BENCH_DNNL
// One oneDNN matmul primitive y[m, n] = x[m, k] · W[n, k]ᵀ (W given as a [k, n] view with strides {1, k}).
struct DnnlMatmul {
  dnnl::engine eng{dnnl::engine::kind::cpu, 0};
  dnnl::stream strm{eng};
  dnnl::matmul prim;
  dnnl::memory::desc src_md, wei_md, dst_md;
  DnnlMatmul(int64_t m, int64_t n, int64_t k, bool bf16) {
    using dt = dnnl::memory::data_type;
    const dt t = bf16 ? dt::bf16 : dt::f32;
    src_md = dnnl::memory::desc({m, k}, t, dnnl::memory::dims{k, 1});
    wei_md = dnnl::memory::desc({k, n}, t, dnnl::memory::dims{1, k});
    dst_md = dnnl::memory::desc({m, n}, dt::f32, dnnl::memory::dims{n, 1});
    prim = dnnl::matmul(dnnl::matmul::primitive_desc(dnnl::matmul::desc(src_md, wei_md, dst_md), eng));
  }
  void run(void* x, void* w, float* y) {
    dnnl::memory src(src_md, eng, x), wei(wei_md, eng, w), dst(dst_md, eng, y);
    prim.execute(strm, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DST, dst}});
    strm.wait();
  }
};
#endif

// args: impl, shape index, m
void BM_Linear(benchmark::State& state) {
  const int64_t impl = state.range(0);
  const Shape& s = kShapes[state.range(1)];
  const int64_t m = state.range(2), n = s.n, k = s.k;
  const bool bf16 = weights_bf16(impl);
  const bool decode = m <= 4;
  const size_t each = size_t(n * k) * (bf16 ? 2 : 4);
  // Decode: enough copies to stream 256 MiB+ from memory; prefill: one copy.
  const size_t copies = decode ? std::max<size_t>(1, ((size_t(256) << 20) + each - 1) / each) : 1;
  Weights W(bf16, n, k, copies);
  auto x = input(m, k);
  std::vector<uint16_t> xb(size_t(m * k));
  std::vector<float> y(size_t(m * n));
  const int threads = omp_get_max_threads();
#ifdef DSV3_BENCH_OPENBLAS
  openblas_set_num_threads(threads);
#endif
#ifdef DSV3_BENCH_BLIS
  bli_thread_set_num_threads(threads);
#endif
#ifdef DSV3_BENCH_DNNL
  std::unique_ptr<DnnlMatmul> dm;
  if (impl == kDnnlF32 || impl == kDnnlBf16) dm = std::make_unique<DnnlMatmul>(m, n, k, impl == kDnnlBf16);
#endif
  size_t c = 0;
  for (auto _ : state) {
    void* w = W.mats[c].get();
    switch (impl) {
      case kDsv3F32:
      case kDsv3Bf16:
      case kDsv3Bf16Fast: {
        WeightRef wr;
        wr.dtype = bf16 ? DType::BF16 : DType::F32;
        wr.data = w;
        wr.n = n;
        wr.k = k;
        dsv3::kernels::linear(x.data(), m, wr, y.data(), {.bf16_activations = impl == kDsv3Bf16Fast});
        break;
      }
      case kDsv3Gemm:
        dsv3::kernels::matmul_nt(x.data(), static_cast<const float*>(w), m, n, k, y.data());
        break;
#if defined(DSV3_BENCH_OPENBLAS) || defined(DSV3_BENCH_BLIS)
      case kOpenblasSgemm:
      case kBlisSgemm:
        if (m == 1)
          cblas_sgemv(CblasRowMajor, CblasNoTrans, int(n), int(k), 1.0f, static_cast<const float*>(w), int(k), x.data(),
                      1, 0.0f, y.data(), 1);
        else
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(m), int(n), int(k), 1.0f, x.data(), int(k),
                      static_cast<const float*>(w), int(k), 0.0f, y.data(), int(n));
        break;
#endif
#ifdef DSV3_BENCH_DNNL
      case kDnnlF32:
        dm->run(x.data(), w, y.data());
        break;
      case kDnnlBf16:
        for (size_t i = 0; i < xb.size(); ++i) xb[i] = dsv3::f32_to_bf16(x[i]);
        dm->run(xb.data(), w, y.data());
        break;
#endif
      default:
        state.SkipWithError("not built into this executable");
        return;
    }
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
    c = (c + 1) % copies;
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(each));  // weight bytes read
  state.counters["GFLOP/s"] = benchmark::Counter(double(state.iterations()) * 2.0 * double(m * n * k),
                                                 benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
  state.SetLabel(std::string(impl_name(impl)) + " " + s.name + " m=" + std::to_string(m) + " " +
                 std::to_string(threads) + "t");
}

std::vector<int64_t> impls() {
  std::vector<int64_t> v{kDsv3F32, kDsv3Bf16, kDsv3Bf16Fast, kDsv3Gemm};
#ifdef DSV3_BENCH_OPENBLAS
  v.push_back(kOpenblasSgemm);
#endif
#ifdef DSV3_BENCH_BLIS
  v.push_back(kBlisSgemm);
#endif
#ifdef DSV3_BENCH_DNNL
  v.push_back(kDnnlF32);
  v.push_back(kDnnlBf16);
#endif
  return v;
}

void decode_args(benchmark::internal::Benchmark* b) {
  for (int64_t impl : impls()) {
    if (impl == kDsv3Bf16Fast || impl == kDsv3Gemm) continue;  // same as kDsv3Bf16 / not a decode kernel
    for (int64_t sh : {3, 4, 6})                               // medium ffn_up, ffn_down, expert_up
      for (int64_t m : {1, 2, 4}) b->Args({impl, sh, m});
  }
}
void prefill_args(benchmark::internal::Benchmark* b) {
  for (int64_t impl : impls()) {
    for (int64_t sh : {0, 1, 3, 5}) b->Args({impl, sh, 512});  // small ffn_up, q_b; medium ffn_up, q_proj
    b->Args({impl, 6, 48});                                    // medium expert, 48 rows
    b->Args({impl, 2, 48});                                    // small expert, 48 rows
  }
}

BENCHMARK(BM_Linear)->Name("decode")->Apply(decode_args)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Linear)->Name("prefill")->Apply(prefill_args)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
#ifdef DSV3_BENCH_OPENBLAS
  benchmark::AddCustomContext("openblas_core", openblas_get_corename());
#endif
#ifdef DSV3_BENCH_BLIS
  benchmark::AddCustomContext("blis_arch", bli_arch_string(bli_arch_query_id()));
#endif
#ifdef DSV3_BENCH_DNNL
  {
    const dnnl_version_t* v = dnnl_version();
    benchmark::AddCustomContext("onednn", std::to_string(v->major) + "." + std::to_string(v->minor) + "." +
                                              std::to_string(v->patch) + " isa " +
                                              std::to_string(int(dnnl::get_effective_cpu_isa())));
  }
#endif
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
