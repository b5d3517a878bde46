// Bucketed, overlapped sum-all-reduce of float buffers (data parallelism's gradient reduction, DESIGN.md
// dist/; the idea of PyTorch DDP's gradient buckets): the buffers are listed in the order a backward pass
// finishes them, packed into buckets of about `bucket_bytes`, and each bucket's iallreduce starts as soon
// as every buffer in it is final — while the backward goes on computing the layers below. finish() starts
// what is left and waits; afterwards every buffer holds the sum over the communicator's ranks.
//
// A buffer belongs to a "stage" (for the trainer: a layer index); mark_ready(stage) says every buffer of
// that stage is final. Buckets start strictly in list order (a bucket never overtakes the one before it), so
// every rank issues the same collectives in the same order whatever the timing, as MPI requires. A bucket
// holding one buffer is reduced in place; larger ones are packed into a staging buffer and unpacked when
// done. Between starts, mark_ready polls the requests in flight (OpenMPI progresses a non-blocking collective
// only inside MPI calls). On a 1-rank communicator nothing is copied or sent.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "dist/comm.h"

namespace dsv3::dist {

struct ReduceBuffer {
  float* data = nullptr;
  size_t n = 0;
  int64_t stage = 0;
};

class BucketedAllreduce {
 public:
  // `buffers` in the order they become final. A buffer larger than bucket_bytes is a bucket of its own.
  BucketedAllreduce(Comm& comm, std::vector<ReduceBuffer> buffers, size_t bucket_bytes);

  // A new pass: no stage is final, no bucket started. Waits for anything still in flight.
  void begin();
  // Every buffer of `stage` is final: start the buckets (in order) whose buffers are all final.
  void mark_ready(int64_t stage);
  // Starts every bucket not started yet, waits for all of them and unpacks: the buffers hold the sums.
  void finish();

  size_t buckets() const { return buckets_.size(); }
  // Buckets started before finish() was called in the last pass (those that overlapped the backward).
  size_t started_early() const { return started_early_; }

 private:
  struct Bucket {
    size_t first = 0, count = 0;  // buffers_[first, first + count)
    size_t floats = 0;
    std::vector<float> staging;  // packed sums (empty for single-buffer buckets)
    RequestPtr req;
    size_t pending_stages = 0;  // stages of its buffers not yet marked final in this pass
  };
  void start(Bucket& b);
  void poll();

  Comm& comm_;
  std::vector<ReduceBuffer> buffers_;
  std::vector<Bucket> buckets_;
  std::vector<std::vector<size_t>> by_stage_;  // stage slot -> buckets holding one of its buffers (with repeats)
  std::vector<int64_t> stages_;                // distinct stages, slot order
  std::vector<char> stage_done_;
  size_t next_ = 0;  // first bucket not started
  size_t started_early_ = 0;
};

}  // namespace dsv3::dist
