#include "dist/ep_inference.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <mutex>
#include <thread>

#include "core/error.h"
#include "dist/rank_memory.h"
#include "dist/world.h"

namespace dsv3::dist {

namespace {

enum Kind : int64_t { kStop = 0, kMain = 1, kMtp = 2, kReport = 3, kTime = 4 };
enum Tag : int { kTagLength = 7101, kTagStep = 7102, kTagHidden = 7103 };
constexpr int64_t kHeader = 9;    // kind, module, logits, hidden, from_call, micro, released, chunks, tokens
constexpr int64_t kPerChunk = 5;  // id, rank, start, n, capacity

int64_t logit_rows(LogitRows mode, int64_t n) {
  return mode == LogitRows::All ? n : mode == LogitRows::LastOfEachChunk ? 1 : 0;
}

// Waits for a request without spinning a core forever: tight polls first (a step follows the previous one
// within microseconds while generating), then sleeps growing to 2 ms (an idle server).
void patient_wait(Request& r) {
  for (int i = 0; i < 20000; ++i)
    if (r.test()) return;
  auto nap = std::chrono::microseconds(20);
  while (!r.test()) {
    std::this_thread::sleep_for(nap);
    nap = std::min(nap * 2, std::chrono::microseconds(2000));
  }
}

}  // namespace

// ---- the step descriptor -------------------------------------------------------------------------------------

struct EpInference::Step {
  struct Chunk {
    int64_t id = 0, rank = 0, start = 0, n = 0, capacity = 0;
  };
  int64_t kind = kStop, module = -1;
  LogitRows logits = LogitRows::None;
  bool hidden = false;
  int64_t from_call = 0;
  int64_t micro = 1;  // ForwardOptions::micro_batches
  std::vector<int64_t> released;
  std::vector<Chunk> chunks;
  std::vector<int32_t> tokens;
  // Derived, per rank: rows, and floats of the gathered block ([rows, hidden] if hidden, then logit rows).
  std::vector<int64_t> rows, floats;

  void encode(std::vector<int64_t>& d) const {
    d.clear();
    d.insert(d.end(), {kind, module, int64_t(logits), hidden ? 1 : 0, from_call, micro, int64_t(released.size()),
                       int64_t(chunks.size()), int64_t(tokens.size())});
    d.insert(d.end(), released.begin(), released.end());
    for (const Chunk& c : chunks) d.insert(d.end(), {c.id, c.rank, c.start, c.n, c.capacity});
    d.insert(d.end(), tokens.begin(), tokens.end());
  }
  void decode(const std::vector<int64_t>& d) {
    if (int64_t(d.size()) < kHeader) fail("step descriptor of {} values, expected at least {}", d.size(), kHeader);
    kind = d[0];
    module = d[1];
    logits = LogitRows(d[2]);
    hidden = d[3] != 0;
    from_call = d[4];
    micro = d[5];
    if (micro != 1 && micro != 2) fail("step descriptor with {} micro-batches", micro);
    const int64_t nr = d[6], nc = d[7], nt = d[8];
    if (int64_t(d.size()) != kHeader + nr + nc * kPerChunk + nt)
      fail("step descriptor of {} values does not hold its {} releases, {} chunks and {} tokens", d.size(), nr, nc, nt);
    const int64_t* p = d.data() + kHeader;
    released.assign(p, p + nr);
    p += nr;
    chunks.resize(size_t(nc));
    for (Chunk& c : chunks) {
      c = {p[0], p[1], p[2], p[3], p[4]};
      p += kPerChunk;
    }
    tokens.assign(p, p + nt);
  }
  void derive(int ranks, int64_t D, int64_t V) {
    rows.assign(size_t(ranks), 0);
    floats.assign(size_t(ranks), 0);
    for (const Chunk& c : chunks) {
      rows[size_t(c.rank)] += c.n;
      floats[size_t(c.rank)] += (hidden ? c.n * D : 0) + logit_rows(logits, c.n) * V;
    }
  }
};

// ---- cache placements (rank 0) --------------------------------------------------------------------------------

struct EpInference::Registry {
  std::mutex mu;
  int64_t next_id = 1;
  std::vector<int64_t> live[2];    // [kind: main, MTP][rank] live caches
  std::vector<int64_t> placed[2];  // [kind][rank] caches ever placed
  std::vector<int64_t> released;   // ids of caches on ranks ≠ 0 destroyed since the last step
};

namespace {

class Placed final : public CachePlacement {
 public:
  Placed(std::shared_ptr<EpInference::Registry> reg, int64_t id, int rank, int kind)
      : reg_(std::move(reg)), id_(id), rank_(rank), kind_(kind) {}
  ~Placed() override;
  int64_t id() const { return id_; }
  int rank() const { return rank_; }
  int kind() const { return kind_; }

