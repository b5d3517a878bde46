#include "train/data_parallel.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "train/adamw.h"

namespace dsv3::train {

namespace {

// Greedy whole-tensor partition: largest first (schema order among equals) onto the candidate with the
// fewest floats so far (the lower rank among equals).
void assign(std::vector<const WeightSpec*> list, const std::vector<int>& candidates, ZeroPartition& p) {
  std::stable_sort(list.begin(), list.end(),
                   [](const WeightSpec* a, const WeightSpec* b) { return a->numel() > b->numel(); });
  for (const WeightSpec* s : list) {
    int best = candidates.front();
    for (int r : candidates)
      if (p.floats[size_t(r)] < p.floats[size_t(best)]) best = r;
    p.owner[s->name] = best;
    p.floats[size_t(best)] += s->numel();
    if (trainable(s->role)) p.trainable_floats[size_t(best)] += s->numel();
  }
}

// Order of the backward's grads_ready reports: MTP modules and layers from the last HF index down, then −1
// (embedding, final norm, head).
int64_t stage_of(const WeightSpec& s) { return s.layer >= 0 ? s.layer : -1; }
bool finished_before(int64_t a, int64_t b) {
  if (a < 0 || b < 0) return a >= 0 && b < 0;
  return a > b;
}

}  // namespace

ZeroPartition zero_partition(const ModelConfig& c, const dist::Layout& layout, const SchemaScope& stage) {
  const int N = layout.stage_ranks(), ep = layout.ep;
  ZeroPartition p;
  p.floats.assign(size_t(N), 0);
  p.trainable_floats.assign(size_t(N), 0);
  SchemaScope scope = stage;
  scope.expert_begin = 0, scope.expert_end = -1;
  const std::vector<WeightSpec> all = enumerate_weights(c, scope);
  std::vector<std::vector<const WeightSpec*>> experts(static_cast<size_t>(ep));
  std::vector<const WeightSpec*> rest;
  for (const WeightSpec& s : all) {
    if (s.optional) continue;
    if (s.expert >= 0)
      experts[size_t(dist::expert_owner(c.n_routed_experts, ep, s.expert))].push_back(&s);
    else
      rest.push_back(&s);
  }
  for (int e = 0; e < ep; ++e) {
    std::vector<int> dp_group;
    for (int d = 0; d < layout.dp; ++d) dp_group.push_back(d * ep + e);
    assign(experts[size_t(e)], dp_group, p);
  }
  std::vector<int> everyone(static_cast<size_t>(N));
  for (int r = 0; r < N; ++r) everyone[size_t(r)] = r;
  assign(rest, everyone, p);
  return p;
}

DataParallel::DataParallel(const ModelConfig& c, dist::Comm& world, const dist::Groups& groups, const Params& params,
                           Params& grads, const DataParallelOptions& o)
    : world_(world), pipeline_(o.pipeline), part_(zero_partition(c, groups.layout, params.scope())) {
  if (params.size() != grads.size()) fail("data parallel: {} parameters but {} gradients", params.size(), grads.size());
  if (world.size() != groups.layout.stage_ranks())
    fail("data parallel: {} ranks for a stage of dp {} × ep {}", world.size(), groups.layout.dp, groups.layout.ep);
  if (pipeline_.pp && pipeline_.counted.size() != params.size())
    fail("data parallel: {} pipeline norm flags for {} tensors", pipeline_.counted.size(), params.size());
  const int ep = groups.layout.ep;
  owned_.assign(params.size(), 0);
  owner_.assign(params.size(), 0);
  for (size_t i = 0; i < params.size(); ++i) {
    const WeightSpec& s = params.specs()[i];
    auto it = part_.owner.find(s.name);
    if (it == part_.owner.end()) fail("data parallel: {} is not a tensor of the model's schema", s.name);
    owner_[i] = it->second;
    owned_[i] = it->second == world.rank();
    if (s.expert >= 0 && it->second % ep != groups.ep_rank)
      fail("data parallel: rank {} (EP rank {}) holds expert tensor {} of EP rank {}", world.rank(), groups.ep_rank,
           s.name, it->second % ep);
  }
  std::vector<int> dp_owner(owner_.size());
  for (size_t i = 0; i < owner_.size(); ++i) dp_owner[i] = owner_[i] / ep;
  build(replicated_, world, false, grads, o.bucket_bytes, owner_);
  build(experts_, *groups.dp, true, grads, o.bucket_bytes, dp_owner);
}

void DataParallel::build(Group& g, dist::Comm& comm, bool experts, Params& grads, size_t bucket_bytes,
                         const std::vector<int>& comm_owner) {
  g.comm = &comm;
  for (size_t i = 0; i < grads.size(); ++i) {
    const WeightSpec& s = grads.specs()[i];
    if (trainable(s.role) && (s.expert >= 0) == experts) g.tensors.push_back(i);
  }
  // For the parameter all-gather: packed by owner, then index.
  std::stable_sort(g.tensors.begin(), g.tensors.end(),
                   [&](size_t a, size_t b) { return comm_owner[a] < comm_owner[b]; });
  g.counts.assign(size_t(comm.size()), 0);
  for (size_t i : g.tensors) g.counts[size_t(comm_owner[i])] += int64_t(grads.value(i).size());
  g.displs = dist::displacements(g.counts);
  // For the gradient buckets: the order the backward finishes them.
  std::vector<size_t> order = g.tensors;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const int64_t sa = stage_of(grads.specs()[a]), sb = stage_of(grads.specs()[b]);
    if (sa != sb) return finished_before(sa, sb);
    return a > b;
  });
  std::vector<dist::ReduceBuffer> bufs;
  for (size_t i : order) bufs.push_back({grads.value(i).data(), grads.value(i).size(), stage_of(grads.specs()[i])});
  g.reduce = std::make_unique<dist::BucketedAllreduce>(comm, std::move(bufs), bucket_bytes);
}

