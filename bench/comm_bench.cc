// The communicator's cost between ranks on this machine (shared memory between processes; a network on a
// cluster): all-to-all at the dispatch sizes of expert parallelism and all-reduce at gradient-bucket sizes.
// Run under mpirun (every rank runs the same fixed iterations; the time of an iteration is the slowest
// rank's, all-reduced with Max, so the figure is what a collective step costs the job):
//   mpirun --oversubscribe --allow-run-as-root -np 2 -x OMP_NUM_THREADS=1 build/bench/comm_bench
// Dispatch sizes: per rank `tokens` rows of hidden floats × top_k slots, spread evenly over the ranks (the
// uniform-routing case), for the small (hidden 1024, top-6) and medium (hidden 2048, top-6) presets of
// ../shared/bench/llamacpp/make_dsv3_model.py. Only rank 0 prints.
#include <benchmark/benchmark.h>

#include <chrono>
#include <vector>

#include "dist/comm.h"
#include "dist/world.h"

namespace {

using dsv3::dist::Comm;
using dsv3::dist::DType;
using dsv3::dist::ReduceOp;

// Seconds of the slowest rank for one call of f (after a barrier, so ranks start together).
template <class F>
double timed(Comm& w, F&& f) {
  w.barrier();
  const auto t0 = std::chrono::steady_clock::now();
  f();
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return w.allreduce_one<double>(s, ReduceOp::Max);
}

// One dispatch exchange per iteration: per rank `tokens` rows of `hidden` floats × top_k slots, spread evenly
// over the ranks. nonblocking: posted with ialltoallv and waited for at once (EpExperts' form: the cost of
// the non-blocking path itself, nothing overlapped).
void dispatch(benchmark::State& st, bool nonblocking) {
  Comm& w = dsv3::dist::world();
  const int64_t hidden = st.range(0), top_k = st.range(1), tokens = st.range(2), P = w.size();
  const int64_t slots = tokens * top_k, floats = slots * hidden;
  std::vector<int64_t> counts(static_cast<size_t>(P));
  for (int64_t r = 0; r < P; ++r) counts[size_t(r)] = (slots * (r + 1) / P - slots * r / P) * hidden;
  const auto displs = dsv3::dist::displacements(counts);
  std::vector<float> send(static_cast<size_t>(floats), 1.0f), recv(static_cast<size_t>(floats));
  for (auto _ : st)
    st.SetIterationTime(timed(w, [&] {
      if (nonblocking)
        w.ialltoallv(send.data(), counts, displs, recv.data(), counts, displs, DType::F32)->wait();
      else
        w.alltoallv(send.data(), counts, displs, recv.data(), counts, displs, DType::F32);
    }));
  st.SetBytesProcessed(int64_t(st.iterations()) * floats * int64_t(sizeof(float)));
  st.counters["ranks"] = double(P);
  st.counters["bytes_per_rank"] = double(floats * int64_t(sizeof(float)));
}

void BM_DispatchAlltoallv(benchmark::State& st) { dispatch(st, false); }
void BM_DispatchIalltoallv(benchmark::State& st) { dispatch(st, true); }

void BM_GradientAllreduce(benchmark::State& st) {
  Comm& w = dsv3::dist::world();
  const int64_t floats = st.range(0);
  std::vector<float> buf(static_cast<size_t>(floats), 1.0f);
  for (auto _ : st)
    st.SetIterationTime(timed(w, [&] { w.allreduce(buf.data(), buf.size(), DType::F32, ReduceOp::Sum); }));
  st.SetBytesProcessed(int64_t(st.iterations()) * floats * int64_t(sizeof(float)));
  st.counters["ranks"] = double(w.size());
}

// Fixed iterations: every rank must enter the same number of collectives (Google Benchmark's adaptive
// count would differ between ranks and deadlock).
void dispatch_args(benchmark::internal::Benchmark* b) {
  for (int64_t hidden : {1024, 2048})
    for (int64_t tokens : {1, 8, 64, 512}) b->Args({hidden, 6, tokens});
  b->ArgNames({"hidden", "top_k", "tokens"})->UseManualTime()->Iterations(200)->Repetitions(5)->ReportAggregatesOnly();
}
BENCHMARK(BM_DispatchAlltoallv)->Apply(dispatch_args)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_DispatchIalltoallv)->Apply(dispatch_args)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_GradientAllreduce)
    ->Arg(1 << 16)
    ->Arg(1 << 20)
    ->Arg(1 << 22)
    ->ArgName("floats")
    ->UseManualTime()
    ->Iterations(50)
    ->Repetitions(5)
    ->ReportAggregatesOnly()
    ->Unit(benchmark::kMicrosecond);

}  // namespace

int main(int argc, char** argv) {
  dsv3::dist::init(&argc, &argv);
  benchmark::Initialize(&argc, argv);
  // Only rank 0 reports; the others run the same iterations into a reporter that prints nothing.
  struct Null : benchmark::BenchmarkReporter {
    bool ReportContext(const Context&) override { return true; }
    void ReportRuns(const std::vector<Run>&) override {}
  } null;
  if (dsv3::dist::world().rank() == 0)
    benchmark::RunSpecifiedBenchmarks();
  else
    benchmark::RunSpecifiedBenchmarks(&null);
  benchmark::Shutdown();
  dsv3::dist::finalize();
  return 0;
}
