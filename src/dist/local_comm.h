// The size-1 communicator: every collective is a copy (or nothing), point-to-point messages to oneself are
// refused. What a dsv3 binary uses when it was not started by mpirun, so single-process runs take no MPI
// path at all.
#pragma once

#include "dist/comm.h"

namespace dsv3::dist {

class LocalComm final : public Comm {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string backend() const override { return "local"; }
  std::unique_ptr<Comm> split(int color, int key) const override;
  void barrier() override {}
  void allreduce(void*, size_t, DType, ReduceOp) override {}
  void bcast(void*, size_t, DType, int root) override;
  void allgather(const void* send, size_t n, void* recv, DType t) override;
  void allgatherv(const void* send, size_t n, void* recv, std::span<const int64_t> counts,
                  std::span<const int64_t> displs, DType t) override;
  void gatherv(const void* send, size_t n, void* recv, std::span<const int64_t> counts, std::span<const int64_t> displs,
               DType t, int root) override;
  void alltoall(const void* send, size_t n, void* recv, DType t) override;
  void alltoallv(const void* send, std::span<const int64_t> sendcounts, std::span<const int64_t> sdispls, void* recv,
                 std::span<const int64_t> recvcounts, std::span<const int64_t> rdispls, DType t) override;
  void send(const void*, size_t, DType, int peer, int tag) override;
  void recv(void*, size_t, DType, int peer, int tag) override;
  RequestPtr iallreduce(void* data, size_t n, DType t, ReduceOp op) override;
  RequestPtr iallgather(const void* send, size_t n, void* recv, DType t) override;
  RequestPtr ialltoallv(const void* send, std::span<const int64_t> sendcounts, std::span<const int64_t> sdispls,
                        void* recv, std::span<const int64_t> recvcounts, std::span<const int64_t> rdispls,
                        DType t) override;
  RequestPtr isend(const void* data, size_t n, DType t, int peer, int tag) override;
  RequestPtr irecv(void* data, size_t n, DType t, int peer, int tag) override;
};

}  // namespace dsv3::dist
