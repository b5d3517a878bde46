#include "dist/local_comm.h"

#include <cstring>

#include "core/error.h"

namespace dsv3::dist {

namespace {

struct DoneRequest final : Request {
  void wait() override {}
  bool test() override { return true; }
};

void check_root(int root, const char* what) {
  if (root != 0) fail("{}: root {} is not a rank of a 1-rank communicator", what, root);
}

void copy(const void* src, void* dst, size_t n, DType t) {
  if (n && src != dst) std::memmove(dst, src, n * dtype_size(t));
}

}  // namespace

size_t dtype_size(DType t) {
  switch (t) {
    case DType::U8:
      return 1;
    case DType::I32:
    case DType::F32:
      return 4;
    case DType::I64:
    case DType::F64:
      return 8;
  }
  return 1;
}

void wait_all(std::span<RequestPtr> reqs) {
  for (RequestPtr& r : reqs)
    if (r) r->wait();
}

std::vector<int64_t> displacements(std::span<const int64_t> counts) {
  std::vector<int64_t> d(counts.size());
  int64_t at = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    d[i] = at;
    at += counts[i];
  }
  return d;
}

std::unique_ptr<Comm> LocalComm::split(int, int) const { return std::make_unique<LocalComm>(); }

void LocalComm::bcast(void*, size_t, DType, int root) { check_root(root, "bcast"); }

void LocalComm::allgather(const void* send, size_t n, void* recv, DType t) { copy(send, recv, n, t); }

void LocalComm::allgatherv(const void* send, size_t n, void* recv, std::span<const int64_t> counts,
                           std::span<const int64_t> displs, DType t) {
  if (counts.size() != 1 || displs.size() != 1 || counts[0] != int64_t(n))
    fail("allgatherv: counts do not describe one rank sending {} elements", n);
  copy(send, static_cast<char*>(recv) + size_t(displs[0]) * dtype_size(t), n, t);
}

void LocalComm::gatherv(const void* send, size_t n, void* recv, std::span<const int64_t> counts,
                        std::span<const int64_t> displs, DType t, int root) {
  check_root(root, "gatherv");
  allgatherv(send, n, recv, counts, displs, t);
}

void LocalComm::alltoall(const void* send, size_t n, void* recv, DType t) { copy(send, recv, n, t); }

void LocalComm::alltoallv(const void* send, std::span<const int64_t> sendcounts, std::span<const int64_t> sdispls,
                          void* recv, std::span<const int64_t> recvcounts, std::span<const int64_t> rdispls, DType t) {
  if (sendcounts.size() != 1 || recvcounts.size() != 1 || sdispls.size() != 1 || rdispls.size() != 1 ||
      sendcounts[0] != recvcounts[0])
    fail("alltoallv: counts do not describe a 1-rank exchange");
  const size_t es = dtype_size(t);
  copy(static_cast<const char*>(send) + size_t(sdispls[0]) * es, static_cast<char*>(recv) + size_t(rdispls[0]) * es,
       size_t(sendcounts[0]), t);
}

void LocalComm::send(const void*, size_t, DType, int peer, int) {
  fail("send: peer {} is not another rank of a 1-rank communicator", peer);
}
void LocalComm::recv(void*, size_t, DType, int peer, int) {
  fail("recv: peer {} is not another rank of a 1-rank communicator", peer);
}

RequestPtr LocalComm::iallreduce(void*, size_t, DType, ReduceOp) { return std::make_unique<DoneRequest>(); }
RequestPtr LocalComm::iallgather(const void* send, size_t n, void* recv, DType t) {
  allgather(send, n, recv, t);
  return std::make_unique<DoneRequest>();
}
RequestPtr LocalComm::ialltoallv(const void* send, std::span<const int64_t> sendcounts,
                                 std::span<const int64_t> sdispls, void* recv, std::span<const int64_t> recvcounts,
                                 std::span<const int64_t> rdispls, DType t) {
  alltoallv(send, sendcounts, sdispls, recv, recvcounts, rdispls, t);
  return std::make_unique<DoneRequest>();
}
RequestPtr LocalComm::isend(const void* data, size_t n, DType t, int peer, int tag) {
  send(data, n, t, peer, tag);
  return nullptr;
}
RequestPtr LocalComm::irecv(void* data, size_t n, DType t, int peer, int tag) {
  recv(data, n, t, peer, tag);
  return nullptr;
}

}  // namespace dsv3::dist