void DataParallel::begin_step() {
  replicated_.reduce->begin();
  experts_.reduce->begin();
}

StepHooks DataParallel::hooks() {
  return {.grads_ready = [this](int64_t layer) {
    replicated_.reduce->mark_ready(layer);
    experts_.reduce->mark_ready(layer);
  }};
}

void DataParallel::finish_grads() {
  replicated_.reduce->finish();
  experts_.reduce->finish();
}

size_t DataParallel::buckets_overlapped() const {
  return replicated_.reduce->started_early() + experts_.reduce->started_early();
}
size_t DataParallel::buckets_total() const { return replicated_.reduce->buckets() + experts_.reduce->buckets(); }

double DataParallel::clip(Params& grads, double max_norm) const {
  double sq = 0;
  if (!pipeline_.pp) {
    sq = sum({grad_sq_sum(grads, owned_)})[0];
  } else {  // each unique tensor once: owned here and counted by this pipeline rank; stages added in pp order
    std::vector<char> mine(owned_.size());
    for (size_t i = 0; i < mine.size(); ++i) mine[i] = owned_[i] && pipeline_.counted[i];
    const double stage = sum({grad_sq_sum(grads, mine)})[0];
    const size_t P = size_t(pipeline_.pp->size());
    std::vector<double> all(P);
    pipeline_.pp->allgather(&stage, 1, all.data(), dist::DType::F64);
    for (double x : all) sq += x;
  }
  const double norm = std::sqrt(sq);
  if (max_norm <= 0) return norm;
  const double coef = max_norm / (norm + 1e-6);
  if (coef >= 1.0) return norm;
  scale_grads(grads, float(coef), owned_);
  return norm;
}

void DataParallel::sync_params(Params& params) const {
  for (const Group* g : {&replicated_, &experts_}) {
    dist::Comm& comm = *g->comm;
    if (comm.size() == 1 || g->tensors.empty()) continue;
    const int me = comm.rank();
    const int64_t total = g->displs.back() + g->counts.back();
    std::vector<float> all(static_cast<size_t>(total)), mine;
    mine.reserve(size_t(g->counts[size_t(me)]));
    for (size_t i : g->tensors)
      if (owned_[i]) mine.insert(mine.end(), params.value(i).begin(), params.value(i).end());
    comm.allgatherv(mine.data(), mine.size(), all.data(), g->counts, g->displs, dist::DType::F32);
    const float* at = all.data();
    for (size_t i : g->tensors) {
      if (!owned_[i]) std::memcpy(params.value(i).data(), at, params.value(i).size() * sizeof(float));
      at += params.value(i).size();
    }
  }
}

std::vector<double> DataParallel::sum(const std::vector<double>& v) const {
  const size_t n = v.size(), P = size_t(world_.size());
  std::vector<double> all(n * P);
  world_.allgather(v.data(), n, all.data(), dist::DType::F64);
  std::vector<double> out(n, 0.0);
  for (size_t r = 0; r < P; ++r)
    for (size_t j = 0; j < n; ++j) out[j] += all[r * n + j];
  return out;
}

void DataParallel::sum_exact(std::vector<int64_t>& v) const {
  if (world_.size() > 1 && !v.empty()) world_.allreduce(std::span<int64_t>(v));
}

std::string DataParallel::describe_partition(int64_t optimizer_bytes, int64_t unsharded_optimizer_bytes) const {
  size_t n = 0;
  for (char o : owned_) n += o;
  return fmt::format(
      "rank {}: ZeRO-1 owner of {} tensors ({:.2f}M floats); optimizer state {:.2f} MiB (unsharded {:.2f} MiB)",
      world_.rank(), n, double(part_.floats[size_t(world_.rank())]) / 1e6, double(optimizer_bytes) / (1 << 20),
      double(unsharded_optimizer_bytes) / (1 << 20));
}

}  // namespace dsv3::train
