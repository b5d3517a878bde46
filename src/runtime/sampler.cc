#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "core/splitmix.h"
#include "runtime/constraint.h"

namespace dsv3::runtime {

// ---- Rng ------------------------------------------------------------------------------------------------

namespace {
uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
}  // namespace

Rng::Rng(uint64_t seed) {
  SplitMix64 sm{seed};
  for (auto& s : s_) s = sm.next();
}

uint64_t Rng::next() {
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

double Rng::uniform() { return double(next() >> 11) * 0x1.0p-53; }

// ---- SamplingParams ---------------------------------------------------------------------------------------

void SamplingParams::validate() const {
  if (!std::isfinite(temperature) || temperature < 0)
    fail("temperature must be a finite number >= 0, got {}", temperature);
  if (top_k < 0) fail("top_k must be >= 0 (0 = off), got {}", top_k);
  if (!(top_p > 0 && top_p <= 1)) fail("top_p must be in (0, 1], got {}", top_p);
  if (!(min_p >= 0 && min_p <= 1)) fail("min_p must be in [0, 1], got {}", min_p);
  if (!std::isfinite(repetition_penalty) || repetition_penalty <= 0)
    fail("repetition_penalty must be a finite number > 0, got {}", repetition_penalty);
  if (!std::isfinite(frequency_penalty)) fail("frequency_penalty must be finite");
  if (!std::isfinite(presence_penalty)) fail("presence_penalty must be finite");
  if (logprobs < -1) fail("logprobs must be >= 0 (or absent), got {}", logprobs);
}

// ---- logprobs -------------------------------------------------------------------------------------------

TokenLogprobs compute_logprobs(const float* logits, int64_t vocab, int32_t chosen, int64_t n) {
  float mx = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < vocab; ++i) mx = std::max(mx, logits[i]);
  double sum = 0;
  for (int64_t i = 0; i < vocab; ++i) sum += std::exp(double(logits[i]) - mx);
  const double lse = double(mx) + std::log(sum);
  TokenLogprobs r;
  r.chosen = {chosen, float(double(logits[chosen]) - lse)};
  n = std::min(n, vocab);
  if (n > 0) {
    std::vector<int32_t> ids(static_cast<size_t>(vocab));
    for (int64_t i = 0; i < vocab; ++i) ids[size_t(i)] = int32_t(i);
    std::partial_sort(ids.begin(), ids.begin() + n, ids.end(),
                      [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); });
    for (int64_t i = 0; i < n; ++i) r.top.push_back({ids[size_t(i)], float(double(logits[ids[size_t(i)]]) - lse)});
  }
  return r;
}

// ---- Sampler ----------------------------------------------------------------------------------------------

Sampler::Sampler(SamplingParams params, int64_t vocab)
    : params_(params), vocab_(vocab), rng_(params.seed), emit_vocab_(vocab) {
  params_.validate();
  if (vocab < 1) fail("sampler: vocabulary size {} < 1", vocab);
}

void Sampler::set_prompt(std::span<const int32_t> prompt) {
  prompt_seen_.clear();
  for (int32_t t : prompt) prompt_seen_[t] = 1;
}

void Sampler::push(int32_t generated) {
  ++output_count_[generated];
  if (constraint_) output_.push_back(generated);
}

void Sampler::prepare_next() const {
  if (constraint_) constraint_->prepare(output_);
}

void Sampler::apply_penalties(float* logits, std::span<const int32_t> extra) const {
  const double rep = params_.repetition_penalty, freq = params_.frequency_penalty, pres = params_.presence_penalty;
  const bool any_rep = rep != 1.0, any_fp = freq != 0.0 || pres != 0.0;
  if (!any_rep && !any_fp) return;
  std::unordered_map<int32_t, int64_t> extra_count;
  for (int32_t t : extra) ++extra_count[t];
  auto out_count = [&](int32_t t) {
    int64_t c = 0;
    if (auto it = output_count_.find(t); it != output_count_.end()) c += it->second;
    if (auto it = extra_count.find(t); it != extra_count.end()) c += it->second;
    return c;
  };
  auto penalise_rep = [&](int32_t t) {
    float& l = logits[t];
    l = l > 0 ? float(l / rep) : float(l * rep);
  };
  if (any_rep) {
    // Each token seen anywhere once: the prompt's set, then output tokens not in it.
    for (const auto& [t, _] : prompt_seen_) penalise_rep(t);
    for (const auto& [t, _] : output_count_)
      if (!prompt_seen_.count(t)) penalise_rep(t);
    for (const auto& [t, _] : extra_count)
      if (!prompt_seen_.count(t) && !output_count_.count(t)) penalise_rep(t);
  }
  if (any_fp) {
    auto penalise_fp = [&](int32_t t) {
      const int64_t c = out_count(t);
      if (c > 0) logits[t] -= float(double(c) * freq + pres);
    };
    for (const auto& [t, _] : output_count_) penalise_fp(t);
    for (const auto& [t, _] : extra_count)
      if (!output_count_.count(t)) penalise_fp(t);
  }
}

