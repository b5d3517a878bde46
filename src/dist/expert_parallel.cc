#include "dist/expert_parallel.h"

#include <fmt/format.h>

#include <algorithm>
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
  const int P = ep_.size();
  const int64_t D = hidden_, W = D + 1;
  if (!planned_) {
    if (calls_ == red_.warmup) {
      plan_redundancy();
    } else {
      for (const ExpertTask& t : tasks) seen_[size_t(t.expert)] += t.m;
    }
  }

  // 1. Destinations: every slot to its expert's holder; a duplicated expert's slots to the least busy copy.
  int64_t slots = 0;
  for (const ExpertTask& t : tasks) {
    if (t.expert < 0 || t.expert >= c_.n_routed_experts)
      fail("MoE: expert {} is outside this layer's {} experts", t.expert, c_.n_routed_experts);
    slots += t.m;
  }
  busy_.assign(size_t(P), 0);
  for (const ExpertTask& t : tasks)
    if (holders_[size_t(t.expert)].size() == 1) busy_[size_t(holders_[size_t(t.expert)][0])] += t.m;
  dest_.resize(size_t(slots));
  send_counts_.assign(size_t(P), 0);
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
      dest_[size_t(g)] = r;
      ++send_counts_[size_t(r)];
    }
  }
  sdispl_ = displacements(send_counts_);
  fill_ = sdispl_;
  pos_.resize(size_t(slots));
  send_.resize(size_t(slots * W));
  g = 0;
  for (const ExpertTask& t : tasks)
    for (int64_t i = 0; i < t.m; ++i, ++g) {
      const int64_t p = fill_[size_t(dest_[size_t(g)])]++;
      pos_[size_t(g)] = p;
      float* row = send_.data() + p * W;
      std::memcpy(row, t.x + i * D, size_t(D) * sizeof(float));
      row[D] = id_bits(t.expert);
    }

  // 2. Counts, then the rows; the shared expert over this rank's rows while they travel.
  recv_counts_.assign(size_t(P), 0);
  ep_.alltoall(send_counts_.data(), 1, recv_counts_.data(), DType::I64);
  rdispl_ = displacements(recv_counts_);
  const int64_t n_recv = rdispl_.back() + recv_counts_.back();
  recv_.resize(size_t(n_recv * W));
  scaled(send_counts_, W, sc_);
  scaled(sdispl_, W, sd_);
  scaled(recv_counts_, W, rc_);
  scaled(rdispl_, W, rd_);
  {
    RequestPtr req = ep_.ialltoallv(send_.data(), sc_, sd_, recv_.data(), rc_, rd_, DType::F32);
    if (w_.has_shared && m > 0) {
      shared_.resize(size_t(m * D));
      ffn_forward(w_.shared, x, m, shared_.data(), ffn_, lin_);
    }
    req->wait();
  }

  // 3. Every received slot through its expert.
  compute(n_recv);
  if (load_) {
    load_->rows.push_back(n_recv);
    load_->layer_call.push_back(calls_);
  }

  // 4. The outputs back to the slots they came from.
  back_.resize(size_t(slots * D));
  scaled(recv_counts_, D, rc_);
  scaled(rdispl_, D, rd_);
  scaled(send_counts_, D, sc_);
  scaled(sdispl_, D, sd_);
  ep_.alltoallv(y_.data(), rc_, rd_, back_.data(), sc_, sd_, DType::F32);

  // 5. The fixed-order sum: ascending expert (the tasks' order), each task's rows in order, then shared.
  g = 0;
  for (const ExpertTask& t : tasks)
    for (int64_t i = 0; i < t.m; ++i, ++g) {
      const float gate = t.gates[i];
      float* o = out + t.rows[i] * D;
      const float* y = back_.data() + pos_[size_t(g)] * D;
      for (int64_t j = 0; j < D; ++j) o[j] += gate * y[j];
    }
  if (w_.has_shared)
    for (int64_t i = 0; i < m * D; ++i) out[i] += shared_[size_t(i)];
  ++calls_;
}

void EpExperts::compute(int64_t n_recv) {
  const int64_t D = hidden_, W = D + 1, E = c_.n_routed_experts;
  y_.assign(size_t(n_recv * D), 0.0f);
  if (n_recv == 0) return;
  // Group the received rows by expert, ascending; within an expert in arrival order (source rank, then
  // the source's own order, which is its tasks' row order).
  ecount_.assign(size_t(E) + 1, 0);
  for (int64_t r = 0; r < n_recv; ++r) {
    const int64_t e = id_of(recv_[size_t(r * W + D)]);
    (void)expert(e);  // held here, or a clear error
    ++ecount_[size_t(e) + 1];
  }
  for (int64_t e = 0; e < E; ++e) ecount_[size_t(e) + 1] += ecount_[size_t(e)];
  eoff_.assign(ecount_.begin(), ecount_.end() - 1);
  order_.resize(size_t(n_recv));
  xin_.resize(size_t(n_recv * D));
  for (int64_t r = 0; r < n_recv; ++r) {
    const int64_t e = id_of(recv_[size_t(r * W + D)]);
    const int64_t p = eoff_[size_t(e)]++;
    order_[size_t(p)] = r;
    std::memcpy(xin_.data() + p * D, recv_.data() + r * W, size_t(D) * sizeof(float));
  }
  int64_t most = 0;
  for (int64_t e = 0; e < E; ++e) most = std::max(most, ecount_[size_t(e) + 1] - ecount_[size_t(e)]);
  if (most <= kernels::swiglu_max_rows()) {
    // Decode: every expert in one fused pass, each row's output into its own row of y_ (zeroed: y = 0 + y).
    fused_.clear();
    for (int64_t e = 0; e < E; ++e) {
      const int64_t b = ecount_[size_t(e)], n = ecount_[size_t(e) + 1] - b;
      if (n == 0) continue;
      const FfnWeights& f = expert(e);
      fused_.push_back(
          {.w1 = f.w1, .w3 = f.w3, .w2 = f.w2, .x = xin_.data() + b * D, .m = n, .rows = order_.data() + b});
    }
    kernels::swiglu_experts(fused_, D, y_.data(), ffn_.fused, lin_);
    return;
  }
  for (int64_t e = 0; e < E; ++e) {
    const int64_t b = ecount_[size_t(e)], n = ecount_[size_t(e) + 1] - b;
    if (n == 0) continue;
    tmp_.resize(std::max(tmp_.size(), size_t(n * D)));
    ffn_forward(expert(e), xin_.data() + b * D, n, tmp_.data(), ffn_, lin_);
    for (int64_t i = 0; i < n; ++i)
      std::memcpy(y_.data() + order_[size_t(b + i)] * D, tmp_.data() + i * D, size_t(D) * sizeof(float));
  }
}

}  // namespace dsv3::dist
