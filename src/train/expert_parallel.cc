#include "train/expert_parallel.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "core/error.h"
#include "dist/layout.h"
#include "train/micro_batch_turns.h"

namespace dsv3::train {

namespace {

struct Range {
  int64_t begin = 0, end = 0;
  int64_t size() const { return end - begin; }
};

Range owned(const SchemaScope& s, int64_t E) { return {s.expert_begin, s.expert_end < 0 ? E : s.expert_end}; }
Range owned_by(int64_t E, int ep, int rank) { return owned(dist::expert_scope(E, ep, rank), E); }

std::vector<int64_t> times(std::vector<int64_t> v, int64_t f) {
  for (int64_t& x : v) x *= f;
  return v;
}

// Rows of `n` floats each: dst[i] = src[idx[i]].
void gather_rows(const float* src, const int64_t* idx, int64_t rows, int64_t n, float* dst) {
#pragma omp parallel for schedule(static) if (rows * n > 65536)
  for (int64_t i = 0; i < rows; ++i) std::memcpy(dst + i * n, src + idx[i] * n, size_t(n) * sizeof(float));
}
// dst[idx[i]] = src[i].
void scatter_rows(const float* src, const int64_t* idx, int64_t rows, int64_t n, float* dst) {
#pragma omp parallel for schedule(static) if (rows * n > 65536)
  for (int64_t i = 0; i < rows; ++i) std::memcpy(dst + idx[i] * n, src + i * n, size_t(n) * sizeof(float));
}

using Clock = std::chrono::steady_clock;
double seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

// One all-to-all of the step, timed into ctx.comm_times. Without ctx.turn it blocks (all of it is waiting)
// and `meanwhile` runs after it. With ctx.turn it is posted, `meanwhile` runs, the turn goes to the other
// micro-batch while it is in flight (if `hand_over`: not for the small counts, whose wait would otherwise
// leave the dispatch that follows them only a moment to overlap), and wait() follows. Counts in elements.
void all_to_all(const StepContext& ctx, dist::Comm& comm, const void* send, const std::vector<int64_t>& sc, void* recv,
                const std::vector<int64_t>& rc, dist::DType t, bool hand_over, const std::function<void()>& meanwhile) {
  const std::vector<int64_t> sd = dist::displacements(sc), rd = dist::displacements(rc);
  CommTimes local;
  CommTimes& ct = ctx.comm_times ? *ctx.comm_times : local;
  ct.exchanges += 1;
  for (size_t r = 0; r < sc.size(); ++r)
    if (int(r) != comm.rank()) ct.bytes_sent += sc[r] * int64_t(dist::dtype_size(t));
  if (!ctx.turn) {
    const auto t0 = Clock::now();
    comm.alltoallv(send, sc, sd, recv, rc, rd, t);
    ct.wait_s += seconds(t0, Clock::now());
    if (meanwhile) meanwhile();
    return;
  }
  const auto t0 = Clock::now();
  dist::RequestPtr req = comm.ialltoallv(send, sc, sd, recv, rc, rd, t);
  const auto t1 = Clock::now();
  ct.post_s += seconds(t0, t1);
  try {
    if (meanwhile) meanwhile();
    if (hand_over) ctx.turn->hand_over();
  } catch (...) {
    // This rank is failing (here or in the other micro-batch): the exchange may never complete, so leave it
    // unwaited rather than hang in the request's destructor; the job ends with the error.
    (void)req.release();
    throw;
  }
  const auto t2 = Clock::now();
  ct.in_flight_s += seconds(t1, t2);
  req->wait();
  ct.wait_s += seconds(t2, Clock::now());
}

// Rows between the ranks of the group: forward (source → owner) sends a.send_rows and receives a.recv_rows,
// back (owner → source) the reverse. Rows of `D` floats.
void exchange(const StepContext& ctx, dist::Comm& comm, const EpActs& a, bool to_owner, int64_t D, const float* send,
              float* recv, const std::function<void()>& meanwhile = {}) {
  all_to_all(ctx, comm, send, times(to_owner ? a.send_rows : a.recv_rows, D), recv,
             times(to_owner ? a.recv_rows : a.send_rows, D), dist::DType::F32, /*hand_over=*/true, meanwhile);
}

}  // namespace

CommTimes& CommTimes::operator+=(const CommTimes& o) {
  post_s += o.post_s;
  wait_s += o.wait_s;
  in_flight_s += o.in_flight_s;
  exchanges += o.exchanges;
  bytes_sent += o.bytes_sent;
  return *this;
}

ExpertParallel ExpertParallel::make(const ModelConfig& c, dist::Comm& ep) {
  if (c.n_routed_experts <= 0) fail("expert parallelism: the model has no routed experts (n_routed_experts = 0)");
  if (ep.size() > c.n_routed_experts)
    fail("expert parallelism: {} EP ranks for {} routed experts (every EP rank needs at least one)", ep.size(),
         c.n_routed_experts);
  return {.ep = &ep,
          .n_experts = c.n_routed_experts,
          .scope = dist::expert_scope(c.n_routed_experts, ep.size(), ep.rank())};
}

void ep_experts_forward(const StepContext& ctx, const ExpertParallel& ep, const std::vector<FfnP>& experts,
                        const float* x, const std::vector<std::vector<int64_t>>& slots, int64_t top_k, float* yslot,
                        EpActs& a, const std::function<void()>& meanwhile) {
  dist::Comm& comm = *ep.ep;
  const int P = comm.size();
  const int64_t E = ep.n_experts, D = ctx.config.hidden_size, K = top_k;
  const Range mine = owned(ep.scope, E);

  // Counts: to each owner, the number of this rank's slots for each of its experts ([P, nmax], padded).
  int64_t nmax = 0;
  for (int o = 0; o < P; ++o) nmax = std::max(nmax, owned_by(E, P, o).size());
  std::vector<int64_t> cnt_send(size_t(P * nmax), 0), cnt_recv(size_t(P * nmax), 0);
  a.send_slots.clear();
  a.send_rows.assign(size_t(P), 0);
  for (int o = 0; o < P; ++o) {
    const Range r = owned_by(E, P, o);
    for (int64_t e = r.begin; e < r.end; ++e) {
      const auto& s = slots[size_t(e)];
      cnt_send[size_t(o * nmax + (e - r.begin))] = int64_t(s.size());
      a.send_slots.insert(a.send_slots.end(), s.begin(), s.end());
      a.send_rows[size_t(o)] += int64_t(s.size());
    }
  }
  all_to_all(ctx, comm, cnt_send.data(), std::vector<int64_t>(size_t(P), nmax), cnt_recv.data(),
             std::vector<int64_t>(size_t(P), nmax), dist::DType::I64, /*hand_over=*/false, meanwhile);

  // Owner layout: expert-major (expert, source, slot); wire order is (source, expert, slot).
  const int64_t n_own = mine.size();
  a.recv_rows.assign(size_t(P), 0);
  a.expert_rows.assign(size_t(n_own + 1), 0);
  for (int s = 0; s < P; ++s)
    for (int64_t j = 0; j < n_own; ++j) {
      const int64_t n = cnt_recv[size_t(s * nmax + j)];
      a.recv_rows[size_t(s)] += n;
      a.expert_rows[size_t(j + 1)] += n;
    }
  for (int64_t j = 0; j < n_own; ++j) a.expert_rows[size_t(j + 1)] += a.expert_rows[size_t(j)];
  const int64_t R = a.expert_rows[size_t(n_own)];
  a.wire_pos.resize(size_t(R));
  {
    std::vector<int64_t> next(a.expert_rows.begin(), a.expert_rows.end() - 1);  // per expert: next free row
    int64_t w = 0;
    for (int s = 0; s < P; ++s)
      for (int64_t j = 0; j < n_own; ++j)
        for (int64_t i = 0, n = cnt_recv[size_t(s * nmax + j)]; i < n; ++i) a.wire_pos[size_t(w++)] = next[size_t(j)]++;
  }

  // Dispatch x.
  const int64_t S = int64_t(a.send_slots.size());
  std::vector<float> buf(size_t(S * D));
  {
    std::vector<int64_t> rows(static_cast<size_t>(S));
    for (int64_t i = 0; i < S; ++i) rows[size_t(i)] = a.send_slots[size_t(i)] / K;
    gather_rows(x, rows.data(), S, D, buf.data());
  }
  std::vector<float> wire(size_t(R * D));
  exchange(ctx, comm, a, /*to_owner=*/true, D, buf.data(), wire.data());
  a.x.resize(size_t(R * D));
  scatter_rows(wire.data(), a.wire_pos.data(), R, D, a.x.data());

  // The owned experts, each over the rows every rank routed to it.
  std::vector<float> y(size_t(R * D));
  a.acts.assign(size_t(n_own), {});
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t j = 0; j < n_own; ++j) {
    const int64_t off = a.expert_rows[size_t(j)], n = a.expert_rows[size_t(j + 1)] - off;
    if (n == 0) continue;
    ffn_forward(ctx, experts[size_t(mine.begin + j)], a.x.data() + off * D, n, y.data() + off * D, a.acts[size_t(j)]);
  }

