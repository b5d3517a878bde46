// The step protocol of dist::EpInference over the world (1 rank, or 2 / 4 under mpirun) with a real model
// (the v3_mtp reference case): rank 0 drives sequences through Model::forward / mtp_forward with the job as
// the model's ModelParallel while the others follow. Its outputs equal a model of this process alone; new
// sequences go to every rank; a remote sequence's cache holds no rows on rank 0; speculative rollbacks
// (truncate) reach the remote copy; destroyed caches are freed on their holder; a step with no rows at all
// and a bad call (refused on rank 0 before any message) leave the job usable.
#include "dist/ep_inference.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>  // before testdata.h, which uses std::memcpy

#include "../model/testdata.h"
#include "core/error.h"
#include "dist/world.h"
#include "model/transformer.h"

namespace dsv3::dist {
namespace {

double rel_err(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return INFINITY;
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    den += double(b[i]) * b[i];
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

TEST(EpInference, StepsEqualOneProcess) {
  DSV3_REQUIRE_CASE("v3_mtp");
  const std::string dir = testing::testdata_dir() + "/v3_mtp";
  Comm& w = world();
  auto job = std::make_shared<EpInference>(w, load_config(dir), EpOptions{.ep = w.size()});
  ModelOptions opt;
  opt.parallel = job;
  auto model = Model::load(dir, opt);
  if (!job->leads()) {
    job->follow(*model);
    EXPECT_EQ(job->held(), 0u) << "rank " << w.rank() << " kept caches rank 0 released";
    return;
  }
  auto alone = Model::load(dir);
  const int64_t V = model->config().vocab_size, D = model->config().hidden_size;
  std::vector<float> lg, lg1, hid, hid1;

  // Three sequences prefilled in one step: the first on rank 0, the others spread over the ranks.
  std::vector<KvCache> c, r;
  for (int i = 0; i < 3; ++i) {
    c.push_back(model->new_cache(8));
    r.push_back(alone->new_cache(8));
  }
  const std::vector<int32_t> prompt{3, 5, 7, 11, 13, 17, 19, 23, 29};
  auto chunks = [](std::vector<KvCache>& caches, std::vector<int64_t> ns) {
    std::vector<SeqChunk> out;
    for (size_t i = 0; i < ns.size(); ++i)
      if (ns[i] >= 0) out.push_back({&caches[i], ns[i]});
    return out;
  };
  lg.resize(size_t(3 * V));
  lg1 = lg;
  hid.resize(size_t(9 * D));
  hid1 = hid;
  model->forward(prompt, chunks(c, {3, 4, 2}), hid.data(), lg.data(), {.logits = LogitRows::LastOfEachChunk});
  alone->forward(prompt, chunks(r, {3, 4, 2}), hid1.data(), lg1.data(), {.logits = LogitRows::LastOfEachChunk});
  EXPECT_LE(rel_err(lg, lg1), 1e-6);
  EXPECT_LE(rel_err(hid, hid1), 1e-6);
  const std::vector<int64_t> placed = job->placed();
  EXPECT_EQ(placed[0], w.size() == 1 ? 3 : w.size() == 2 ? 2 : 1);
  if (w.size() > 1) {
    EXPECT_EQ(placed[1], 1);
    EXPECT_EQ(c[1].bytes(), 0u) << "a sequence held by rank 1 has rows on rank 0";
    EXPECT_EQ(c[1].length(), 4);  // but rank 0 tracks its length
  }

  // A decode step with every row's logits; then a rollback of sequence 1 (speculative rejection) and a
  // different continuation, which the holder must compute from the cut-back cache.
  const std::vector<int32_t> step{31, 37, 41};
  lg.resize(size_t(3 * V));
  lg1.resize(lg.size());
  model->forward(step, chunks(c, {1, 1, 1}), nullptr, lg.data());
  alone->forward(step, chunks(r, {1, 1, 1}), nullptr, lg1.data());
  EXPECT_LE(rel_err(lg, lg1), 1e-6);
  c[1].truncate(3);
  r[1].truncate(3);
  const std::vector<int32_t> other{43, 47};
  lg.resize(size_t(2 * V));
  lg1.resize(lg.size());
  model->forward(other, chunks(c, {-1, 2}), nullptr, lg.data());
  alone->forward(other, chunks(r, {-1, 2}), nullptr, lg1.data());
  EXPECT_LE(rel_err(lg, lg1), 1e-6) << "after a rollback";

  // The MTP module over hidden rows: its own caches, placed like the main ones.
  KvCache m0 = model->new_mtp_cache(8), m1 = model->new_mtp_cache(8);
  KvCache n0 = alone->new_mtp_cache(8), n1 = alone->new_mtp_cache(8);
  const std::vector<int32_t> next{5, 7, 9, 11, 13};
  std::vector<SeqChunk> mc{{&m0, 2}, {&m1, 3}}, nc{{&n0, 2}, {&n1, 3}};
  std::vector<float> mh(size_t(5 * D)), mh1(mh.size());
  lg.resize(size_t(5 * V));
  lg1.resize(lg.size());
  model->mtp_forward(0, next, hid.data(), mc, mh.data(), lg.data());
  alone->mtp_forward(0, next, hid1.data(), nc, mh1.data(), lg1.data());
  EXPECT_LE(rel_err(lg, lg1), 1e-6);
  EXPECT_LE(rel_err(mh, mh1), 1e-6);

  // A bad call is refused on rank 0 (the others never hear of it); the job goes on.
  const std::vector<int32_t> bad{int32_t(V)};
  EXPECT_THROW(model->forward(bad, chunks(c, {1}), nullptr, nullptr), Error);
  EXPECT_THROW(model->forward(other, chunks(c, {1}), nullptr, lg.data()), Error);  // 2 tokens, 1 in chunks

  // Sequences end: their caches are released, carried by the next step (here one with no rows at all).
  c.clear();
  m0 = KvCache();
  m1 = KvCache();
  model->forward({}, {}, nullptr, nullptr);
  job->stop();
}

}  // namespace
}  // namespace dsv3::dist
