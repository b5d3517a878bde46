#include "dist/mpi_comm.h"

#include <mpi.h>

#include <climits>
#include <cstdlib>
#include <vector>

#include "core/error.h"

namespace dsv3::dist {

namespace {

MPI_Datatype mpi_type(DType t) {
  switch (t) {
    case DType::U8:
      return MPI_UINT8_T;
    case DType::I32:
      return MPI_INT32_T;
    case DType::I64:
      return MPI_INT64_T;
    case DType::F32:
      return MPI_FLOAT;
    case DType::F64:
      return MPI_DOUBLE;
  }
  return MPI_BYTE;
}

MPI_Op mpi_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum:
      return MPI_SUM;
    case ReduceOp::Max:
      return MPI_MAX;
    case ReduceOp::Min:
      return MPI_MIN;
  }
  return MPI_SUM;
}

int world_rank() {
  int r = -1;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

void check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  fail("rank {}: MPI {} failed: {}", world_rank(), what, std::string(msg, size_t(len)));
}

int to_int(int64_t n, const char* what) {
  if (n < 0 || n > INT_MAX) fail("rank {}: {}: count {} is outside MPI's int range", world_rank(), what, n);
  return int(n);
}

std::vector<int> to_ints(std::span<const int64_t> v, const char* what) {
  std::vector<int> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = to_int(v[i], what);
  return out;
}

class MpiRequest final : public Request {
 public:
  explicit MpiRequest(const char* what) : what_(what) {}
  ~MpiRequest() override {
    if (req_ != MPI_REQUEST_NULL) MPI_Wait(&req_, MPI_STATUS_IGNORE);
  }
  void wait() override {
    if (req_ == MPI_REQUEST_NULL) return;
    check(MPI_Wait(&req_, MPI_STATUS_IGNORE), what_);
  }
  bool test() override {
    if (req_ == MPI_REQUEST_NULL) return true;
    int done = 0;
    check(MPI_Test(&req_, &done, MPI_STATUS_IGNORE), what_);
    return done != 0;
  }
  MPI_Request req_ = MPI_REQUEST_NULL;
  std::vector<int> counts_[4];  // kept alive until completion (alltoallv)

 private:
  const char* what_;
};

class MpiComm final : public Comm {
 public:
  MpiComm(MPI_Comm c, bool owned) : c_(c), owned_(owned) {
    MPI_Comm_set_errhandler(c_, MPI_ERRORS_RETURN);
    MPI_Comm_rank(c_, &rank_);
    MPI_Comm_size(c_, &size_);
  }
  ~MpiComm() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (owned_ && !finalized) MPI_Comm_free(&c_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "mpi"; }

  std::unique_ptr<Comm> split(int color, int key) const override {
    MPI_Comm out;
    check(MPI_Comm_split(c_, color, key, &out), "comm_split");
    return std::make_unique<MpiComm>(out, true);
  }
  void barrier() override { check(MPI_Barrier(c_), "barrier"); }
  void allreduce(void* data, size_t n, DType t, ReduceOp op) override {
    check(MPI_Allreduce(MPI_IN_PLACE, data, to_int(int64_t(n), "allreduce"), mpi_type(t), mpi_op(op), c_), "allreduce");
  }
  void bcast(void* data, size_t n, DType t, int root) override {
    check(MPI_Bcast(data, to_int(int64_t(n), "bcast"), mpi_type(t), root, c_), "bcast");
  }
  void allgather(const void* send, size_t n, void* recv, DType t) override {
    const int c = to_int(int64_t(n), "allgather");
    check(MPI_Allgather(send, c, mpi_type(t), recv, c, mpi_type(t), c_), "allgather");
  }
  void allgatherv(const void* send, size_t n, void* recv, std::span<const int64_t> counts,
                  std::span<const int64_t> displs, DType t) override {
    sized(counts, displs, "allgatherv");
    const auto rc = to_ints(counts, "allgatherv"), rd = to_ints(displs, "allgatherv");
    check(MPI_Allgatherv(send, to_int(int64_t(n), "allgatherv"), mpi_type(t), recv, rc.data(), rd.data(), mpi_type(t),
                         c_),
          "allgatherv");
  }
  void gatherv(const void* send, size_t n, void* recv, std::span<const int64_t> counts, std::span<const int64_t> displs,
               DType t, int root) override {
    sized(counts, displs, "gatherv");
    const auto rc = to_ints(counts, "gatherv"), rd = to_ints(displs, "gatherv");
    check(MPI_Gatherv(send, to_int(int64_t(n), "gatherv"), mpi_type(t), recv, rc.data(), rd.data(), mpi_type(t), root,
                      c_),
          "gatherv");
  }
  void alltoall(const void* send, size_t n, void* recv, DType t) override {
    const int c = to_int(int64_t(n), "alltoall");
    check(MPI_Alltoall(send, c, mpi_type(t), recv, c, mpi_type(t), c_), "alltoall");
  }
  void alltoallv(const void* send, std::span<const int64_t> sendcounts, std::span<const int64_t> sdispls, void* recv,
                 std::span<const int64_t> recvcounts, std::span<const int64_t> rdispls, DType t) override {
    sized(sendcounts, sdispls, "alltoallv");
    sized(recvcounts, rdispls, "alltoallv");
    const auto sc = to_ints(sendcounts, "alltoallv"), sd = to_ints(sdispls, "alltoallv");
    const auto rc = to_ints(recvcounts, "alltoallv"), rd = to_ints(rdispls, "alltoallv");
    check(MPI_Alltoallv(send, sc.data(), sd.data(), mpi_type(t), recv, rc.data(), rd.data(), mpi_type(t), c_),
          "alltoallv");
  }
  void send(const void* data, size_t n, DType t, int peer, int tag) override {
    check(MPI_Send(data, to_int(int64_t(n), "send"), mpi_type(t), peer, tag, c_), "send");
  }
  void recv(void* data, size_t n, DType t, int peer, int tag) override {
    MPI_Status st;
    check(MPI_Recv(data, to_int(int64_t(n), "recv"), mpi_type(t), peer, tag, c_, &st), "recv");
    int got = 0;
    MPI_Get_count(&st, mpi_type(t), &got);
    if (size_t(got) != n) fail("rank {}: recv from {} got {} elements, expected {}", rank_, peer, got, n);
  }