  // Combine: y back to the sources, in the order they sent their slots.
  gather_rows(y.data(), a.wire_pos.data(), R, D, wire.data());
  exchange(ctx, comm, a, /*to_owner=*/false, D, wire.data(), buf.data());
  scatter_rows(buf.data(), a.send_slots.data(), S, D, yslot);
}

void ep_experts_backward(const StepContext& ctx, const ExpertParallel& ep, const std::vector<FfnP>& experts,
                         const std::vector<FfnG>& gexperts, const EpActs& a, const float* gates, const float* dout,
                         int64_t top_k, float* dxslot, const std::function<void()>& meanwhile) {
  dist::Comm& comm = *ep.ep;
  const int64_t E = ep.n_experts, D = ctx.config.hidden_size, K = top_k;
  const Range mine = owned(ep.scope, E);
  const int64_t n_own = mine.size(), S = int64_t(a.send_slots.size()), R = int64_t(a.wire_pos.size());

  // dy of each sent slot, to the owners.
  std::vector<float> buf(size_t(S * D));
#pragma omp parallel for schedule(static) if (S * D > 65536)
  for (int64_t i = 0; i < S; ++i) {
    const int64_t slot = a.send_slots[size_t(i)];
    const float gk = gates[slot];
    const float* d = dout + (slot / K) * D;
    float* o = buf.data() + i * D;
    for (int64_t j = 0; j < D; ++j) o[j] = gk * d[j];
  }
  std::vector<float> wire(size_t(R * D)), dy(size_t(R * D)), dx(size_t(R * D), 0.0f);
  exchange(ctx, comm, a, /*to_owner=*/true, D, buf.data(), wire.data(), meanwhile);
  scatter_rows(wire.data(), a.wire_pos.data(), R, D, dy.data());

  // Owned experts: weight gradients here, over every rank's rows; dx per row.
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t j = 0; j < n_own; ++j) {
    const int64_t off = a.expert_rows[size_t(j)], n = a.expert_rows[size_t(j + 1)] - off;
    if (n == 0) continue;
    const size_t e = size_t(mine.begin + j);
    ffn_backward(ctx, experts[e], gexperts[e], a.x.data() + off * D, n, a.acts[size_t(j)], dy.data() + off * D,
                 dx.data() + off * D);
  }

  // dx back to the sources.
  gather_rows(dx.data(), a.wire_pos.data(), R, D, wire.data());
  exchange(ctx, comm, a, /*to_owner=*/false, D, wire.data(), buf.data());
  scatter_rows(buf.data(), a.send_slots.data(), S, D, dxslot);
}

