// The MoE layer's expert-execution seam (model/expert_executor.h): what Moe hands an executor, and that an
// executor splitting the experts between two owners (the shape of expert parallelism) gives the same bits as
// the local one.
#include "model/expert_executor.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "core/error.h"
#include "model/moe.h"
#include "model/transformer.h"
#include "testdata.h"

namespace dsv3 {
namespace {

// Records the tasks it is given, then runs them on a LocalExperts.
class Recording final : public ExpertExecutor {
 public:
  Recording(const MoeWeights& w, int64_t hidden) : local_(w, hidden), hidden_(hidden) {}
  void run(std::span<const ExpertTask> tasks, const float* x, int64_t m, float* out) override {
    seen.clear();
    for (const ExpertTask& t : tasks) {
      for (int64_t i = 0; i < t.m; ++i) {
        // The task's input row i is the layer's input row rows[i].
        EXPECT_EQ(std::memcmp(t.x + i * hidden_, x + t.rows[i] * hidden_, size_t(hidden_) * sizeof(float)), 0);
        seen.push_back({t.expert, t.rows[i], t.gates[i]});
      }
    }
    local_.run(tasks, x, m, out);
  }
  struct Slot {
    int64_t expert, row;
    float gate;
  };
  std::vector<Slot> seen;

 private:
  LocalExperts local_;
  int64_t hidden_;
};

// Two owners: experts [0, split) run on one LocalExperts without the shared expert, the rest and the shared
// expert on another, into the same output in task order — what a dispatch/combine over two ranks computes.
class TwoOwners final : public ExpertExecutor {
 public:
  TwoOwners(const MoeWeights& w, int64_t hidden, int64_t split)
      : first_w_(without_shared(w)), first_(first_w_, hidden), second_(w, hidden), split_(split) {}
  void run(std::span<const ExpertTask> tasks, const float* x, int64_t m, float* out) override {
    size_t k = 0;
    while (k < tasks.size() && tasks[k].expert < split_) ++k;
    first_.run(tasks.first(k), x, m, out);
    second_.run(tasks.subspan(k), x, m, out);
  }

 private:
  static MoeWeights without_shared(MoeWeights w) {
    w.has_shared = false;
    return w;
  }
  MoeWeights first_w_;
  LocalExperts first_, second_;
  int64_t split_;
};

std::vector<float> input(int64_t m, int64_t d) {
  std::vector<float> x(size_t(m * d));
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(std::sin(0.37 * double(i) + 0.1));
  return x;
}

TEST(ExpertExecutor, MoeHandsEverySlotOnceInExpertOrder) {
  DSV3_REQUIRE_CASE("v3_tiny");
  auto model = Model::load(testing::testdata_dir() + "/v3_tiny");
  const ModelConfig& c = model->config();
  const LayerWeights& lw = model->weights().layers[1];
  ASSERT_TRUE(lw.is_moe);
  const int64_t D = c.hidden_size, K = c.num_experts_per_tok;
  for (int64_t m : {int64_t(1), int64_t(3), int64_t(40)}) {  // fused regime, and per-expert FFNs
    SCOPED_TRACE(m);
    auto rec = std::make_unique<Recording>(lw.moe, D);
    Recording* r = rec.get();
    Moe local(c, lw.moe), recorded(c, lw.moe, std::move(rec));
    const std::vector<float> x = input(m, D);
    std::vector<float> a(size_t(m * D)), b(size_t(m * D));
    RoutingRecord routing;
    local.forward(x.data(), m, a.data(), &routing);
    recorded.forward(x.data(), m, b.data());
    EXPECT_EQ(a, b);
    // Every (row, k) slot of the routing record exactly once, experts ascending, the record's gate.
    ASSERT_EQ(int64_t(r->seen.size()), m * K);
    std::map<std::pair<int64_t, int64_t>, float> want;
    for (int64_t row = 0; row < m; ++row)
      for (int64_t k = 0; k < K; ++k)
        want[{routing.experts[size_t(row * K + k)], row}] = routing.gates[size_t(row * K + k)];
    for (size_t i = 0; i < r->seen.size(); ++i) {
      const auto& s = r->seen[i];
      if (i > 0) EXPECT_LE(r->seen[i - 1].expert, s.expert);
      auto it = want.find({s.expert, s.row});
      ASSERT_NE(it, want.end()) << "expert " << s.expert << " row " << s.row;
      EXPECT_EQ(it->second, s.gate);
      want.erase(it);
    }
    EXPECT_TRUE(want.empty());
  }
}

TEST(ExpertExecutor, SplittingTheExpertsBetweenOwnersGivesTheSameBits) {
  DSV3_REQUIRE_CASE("v3_tiny");
  auto model = Model::load(testing::testdata_dir() + "/v3_tiny");
  const ModelConfig& c = model->config();
  const LayerWeights& lw = model->weights().layers[1];
  ASSERT_TRUE(lw.is_moe);
  ASSERT_TRUE(lw.moe.has_shared);
  const int64_t D = c.hidden_size;
  for (int64_t split : {int64_t(1), c.n_routed_experts / 2, c.n_routed_experts - 1})
    for (int64_t m : {int64_t(1), int64_t(5), int64_t(40)}) {
      SCOPED_TRACE(::testing::Message() << "split " << split << ", m " << m);
      Moe local(c, lw.moe), split_moe(c, lw.moe, std::make_unique<TwoOwners>(lw.moe, D, split));
      const std::vector<float> x = input(m, D);
      std::vector<float> a(size_t(m * D)), b(size_t(m * D));
      local.forward(x.data(), m, a.data());
      split_moe.forward(x.data(), m, b.data());
      EXPECT_EQ(a, b);
    }
}

TEST(ExpertExecutor, LocalExpertsRefusesAnExpertOutsideTheLayer) {
  DSV3_REQUIRE_CASE("v3_tiny");
  auto model = Model::load(testing::testdata_dir() + "/v3_tiny");
  const ModelConfig& c = model->config();
  const LayerWeights& lw = model->weights().layers[1];
  LocalExperts local(lw.moe, c.hidden_size);
  const std::vector<float> x = input(1, c.hidden_size);
  std::vector<float> out(size_t(c.hidden_size));
  const int64_t row = 0;
  const float gate = 1.0f;
  const ExpertTask bad{.expert = c.n_routed_experts, .x = x.data(), .m = 1, .rows = &row, .gates = &gate};
  EXPECT_THROW(local.run({&bad, 1}, x.data(), 1, out.data()), Error);
}

}  // namespace
}  // namespace dsv3
