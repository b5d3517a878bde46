// The bucketed all-reduce on whatever world the test runs in (1 process, 2 or 4 MPI ranks): every buffer
// ends up holding the sum over the ranks, buckets start as their stages are marked (never overtaking an
// earlier bucket), single-buffer and packed buckets, sizes that do not fill a bucket, and repeated passes.
#include "dist/bucket_allreduce.h"

#include <gtest/gtest.h>

#include <vector>

#include "dist/world.h"

namespace dsv3::dist {
namespace {

// Rank r's value of element j of buffer i: exact in float for the sums below.
float value(int r, size_t i, size_t j, int pass) { return float((r + 1) * 1000 + int(i) * 10 + int(j % 7) + pass); }

TEST(BucketedAllreduce, SumsEveryBufferAndStartsBucketsAsStagesFinish) {
  Comm& w = world();
  const int P = w.size();
  // Stages as a backward reports them: 5, 4, ..., 0, then -1; sizes awkward around the 64-float bucket.
  const std::vector<std::pair<size_t, int64_t>> shape = {{3, 5}, {61, 5}, {1, 4},  {0, 4}, {200, 3},
                                                         {7, 2}, {64, 1}, {65, 1}, {2, 0}, {9, -1}};
  std::vector<std::vector<float>> data(shape.size());
  std::vector<ReduceBuffer> bufs;
  for (size_t i = 0; i < shape.size(); ++i) {
    data[i].resize(shape[i].first);
    bufs.push_back({data[i].data(), data[i].size(), shape[i].second});
  }
  BucketedAllreduce ar(w, bufs, 64 * sizeof(float));
  // {3,61} | {1,(0)} | {200} | {7} | {64} | {65} | {2,9}
  EXPECT_EQ(ar.buckets(), 7u);

  for (int pass = 0; pass < 3; ++pass) {
    for (size_t i = 0; i < data.size(); ++i)
      for (size_t j = 0; j < data[i].size(); ++j) data[i][j] = value(w.rank(), i, j, pass);
    ar.begin();
    EXPECT_EQ(ar.started_early(), 0u);
    ar.mark_ready(5);
    EXPECT_EQ(ar.started_early(), 1u);
    ar.mark_ready(3);  // out of order: bucket {200} waits for {1} (stage 4)
    EXPECT_EQ(ar.started_early(), 1u);
    ar.mark_ready(4);
    EXPECT_EQ(ar.started_early(), 3u);
    ar.mark_ready(4);   // twice: no effect
    ar.mark_ready(99);  // a stage without buffers: no effect
    EXPECT_EQ(ar.started_early(), 3u);
    if (pass < 2) {
      ar.mark_ready(2), ar.mark_ready(1), ar.mark_ready(0);
      EXPECT_EQ(ar.started_early(), 6u);  // {2, 9} still waits for -1
      if (pass == 0) ar.mark_ready(-1);
    }
    ar.finish();  // pass 1: the last bucket starts here; pass 2: four buckets do
    EXPECT_EQ(ar.started_early(), pass == 0 ? 7u : pass == 1 ? 6u : 3u);
    for (size_t i = 0; i < data.size(); ++i)
      for (size_t j = 0; j < data[i].size(); ++j) {
        float want = 0;
        for (int r = 0; r < P; ++r) want += value(r, i, j, pass);
        ASSERT_EQ(data[i][j], want) << "pass " << pass << " buffer " << i << " element " << j;
      }
  }
}

TEST(BucketedAllreduce, OneHugeBucketAndNoBuffers) {
  Comm& w = world();
  std::vector<float> a(1000, float(w.rank())), b(10, 1.0f);
  BucketedAllreduce big(w, {{a.data(), a.size(), 1}, {b.data(), b.size(), 0}}, size_t(1) << 30);
  EXPECT_EQ(big.buckets(), 1u);
  big.mark_ready(1);
  EXPECT_EQ(big.started_early(), 0u);
  big.finish();
  const int P = w.size();
  EXPECT_EQ(a[999], float(P * (P - 1) / 2));
  EXPECT_EQ(b[0], float(P));
  BucketedAllreduce none(w, {}, 64);
  EXPECT_EQ(none.buckets(), 0u);
  none.mark_ready(-1);
  none.finish();
}

}  // namespace
}  // namespace dsv3::dist
