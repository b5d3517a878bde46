#include "train/pipeline.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <unordered_map>
#include <utility>

#include "core/error.h"
#include "model/rope.h"
#include "train/layout.h"
#include "train/micro_batch_turns.h"
#include "train/weight_grad_store.h"

namespace dsv3::train {

double layer_flops(const ModelConfig& c, int64_t layer, int64_t T) {
  const double D = double(c.hidden_size), H = double(c.num_attention_heads), qk = double(c.qk_head_dim()),
               dn = double(c.qk_nope_head_dim), dv = double(c.v_head_dim), C = double(c.kv_lora_rank),
               dr = double(c.qk_rope_head_dim), Rq = double(c.q_lora_rank);
  double mac = Rq > 0 ? D * Rq + Rq * H * qk : D * H * qk;  // queries
  mac += D * (C + dr) + C * H * (dn + dv) + H * dv * D;     // wkv_a, wkv_b, wo
  mac += H * (double(T) / 2.0) * (qk + dv);                 // scores and values, causal
  const bool mtp = layer >= c.num_hidden_layers;
  if (mtp) mac += 2 * D * D;  // eh_proj
  if (c.is_moe_layer(layer))
    mac += 3 * D * double(c.moe_intermediate_size) * double(c.num_experts_per_tok + c.n_shared_experts) +
           D * double(c.n_routed_experts);
  else
    mac += 3 * D * double(c.intermediate_size);
  return 2 * mac;
}

StageCosts stage_flop_costs(const ModelConfig& c, int64_t T, bool mtp) {
  StageCosts k;
  const int64_t L = c.num_hidden_layers;
  for (int64_t l = 0; l < L; ++l) k.layer.push_back(layer_flops(c, l, T));
  k.first = double(c.hidden_size);
  k.last = 2.0 * double(c.hidden_size) * double(c.vocab_size);
  if (mtp)
    for (int64_t n = 0; n < c.num_nextn_predict_layers; ++n)
      k.last += layer_flops(c, L + n, T) + 2.0 * double(c.hidden_size) * double(c.vocab_size);
  return k;
}

StageSplit split_stages(const ModelConfig& c, int S, int64_t T, bool mtp, const char* what) {
  return split_by_cost(stage_flop_costs(c, T, mtp), S, what);
}

StageSplit split_by_cost(const StageCosts& k, int S, const char* what) {
  const int64_t L = int64_t(k.layer.size());
  if (S < 1) fail("{}: need at least 1 stage, got {}", what, S);
  if (S > L)
    fail("{}: {} pipeline stages but the model has {} decoder layers (each stage needs at least one layer)", what, S,
         L);
  const std::vector<double>& lc = k.layer;
  const double first_extra = k.first, last_extra = k.last;
  std::vector<double> prefix(size_t(L + 1), 0.0);
  for (int64_t l = 0; l < L; ++l) prefix[size_t(l + 1)] = prefix[size_t(l)] + lc[size_t(l)];
  auto cost = [&](int s, int64_t b, int64_t e) {
    return prefix[size_t(e)] - prefix[size_t(b)] + (s == 0 ? first_extra : 0.0) + (s == S - 1 ? last_extra : 0.0);
  };
  // best[s][e]: the least max-cost of stages 0 … s − 1 over layers [0, e); cut[s][e] the start of stage s − 1.
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<std::vector<double>> best(size_t(S + 1), std::vector<double>(size_t(L + 1), inf));
  std::vector<std::vector<int64_t>> cut(size_t(S + 1), std::vector<int64_t>(size_t(L + 1), 0));
  best[0][0] = 0;
  for (int s = 1; s <= S; ++s)
    for (int64_t e = s; e <= L; ++e)
      for (int64_t b = s - 1; b < e; ++b) {
        const double v = std::max(best[size_t(s - 1)][size_t(b)], cost(s - 1, b, e));
        if (v < best[size_t(s)][size_t(e)]) {
          best[size_t(s)][size_t(e)] = v;
          cut[size_t(s)][size_t(e)] = b;
        }
      }
  StageSplit out;
  out.stages.resize(size_t(S));
  out.cost.resize(size_t(S));
  int64_t e = L;
  for (int s = S; s >= 1; --s) {
    const int64_t b = cut[size_t(s)][size_t(e)];
    out.stages[size_t(s - 1)] = {.layer_begin = b, .layer_end = e, .first = s == 1, .last = s == S};
    out.cost[size_t(s - 1)] = cost(s - 1, b, e);
    e = b;
  }
  return out;
}

namespace {

using Clock = std::chrono::steady_clock;

struct Msg {
  std::vector<float> buf;
  dist::RequestPtr req;
};

// The step's losses and loads, summed from the stages' reports (each micro-batch weighted by `share`), then
// over the pipeline ranks (each term lives on the rank that ran it, zeros elsewhere).
class LossSum {
 public:
  LossSum(const ModelConfig& c, const LossOptions& opt, int64_t T, double share) : share_(share) {
    // From the config, not the weights: a rank's Params may hold only its stages' layers (pipeline_scope).
    for (int64_t l = 0; l < c.num_hidden_layers; ++l)
      if (c.is_moe_layer(l)) moe_layers_.push_back(l);
    const int64_t n_mtp = opt.mtp_lambda > 0 ? std::clamp<int64_t>(T - 2, 0, c.num_nextn_predict_layers) : 0;
    for (int64_t k = 0; k < n_mtp; ++k)
      if (c.is_moe_layer(c.num_hidden_layers + k)) moe_layers_.push_back(c.num_hidden_layers + k);
    res_.routing.resize(moe_layers_.size());
    for (size_t i = 0; i < moe_layers_.size(); ++i) {
      res_.routing[i].layer = moe_layers_[i];
      res_.routing[i].load.assign(size_t(c.n_routed_experts), 0);
    }
  }
  void absorb(const StageLosses& l) {
    res_.loss += share_ * l.loss;
    res_.main_ce += share_ * l.main_ce;
    res_.mtp_ce += share_ * l.mtp_ce;
    res_.tokens += l.tokens;
    for (const LayerRouting& lr : l.routing) {
      const size_t i = size_t(std::find(moe_layers_.begin(), moe_layers_.end(), lr.layer) - moe_layers_.begin());
      if (i == moe_layers_.size()) fail("pipeline: MoE layer {} is not in the step", lr.layer);
      for (size_t e = 0; e < lr.load.size(); ++e) res_.routing[i].load[e] += lr.load[e];
      res_.routing[i].balance_loss += share_ * lr.balance_loss;
    }
  }
  // Collective over pp: every rank gets the same sums.
  StepResult finish(dist::Comm& pp) {
    StepResult res = std::move(res_);
    std::vector<double> sums = {res.loss, res.main_ce, res.mtp_ce, double(res.tokens)};
    for (const LayerRouting& lr : res.routing) sums.push_back(lr.balance_loss);
    pp.allreduce(std::span<double>(sums));
    res.loss = sums[0];
    res.main_ce = sums[1];
    res.mtp_ce = sums[2];
    res.tokens = int64_t(sums[3]);
    std::vector<int64_t> loads;
    for (size_t i = 0; i < res.routing.size(); ++i) {
      res.routing[i].balance_loss = sums[4 + i];
      loads.insert(loads.end(), res.routing[i].load.begin(), res.routing[i].load.end());
    }
    if (!loads.empty()) pp.allreduce(std::span<int64_t>(loads));
    for (size_t i = 0, o = 0; i < res.routing.size(); ++i)
      for (auto& x : res.routing[i].load) x = loads[o++];
    return res;
  }

