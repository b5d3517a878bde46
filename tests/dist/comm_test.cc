// The communicator's collectives on whatever world the test runs in: one process (LocalComm) from ctest's
// plain run, 2 and 4 MPI ranks from its mpirun runs. Every expected value is computed from the ranks'
// formulas, independently of the backend.
#include "dist/comm.h"

#include <gtest/gtest.h>

#include <numeric>

#include "core/error.h"
#include "dist/world.h"

namespace dsv3::dist {
namespace {

TEST(Comm, RankAndSize) {
  Comm& w = world();
  EXPECT_GE(w.size(), 1);
  EXPECT_GE(w.rank(), 0);
  EXPECT_LT(w.rank(), w.size());
  EXPECT_EQ(w.backend(), launched_by_mpirun() ? "mpi" : "local");
}

TEST(Comm, AllreduceSumMaxMin) {
  Comm& w = world();
  const int P = w.size(), r = w.rank();
  std::vector<double> v = {double(r), 1.0, -double(r)};
  w.allreduce(std::span<double>(v));
  EXPECT_EQ(v[0], P * (P - 1) / 2.0);
  EXPECT_EQ(v[1], double(P));
  EXPECT_EQ(w.allreduce_one<int64_t>(r, ReduceOp::Max), P - 1);
  EXPECT_EQ(w.allreduce_one<int64_t>(r + 5, ReduceOp::Min), 5);
  std::vector<float> f(1000);
  for (size_t i = 0; i < f.size(); ++i) f[i] = float(i) * float(r + 1);
  auto req = w.iallreduce(f.data(), f.size(), DType::F32, ReduceOp::Sum);
  req->wait();
  for (size_t i = 0; i < f.size(); ++i) ASSERT_EQ(f[i], float(i) * float(P * (P + 1) / 2)) << i;
}

TEST(Comm, BcastAndBytes) {
  Comm& w = world();
  std::vector<int32_t> v(3, w.rank() == 0 ? 7 : -1);
  w.bcast(std::span<int32_t>(v), 0);
  EXPECT_EQ(v, std::vector<int32_t>(3, 7));
  std::string s = w.rank() == 0 ? std::string("from rank zero") : std::string();
  bcast_bytes(w, s, 0);
  EXPECT_EQ(s, "from rank zero");
  const auto all = allgather_bytes(w, std::string(size_t(w.rank()), 'x'));
  ASSERT_EQ(int(all.size()), w.size());
  for (int q = 0; q < w.size(); ++q) EXPECT_EQ(all[size_t(q)], std::string(size_t(q), 'x'));
}

TEST(Comm, AllgatherAndGatherv) {
  Comm& w = world();
  const int P = w.size(), r = w.rank();
  EXPECT_EQ(w.allgather_one<int32_t>(r * 10), [&] {
    std::vector<int32_t> e(static_cast<size_t>(P));
    for (int q = 0; q < P; ++q) e[size_t(q)] = q * 10;
    return e;
  }());
  // Rank q contributes q + 1 values equal to q.
  std::vector<int64_t> counts(static_cast<size_t>(P));
  for (int q = 0; q < P; ++q) counts[size_t(q)] = q + 1;
  const auto displs = displacements(counts);
  std::vector<float> mine(size_t(r + 1), float(r)), all(size_t(P * (P + 1) / 2), -1.0f);
  w.allgatherv(mine.data(), mine.size(), all.data(), counts, displs, DType::F32);
  for (int q = 0; q < P; ++q)
    for (int i = 0; i <= q; ++i) EXPECT_EQ(all[size_t(displs[size_t(q)] + i)], float(q));
  std::vector<float> at_root(r == 0 ? all.size() : 0, -1.0f);
  w.gatherv(mine.data(), mine.size(), r == 0 ? at_root.data() : nullptr, counts, displs, DType::F32, 0);
  if (r == 0) {
    EXPECT_EQ(at_root, all);
  }
}

TEST(Comm, AlltoallvBlockingAndNot) {
  Comm& w = world();
  const int P = w.size(), r = w.rank();
  // Rank r sends (r + s + 1) values r·100 + s to rank s.
  std::vector<int64_t> sc(static_cast<size_t>(P)), rc(static_cast<size_t>(P));
  for (int s = 0; s < P; ++s) sc[size_t(s)] = r + s + 1;
  for (int s = 0; s < P; ++s) rc[size_t(s)] = s + r + 1;
  const auto sd = displacements(sc), rd = displacements(rc);
  std::vector<int32_t> send(size_t(sd.back() + sc.back())), recv(size_t(rd.back() + rc.back()), -1);
  for (int s = 0; s < P; ++s)
    for (int64_t i = 0; i < sc[size_t(s)]; ++i) send[size_t(sd[size_t(s)] + i)] = r * 100 + s;
  w.alltoallv(send.data(), sc, sd, recv.data(), rc, rd, DType::I32);
  for (int s = 0; s < P; ++s)
    for (int64_t i = 0; i < rc[size_t(s)]; ++i) ASSERT_EQ(recv[size_t(rd[size_t(s)] + i)], s * 100 + r);
  std::vector<int32_t> recv2(recv.size(), -1);
  auto req = w.ialltoallv(send.data(), sc, sd, recv2.data(), rc, rd, DType::I32);
  req->wait();
  EXPECT_EQ(recv2, recv);
  // Fixed-size form.
  std::vector<int64_t> a(static_cast<size_t>(P)), b(static_cast<size_t>(P));
  for (int s = 0; s < P; ++s) a[size_t(s)] = r * P + s;
  w.alltoall(a.data(), 1, b.data(), DType::I64);
  for (int s = 0; s < P; ++s) EXPECT_EQ(b[size_t(s)], s * P + r);
}

TEST(Comm, SplitIntoGroups) {
  Comm& w = world();
  // Groups of two consecutive ranks (the EP groups of a --dp D --ep 2 layout), and the strided transpose.
  auto g = w.split(w.rank() / 2, w.rank());
  EXPECT_EQ(g->rank(), w.rank() % 2);
  EXPECT_EQ(g->size(), std::min(2, w.size() - (w.rank() / 2) * 2));
  EXPECT_EQ(g->allreduce_one<int64_t>(w.rank()), [&] {
    int64_t s = 0;
    for (int q = (w.rank() / 2) * 2; q < std::min(w.size(), (w.rank() / 2) * 2 + 2); ++q) s += q;
    return s;
  }());
  auto t = w.split(w.rank() % 2, w.rank());
  EXPECT_EQ(t->rank(), w.rank() / 2);
}

TEST(Comm, PointToPointRing) {
  Comm& w = world();
  if (w.size() == 1) {
    int32_t x = 0;
    EXPECT_THROW(w.send(&x, 1, DType::I32, 0, 0), Error);
    return;
  }
  const int P = w.size(), r = w.rank();
  int64_t out = r * 1000, in = -1;
  auto rq = w.irecv(&in, 1, DType::I64, (r + P - 1) % P, 3);
  auto sq = w.isend(&out, 1, DType::I64, (r + 1) % P, 3);
  sq->wait();
  rq->wait();
  EXPECT_EQ(in, ((r + P - 1) % P) * 1000);
  double d = r, e = -1;
  if (r % 2 == 0 && r + 1 < P) {
    w.send(&d, 1, DType::F64, r + 1, 4);
    w.recv(&e, 1, DType::F64, r + 1, 5);
    EXPECT_EQ(e, r + 1);
  } else if (r % 2 == 1) {
    w.recv(&e, 1, DType::F64, r - 1, 4);
    w.send(&d, 1, DType::F64, r - 1, 5);
    EXPECT_EQ(e, r - 1);
  }
  w.barrier();
}

}  // namespace
}  // namespace dsv3::dist
