// forward_backward / evaluate (train/step.h): the composition of the per-module forwards and backwards.
//   main:  h = embed(t) → [block × L] → hn = norm(h) → head → CE(row i → t[i+1], i <= T−2)
//   MTP k: module k over the previous stage's rows (train/mtp_grad.h) → head → CE(row i → t[i+k+2])
//   loss = main_ce + λ · (1/D) Σ_k mtp_ce_k + α · Σ_layers balance     (D = num_nextn_predict_layers)
// Backward runs the MTP modules last to first (each feeds the previous stage's gradient), then the main
// model from its final norm down to the embedding; StepHooks::grads_ready reports each layer as it is done.
// With expert parallelism (train/expert_parallel.h) the same composition runs over this rank's sequences and
// only the MoE layers' routed experts exchange rows with the other EP ranks; with ExpertParallel::overlap the
// call's sequences run as two micro-batches taking turns at every exchange (train/micro_batch_turns.h), each
// the same composition over its half, their results merged by share.
// One StepContext (train/step_context.h) carries the config, rope table, batch shape, balance mode and weight
// and linear precision to every module; the modules take only their own data positionally.
#include "train/step.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <algorithm>
#include <chrono>
#include <mutex>
#include <utility>
#include <vector>

#include "core/error.h"
#include "model/rope.h"
#include "train/block_grad.h"
#include "train/embedding_grad.h"
#include "train/layout.h"
#include "train/loss.h"
#include "train/micro_batch_turns.h"
#include "train/mtp_grad.h"
#include "train/rmsnorm_grad.h"
#include "train/step_context.h"