void allreduce_ep_grads(Params& grads, dist::Comm& world, dist::Comm& dp) {
  for (size_t i = 0; i < grads.size(); ++i) {
    const WeightSpec& s = grads.specs()[i];
    if (s.role == WeightRole::Bias) continue;  // no gradient
    dist::Comm& c = s.expert >= 0 ? dp : world;
    if (c.size() > 1) c.allreduce(std::span<float>(grads.value(i)));
  }
}

std::optional<Params> gather_experts(const ModelConfig& c, const Params& share, const ExpertParallel& ep, int root) {
  dist::Comm& comm = *ep.ep;
  const int P = comm.size();
  const int64_t E = ep.n_experts;
  // Each rank's expert tensors, packed in schema order.
  std::vector<float> send;
  for (size_t i = 0; i < share.size(); ++i)
    if (share.specs()[i].expert >= 0) send.insert(send.end(), share.value(i).begin(), share.value(i).end());
  std::vector<int64_t> counts(size_t(P), 0);
  for (int r = 0; r < P; ++r)
    for (const WeightSpec& s : enumerate_weights(c, dist::expert_scope(E, P, r)))
      if (s.expert >= 0 && !s.optional) counts[size_t(r)] += s.numel();
  if (counts[size_t(comm.rank())] != int64_t(send.size()))
    fail("gather_experts: EP rank {} holds {} expert values, its scope implies {}", comm.rank(), send.size(),
         counts[size_t(comm.rank())]);
  const std::vector<int64_t> displs = dist::displacements(counts);
  const bool is_root = comm.rank() == root;
  std::vector<float> all(is_root ? size_t(displs.back() + counts.back()) : 0);
  comm.gatherv(send.data(), send.size(), is_root ? all.data() : nullptr, counts, displs, dist::DType::F32, root);
  if (!is_root) return std::nullopt;

  Params full(c);
  for (size_t i = 0; i < share.size(); ++i)
    if (share.specs()[i].expert < 0)
      std::copy(share.value(i).begin(), share.value(i).end(), full.value(full.index(share.specs()[i].name)).begin());
  for (int r = 0; r < P; ++r) {
    const float* p = all.data() + displs[size_t(r)];
    for (const WeightSpec& s : enumerate_weights(c, dist::expert_scope(E, P, r))) {
      if (s.expert < 0 || s.optional) continue;
      std::vector<float>& v = full.value(full.index(s.name));
      std::memcpy(v.data(), p, v.size() * sizeof(float));
      p += v.size();
    }
  }
  return full;
}

}  // namespace dsv3::train
