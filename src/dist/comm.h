// The communicator (DESIGN.md, dist/): the collectives and point-to-point messages expert and data
// parallelism are built on, behind one small interface so the engine never names a transport. Backends:
// MpiComm (OpenMPI, dist/mpi_comm.h: the only file that includes <mpi.h>) and LocalComm (size 1: every
// collective is a copy, so a binary run without mpirun behaves as one process). An NCCL backend would be a
// third implementation of this class.
//
// Every call is collective over the communicator unless it says otherwise (send / recv and their
// non-blocking forms are point-to-point). Counts are in elements of the given DType, never bytes. Errors
// (a failed MPI call, a mismatched count) throw dsv3::Error naming the operation and the rank.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace dsv3::dist {

enum class DType { U8, I32, I64, F32, F64 };
enum class ReduceOp { Sum, Max, Min };

size_t dtype_size(DType t);

template <typename T>
constexpr DType dtype_of();
template <>
constexpr DType dtype_of<uint8_t>() {
  return DType::U8;
}
template <>
constexpr DType dtype_of<int32_t>() {
  return DType::I32;
}
template <>
constexpr DType dtype_of<int64_t>() {
  return DType::I64;
}
template <>
constexpr DType dtype_of<float>() {
  return DType::F32;
}
template <>
constexpr DType dtype_of<double>() {
  return DType::F64;
}

// A non-blocking operation in flight. wait() blocks until it completed (its buffers may then be reused);
// test() says whether it has, without blocking. Destroying a Request that was not waited on waits.
class Request {
 public:
  virtual ~Request() = default;
  virtual void wait() = 0;
  virtual bool test() = 0;
};
using RequestPtr = std::unique_ptr<Request>;

// Waits on every request of the list (a null entry is skipped).
void wait_all(std::span<RequestPtr> reqs);

class Comm {
 public:
  virtual ~Comm() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // "mpi" or "local": for the layout line printed at start.
  virtual std::string backend() const = 0;

  // Collective: ranks with the same color form a new communicator, ordered by (key, old rank).
  virtual std::unique_ptr<Comm> split(int color, int key) const = 0;
  virtual void barrier() = 0;

  // In place over n elements.
  virtual void allreduce(void* data, size_t n, DType t, ReduceOp op) = 0;
  virtual void bcast(void* data, size_t n, DType t, int root) = 0;
  // recv [size · n]: rank r's n elements at r · n.
  virtual void allgather(const void* send, size_t n, void* recv, DType t) = 0;
  // recv: rank r's counts[r] elements at displs[r] (every rank passes the same counts and displs).
  virtual void allgatherv(const void* send, size_t n, void* recv, std::span<const int64_t> counts,
                          std::span<const int64_t> displs, DType t) = 0;
  // Only root's recv is written (others may pass nullptr): rank r's counts[r] elements at displs[r].
  virtual void gatherv(const void* send, size_t n, void* recv, std::span<const int64_t> counts,
                       std::span<const int64_t> displs, DType t, int root) = 0;
  // send [size · n]: elements [r · n, (r + 1) · n) go to rank r; recv [size · n] likewise from rank r.
  virtual void alltoall(const void* send, size_t n, void* recv, DType t) = 0;
  // sendcounts[r] elements from send + sdispls[r] go to rank r; recvcounts[r] from rank r land at
  // recv + rdispls[r]. Counts must match pairwise (what r sends to s is what s expects from r).
  virtual void alltoallv(const void* send, std::span<const int64_t> sendcounts, std::span<const int64_t> sdispls,
                         void* recv, std::span<const int64_t> recvcounts, std::span<const int64_t> rdispls,
                         DType t) = 0;
  // Point-to-point (not collective).
  virtual void send(const void* data, size_t n, DType t, int peer, int tag) = 0;
  virtual void recv(void* data, size_t n, DType t, int peer, int tag) = 0;

  // Non-blocking forms: the buffers must stay untouched until the request completed.
  virtual RequestPtr iallreduce(void* data, size_t n, DType t, ReduceOp op) = 0;
  virtual RequestPtr iallgather(const void* send, size_t n, void* recv, DType t) = 0;
  virtual RequestPtr ialltoallv(const void* send, std::span<const int64_t> sendcounts, std::span<const int64_t> sdispls,
                                void* recv, std::span<const int64_t> recvcounts, std::span<const int64_t> rdispls,
                                DType t) = 0;
  virtual RequestPtr isend(const void* data, size_t n, DType t, int peer, int tag) = 0;
  virtual RequestPtr irecv(void* data, size_t n, DType t, int peer, int tag) = 0;

  // Typed conveniences.
  template <typename T>
  void allreduce(std::span<T> v, ReduceOp op = ReduceOp::Sum) {
    allreduce(v.data(), v.size(), dtype_of<T>(), op);
  }
  template <typename T>
  T allreduce_one(T x, ReduceOp op = ReduceOp::Sum) {
    allreduce(&x, 1, dtype_of<T>(), op);
    return x;
  }
  template <typename T>
  void bcast(std::span<T> v, int root) {
    bcast(v.data(), v.size(), dtype_of<T>(), root);
  }
  // Every rank's value, in rank order.
  template <typename T>
  std::vector<T> allgather_one(T x) {
    std::vector<T> out(static_cast<size_t>(size()));
    allgather(&x, 1, out.data(), dtype_of<T>());
    return out;
  }
};

// Exclusive prefix sums of counts (the displacements of a packed buffer).
std::vector<int64_t> displacements(std::span<const int64_t> counts);

}  // namespace dsv3::dist