 private:
  std::shared_ptr<EpInference::Registry> reg_;
  int64_t id_;
  int rank_, kind_;
};

}  // namespace

Placed::~Placed() {
  std::lock_guard lk(reg_->mu);
  --reg_->live[kind_][size_t(rank_)];
  if (rank_ != 0) reg_->released.push_back(id_);
}

// ---- the job ----------------------------------------------------------------------------------------------

EpInference::EpInference(Comm& world, const ModelConfig& c, EpOptions options)
    : world_(world), opt_(options), rank_(world.rank()), size_(world.size()) {
  if (opt_.ep != size_)
    fail(
        "--ep {}: inference runs attention data-parallel and expert-parallel over every rank, so --ep must equal "
        "the job's {} rank{} (start it with mpirun -np {})",
        opt_.ep, size_, size_ == 1 ? "" : "s", opt_.ep);
  const Layout layout = make_layout(size_, 1, opt_.ep, c.n_routed_experts);
  const Redundancy& red = opt_.redundancy;
  if (red.experts < 0 || red.experts > c.n_routed_experts)
    fail("--redundant-experts {}: must be in 0..{} (the model's routed experts per layer)", red.experts,
         c.n_routed_experts);
  if (red.experts > 0 && opt_.ep < 2) fail("--redundant-experts {}: needs --ep 2 or more", red.experts);
  if (red.warmup < 0) fail("--redundant-warmup {}: must be >= 0", red.warmup);
  groups_ = make_groups(world_, layout);
  load_ = std::make_shared<ExpertLoad>();
  registry_ = std::make_shared<Registry>();
  for (int k = 0; k < 2; ++k) {
    registry_->live[k].assign(size_t(size_), 0);
    registry_->placed[k].assign(size_t(size_), 0);
  }
}

EpInference::~EpInference() = default;

SchemaScope EpInference::expert_scope(const ModelConfig& c) {
  if (opt_.ep > 1 && c.n_routed_experts < opt_.ep)
    fail("--ep {}: more EP ranks than the model's {} routed experts", opt_.ep, c.n_routed_experts);
  return dist::expert_scope(c.n_routed_experts, opt_.ep, groups_.ep_rank);
}

std::unique_ptr<ExpertExecutor> EpInference::make_experts(const ModelConfig& c, const LayerWeights& layer,
                                                          const kernels::LinearOptions& lin, const ExpertBinder& bind) {
  return std::make_unique<EpExperts>(*groups_.ep, c, layer, lin, opt_.redundancy, bind, load_);
}

std::string EpInference::describe(const ModelConfig& c, const std::string& model_dir) const {
  const io::Checkpoint ck = io::Checkpoint::open(model_dir);  // headers only (mmap'd, nothing paged in)
  const RankWeights w = rank_weight_bytes(c, opt_.ep, &ck)[size_t(groups_.ep_rank)];
  return fmt::format("{}; pid {}; weights {} replicated + {} routed = {}",
                     dist::describe(groups_, world_, c.n_routed_experts), ::getpid(), human_bytes(w.replicated),
                     human_bytes(w.routed), human_bytes(w.total()));
}

void EpInference::send_step(const Step& s) {
  s.encode(desc_);
  const int64_t len = int64_t(desc_.size());
  for (int r = 1; r < size_; ++r) {
    world_.send(&len, 1, DType::I64, r, kTagLength);
    world_.send(desc_.data(), desc_.size(), DType::I64, r, kTagStep);
  }
}

std::vector<int64_t> EpInference::placed(bool mtp) const {
  std::lock_guard lk(registry_->mu);
  return registry_->placed[mtp ? 1 : 0];
}

void EpInference::run_share(Model& model, const Step& s, const std::vector<KvCache*>& caches, const float* hidden_in,
                            std::vector<float>& out) {
  const int64_t D = model.config().hidden_size;
  std::vector<SeqChunk> chunks;
  std::vector<int32_t> tokens;
  int64_t t0 = 0;
  size_t k = 0;
  for (const Step::Chunk& c : s.chunks) {
    if (c.rank == rank_) {
      chunks.push_back({caches[k++], c.n});
      tokens.insert(tokens.end(), s.tokens.begin() + t0, s.tokens.begin() + t0 + c.n);
    }
    t0 += c.n;
  }
  const int64_t m = s.rows[size_t(rank_)];
  out.resize(size_t(s.floats[size_t(rank_)]));
  float* hid = s.hidden ? out.data() : nullptr;
  float* lg = s.logits != LogitRows::None ? out.data() + (s.hidden ? m * D : 0) : nullptr;
  const ForwardOptions fo{.logits = s.logits, .micro_batches = int(s.micro)};
  if (s.kind == kMain)
    model.forward_local(tokens, chunks, hid, lg, fo);
  else
    model.mtp_forward_local(s.module, tokens, hidden_in, chunks, hid, lg, fo);
}

void EpInference::step(Model& model, const StepCall& call) {
  if (rank_ != 0) fail("rank {}: a distributed step is started by rank 0 only", rank_);
  if (stopped_) fail("the distributed job was stopped; no further forwards");
  const ModelConfig& c = model.config();
  const int64_t D = c.hidden_size, V = c.vocab_size;
  const bool mtp = call.mtp_module >= 0;
  const int kind = mtp ? 1 : 0;
  Step s;
  s.kind = mtp ? kMtp : kMain;
  s.module = call.mtp_module;
  s.logits = call.logits_out ? call.logits : LogitRows::None;
  s.hidden = call.hidden_out != nullptr;
  // Everything that could fail, before any rank is told anything.
  model.check_call(call.mtp_module, call.tokens, call.chunks, s.logits);
  if (mtp && !call.tokens.empty() && !call.hidden_in) fail("mtp_forward: no hidden_in rows");
  for (const SeqChunk& ch : call.chunks)
    if (auto* p = dynamic_cast<const Placed*>(ch.cache->placement()); p && p->kind() != kind)
      fail("{}: a cache placed for the {} is given to the {}", mtp ? "mtp_forward" : "forward",
           p->kind() ? "MTP module" : "main model", mtp ? "MTP module" : "main model");
  {
    std::lock_guard lk(registry_->mu);
    for (const SeqChunk& ch : call.chunks) {
      if (ch.cache->placement()) continue;
      const std::vector<int64_t>& live = registry_->live[kind];
      const int r = int(std::min_element(live.begin(), live.end()) - live.begin());
      ch.cache->set_placement(std::make_unique<Placed>(registry_, registry_->next_id++, r, kind));
      ++registry_->live[kind][size_t(r)];
      ++registry_->placed[kind][size_t(r)];
    }
    s.released.swap(registry_->released);
  }
  std::vector<KvCache*> mine;
  bool all_here = true;
  for (const SeqChunk& ch : call.chunks) {
    const auto* p = static_cast<const Placed*>(ch.cache->placement());
    s.chunks.push_back({p->id(), p->rank(), ch.cache->length(), ch.n, ch.cache->capacity()});
    if (p->rank() == 0)
      mine.push_back(ch.cache);
    else
      all_here = false;
  }
  s.tokens.assign(call.tokens.begin(), call.tokens.end());
  s.derive(size_, D, V);
  s.micro = opt_.overlap == Overlap::On ? 2
            : opt_.overlap == Overlap::Off
                ? 1
                : (*std::max_element(s.rows.begin(), s.rows.end()) >= opt_.overlap_rows ? 2 : 1);

  try {
    send_step(s);
    if (all_here) {  // one process's sequences (e.g. `dsv3 logits`): rank 0 writes the outputs in place
      const ForwardOptions fo{.logits = s.logits, .micro_batches = int(s.micro)};
      if (mtp)
        model.mtp_forward_local(call.mtp_module, call.tokens, call.hidden_in, call.chunks, call.hidden_out,
                                call.logits_out, fo);
      else
        model.forward_local(call.tokens, call.chunks, call.hidden_out, call.logits_out, fo);
      return;
    }
    // MTP: each rank's hidden_in rows, chunk after chunk.
    const float* hin = nullptr;
    if (mtp) {
      std::vector<float> rows;
      for (int r = 0; r < size_; ++r) {
        std::vector<float>& dst = r == 0 ? hidden_in_ : rows;
        dst.clear();
        int64_t row = 0;
        for (const Step::Chunk& ch : s.chunks) {
          if (ch.rank == r) dst.insert(dst.end(), call.hidden_in + row * D, call.hidden_in + (row + ch.n) * D);
          row += ch.n;
        }
        if (r > 0 && !dst.empty()) world_.send(dst.data(), dst.size(), DType::F32, r, kTagHidden);
      }
      hin = hidden_in_.data();
    }
    run_share(model, s, mine, hin, out_);
    // Every rank's rows back, then in the call's order.
    const std::vector<int64_t> displs = displacements(s.floats);
    const int64_t total = displs.back() + s.floats.back();
    if (total > 0) {
      gathered_.resize(size_t(total));
      world_.gatherv(out_.data(), out_.size(), gathered_.data(), s.floats, displs, DType::F32, 0);
    }
    std::vector<int64_t> hcur(displs), lcur(static_cast<size_t>(size_));
    for (int r = 0; r < size_; ++r) lcur[size_t(r)] = displs[size_t(r)] + (s.hidden ? s.rows[size_t(r)] * D : 0);
    int64_t row = 0;
    for (size_t i = 0; i < s.chunks.size(); ++i) {
      const Step::Chunk& ch = s.chunks[i];
      const size_t r = size_t(ch.rank);
      if (s.hidden) {
        std::memcpy(call.hidden_out + row * D, gathered_.data() + hcur[r], size_t(ch.n * D) * sizeof(float));
        hcur[r] += ch.n * D;
      }
      const int64_t lr = logit_rows(s.logits, ch.n);
      if (lr > 0) {
        float* dst = call.logits_out + (s.logits == LogitRows::All ? row : int64_t(i)) * V;
        std::memcpy(dst, gathered_.data() + lcur[r], size_t(lr * V) * sizeof(float));
        lcur[r] += lr * V;
      }
      row += ch.n;
    }
    for (size_t i = 0; i < s.chunks.size(); ++i)  // rank 0 tracks the remote caches' lengths
      if (s.chunks[i].rank != 0) call.chunks[i].cache->advance(s.chunks[i].n);
  } catch (const std::exception& e) {
    // The other ranks are inside this step: no way back but ending the job.
    abort_job(1, fmt::format("dsv3: rank 0 failed in a distributed step: {}", e.what()));
  }
}

void EpInference::follow(Model& model) {
  if (rank_ == 0) fail("follow: rank 0 leads the job; it does not follow");
  const ModelConfig& c = model.config();
  try {
    Step s;
    std::vector<KvCache*> mine;
    for (;;) {
      int64_t len = 0;
      {
        RequestPtr req = world_.irecv(&len, 1, DType::I64, 0, kTagLength);
        patient_wait(*req);
      }
      desc_.resize(size_t(len));
      world_.recv(desc_.data(), desc_.size(), DType::I64, 0, kTagStep);
      s.decode(desc_);
      if (s.kind == kStop) return;
      if (s.kind == kReport) {
        report_share(s);
        continue;
      }
      if (s.kind == kTime) {
        time_share();
        continue;
      }
      if (s.kind != kMain && s.kind != kMtp) fail("unknown step kind {}", s.kind);
      s.derive(size_, c.hidden_size, c.vocab_size);
      for (int64_t id : s.released) caches_.erase(id);
      mine.clear();
      bool all_at_0 = true;
      for (const Step::Chunk& ch : s.chunks) {
        if (ch.rank != 0) all_at_0 = false;
        if (ch.rank != rank_) continue;
        auto it = caches_.find(ch.id);
        if (it == caches_.end())
          it = caches_.emplace(ch.id, s.kind == kMain ? model.new_cache(ch.capacity) : model.new_mtp_cache(ch.capacity))
                   .first;
        KvCache& kc = it->second;
        if (kc.length() < ch.start)
          fail("cache {} holds {} tokens but rank 0 continues it at position {}", ch.id, kc.length(), ch.start);
        kc.truncate(ch.start);  // rank 0's rollbacks (speculative decoding, prompt reuse)
        mine.push_back(&kc);
      }
      const int64_t m = s.rows[size_t(rank_)];
      if (s.kind == kMtp && m > 0) {
        hidden_in_.resize(size_t(m * c.hidden_size));
        world_.recv(hidden_in_.data(), hidden_in_.size(), DType::F32, 0, kTagHidden);
      }
      run_share(model, s, mine, hidden_in_.data(), out_);
      if (all_at_0) continue;  // rank 0 wrote its outputs in place; nothing to gather
      const std::vector<int64_t> displs = displacements(s.floats);
      if (displs.back() + s.floats.back() > 0)
        world_.gatherv(out_.data(), out_.size(), nullptr, s.floats, displs, DType::F32, 0);
    }
  } catch (const std::exception& e) {
    abort_job(1, fmt::format("dsv3: rank {} failed in a distributed step: {}", rank_, e.what()));
  }
}

void EpInference::stop() {
  if (rank_ != 0 || stopped_) return;
  stopped_ = true;
  Step s;
  s.kind = kStop;
  send_step(s);
}

std::vector<int64_t> EpInference::report_share(const Step& s) {
  std::vector<int64_t> mine;
  for (size_t i = 0; i < load_->rows.size(); ++i)
    if (load_->layer_call[i] >= s.from_call) mine.push_back(load_->rows[i]);
  const std::vector<int64_t> counts = world_.allgather_one<int64_t>(int64_t(mine.size()));
  for (int64_t n : counts)
    if (n != counts[0]) fail("load report: the ranks recorded different numbers of MoE calls");
  const std::vector<int64_t> displs = displacements(counts);
  std::vector<int64_t> all(rank_ == 0 ? size_t(displs.back() + counts.back()) : 0);
  world_.gatherv(mine.data(), mine.size(), rank_ == 0 ? all.data() : nullptr, counts, displs, DType::I64, 0);
  return all;  // rank 0: rank r's entries at r · calls
}

LoadReport EpInference::load_report(int64_t from_call) {
  if (rank_ != 0) fail("load_report: rank 0 asks for it");
  if (stopped_) fail("load_report: the distributed job was stopped");
  Step s;
  s.kind = kReport;
  s.from_call = from_call;
  std::vector<int64_t> all;
  try {
    send_step(s);
    all = report_share(s);
  } catch (const std::exception& e) {
    abort_job(1, fmt::format("dsv3: rank 0 failed gathering the expert load: {}", e.what()));
  }
  LoadReport rep;
  rep.ranks = size_;
  const int64_t calls = int64_t(all.size()) / size_;
  rep.calls = calls;
  rep.total.assign(size_t(size_), 0);
  double sum_ratio = 0;
  int64_t counted = 0;
  for (int64_t k = 0; k < calls; ++k) {
    int64_t mx = 0, sum = 0;
    for (int r = 0; r < size_; ++r) {
      const int64_t v = all[size_t(r * calls + k)];
      rep.total[size_t(r)] += v;
      mx = std::max(mx, v);
      sum += v;
    }
    if (sum > 0) {
      sum_ratio += double(mx) / (double(sum) / size_);
      ++counted;
    }
  }
  int64_t mx = 0, sum = 0;
  for (int64_t v : rep.total) mx = std::max(mx, v), sum += v;
  rep.imbalance = sum > 0 ? double(mx) / (double(sum) / size_) : 0;
  rep.step_imbalance = counted > 0 ? sum_ratio / double(counted) : 0;
  return rep;
}

std::vector<double> EpInference::time_share() {
  ExchangeTime& t = load_->time;
  const double mine[4] = {t.sync, t.comm, t.experts, double(t.calls)};
  t = {};
  std::vector<double> all(rank_ == 0 ? size_t(4 * size_) : 0);
  const std::vector<int64_t> counts(size_t(size_), 4), displs = displacements(counts);
  world_.gatherv(mine, 4, rank_ == 0 ? all.data() : nullptr, counts, displs, DType::F64, 0);
  return all;
}

TimeReport EpInference::time_report() {
  if (rank_ != 0) fail("time_report: rank 0 asks for it");
  if (stopped_) fail("time_report: the distributed job was stopped");
  Step s;
  s.kind = kTime;
  std::vector<double> all;
  try {
    send_step(s);
    all = time_share();
  } catch (const std::exception& e) {
    abort_job(1, fmt::format("dsv3: rank 0 failed gathering the MoE times: {}", e.what()));
  }
  TimeReport rep;
  for (int r = 0; r < size_; ++r)
    rep.ranks.push_back({.sync = all[size_t(4 * r)],
                         .comm = all[size_t(4 * r + 1)],
                         .experts = all[size_t(4 * r + 2)],
                         .calls = int64_t(all[size_t(4 * r + 3)])});
  return rep;
}

}  // namespace dsv3::dist