void Sampler::distribution(const float* logits, std::span<const int32_t> extra, std::vector<float>& out) const {
  const int64_t V = vocab_;
  // A NaN (or +inf) logit means the forward broke (non-finite weights or activations): no token is chosen
  // from it. −inf is a masked token and fine.
  for (int64_t i = 0; i < V; ++i)
    if (std::isnan(logits[i]) || logits[i] == std::numeric_limits<float>::infinity())
      fail(
          "sampler: the model's logit for token id {} is {}: the forward produced non-finite values (check the "
          "checkpoint's weights); no token is emitted",
          i, logits[i]);
  work_.assign(logits, logits + V);
  if (constraint_) {
    if (extra.empty()) {
      constraint_->mask(output_, work_.data(), V);
    } else {
      std::vector<int32_t> out(output_);
      out.insert(out.end(), extra.begin(), extra.end());
      constraint_->mask(out, work_.data(), V);
    }
  }
  std::fill(work_.begin() + emit_vocab_, work_.end(), -std::numeric_limits<float>::infinity());
  if (constraint_ || emit_vocab_ < V) {
    if (std::all_of(work_.begin(), work_.end(), [](float l) { return l == -std::numeric_limits<float>::infinity(); }))
      fail("sampler: the output constraint allows no token below id {} after {} generated tokens", emit_vocab_,
           output_.size() + extra.size());
  }
  apply_penalties(work_.data(), extra);
  out.assign(size_t(V), 0.0f);
  if (params_.greedy()) {
    out[size_t(std::max_element(work_.begin(), work_.end()) - work_.begin())] = 1.0f;  // first max = lowest id
    return;
  }
  // softmax(logits / T), in place in work_.
  const double invt = 1.0 / params_.temperature;
  float mx = -std::numeric_limits<float>::infinity();
  for (float l : work_) mx = std::max(mx, l);
  double sum = 0;
  for (float& l : work_) {
    const double e = std::exp((double(l) - double(mx)) * invt);
    l = float(e);
    sum += e;
  }
  for (float& l : work_) l = float(l / sum);
  const std::vector<float>& p = work_;
  auto before = [&](int32_t a, int32_t b) { return p[a] > p[b] || (p[a] == p[b] && a < b); };

  // Kept candidates: order_[0..kept), the first `sorted` of them in descending order.
  order_.resize(size_t(V));
  for (int64_t i = 0; i < V; ++i) order_[size_t(i)] = int32_t(i);
  int64_t kept = V;
  if (params_.top_k > 0 && params_.top_k < V) {
    kept = params_.top_k;
    std::nth_element(order_.begin(), order_.begin() + (kept - 1), order_.end(), before);
  }
  if (params_.top_p < 1.0) {
    double mass = 0;  // of the kept set (renormalised after top-k)
    for (int64_t i = 0; i < kept; ++i) mass += p[order_[size_t(i)]];
    const double target = params_.top_p * mass;
    // Sort a growing prefix until its cumulative mass reaches the target.
    int64_t sorted = std::min<int64_t>(kept, 64);
    for (;;) {
      std::partial_sort(order_.begin(), order_.begin() + sorted, order_.begin() + kept, before);
      double cum = 0;
      int64_t cut = -1;
      for (int64_t i = 0; i < sorted; ++i) {
        cum += p[order_[size_t(i)]];
        if (cum >= target) {
          cut = i + 1;
          break;
        }
      }
      if (cut > 0) {
        kept = cut;
        break;
      }
      if (sorted == kept) break;  // rounding: keep everything
      sorted = std::min(kept, sorted * 4);
    }
  }
  if (params_.min_p > 0.0) {
    float pmax = 0;
    for (int64_t i = 0; i < kept; ++i) pmax = std::max(pmax, p[order_[size_t(i)]]);
    const double thr = params_.min_p * pmax;
    int64_t w = 0;
    for (int64_t i = 0; i < kept; ++i)
      if (p[order_[size_t(i)]] >= thr) order_[size_t(w++)] = order_[size_t(i)];
    kept = w;
  }
  double z = 0;
  for (int64_t i = 0; i < kept; ++i) z += p[order_[size_t(i)]];
  for (int64_t i = 0; i < kept; ++i) out[size_t(order_[size_t(i)])] = float(p[order_[size_t(i)]] / z);
}

int32_t Sampler::draw(std::span<const float> dist) {
  const double u = rng_.uniform();
  double cum = 0;
  int32_t last = -1;
  for (size_t i = 0; i < dist.size(); ++i) {
    if (dist[i] <= 0) continue;
    cum += dist[i];
    last = int32_t(i);
    if (u < cum) return last;
  }
  if (last < 0) fail("sampler: empty distribution");
  return last;  // u beyond the rounded total
}

int32_t Sampler::sample(const float* logits) {
  distribution(logits, {}, dist_);
  if (params_.greedy()) return int32_t(std::max_element(dist_.begin(), dist_.end()) - dist_.begin());
  return draw(dist_);
}

// ---- StopStrings ------------------------------------------------------------------------------------------

StopStrings::StopStrings(std::vector<std::string> stops) {
  for (auto& s : stops)
    if (!s.empty()) stops_.push_back(std::move(s));
}

std::string StopStrings::push(std::string_view piece) {
  if (stopped_) return {};
  pending_.append(piece);
  size_t first = std::string::npos;
  for (const std::string& s : stops_)
    if (const size_t k = pending_.find(s); k < first) {
      first = k;
      matched_ = s;
    }
  if (first != std::string::npos) {
    stopped_ = true;
    std::string out = pending_.substr(0, first);
    pending_.clear();
    return out;
  }
  // Hold back the longest suffix that is a proper prefix of some stop string.
  size_t hold = 0;
  for (const std::string& s : stops_) {
    for (size_t k = std::min(s.size() - 1, pending_.size()); k > hold; --k) {
      if (pending_.compare(pending_.size() - k, k, s, 0, k) == 0) {
        hold = k;
        break;
      }
    }
  }
  std::string out = pending_.substr(0, pending_.size() - hold);
  pending_.erase(0, pending_.size() - hold);
  return out;
}

std::string StopStrings::flush() {
  std::string out;
  if (!stopped_) out.swap(pending_);
  return out;
}

}  // namespace dsv3::runtime
