#include "dist/expert_parallel.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <numeric>

#include "core/error.h"
#include "dist/layout.h"
#include "kernels/swiglu.h"

namespace dsv3::dist {

namespace {

// The expert id travels as the last float of its row, bit for bit.
float id_bits(int64_t e) {
  const int32_t i = int32_t(e);
  float f;
  std::memcpy(&f, &i, sizeof f);
  return f;
}
int64_t id_of(float f) {
  int32_t i;
  std::memcpy(&i, &f, sizeof i);
  return i;
}

void scaled(std::span<const int64_t> v, int64_t by, std::vector<int64_t>& out) {
  out.resize(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = v[i] * by;
}

}  // namespace

EpExperts::EpExperts(Comm& ep, const ModelConfig& c, const LayerWeights& layer, const kernels::LinearOptions& lin,
                     Redundancy redundancy, ExpertBinder bind, std::shared_ptr<ExpertLoad> load)
    : ep_(ep),
      c_(c),
      w_(layer.moe),
      layer_(layer.index),
      hidden_(c.hidden_size),
      lin_(lin),
      red_(redundancy),
      bind_(std::move(bind)),
      load_(std::move(load)) {
  const int64_t E = c.n_routed_experts;
  const int P = ep.size();
  if (red_.experts < 0 || red_.experts > E)
    fail("--redundant-experts {}: must be in 0..{} (the model's routed experts per layer)", red_.experts, E);
  if (red_.warmup < 0) fail("--redundant-warmup {}: must be >= 0", red_.warmup);
  if (red_.experts > 0 && P < 2)
    fail("--redundant-experts {}: needs an expert-parallel job (--ep 2 or more)", red_.experts);
  if (red_.experts > 0 && !bind_)
    fail("--redundant-experts {}: the model's weights do not come from a checkpoint to bind copies from", red_.experts);
  if (int64_t(w_.experts.size()) != E)
    fail("layer {}: {} expert slots for the model's {} routed experts", layer_, w_.experts.size(), E);
  holders_.resize(size_t(E));
  const SchemaScope mine = expert_scope(E, P, ep.rank());
  for (int64_t e = 0; e < E; ++e) {
    holders_[size_t(e)] = {expert_owner(E, P, e)};
    if (mine.has(e) && !w_.experts[size_t(e)].w1.data)
      fail("layer {}: EP rank {} owns expert {} but its weights are not bound", layer_, ep.rank(), e);
  }
  extra_.resize(size_t(E));
  seen_.assign(size_t(E), 0);
  planned_ = red_.experts == 0;
}

const FfnWeights& EpExperts::expert(int64_t e) const {
  if (e < 0 || e >= c_.n_routed_experts)
    fail("layer {}: EP rank {} received a row for expert {} (the layer has {})", layer_, ep_.rank(), e,
         c_.n_routed_experts);
  const FfnWeights& own = w_.experts[size_t(e)];
  if (own.w1.data) return own;
  const FfnWeights& copy = extra_[size_t(e)];
  if (!copy.w1.data)
    fail("layer {}: EP rank {} received a row for expert {}, which it does not hold", layer_, ep_.rank(), e);
  return copy;
}

void EpExperts::plan_redundancy() {
  const int64_t E = c_.n_routed_experts;
  const int P = ep_.size();
  ep_.allreduce(std::span<int64_t>(seen_), ReduceOp::Sum);  // the group's load, identical on every rank
  std::vector<int64_t> by_load(static_cast<size_t>(E));
  std::iota(by_load.begin(), by_load.end(), 0);
  std::stable_sort(by_load.begin(), by_load.end(),
                   [&](int64_t a, int64_t b) { return seen_[size_t(a)] > seen_[size_t(b)]; });
  std::vector<double> rank_load(size_t(P), 0.0);
  for (int64_t e = 0; e < E; ++e) rank_load[size_t(holders_[size_t(e)][0])] += double(seen_[size_t(e)]);
  std::string line;
  for (int64_t i = 0; i < red_.experts; ++i) {
    const int64_t e = by_load[size_t(i)];
    std::vector<int>& h = holders_[size_t(e)];
    int best = -1;
    for (int r = 0; r < P; ++r)
      if (std::find(h.begin(), h.end(), r) == h.end() && (best < 0 || rank_load[size_t(r)] < rank_load[size_t(best)]))
        best = r;
    if (best < 0) continue;  // every rank holds it already
    const double load = double(seen_[size_t(e)]), before = load / double(h.size()), after = load / double(h.size() + 1);
    for (int r : h) rank_load[size_t(r)] -= before - after;
    rank_load[size_t(best)] += after;
    h.push_back(best);
    if (best == ep_.rank()) extra_[size_t(e)] = bind_(layer_, e, extra_owned_);
    line += fmt::format("{}{}→{} ({} rows)", line.empty() ? "" : ", ", e, best, seen_[size_t(e)]);
  }
  planned_ = true;
  if (ep_.rank() == 0) {
    std::fprintf(stderr, "dsv3: layer %lld: redundant experts after %lld warm-up calls: %s\n", (long long)layer_,
                 (long long)red_.warmup, line.c_str());
    std::fflush(stderr);
  }
}

void EpExperts::run(std::span<const ExpertTask> tasks, const float* x, int64_t m, float* out) {
  begin(0, tasks, x, m);
  compute(0);
  combine(0);
  end(0, out);
}

EpExperts::Flight& EpExperts::flight(int slot, int stage, const char* what) {
  if (slot != 0 && slot != 1) fail("layer {}: micro-batch slot {} (there are two: 0 and 1)", layer_, slot);
  Flight& f = flights_[slot];
  if (f.stage != stage)
    fail("layer {}: EpExperts::{} on micro-batch slot {} out of order (stage {}, expected {})", layer_, what, slot,
         f.stage, stage);
  return f;
}

void EpExperts::poke(int slot) {
  Flight& f = flights_[slot];
  if (f.req && (f.stage == 1 || f.stage == 3) && f.req->test()) {
    // Done: completion is remembered by the request (a later wait() returns at once).
  }
}

RequestPtr EpExperts::post_rows(const Flight& f, bool to_owner, int64_t width, const float* send, float* recv) {
  scaled(to_owner ? f.send_counts : f.recv_counts, width, sc_);
  scaled(to_owner ? f.sdispl : f.rdispl, width, sd_);
  scaled(to_owner ? f.recv_counts : f.send_counts, width, rc_);
  scaled(to_owner ? f.rdispl : f.sdispl, width, rd_);
  return ep_.ialltoallv(send, sc_, sd_, recv, rc_, rd_, DType::F32);
}

void EpExperts::begin(int slot, std::span<const ExpertTask> tasks, const float* x, int64_t m) {
  using clock = std::chrono::steady_clock;
  Flight& f = flight(slot, 0, "begin");
  const int P = ep_.size();
  const int64_t D = hidden_, W = D + 1;
  if (!planned_) {
    if (calls_ == red_.warmup) {
      plan_redundancy();
    } else {
      for (const ExpertTask& t : tasks) seen_[size_t(t.expert)] += t.m;
    }
  }
  f.tasks = tasks;
  f.x = x;
  f.m = m;

  // 1. Destinations: every slot to its expert's holder; a duplicated expert's slots to the least busy copy.
  int64_t slots = 0;
  for (const ExpertTask& t : tasks) {
    if (t.expert < 0 || t.expert >= c_.n_routed_experts)
      fail("MoE: expert {} is outside this layer's {} experts", t.expert, c_.n_routed_experts);
    slots += t.m;
  }
  f.slots = slots;
  busy_.assign(size_t(P), 0);
  for (const ExpertTask& t : tasks)
    if (holders_[size_t(t.expert)].size() == 1) busy_[size_t(holders_[size_t(t.expert)][0])] += t.m;
  f.dest.resize(size_t(slots));
  f.send_counts.assign(size_t(P), 0);
  int64_t g = 0;
  for (const ExpertTask& t : tasks) {
    const std::vector<int>& h = holders_[size_t(t.expert)];
    for (int64_t i = 0; i < t.m; ++i, ++g) {
      int r = h[0];
      if (h.size() > 1) {
        for (int c : h)
          if (busy_[size_t(c)] < busy_[size_t(r)] || (busy_[size_t(c)] == busy_[size_t(r)] && c < r)) r = c;
        ++busy_[size_t(r)];
      }
      f.dest[size_t(g)] = r;
      ++f.send_counts[size_t(r)];
    }
  }
  f.sdispl = displacements(f.send_counts);
  fill_ = f.sdispl;
  f.pos.resize(size_t(slots));
  f.send.resize(size_t(slots * W));
  g = 0;
  for (const ExpertTask& t : tasks)
    for (int64_t i = 0; i < t.m; ++i, ++g) {
      const int64_t p = fill_[size_t(f.dest[size_t(g)])]++;
      f.pos[size_t(g)] = p;
      float* row = f.send.data() + p * W;
      std::memcpy(row, t.x + i * D, size_t(D) * sizeof(float));
      row[D] = id_bits(t.expert);
    }

  // 2. Counts (every rank of the group meets here), then the rows, left in flight.
  f.recv_counts.assign(size_t(P), 0);
  const auto t0 = clock::now();
  ep_.alltoall(f.send_counts.data(), 1, f.recv_counts.data(), DType::I64);
  const auto t1 = clock::now();
  f.rdispl = displacements(f.recv_counts);
  f.n_recv = f.rdispl.back() + f.recv_counts.back();
  f.recv.resize(size_t(f.n_recv * W));
  f.req = post_rows(f, true, W, f.send.data(), f.recv.data());
  f.stage = 1;
  if (load_) {
    load_->time.sync += std::chrono::duration<double>(t1 - t0).count();
    load_->time.comm += std::chrono::duration<double>(clock::now() - t1).count();
  }
}

void EpExperts::compute(int slot) {
  using clock = std::chrono::steady_clock;
  Flight& f = flight(slot, 1, "compute");
  const int other = 1 - slot;
  const int64_t D = hidden_;
  // The shared expert over this rank's own rows while they travel.
  auto t0 = clock::now();
  if (w_.has_shared && f.m > 0) {
    f.shared.resize(size_t(f.m * D));
    ffn_forward(w_.shared, f.x, f.m, f.shared.data(), ffn_, lin_);
  }
  poke(other);
  auto t1 = clock::now();
  f.req->wait();
  f.req.reset();
  auto t2 = clock::now();
  // 3. Every received slot through its expert.
  run_experts(f, other);
  auto t3 = clock::now();
  if (load_) {
    load_->rows.push_back(f.n_recv);
    load_->layer_call.push_back(calls_);
    load_->time.experts += std::chrono::duration<double>((t1 - t0) + (t3 - t2)).count();
    load_->time.comm += std::chrono::duration<double>(t2 - t1).count();
  }
  f.stage = 2;
}

void EpExperts::combine(int slot) {
  using clock = std::chrono::steady_clock;
  Flight& f = flight(slot, 2, "combine");
  const int64_t D = hidden_;
  const auto t0 = clock::now();
  // 4. The outputs back to the slots they came from, left in flight.
  f.back.resize(size_t(f.slots * D));
  f.req = post_rows(f, false, D, f.y.data(), f.back.data());
  f.stage = 3;
  if (load_) load_->time.comm += std::chrono::duration<double>(clock::now() - t0).count();
}

void EpExperts::end(int slot, float* out) {
  using clock = std::chrono::steady_clock;
  Flight& f = flight(slot, 3, "end");
  const int64_t D = hidden_;
  const auto t0 = clock::now();
  f.req->wait();
  f.req.reset();
  if (load_) {
    load_->time.comm += std::chrono::duration<double>(clock::now() - t0).count();
    ++load_->time.calls;
  }
  // 5. The fixed-order sum: ascending expert (the tasks' order), each task's rows in order, then shared.
  int64_t g = 0;
  for (const ExpertTask& t : f.tasks)
    for (int64_t i = 0; i < t.m; ++i, ++g) {
      const float gate = t.gates[i];
      float* o = out + t.rows[i] * D;
      const float* y = f.back.data() + f.pos[size_t(g)] * D;
      for (int64_t j = 0; j < D; ++j) o[j] += gate * y[j];
    }
  if (w_.has_shared)
    for (int64_t i = 0; i < f.m * D; ++i) out[i] += f.shared[size_t(i)];
  f.tasks = {};
  f.x = nullptr;
  f.stage = 0;
  ++calls_;
}

void EpExperts::run_experts(Flight& f, int other) {
  const int64_t D = hidden_, W = D + 1, E = c_.n_routed_experts;
  const int64_t n_recv = f.n_recv;
  const std::vector<float>& recv = f.recv;
  f.y.assign(size_t(n_recv * D), 0.0f);
  if (n_recv == 0) return;
  // Group the received rows by expert, ascending; within an expert in arrival order (source rank, then
  // the source's own order, which is its tasks' row order).
  ecount_.assign(size_t(E) + 1, 0);
  for (int64_t r = 0; r < n_recv; ++r) {
    const int64_t e = id_of(recv[size_t(r * W + D)]);
    (void)expert(e);  // held here, or a clear error
    ++ecount_[size_t(e) + 1];
  }
  for (int64_t e = 0; e < E; ++e) ecount_[size_t(e) + 1] += ecount_[size_t(e)];
  eoff_.assign(ecount_.begin(), ecount_.end() - 1);
  order_.resize(size_t(n_recv));
  xin_.resize(size_t(n_recv * D));
  for (int64_t r = 0; r < n_recv; ++r) {
    const int64_t e = id_of(recv[size_t(r * W + D)]);
    const int64_t p = eoff_[size_t(e)]++;
    order_[size_t(p)] = r;
    std::memcpy(xin_.data() + p * D, recv.data() + r * W, size_t(D) * sizeof(float));
  }
  int64_t most = 0;
  for (int64_t e = 0; e < E; ++e) most = std::max(most, ecount_[size_t(e) + 1] - ecount_[size_t(e)]);
  if (most <= kernels::swiglu_max_rows()) {
    // Decode: every expert in one fused pass, each row's output into its own row of y (zeroed: y = 0 + y).
    fused_.clear();
    for (int64_t e = 0; e < E; ++e) {
      const int64_t b = ecount_[size_t(e)], n = ecount_[size_t(e) + 1] - b;
      if (n == 0) continue;
      const FfnWeights& fw = expert(e);
      fused_.push_back(
          {.w1 = fw.w1, .w3 = fw.w3, .w2 = fw.w2, .x = xin_.data() + b * D, .m = n, .rows = order_.data() + b});
    }
    kernels::swiglu_experts(fused_, D, f.y.data(), ffn_.fused, lin_);
    poke(other);
    return;
  }
  for (int64_t e = 0; e < E; ++e) {
    const int64_t b = ecount_[size_t(e)], n = ecount_[size_t(e) + 1] - b;
    if (n == 0) continue;
    tmp_.resize(std::max(tmp_.size(), size_t(n * D)));
    ffn_forward(expert(e), xin_.data() + b * D, n, tmp_.data(), ffn_, lin_);
    for (int64_t i = 0; i < n; ++i)
      std::memcpy(f.y.data() + order_[size_t(b + i)] * D, tmp_.data() + i * D, size_t(D) * sizeof(float));
    poke(other);
  }
}

}  // namespace dsv3::dist