  RequestPtr iallreduce(void* data, size_t n, DType t, ReduceOp op) override {
    auto r = std::make_unique<MpiRequest>("iallreduce");
    check(MPI_Iallreduce(MPI_IN_PLACE, data, to_int(int64_t(n), "iallreduce"), mpi_type(t), mpi_op(op), c_, &r->req_),
          "iallreduce");
    return r;
  }
  RequestPtr iallgather(const void* send, size_t n, void* recv, DType t) override {
    auto r = std::make_unique<MpiRequest>("iallgather");
    const int c = to_int(int64_t(n), "iallgather");
    check(MPI_Iallgather(send, c, mpi_type(t), recv, c, mpi_type(t), c_, &r->req_), "iallgather");
    return r;
  }
  RequestPtr ialltoallv(const void* send, std::span<const int64_t> sendcounts, std::span<const int64_t> sdispls,
                        void* recv, std::span<const int64_t> recvcounts, std::span<const int64_t> rdispls,
                        DType t) override {
    sized(sendcounts, sdispls, "ialltoallv");
    sized(recvcounts, rdispls, "ialltoallv");
    auto r = std::make_unique<MpiRequest>("ialltoallv");
    r->counts_[0] = to_ints(sendcounts, "ialltoallv");
    r->counts_[1] = to_ints(sdispls, "ialltoallv");
    r->counts_[2] = to_ints(recvcounts, "ialltoallv");
    r->counts_[3] = to_ints(rdispls, "ialltoallv");
    check(MPI_Ialltoallv(send, r->counts_[0].data(), r->counts_[1].data(), mpi_type(t), recv, r->counts_[2].data(),
                         r->counts_[3].data(), mpi_type(t), c_, &r->req_),
          "ialltoallv");
    return r;
  }
  RequestPtr isend(const void* data, size_t n, DType t, int peer, int tag) override {
    auto r = std::make_unique<MpiRequest>("isend");
    check(MPI_Isend(data, to_int(int64_t(n), "isend"), mpi_type(t), peer, tag, c_, &r->req_), "isend");
    return r;
  }
  RequestPtr irecv(void* data, size_t n, DType t, int peer, int tag) override {
    auto r = std::make_unique<MpiRequest>("irecv");
    check(MPI_Irecv(data, to_int(int64_t(n), "irecv"), mpi_type(t), peer, tag, c_, &r->req_), "irecv");
    return r;
  }

 private:
  void sized(std::span<const int64_t> counts, std::span<const int64_t> displs, const char* what) const {
    if (counts.size() != size_t(size_) || displs.size() != size_t(size_))
      fail("rank {}: {}: {} counts and {} displacements for {} ranks", rank_, what, counts.size(), displs.size(),
           size_);
  }

  MPI_Comm c_;
  bool owned_;
  int rank_ = 0, size_ = 1;
};

}  // namespace

std::unique_ptr<Comm> mpi_init(int* argc, char*** argv) {
  int provided = 0;
  check(MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided), "init");
  if (provided < MPI_THREAD_SERIALIZED)
    fail("MPI provides thread level {}, dsv3 needs at least MPI_THREAD_SERIALIZED", provided);
  return std::make_unique<MpiComm>(MPI_COMM_WORLD, false);
}

void mpi_finalize() {
  int init = 0, fin = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&fin);
  if (init && !fin) MPI_Finalize();
}

void mpi_abort(int code) {
  MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);
}

}  // namespace dsv3::dist
