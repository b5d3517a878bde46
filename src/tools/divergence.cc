#include "tools/divergence.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <span>
#include <utility>

#include "core/error.h"
#include "model/transformer.h"

namespace dsv3 {

LogitDivergence compare_logits(const float* got, const float* ref, int64_t rows, int64_t vocab) {
  LogitDivergence d;
  d.rows = rows;
  double num = 0, den = 0, agree = 0, kl_sum = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const float* g = got + r * vocab;
    const float* f = ref + r * vocab;
    double maxd = 0, maxr = 0;
    int64_t ag = 0, af = 0;
    for (int64_t j = 0; j < vocab; ++j) {
      const double e = double(g[j]) - double(f[j]);
      maxd = std::max(maxd, std::fabs(e));
      maxr = std::max(maxr, std::fabs(double(f[j])));
      num += e * e;
      den += double(f[j]) * double(f[j]);
      if (g[j] > g[ag]) ag = j;
      if (f[j] > f[af]) af = j;
    }
    d.max_rel_err = std::max(d.max_rel_err, maxr > 0 ? maxd / maxr : maxd);
    agree += ag == af ? 1 : 0;
    // KL(p_ref ‖ p_got) = Σ p_ref (log p_ref − log p_got), log-softmax in double.
    double lse_f = 0, lse_g = 0;
    const double mf = f[af], mg = g[ag];
    for (int64_t j = 0; j < vocab; ++j) {
      lse_f += std::exp(double(f[j]) - mf);
      lse_g += std::exp(double(g[j]) - mg);
    }
    lse_f = mf + std::log(lse_f);
    lse_g = mg + std::log(lse_g);
    double kl = 0;
    for (int64_t j = 0; j < vocab; ++j) {
      const double lf = double(f[j]) - lse_f, lg = double(g[j]) - lse_g;
      kl += std::exp(lf) * (lf - lg);
    }
    kl = std::max(0.0, kl);
    kl_sum += kl;
    d.kl_max = std::max(d.kl_max, kl);
  }
  d.rel_l2 = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
  d.top1_agree = rows > 0 ? agree / double(rows) : 1.0;
  d.kl_mean = rows > 0 ? kl_sum / double(rows) : 0.0;
  return d;
}

DivergenceReport measure_divergence(Model& test, Model& ref, const DivergenceOptions& opt) {
  const ModelConfig& c = ref.config();
  if (test.config().vocab_size != c.vocab_size || test.config().hidden_size != c.hidden_size ||
      test.config().num_hidden_layers != c.num_hidden_layers)
    fail("the two models differ in shape (vocab, hidden size or layers)");
  std::vector<std::vector<int32_t>> seqs = opt.ids;
  if (seqs.empty()) {
    std::mt19937_64 g(opt.seed);
    std::uniform_int_distribution<int32_t> tok(0, int32_t(c.vocab_size - 1));
    for (int64_t s = 0; s < opt.sequences; ++s) {
      std::vector<int32_t> v(size_t(opt.length));
      for (auto& t : v) t = tok(g);
      seqs.push_back(std::move(v));
    }
  }
  const int64_t V = c.vocab_size;
  std::vector<float> pg, pr, dg, dr;
  for (const auto& ids : seqs) {
    const int64_t n = int64_t(ids.size());
    if (n == 0) continue;
    for (int32_t t : ids)
      if (t < 0 || t >= V) fail("token id {} is outside the vocabulary [0, {})", t, V);
    for (Model* m : {&test, &ref}) {
      std::vector<float>& out = m == &test ? pg : pr;
      KvCache cache = m->new_cache(n);
      SeqChunk chunk{&cache, n};
      const size_t at = out.size();
      out.resize(at + size_t(n * V));
      m->forward(ids, {&chunk, 1}, nullptr, out.data() + at);
      std::vector<float>& dec = m == &test ? dg : dr;
      KvCache dcache = m->new_cache(n);
      for (int64_t i = 0; i < n; ++i) {
        SeqChunk one{&dcache, 1};
        const size_t d0 = dec.size();
        dec.resize(d0 + size_t(V));
        m->forward(std::span<const int32_t>(ids).subspan(size_t(i), 1), {&one, 1}, nullptr, dec.data() + d0);
      }
    }
  }
  DivergenceReport rep;
  rep.prefill = compare_logits(pg.data(), pr.data(), int64_t(pr.size()) / V, V);
  rep.decode = compare_logits(dg.data(), dr.data(), int64_t(dr.size()) / V, V);
  return rep;
}

}  // namespace dsv3