 private:
  double share_;
  std::vector<int64_t> moe_layers_;  // HF indices of the MoE layers the step runs, in step order
  StepResult res_;
};

void check_tokens(const ModelConfig& c, const int32_t* tokens, int64_t B, int64_t T) {
  if (T < 2) fail("training step: need seq_len >= 2, got {}", T);
  if (T > c.max_position_embeddings)
    fail("training step: seq_len {} exceeds max_position_embeddings = {}", T, c.max_position_embeddings);
  for (int64_t i = 0; i < B * T; ++i)
    if (tokens[i] < 0 || tokens[i] >= c.vocab_size)
      fail("training step: token id {} at index {} is outside [0, {})", tokens[i], i, c.vocab_size);
}

}  // namespace

PipelineStepResult pipeline_forward_backward(const ModelConfig& c, const Params& params, const int32_t* tokens,
                                             int64_t B, int64_t T, const LossOptions& opt, Params& grads,
                                             float grad_scale, dist::Comm& pp, const PipeSchedule& sched,
                                             const StageSplit& split, const ExpertParallel* ep) {
  // ---- checks, identical on every rank, before any message
  const int S = sched.stages, M = sched.micro, me = pp.rank();
  if (pp.size() != sched.ranks)
    fail("--pp: the schedule is for {} pipeline ranks, the job has {}", sched.ranks, pp.size());
  if (int(split.stages.size()) != S)
    fail("--pp: the schedule has {} stages, the layer split {}", S, split.stages.size());
  if (B % M != 0)
    fail("--micro: {} sequence(s) do not split into {} micro-batches of equal size (give a divisor of {})", B, M, B);
  check_tokens(c, tokens, B, T);
  const int64_t max_tag = int64_t(2 * S) * M * 2;
  if (max_tag > 32767)
    fail("--micro: {} micro-batches over {} stages need message tags up to {} (MPI guarantees 32767)", M, S, max_tag);

  const int64_t Bm = B / M, D = c.hidden_size, m_rows = Bm * T;
  const ModelP w = bind_params(c, params);
  const ModelG g = bind_grads(c, grads);
  RopeTable rope(c);
  rope.ensure(T);
  const float mb_scale = float(double(grad_scale) / double(M));
  const StageStep step{.config = c,
                       .w = w,
                       .g = g,
                       .rope = rope,
                       .opt = opt,
                       .batch = Bm,
                       .seq_len = T,
                       .grad_scale = mb_scale,
                       .ep = ep};
  auto dir_of = [&](int mb) { return sched.two_directions && mb >= M / 2 ? 1 : 0; };
  auto tag = [&](int stage, int mb, int bwd) { return ((dir_of(mb) * S + stage) * M + mb) * 2 + bwd; };
  auto key = [&](int stage, int mb) { return int64_t(stage) * M + mb; };
  auto mb_tokens = [&](int mb) { return tokens + int64_t(mb) * Bm * T; };

  std::map<int64_t, Msg> posted;                // by tag: receives in flight
  std::map<int64_t, std::vector<float>> local;  // by tag: handed over on this rank
  std::vector<Msg> sends;
  std::map<int64_t, StageActs> acts;                            // by (stage, mb)
  std::map<int64_t, std::unique_ptr<WeightGradStore>> wstores;  // by (stage, mb): B done, W pending

  // The input an op part needs: (tag, source rank), or none (first stage forward, last stage backward).
  struct Need {
    int64_t tag;
    int from;
  };
  auto need_fwd = [&](int stage, int mb) -> std::optional<Need> {
    if (stage == 0) return std::nullopt;
    return Need{tag(stage - 1, mb, 0), sched.rank_of(stage - 1, mb)};
  };
  auto need_bwd = [&](int stage, int mb) -> std::optional<Need> {
    if (stage == S - 1) return std::nullopt;
    return Need{tag(stage + 1, mb, 1), sched.rank_of(stage + 1, mb)};
  };
  auto needs = [&](const PipeOp& op) {
    std::vector<Need> n;
    auto add = [&](std::optional<Need> x) {
      if (x && x->from != me) n.push_back(*x);
    };
    switch (op.kind) {
      case OpKind::F:
        add(need_fwd(op.stage, op.mb));
        break;
      case OpKind::B:
      case OpKind::BW:
        add(need_bwd(op.stage, op.mb));
        break;
      case OpKind::W:
        break;
      case OpKind::FB:
        add(need_fwd(op.stage, op.mb));
        add(need_bwd(op.stage2, op.mb2));
        break;
    }
    return n;
  };
  auto post = [&](const PipeOp& op) {
    for (const Need& n : needs(op)) {
      if (posted.count(n.tag)) continue;
      Msg& msg = posted[n.tag];
      msg.buf.resize(size_t(m_rows * D));
      msg.req = pp.irecv(msg.buf.data(), msg.buf.size(), dist::DType::F32, n.from, int(n.tag));
    }
  };
  auto take = [&](std::optional<Need> n) -> std::vector<float> {
    if (!n) return {};
    if (n->from == me) {
      auto it = local.find(n->tag);
      if (it == local.end()) fail("pipeline: rank {} has no local input for message tag {}", me, n->tag);
      std::vector<float> v = std::move(it->second);
      local.erase(it);
      return v;
    }
    auto it = posted.find(n->tag);
    if (it == posted.end()) fail("pipeline: rank {} did not post the receive of tag {}", me, n->tag);
    it->second.req->wait();
    std::vector<float> v = std::move(it->second.buf);
    posted.erase(it);
    return v;
  };
  auto give = [&](int64_t t, int to, std::vector<float>&& v) {
    if (to == me) {
      local[t] = std::move(v);
      return;
    }
    Msg& msg = sends.emplace_back();
    msg.buf = std::move(v);
    msg.req = pp.isend(msg.buf.data(), msg.buf.size(), dist::DType::F32, to, int(t));
  };

  // Losses and loads: the micro-batches' values weighted by their share (1/M each).
  LossSum sum(c, opt, T, 1.0 / double(M));
  auto absorb = [&](const StageLosses& l) { sum.absorb(l); };

  PipelineStepResult out;
  PipeRecord& rec = out.record;
  auto note_memory = [&] {
    int64_t bytes = 0;
    for (const auto& [k, a] : acts) bytes += a.bytes();
    for (const auto& [k, s] : wstores) bytes += s->bytes();
    if (bytes > rec.peak_act_bytes) rec.peak_act_bytes = bytes;
    rec.peak_held = std::max(rec.peak_held, int(acts.size()));
  };
  // The (stage, micro-batch) pairs whose backward this rank runs as a B (W later): on the last stage their head
  // weight gradient, computed with the loss in the forward, waits for that W too (in the same store).
  std::set<int64_t> deferred;
  for (const PipeOp& op : sched.ops[size_t(me)])
    if (op.kind == OpKind::B) deferred.insert(key(op.stage, op.mb));
  auto store_of = [&](int stage, int mb) {
    std::unique_ptr<WeightGradStore>& s = wstores[key(stage, mb)];
    if (!s) s = std::make_unique<WeightGradStore>();
    return s.get();
  };
  auto forward = [&](int stage, int mb, const Turn* turn = nullptr) {
    std::vector<float> h = take(need_fwd(stage, mb));
    StageActs& a = acts[key(stage, mb)];
    const StageRange& r = split.stages[size_t(stage)];
    WeightGradStore* head_w = r.last && deferred.count(key(stage, mb)) ? store_of(stage, mb) : nullptr;
    absorb(stage_forward(step, r, mb_tokens(mb), h, a, turn, head_w));
    note_memory();
    return h;  // empty on the last stage
  };
  auto backward = [&](int stage, int mb, bool defer, const Turn* turn = nullptr) {
    std::vector<float> dh = take(need_bwd(stage, mb));
    auto it = acts.find(key(stage, mb));
    if (it == acts.end())
      fail("pipeline: rank {} runs the backward of stage {} micro-batch {} before its forward", me, stage, mb);
    WeightGradStore* store = nullptr;
    if (defer) store = store_of(stage, mb);
    stage_backward(step, split.stages[size_t(stage)], mb_tokens(mb), it->second, dh, store, turn);
    note_memory();
    acts.erase(it);
    return dh;  // empty on the first stage
  };
  auto send_fwd = [&](int stage, int mb, std::vector<float>&& h) {
    if (stage + 1 < S) give(tag(stage, mb, 0), sched.rank_of(stage + 1, mb), std::move(h));
  };
  auto send_bwd = [&](int stage, int mb, std::vector<float>&& dh) {
    if (stage > 0) give(tag(stage, mb, 1), sched.rank_of(stage - 1, mb), std::move(dh));
  };

  // ---- the schedule
  rec.param_floats = 0;
  {
    std::vector<bool> held(params.size(), false);
    for (const auto& [stage, dir] : sched.stages_of(me)) {
      const StageRange& r = split.stages[size_t(stage)];
      for (size_t i = 0; i < params.size(); ++i) {
        const std::string& n = params.specs()[i].name;
        bool mine = false;
        for (int64_t l = r.layer_begin; l < r.layer_end && !mine; ++l)
          mine = n.rfind(fmt::format("model.layers.{}.", l), 0) == 0;
        if (r.first || r.last) mine = mine || n == "model.embed_tokens.weight";
        if (r.last) {
          mine = mine || n == "model.norm.weight" || n == "lm_head.weight";
          for (int64_t k = 0; k < c.num_nextn_predict_layers && !mine; ++k)
            mine = n.rfind(fmt::format("model.layers.{}.", c.num_hidden_layers + k), 0) == 0;
        }
        if (mine && !held[i]) {
          held[i] = true;
          rec.param_floats += int64_t(params.value(i).size());
        }
      }
    }
  }
  const std::vector<PipeOp>& ops = sched.ops[size_t(me)];
  pp.barrier();  // a common start for the ranks' timelines
  const auto t0 = Clock::now();
  auto now = [&] { return std::chrono::duration<double>(Clock::now() - t0).count(); };
  for (size_t i = 0; i < ops.size(); ++i) {
    const PipeOp& op = ops[i];
    post(op);
    if (i + 1 < ops.size()) post(ops[i + 1]);
    // Waiting for the inputs is idle time, not the op's.
    for (const Need& n : needs(op)) posted.at(n.tag).req->wait();
    TimedOp t{.op = op, .start = now()};
    switch (op.kind) {
      case OpKind::F:
        send_fwd(op.stage, op.mb, forward(op.stage, op.mb));
        break;
      case OpKind::B:
        send_bwd(op.stage, op.mb, backward(op.stage, op.mb, true));
        break;
      case OpKind::BW:
        send_bwd(op.stage, op.mb, backward(op.stage, op.mb, false));
        break;
      case OpKind::W: {
        auto it = wstores.find(key(op.stage, op.mb));
        if (it == wstores.end())
          fail("pipeline: rank {} runs W of stage {} micro-batch {} before its B", me, op.stage, op.mb);
        it->second->run();
        wstores.erase(it);
        break;
      }
      case OpKind::FB: {  // both results leave after the pair
        std::vector<float> h, dh;
        if (ep && ep->overlap) {
          // DualPipe's overlap of the pair (§3.2.1): the forward chunk and the backward chunk take turns at
          // every EP exchange, so one's dispatch / combine (or their transposes) is in flight while the other
          // computes attention, the router, its experts or its backward.
          MicroBatchTurns::run([&](MicroBatchTurns& turns, int who) {
            const Turn turn{.turns = &turns, .me = who};
            if (who == 0)
              h = forward(op.stage, op.mb, &turn);
            else
              dh = backward(op.stage2, op.mb2, false, &turn);
          });
        } else {  // one after the other
          h = forward(op.stage, op.mb);
          dh = backward(op.stage2, op.mb2, false);
        }
        send_fwd(op.stage, op.mb, std::move(h));
        send_bwd(op.stage2, op.mb2, std::move(dh));
        break;
      }
    }
    t.end = now();
    rec.ops.push_back(t);
    // Let finished sends go (OpenMPI progresses them inside MPI calls).
    std::erase_if(sends, [](Msg& s) { return s.req->test(); });
  }
  for (Msg& s : sends) s.req->wait();
  sends.clear();
  if (!acts.empty() || !wstores.empty() || !posted.empty() || !local.empty())
    fail("pipeline: rank {} ended the schedule with {} forward(s) without backward, {} B without W, {} messages left",
         me, acts.size(), wstores.size(), posted.size() + local.size());
  rec.seconds = now();

  StepResult res = sum.finish(pp);
  res.seconds = rec.seconds;
  out.step = std::move(res);
  return out;
}

StepResult pipeline_evaluate(const ModelConfig& c, const Params& params, const int32_t* tokens, int64_t B, int64_t T,
                             const LossOptions& opt, dist::Comm& pp, const PipeSchedule& sched, const StageSplit& split,
                             const ExpertParallel* ep) {
  const int S = sched.stages, me = pp.rank();
  if (pp.size() != sched.ranks)
    fail("--pp: the schedule is for {} pipeline ranks, the job has {}", sched.ranks, pp.size());
  if (B < 1) fail("validation: need at least one sequence, got {}", B);
  check_tokens(c, tokens, B, T);
  const ModelP w = bind_params(c, params);
  const ModelG none{};
  RopeTable rope(c);
  rope.ensure(T);
  const StageStep step{.config = c,
                       .w = w,
                       .g = none,
                       .rope = rope,
                       .opt = opt,
                       .batch = B,
                       .seq_len = T,
                       .grad_scale = 1.0f,
                       .ep = ep,
                       .grads = false};
  LossSum sum(c, opt, T, 1.0);
  const size_t n = size_t(B * T * c.hidden_size);
  std::vector<float> h;
  // Stage after stage in the global order: a rank blocks only on the previous stage's output, which every
  // earlier link of the chain has already produced.
  for (int st = 0; st < S; ++st) {
    if (sched.rank_of(st, 0) != me) continue;
    if (st > 0 && sched.rank_of(st - 1, 0) != me) {
      h.resize(n);
      pp.recv(h.data(), n, dist::DType::F32, sched.rank_of(st - 1, 0), st);
    }
    StageActs acts;
    sum.absorb(stage_forward(step, split.stages[size_t(st)], tokens, h, acts));
    if (st + 1 < S && sched.rank_of(st + 1, 0) != me)
      pp.send(h.data(), n, dist::DType::F32, sched.rank_of(st + 1, 0), st + 1);
  }
  return sum.finish(pp);
}

void allreduce_pipeline_grads(Params& grads, dist::Comm& pp) {
  if (pp.size() == 1) return;
  for (size_t i = 0; i < grads.size(); ++i) pp.allreduce(std::span<float>(grads.value(i)));
}

SchemaScope pipeline_scope(const ModelConfig& c, const PipeSchedule& sched, const StageSplit& split, int rank) {
  SchemaScope sc{.embed = false, .tail = false};
  for (const auto& [stage, dir] : sched.stages_of(rank)) {
    const StageRange& r = split.stages[size_t(stage)];
    if (r.layer_end > r.layer_begin) sc.layers.emplace_back(r.layer_begin, r.layer_end);
    sc.embed = sc.embed || r.first || r.last;
    sc.tail = sc.tail || r.last;
  }
  if (sc.layers.empty()) sc.layers.emplace_back(0, 0);  // no decoder layer (an empty range, not "every layer")
  (void)c;
  return sc;
}

namespace {

// [tensor of `all`, in schema order] the pipeline ranks holding it, ascending.
std::vector<std::vector<int>> holders(const ModelConfig& c, const std::vector<WeightSpec>& all,
                                      const PipeSchedule& sched, const StageSplit& split) {
  std::unordered_map<std::string, size_t> at;
  for (size_t i = 0; i < all.size(); ++i) at[all[i].name] = i;
  std::vector<std::vector<int>> h(all.size());
  for (int r = 0; r < sched.ranks; ++r)
    for (const WeightSpec& s : enumerate_weights(c, pipeline_scope(c, sched, split, r)))
      if (!s.optional) {
        auto it = at.find(s.name);
        if (it != at.end()) h[it->second].push_back(r);
      }
  return h;
}

// A scope of every layer with the routed experts of `s`'s range.
SchemaScope experts_of(const SchemaScope& s) {
  SchemaScope e;
  e.expert_begin = s.expert_begin, e.expert_end = s.expert_end;
  return e;
}

// The model's tensors with the routed experts of `experts`' range only (in schema order).
std::vector<WeightSpec> held_specs(const ModelConfig& c, const SchemaScope& experts = {}) {
  std::vector<WeightSpec> all;
  for (WeightSpec& s : enumerate_weights(c, experts_of(experts)))
    if (!s.optional) all.push_back(std::move(s));
  return all;
}

}  // namespace

void reduce_pipeline_grads(const ModelConfig& c, Params& grads, dist::Comm& pp, const PipeSchedule& sched,
                           const StageSplit& split) {
  if (pp.size() == 1) return;
  const std::vector<WeightSpec> all = held_specs(c, grads.scope());
  const std::vector<std::vector<int>> h = holders(c, all, sched, split);
  const int me = pp.rank();
  std::vector<float> buf;
  // Every rank walks the tensors in the same order and a tensor's exchange involves only its holders, so the
  // lowest unfinished tensor always completes: no cycle of blocking sends.
  for (size_t i = 0; i < all.size(); ++i) {
    const std::vector<int>& who = h[i];
    if (who.size() < 2 || std::find(who.begin(), who.end(), me) == who.end()) continue;
    std::vector<float>& g = grads.value(grads.index(all[i].name));
    const int tag = int(i % 30000);
    if (me == who[0]) {
      buf.resize(g.size());
      for (size_t k = 1; k < who.size(); ++k) {
        pp.recv(buf.data(), buf.size(), dist::DType::F32, who[k], tag);
        for (size_t j = 0; j < g.size(); ++j) g[j] += buf[j];
      }
      for (size_t k = 1; k < who.size(); ++k) pp.send(g.data(), g.size(), dist::DType::F32, who[k], tag);
    } else {
      pp.send(g.data(), g.size(), dist::DType::F32, who[0], tag);
      pp.recv(g.data(), g.size(), dist::DType::F32, who[0], tag);
    }
  }
}

std::vector<char> lowest_pipeline_holder(const ModelConfig& c, const Params& mine, const PipeSchedule& sched,
                                         const StageSplit& split, int rank) {
  const std::vector<WeightSpec> all = held_specs(c, mine.scope());
  const std::vector<std::vector<int>> h = holders(c, all, sched, split);
  std::vector<char> out(mine.size(), 0);
  for (size_t i = 0; i < all.size(); ++i) {
    if (h[i].empty() || h[i][0] != rank) continue;
    out[mine.index(all[i].name)] = 1;
  }
  return out;
}

std::optional<Params> gather_pipeline_params(const ModelConfig& c, const Params& mine, dist::Comm& pp,
                                             const PipeSchedule& sched, const StageSplit& split, int root) {
  const SchemaScope experts = experts_of(mine.scope());
  const std::vector<WeightSpec> all = held_specs(c, experts);
  const std::vector<std::vector<int>> h = holders(c, all, sched, split);
  const int me = pp.rank();
  std::optional<Params> full;
  if (me == root) full.emplace(c, experts);
  for (size_t i = 0; i < all.size(); ++i) {
    if (h[i].empty()) fail("pipeline: no rank holds {}", all[i].name);
    const int from = std::find(h[i].begin(), h[i].end(), root) != h[i].end() ? root : h[i][0];
    const int tag = int(i % 30000);
    if (me == root) {
      std::vector<float>& dst = full->value(full->index(all[i].name));
      if (from == root)
        dst = mine.value(mine.index(all[i].name));
      else
        pp.recv(dst.data(), dst.size(), dist::DType::F32, from, tag);
    } else if (me == from) {
      const std::vector<float>& src = mine.value(mine.index(all[i].name));
      pp.send(src.data(), src.size(), dist::DType::F32, root, tag);
    }
  }
  return full;
}

PipeTimeline gather_timeline(const PipeRecord& mine, dist::Comm& pp) {
  // Per op: kind, stage, mb, stage2, mb2, start, end (as doubles).
  constexpr int kF = 7;
  std::vector<double> send;
  for (const TimedOp& t : mine.ops)
    send.insert(send.end(), {double(int(t.op.kind)), double(t.op.stage), double(t.op.mb), double(t.op.stage2),
                             double(t.op.mb2), t.start, t.end});
  const std::vector<int64_t> counts = pp.allgather_one(int64_t(send.size()));
  const std::vector<int64_t> displs = dist::displacements(counts);
  std::vector<double> all(size_t(displs.back() + counts.back()));
  pp.allgatherv(send.data(), send.size(), all.data(), counts, displs, dist::DType::F64);
  PipeTimeline tl;
  tl.ranks.resize(size_t(pp.size()));
  tl.busy.assign(size_t(pp.size()), 0.0);
  for (int r = 0; r < pp.size(); ++r)
    for (int64_t i = 0; i < counts[size_t(r)]; i += kF) {
      const double* f = all.data() + displs[size_t(r)] + i;
      TimedOp t{
          .op = {.kind = OpKind(int(f[0])), .stage = int(f[1]), .mb = int(f[2]), .stage2 = int(f[3]), .mb2 = int(f[4])},
          .start = f[5],
          .end = f[6]};
      tl.makespan = std::max(tl.makespan, t.end);
      tl.busy[size_t(r)] += t.end - t.start;
      tl.ranks[size_t(r)].push_back(t);
    }
  for (double b : tl.busy) tl.bubble.push_back(tl.makespan - b);
  tl.peak_held.assign(size_t(pp.size()), 0);
  return tl;
}

OpCosts measured_costs(const PipeTimeline& t) {
  double sum[5] = {0, 0, 0, 0, 0};
  int n[5] = {0, 0, 0, 0, 0};
  for (const auto& r : t.ranks)
    for (const TimedOp& o : r) {
      sum[int(o.op.kind)] += o.end - o.start;
      n[int(o.op.kind)] += 1;
    }
  auto mean = [&](OpKind k) { return n[int(k)] ? sum[int(k)] / n[int(k)] : -1.0; };
  OpCosts c;
  c.f = std::max(0.0, mean(OpKind::F));
  c.w = std::max(0.0, mean(OpKind::W));
  c.b = n[int(OpKind::B)] ? mean(OpKind::B) : std::max(0.0, mean(OpKind::BW));
  if (!n[int(OpKind::B)]) c.w = 0;
  c.fb = mean(OpKind::FB);
  return c;
}

std::string bubble_report(const PipeSchedule& s, const PipeTimeline& t) {
  const OpCosts c = measured_costs(t);
  std::string out = fmt::format("pipeline: {} over {} ranks, {} micro-batches, {} stages: step {:.4f} s\n",
                                schedule_kind_name(s.kind), s.ranks, s.micro, s.stages, t.makespan);
  for (size_t r = 0; r < t.ranks.size(); ++r)
    out += fmt::format("pipeline: rank {}: busy {:.4f} s, idle {:.4f} s\n", r, t.busy[r], t.bubble[r]);
  out += fmt::format("pipeline: measured F {:.5f} s, B {:.5f} s, W {:.5f} s, F&B {:.5f} s\n", c.f, c.b, c.w, c.fb);
  const PipeTimeline sim = simulate(s, c);
  out += fmt::format("pipeline: bubble fraction measured {:.4f}, simulated with the measured costs {:.4f}\n",
                     t.bubble_fraction(), sim.bubble_fraction());
  out += fmt::format("pipeline: least idle rank measured {:.4f} s, simulated {:.4f} s",
                     *std::min_element(t.bubble.begin(), t.bubble.end()),
                     *std::min_element(sim.bubble.begin(), sim.bubble.end()));
  if (s.kind != ScheduleKind::DualPipeV && (s.kind != ScheduleKind::DualPipe || s.ranks % 2 == 0))
    out += fmt::format(", the paper's formula {:.4f} s", paper_bubble(s.kind, s.ranks, c));
  return out + "\n";
}

}  // namespace dsv3::train
