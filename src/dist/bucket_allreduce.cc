#include "dist/bucket_allreduce.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"

namespace dsv3::dist {

BucketedAllreduce::BucketedAllreduce(Comm& comm, std::vector<ReduceBuffer> buffers, size_t bucket_bytes)
    : comm_(comm), buffers_(std::move(buffers)) {
  const size_t cap = std::max<size_t>(1, bucket_bytes / sizeof(float));
  for (size_t i = 0; i < buffers_.size(); ++i) {
    const size_t n = buffers_[i].n;
    if (n == 0) continue;  // nothing to reduce (kept in the list for the caller's indexing)
    if (buckets_.empty() || buckets_.back().floats + n > cap) buckets_.emplace_back().first = i;
    Bucket& b = buckets_.back();
    b.count = i + 1 - b.first;
    b.floats += n;
  }
  // Distinct stages per bucket; which buckets wait on each stage.
  for (size_t k = 0; k < buckets_.size(); ++k) {
    std::vector<int64_t> seen;
    for (size_t i = buckets_[k].first; i < buckets_[k].first + buckets_[k].count; ++i) {
      if (buffers_[i].n == 0) continue;
      const int64_t s = buffers_[i].stage;
      if (std::find(seen.begin(), seen.end(), s) != seen.end()) continue;
      seen.push_back(s);
      auto it = std::find(stages_.begin(), stages_.end(), s);
      size_t slot = size_t(it - stages_.begin());
      if (it == stages_.end()) stages_.push_back(s), by_stage_.emplace_back();
      by_stage_[slot].push_back(k);
    }
    if (buckets_[k].count > 1 && comm_.size() > 1) buckets_[k].staging.resize(buckets_[k].floats);
  }
  stage_done_.assign(stages_.size(), 0);
  begin();
}

void BucketedAllreduce::begin() {
  for (Bucket& b : buckets_) {
    if (b.req) b.req->wait();
    b.req.reset();
    b.pending_stages = 0;
  }
  for (size_t s = 0; s < stages_.size(); ++s)
    for (size_t k : by_stage_[s]) ++buckets_[k].pending_stages;
  std::fill(stage_done_.begin(), stage_done_.end(), 0);
  next_ = 0;
  started_early_ = 0;
}

void BucketedAllreduce::start(Bucket& b) {
  if (comm_.size() == 1) return;
  if (b.staging.empty()) {
    const ReduceBuffer& r = buffers_[b.first];
    b.req = comm_.iallreduce(r.data, r.n, DType::F32, ReduceOp::Sum);
    return;
  }
  float* at = b.staging.data();
  for (size_t i = b.first; i < b.first + b.count; ++i) {
    if (buffers_[i].n) std::memcpy(at, buffers_[i].data, buffers_[i].n * sizeof(float));
    at += buffers_[i].n;
  }
  b.req = comm_.iallreduce(b.staging.data(), b.staging.size(), DType::F32, ReduceOp::Sum);
}

void BucketedAllreduce::poll() {
  for (size_t k = 0; k < next_; ++k)
    if (buckets_[k].req) buckets_[k].req->test();
}

void BucketedAllreduce::mark_ready(int64_t stage) {
  auto it = std::find(stages_.begin(), stages_.end(), stage);
  if (it != stages_.end()) {
    const size_t slot = size_t(it - stages_.begin());
    if (!stage_done_[slot]) {
      stage_done_[slot] = 1;
      for (size_t k : by_stage_[slot]) --buckets_[k].pending_stages;
    }
  }
  poll();
  while (next_ < buckets_.size() && buckets_[next_].pending_stages == 0) {
    start(buckets_[next_++]);
    ++started_early_;
  }
}

void BucketedAllreduce::finish() {
  while (next_ < buckets_.size()) start(buckets_[next_++]);
  for (Bucket& b : buckets_) {
    if (!b.req) continue;
    b.req->wait();
    b.req.reset();
    if (b.staging.empty()) continue;
    const float* at = b.staging.data();
    for (size_t i = b.first; i < b.first + b.count; ++i) {
      if (buffers_[i].n) std::memcpy(buffers_[i].data, at, buffers_[i].n * sizeof(float));
      at += buffers_[i].n;
    }
  }
}

}  // namespace dsv3::dist
