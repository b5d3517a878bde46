#include "dist/world.h"

#include <omp.h>
#include <sched.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <thread>

#include "dist/local_comm.h"
#include "dist/mpi_comm.h"

namespace dsv3::dist {

namespace {

std::unique_ptr<Comm>& world_ptr() {
  static std::unique_ptr<Comm> w = std::make_unique<LocalComm>();
  return w;
}
bool& mpi_started() {
  static bool s = false;
  return s;
}

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  const long x = std::strtol(v, &end, 10);
  return (end && *end == 0 && x > 0 && x < (1 << 24)) ? int(x) : fallback;
}

}  // namespace

bool launched_by_mpirun() {
  return std::getenv("OMPI_COMM_WORLD_SIZE") || std::getenv("PMIX_RANK") || std::getenv("PMI_RANK");
}

void init(int* argc, char*** argv) {
  if (mpi_started() || !launched_by_mpirun()) return;
  world_ptr() = mpi_init(argc, argv);
  mpi_started() = true;
  // OpenMP threads: the cores this rank may run on (mpirun binds ranks to cores or sockets by default), and
  // no more than its share of the host's cores when several ranks share the host unbound.
  if (!std::getenv("OMP_NUM_THREADS")) {
    const int local = env_int("OMPI_COMM_WORLD_LOCAL_SIZE", 1);
    int threads = std::max(1, int(std::thread::hardware_concurrency()) / local);
    cpu_set_t mask;
    if (sched_getaffinity(0, sizeof(mask), &mask) == 0) threads = std::min(threads, std::max(1, CPU_COUNT(&mask)));
    omp_set_num_threads(threads);
  }
}

void finalize() {
  if (!mpi_started()) return;
  world_ptr() = std::make_unique<LocalComm>();
  mpi_finalize();
  mpi_started() = false;
}

Comm& world() { return *world_ptr(); }

void abort_job(int code, const std::string& message) {
  if (mpi_started() && world().size() > 1) {
    std::fprintf(stderr, "[rank %d/%d] %s\n", world().rank(), world().size(), message.c_str());
    std::fflush(stderr);
    mpi_abort(code);
  }
  std::fprintf(stderr, "%s\n", message.c_str());
  std::fflush(stderr);
  std::exit(code);
}

void bcast_bytes(Comm& c, std::string& s, int root) {
  int64_t n = int64_t(s.size());
  c.bcast(&n, 1, DType::I64, root);
  s.resize(size_t(n));
  if (n) c.bcast(s.data(), size_t(n), DType::U8, root);
}

std::vector<std::string> allgather_bytes(Comm& c, const std::string& s) {
  const std::vector<int64_t> counts = c.allgather_one<int64_t>(int64_t(s.size()));
  const std::vector<int64_t> displs = displacements(counts);
  std::string all(size_t(displs.back() + counts.back()), '\0');
  c.allgatherv(s.data(), s.size(), all.data(), counts, displs, DType::U8);
  std::vector<std::string> out;
  for (size_t r = 0; r < counts.size(); ++r) out.push_back(all.substr(size_t(displs[r]), size_t(counts[r])));
  return out;
}

}  // namespace dsv3::dist