namespace dsv3::train {

namespace {

// A step allocates and frees tens of MB of activations. By default glibc gives large freed blocks back to
// the OS (mmap threshold, heap trimming), so every step page-faults them in again: measured at ~40% of a
// small model's step. Keep freed memory in the heap instead (process-wide, set once; glibc only).
void keep_freed_memory() {
#if defined(__GLIBC__)
  static std::once_flag once;
  std::call_once(once, [] {
    mallopt(M_MMAP_THRESHOLD, 32 << 20);  // the largest glibc accepts on 64-bit
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
  });
#endif
}

// Expert parallelism needs the owned experts bound (params and grads) and every EP rank to run the same MoE
// layers (forward only or forward + backward, the same number of MTP modules): checked before the first
// exchange, identically on every rank, so a mismatch fails all ranks with the same message. The same
// allgather settles the two-micro-batch overlap: on only if every EP rank wants it (returned).
bool check_ep(const ModelConfig& c, const ExpertParallel& ep, const ModelP& w, const ModelG* g, int64_t n_mtp,
              bool want_overlap) {
  if (!ep.ep) fail("training step: expert parallelism without an EP communicator");
  if (ep.n_experts != c.n_routed_experts)
    fail("training step: the EP context is for {} routed experts, the model has {}", ep.n_experts, c.n_routed_experts);
  auto check_layer = [&](const LayerP& lp, const LayerG* lg) {
    if (!lp.is_moe) return;
    for (int64_t e = 0; e < c.n_routed_experts; ++e) {
      if (!ep.scope.has(e)) continue;
      if (!lp.moe.experts[size_t(e)].w1 || (lg && !lg->moe.experts[size_t(e)].w1))
        fail(
            "training step: EP rank {} owns expert {} of layer {}, but its {} do not hold it (use Params(config, "
            "ExpertParallel::scope))",
            ep.ep->rank(), e, lp.index, lp.moe.experts[size_t(e)].w1 ? "gradients" : "parameters");
    }
  };
  for (size_t l = 0; l < w.layers.size(); ++l) check_layer(w.layers[l], g ? &g->layers[l] : nullptr);
  for (size_t k = 0; k < w.mtp.size(); ++k) check_layer(w.mtp[k].layer, g ? &g->mtp[k].layer : nullptr);
  constexpr int kFacts = 3;
  const int64_t mine[kFacts] = {n_mtp, g ? 1 : 0, want_overlap ? 1 : 0};
  std::vector<int64_t> all(size_t(kFacts * ep.ep->size()));
  ep.ep->allgather(mine, kFacts, all.data(), dist::DType::I64);
  bool overlap = true;
  for (int r = 0; r < ep.ep->size(); ++r) {
    const int64_t* f = all.data() + kFacts * r;
    if (f[0] != n_mtp || f[1] != mine[1])
      fail(
          "training step: EP ranks run different MoE layers: EP rank {} runs {} MTP module(s) {}, EP rank {} runs {} "
          "{} (every EP rank needs the same sequence length's MTP modules and the same kind of step)",
          ep.ep->rank(), n_mtp, mine[1] ? "with backward" : "forward only", r, f[0],
          f[1] ? "with backward" : "forward only");
    overlap = overlap && f[2] != 0;
  }
  return overlap;
}

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// The step over one batch of B sequences (the whole call, or one of its two micro-batches): w / g bound once
// by the caller; turn and comm_times as in StepContext.
StepResult run_batch(const ModelConfig& c, const ModelP& w, const ModelG* gp, const int32_t* tokens, int64_t B,
                     int64_t T, const LossOptions& opt, float grad_scale, const ExpertParallel* ep,
                     const StepHooks& hooks, const Turn* turn, CommTimes* comm_times) {
  const int64_t m = B * T, D = c.hidden_size, V = c.vocab_size;
  const float eps = float(c.rms_norm_eps);
  const bool grads = gp != nullptr;
  const ModelG none{};
  const ModelG& g = grads ? *gp : none;  // read only when grads
  RopeTable rope(c);
  rope.ensure(T);
  const BalanceMode bal = opt.mode;
  const StepContext ctx{
      .config = c,
      .rope = rope,
      .batch = B,
      .seq_len = T,
      .balance = bal,
      .balance_weight = bal == BalanceMode::None ? 0.0f : float(opt.balance_alpha) * grad_scale,
      .linear = opt.linear,
      .ep = ep,
      .turn = turn,
      .comm_times = comm_times,
      .dsa = opt.dsa.stage,
      .kl_scale = grads ? float(opt.dsa.kl_weight) * grad_scale : 0.0f,
  };

  // MTP module k needs T − 2 − k >= 1 rows with a target.
  const int64_t n_mtp_cfg = int64_t(w.mtp.size());
  const int64_t n_mtp = opt.mtp_lambda > 0 ? std::clamp<int64_t>(T - 2, 0, n_mtp_cfg) : 0;

  // ---- main model forward
  std::vector<float> h(size_t(m * D));
  embedding_forward(w.embed, tokens, m, D, h.data());
  std::vector<BlockActs> blocks(w.layers.size());
  for (size_t l = 0; l < w.layers.size(); ++l) block_forward(ctx, w.layers[l], h.data(), blocks[l]);
  std::vector<float> hn(size_t(m * D)), hn_rstd(static_cast<size_t>(m));
  rmsnorm_forward(h.data(), w.norm, m, D, eps, hn.data(), hn_rstd.data());

  // ---- MTP forwards
  std::vector<MtpActs> mtp(static_cast<size_t>(n_mtp));
  for (int64_t k = 0; k < n_mtp; ++k)
    mtp_forward(ctx, w.mtp[size_t(k)], w.embed, tokens, k, k == 0 ? hn.data() : mtp[size_t(k - 1)].out.data(),
                mtp[size_t(k)]);

  // ---- losses (fused with the head's backward)
  StepResult res;
  // The dense warm-up of a V3.2 model back-propagates only the indexer losses: no main-model gradient at all.
  const bool warmup = c.has_indexer() && opt.dsa.stage == DsaStage::DenseWarmup;
  const bool head_grads = grads && !warmup;
  std::vector<float> dhn(head_grads ? size_t(m * D) : 0, 0.0f);
  {
    std::vector<CeTarget> targets;
    targets.reserve(size_t(B * (T - 1)));
    for (int64_t b = 0; b < B; ++b)
      for (int64_t i = 0; i + 1 < T; ++i) targets.push_back({b * T + i, tokens[b * T + i + 1]});
    const double n = double(targets.size());
    res.tokens = int64_t(targets.size());
    res.main_ce = head_cross_entropy(hn.data(), w.head, V, D, targets, float(grad_scale / n),
                                     head_grads ? dhn.data() : nullptr, head_grads ? g.head : nullptr) /
                  n;
  }
  std::vector<std::vector<float>> dmtp_hn(static_cast<size_t>(n_mtp));
  for (int64_t k = 0; k < n_mtp; ++k) {
    const MtpActs& a = mtp[size_t(k)];
    const int64_t Tk = a.rows_per_seq;
    std::vector<CeTarget> targets;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t i = 0; i + 1 < Tk; ++i) targets.push_back({b * Tk + i, tokens[b * T + i + k + 2]});
    const double n = double(targets.size());
    const double weight = opt.mtp_lambda / double(n_mtp_cfg);
    if (head_grads) dmtp_hn[size_t(k)].assign(size_t(B * Tk * D), 0.0f);
    const double ce =
        head_cross_entropy(a.hn.data(), w.head, V, D, targets, float(grad_scale * weight / n),
                           head_grads ? dmtp_hn[size_t(k)].data() : nullptr, head_grads ? g.head : nullptr) /
        n;
    res.mtp_ce += ce / double(n_mtp_cfg);
  }
  double balance_sum = 0.0;
  auto report = [&](const LayerP& lw, const BlockActs& a) {
    if (!lw.is_moe) return;
    res.routing.push_back({.layer = lw.index, .load = a.moe.load, .balance_loss = a.moe.balance});
    balance_sum += a.moe.balance;
  };
  for (size_t l = 0; l < w.layers.size(); ++l) report(w.layers[l], blocks[l]);
  for (int64_t k = 0; k < n_mtp; ++k) report(w.mtp[size_t(k)].layer, mtp[size_t(k)].block);
  auto report_indexer = [&](const LayerP& lw, const BlockActs& a) {
    if (!lw.attn.has_indexer) return;
    const IndexerActs& ix = a.attn.ix;
    res.indexer.push_back({.layer = lw.index, .kl = ix.loss, .recall = ix.recall, .recall_rows = ix.recall_rows});
    res.indexer_loss += opt.dsa.kl_weight * ix.loss;
  };
  for (size_t l = 0; l < w.layers.size(); ++l) report_indexer(w.layers[l], blocks[l]);
  for (int64_t k = 0; k < n_mtp; ++k) report_indexer(w.mtp[size_t(k)].layer, mtp[size_t(k)].block);
  res.loss = res.main_ce + (n_mtp > 0 ? opt.mtp_lambda * res.mtp_ce : 0.0) +
             (bal == BalanceMode::None ? 0.0 : opt.balance_alpha * balance_sum) + res.indexer_loss;
  if (!grads) return res;
  auto ready = [&](int64_t layer) {
    if (hooks.grads_ready) hooks.grads_ready(layer);
  };
  if (warmup) {
    // The dense warm-up trains the indexers alone: their loss's gradient, layer by layer, and no main backward.
    for (int64_t k = n_mtp_cfg - 1; k >= 0; --k) {
      if (k < n_mtp) {
        const MtpActs& a = mtp[size_t(k)];
        const LayerP& lw = w.mtp[size_t(k)].layer;
        indexer_backward(ctx.with_seq_len(a.rows_per_seq), lw.attn.indexer, g.mtp[size_t(k)].layer.attn.indexer,
                         a.block.xn1.data(), a.block.attn.qn.data(), a.block.attn.ix);
      }
      ready(c.num_hidden_layers + k);
    }
    for (size_t l = w.layers.size(); l-- > 0;) {
      indexer_backward(ctx, w.layers[l].attn.indexer, g.layers[l].attn.indexer, blocks[l].xn1.data(),
                       blocks[l].attn.qn.data(), blocks[l].attn.ix);
      ready(w.layers[l].index);
    }
    ready(-1);
    return res;
  }

