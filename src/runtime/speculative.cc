#include "runtime/speculative.h"

#include <algorithm>

#include "core/error.h"
#include "model/transformer.h"

namespace dsv3::runtime {

namespace {
int32_t argmax(const std::vector<float>& v) { return int32_t(std::max_element(v.begin(), v.end()) - v.begin()); }
}  // namespace

SpecVerdict verify_drafts(Sampler& sampler, std::span<const int32_t> drafts, std::span<const std::vector<float>> q,
                          const float* target_logits) {
  const int64_t V = sampler.vocab(), k = int64_t(drafts.size());
  const bool greedy = sampler.params().greedy();
  std::vector<float> p;
  for (int64_t j = 0; j < k; ++j) {
    sampler.distribution(target_logits + j * V, drafts.first(size_t(j)), p);
    const int32_t d = drafts[size_t(j)];
    const double pd = p[size_t(d)], qd = q[size_t(j)][size_t(d)];
    // Accept with probability min(1, p/q); no random number is used when the answer is certain, so greedy
    // decoding consumes none.
    bool accept = pd >= qd;
    if (!accept && pd > 0) accept = sampler.rng().uniform() * qd < pd;
    if (accept) continue;
    // Rejected: draw from norm(max(0, p − q)).
    double z = 0;
    for (int64_t i = 0; i < V; ++i) {
      p[size_t(i)] = std::max(0.0f, p[size_t(i)] - q[size_t(j)][size_t(i)]);
      z += p[size_t(i)];
    }
    if (!(z > 0))
      sampler.distribution(target_logits + j * V, drafts.first(size_t(j)), p);  // p == q: rounding only
    else
      for (float& x : p) x = float(x / z);
    return {j, greedy ? argmax(p) : sampler.draw(p)};
  }
  sampler.distribution(target_logits + k * V, drafts, p);  // all accepted: the bonus token from p_k
  return {k, greedy ? argmax(p) : sampler.draw(p)};
}

SpecStepStats speculative_step(Model& model, std::span<Sequence* const> seqs, int64_t depth) {
  const int64_t V = model.config().vocab_size, D = model.config().hidden_size;
  const size_t n = seqs.size();
  SpecStepStats st;
  // Drafts per sequence: never more than the tokens still allowed after the one the verify step adds.
  std::vector<int64_t> ks(n);
  for (size_t i = 0; i < n; ++i) {
    const Sequence* s = seqs[i];
    ks[i] = std::clamp<int64_t>(s->max_generated - s->stats.generated - 1, 0, depth);
  }
  std::vector<std::vector<int32_t>> drafts(n);
  std::vector<std::vector<std::vector<float>>> q(n);
  std::vector<int64_t> true_len(n, -1);
  std::vector<float> x(n * size_t(D));  // the MTP output hidden state of each sequence's newest row

  // 1. Draft: the first pass consumes the pending rows; depth j > 1 chains on (x_{j-1}, d_{j-1}).
  std::vector<float> logits, hid_out, hid_in;
  std::vector<int32_t> next;
  std::vector<SeqChunk> chunks;
  std::vector<size_t> who;
  for (int64_t j = 1; j <= depth; ++j) {
    chunks.clear();
    who.clear();
    next.clear();
    hid_in.clear();
    for (size_t i = 0; i < n; ++i) {
      Sequence* s = seqs[i];
      if (ks[i] < j) continue;
      who.push_back(i);
      if (j == 1) {
        const int64_t rows = s->mtp_pending.complete();
        if (rows < 1 || rows != s->mtp_pending.rows())
          fail("speculative step: {} pending MTP rows, {} of them with their next token (need at least one, all)",
               s->mtp_pending.rows(), rows);
        s->mtp_pending.take(rows, s->mtp_cache.length(), next, hid_in);
        chunks.push_back({&s->mtp_cache, rows});
      } else {
        chunks.push_back({&s->mtp_cache, 1});
        next.push_back(drafts[i].back());
        hid_in.insert(hid_in.end(), x.begin() + int64_t(i) * D, x.begin() + int64_t(i + 1) * D);
      }
    }
    if (chunks.empty()) break;
    logits.resize(chunks.size() * size_t(V));
    hid_out.resize(next.size() * size_t(D));
    model.mtp_forward(0, next, hid_in.data(), chunks, hid_out.data(), logits.data(),
                      {.logits = LogitRows::LastOfEachChunk});
    int64_t row = 0;
    for (size_t c = 0; c < who.size(); ++c) {
      const size_t i = who[c];
      Sequence* s = seqs[i];
      row += chunks[c].n;
      if (j == 1) true_len[i] = s->mtp_cache.length();
      std::copy(hid_out.begin() + (row - 1) * D, hid_out.begin() + row * D, x.begin() + int64_t(i) * D);
      std::vector<float>& qj = q[i].emplace_back();
      s->sampler.distribution(logits.data() + int64_t(c) * V, drafts[i], qj);
      drafts[i].push_back(s->sampler.params().greedy() ? argmax(qj) : s->sampler.draw(qj));
    }
  }
  for (size_t i = 0; i < n; ++i)  // forget the chained rows: they are not the true rows (h[i], t[i+1])
    if (true_len[i] >= 0) seqs[i]->mtp_cache.truncate(true_len[i]);

  // 2. Verify: [t[n], d1..dk] per sequence in one batched forward, logits of every row.
  chunks.clear();
  next.clear();
  for (size_t i = 0; i < n; ++i) {
    Sequence* s = seqs[i];
    next.push_back(s->tokens.back());
    next.insert(next.end(), drafts[i].begin(), drafts[i].end());
    chunks.push_back({&s->cache, ks[i] + 1});
  }
  const int64_t m = int64_t(next.size());
  logits.resize(size_t(m * V));
  hid_out.resize(size_t(m * D));
  model.forward(next, chunks, hid_out.data(), logits.data(), {.logits = LogitRows::All});

  // 3–4. Accept, emit, roll back, queue the kept positions as the MTP's pending rows.
  int64_t r0 = 0;
  for (size_t i = 0; i < n; ++i) {
    Sequence* s = seqs[i];
    const int64_t k = ks[i];
    const float* lg = logits.data() + r0 * V;
    const SpecVerdict v = verify_drafts(s->sampler, drafts[i], q[i], lg);
    const int64_t n0 = s->cache.length() - (k + 1);  // position of t[n]
    s->cache.truncate(n0 + 1 + v.accepted);
    s->stats.drafted += k;
    s->stats.accepted += v.accepted;
    s->stats.verify_steps += 1;
    st.drafted += k;
    st.accepted += v.accepted;
    bool live = true;
    for (int64_t j = 0; j < v.accepted && live; ++j, ++st.emitted) live = s->emit(drafts[i][size_t(j)], lg + j * V, V);
    if (live) {
      ++st.emitted;
      s->emit(v.next, lg + v.accepted * V, V);
    }
    if (!s->done()) {  // rows n0..n0+a: h from the verify forward, paired with d1..da and the verifier's token
      const std::span<const float> kept = std::span<const float>(hid_out).subspan(size_t(r0 * D));
      s->mtp_pending.append_hidden(n0, kept.first(size_t((v.accepted + 1) * D)));
      s->mtp_pending.append_next(n0, std::span<const int32_t>(drafts[i]).first(size_t(v.accepted)));
      s->mtp_pending.append_next(n0 + v.accepted, v.next);
    }
    r0 += k + 1;
  }
  return st;
}

}  // namespace dsv3::runtime