  // ---- backward: MTP modules last to first, then the main model
  std::vector<float> dnext;  // ∂L/∂out of module k from module k+1
  for (int64_t k = n_mtp - 1; k >= 0; --k) {
    const MtpActs& a = mtp[size_t(k)];
    const int64_t rows = B * a.rows_per_seq;
    std::vector<float> dout = k + 1 < n_mtp ? std::move(dnext) : std::vector<float>(size_t(rows * D), 0.0f);
    std::vector<float> dprev(k == 0 ? 0 : size_t(B * (a.rows_per_seq + 1) * D), 0.0f);
    mtp_backward(ctx, w.mtp[size_t(k)], g.mtp[size_t(k)], a, dmtp_hn[size_t(k)].data(), dout.data(),
                 k == 0 ? dhn.data() : dprev.data(), g.embed);
    dnext = std::move(dprev);
  }
  for (int64_t k = n_mtp_cfg - 1; k >= 0; --k) ready(c.num_hidden_layers + k);
  std::vector<float> dh(size_t(m * D), 0.0f);
  rmsnorm_backward(dhn.data(), h.data(), w.norm, hn_rstd.data(), m, D, dh.data(), g.norm);
  for (size_t l = w.layers.size(); l-- > 0;) {
    block_backward(ctx, w.layers[l], g.layers[l], blocks[l], dh.data());
    ready(w.layers[l].index);
  }
  embedding_backward(dh.data(), tokens, m, D, g.embed);
  ready(-1);
  return res;
}

// The sum of two micro-batches' results, each weighted by its share of the call's sequences (every mean —
// main CE rows, MTP rows, balance segments (sequences) — is over a number proportional to its sequences).
StepResult merge(const StepResult& a, double wa, const StepResult& b, double wb) {
  StepResult r;
  r.loss = wa * a.loss + wb * b.loss;
  r.main_ce = wa * a.main_ce + wb * b.main_ce;
  r.mtp_ce = wa * a.mtp_ce + wb * b.mtp_ce;
  r.tokens = a.tokens + b.tokens;
  r.routing = a.routing;
  for (size_t l = 0; l < r.routing.size(); ++l) {
    LayerRouting& lr = r.routing[l];
    for (size_t e = 0; e < lr.load.size(); ++e) lr.load[e] += b.routing[l].load[e];
    lr.balance_loss = wa * a.routing[l].balance_loss + wb * b.routing[l].balance_loss;
  }
  r.indexer = a.indexer;
  r.indexer_loss = wa * a.indexer_loss + wb * b.indexer_loss;
  for (size_t l = 0; l < r.indexer.size(); ++l) {
    IndexerStats& s = r.indexer[l];
    const IndexerStats& sb = b.indexer[l];
    s.kl = wa * s.kl + wb * sb.kl;
    const int64_t n = s.recall_rows + sb.recall_rows;
    s.recall = n > 0 ? (s.recall * double(s.recall_rows) + sb.recall * double(sb.recall_rows)) / double(n) : 0.0;
    s.recall_rows = n;
  }
  return r;
}

StepResult run(const ModelConfig& c, const Params& params, const int32_t* tokens, int64_t B, int64_t T,
               const LossOptions& opt, Params* grads, float grad_scale, const ExpertParallel* ep,
               const StepHooks& hooks) {
  const auto t0 = Clock::now();
  if (B < 1 || T < 2) fail("training step: need batch >= 1 and seq_len >= 2, got batch {} seq_len {}", B, T);
  if (!c.index_shared.empty())  // a shared layer would attend densely here, not to the full layer's picks
    fail(
        "training step: the config's 'indexer_types' has \"shared\" layers (GLM-5.x's IndexShare), which dsv3 "
        "runs for inference only; training needs every layer \"full\"");
  if (T > c.max_position_embeddings)
    fail("training step: seq_len {} exceeds max_position_embeddings = {}", T, c.max_position_embeddings);
  for (int64_t i = 0; i < B * T; ++i)
    if (tokens[i] < 0 || tokens[i] >= c.vocab_size)
      fail("training step: token id {} at index {} is outside [0, {})", tokens[i], i, c.vocab_size);

  keep_freed_memory();
  const ModelP w = bind_params(c, params);
  ModelG g;
  if (grads) g = bind_grads(c, *grads);
  const ModelG* gp = grads ? &g : nullptr;
  CommTimes comm;
  bool overlap = false;
  if (ep) {
    const int64_t n_mtp = opt.mtp_lambda > 0 ? std::clamp<int64_t>(T - 2, 0, int64_t(w.mtp.size())) : 0;
    const auto tc = Clock::now();
    overlap = check_ep(c, *ep, w, gp, n_mtp, ep->overlap && B >= 2 && opt.mode != BalanceMode::AuxLoss);
    comm.wait_s += seconds_since(tc);
    comm.exchanges += 1;
  }

  StepResult res;
  if (!overlap) {
    res = run_batch(c, w, gp, tokens, B, T, opt, grad_scale, ep, hooks, nullptr, ep ? &comm : nullptr);
  } else {
    // Two micro-batches of the call's sequences, taking turns at every exchange (train/micro_batch_turns.h).
    // A layer's gradients are final when both have reported it.
    const int64_t Bs[2] = {B / 2, B - B / 2};
    StepResult r[2];
    CommTimes ct[2];
    std::vector<std::pair<int64_t, int>> reports;  // (layer, micro-batches done with it)
    StepHooks both;
    if (hooks.grads_ready)
      both.grads_ready = [&](int64_t layer) {
        auto it = std::find_if(reports.begin(), reports.end(), [&](const auto& p) { return p.first == layer; });
        if (it == reports.end()) {
          reports.emplace_back(layer, 1);
        } else if (++it->second == 2) {
          hooks.grads_ready(layer);
        }
      };
    MicroBatchTurns::run([&](MicroBatchTurns& turns, int me) {
      const Turn turn{.turns = &turns, .me = me};
      const float scale = float(double(grad_scale) * double(Bs[me]) / double(B));
      r[me] = run_batch(c, w, gp, tokens + (me == 0 ? 0 : Bs[0] * T), Bs[me], T, opt, scale, ep, both, &turn, &ct[me]);
    });
    res = merge(r[0], double(Bs[0]) / double(B), r[1], double(Bs[1]) / double(B));
    comm += ct[0];
    comm += ct[1];
  }
  res.overlapped = overlap;
  res.comm = comm;
  res.seconds = seconds_since(t0);
  return res;
}

}  // namespace

StepResult forward_backward(const ModelConfig& c, const Params& params, const int32_t* tokens, int64_t batch,
                            int64_t seq_len, const LossOptions& opt, Params& grads, float grad_scale,
                            const ExpertParallel* ep, const StepHooks& hooks) {
  return run(c, params, tokens, batch, seq_len, opt, &grads, grad_scale, ep, hooks);
}

StepResult evaluate(const ModelConfig& c, const Params& params, const int32_t* tokens, int64_t batch, int64_t seq_len,
                    const LossOptions& opt, const ExpertParallel* ep) {
  return run(c, params, tokens, batch, seq_len, opt, nullptr, 1.0f, ep, {});
}

}  // namespace dsv3::train
