// The rank layout: expert blocks cover every expert exactly once, owners agree with the blocks, groups
// have the sizes and members the layout says, and impossible layouts are refused naming the flag.
#include "dist/layout.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "dist/world.h"

namespace dsv3::dist {
namespace {

TEST(Layout, ExpertBlocksPartitionTheExperts) {
  for (int64_t E : {1, 3, 8, 64, 256, 257})
    for (int ep = 1; ep <= std::min<int64_t>(E, 9); ++ep) {
      std::vector<int> seen(size_t(E), 0);
      for (int i = 0; i < ep; ++i) {
        const SchemaScope s = expert_scope(E, ep, i);
        for (int64_t e = 0; e < E; ++e)
          if (s.has(e)) {
            ++seen[size_t(e)];
            EXPECT_EQ(expert_owner(E, ep, e), i) << E << " " << ep << " " << e;
          }
      }
      for (int64_t e = 0; e < E; ++e) ASSERT_EQ(seen[size_t(e)], 1) << E << " " << ep << " " << e;
    }
}

TEST(Layout, RefusesImpossibleLayouts) {
  EXPECT_EQ(make_layout(4, 0, 2, 64).dp, 2);
  EXPECT_EQ(make_layout(1, 1, 1, 0).ep, 1);
  EXPECT_THROW(make_layout(2, 1, 1, 64), Error);  // 1 × 1 ≠ 2
  EXPECT_THROW(make_layout(3, 0, 2, 64), Error);  // 2 does not divide 3
  EXPECT_THROW(make_layout(2, 1, 2, 0), Error);   // dense model
  EXPECT_THROW(make_layout(4, 1, 4, 2), Error);   // more EP ranks than experts
  EXPECT_THROW(make_layout(1, 1, 0, 8), Error);
  // pp × dp × ep: dp 0 fills the rest; the product must be the world.
  EXPECT_EQ(make_layout(8, 0, 2, 64, 2).dp, 2);
  EXPECT_EQ(make_layout(8, 0, 2, 64, 2).ranks(), 8);
  EXPECT_EQ(make_layout(8, 0, 2, 64, 2).stage_ranks(), 4);
  EXPECT_THROW(make_layout(6, 0, 2, 64, 2), Error);  // 2 × 2 does not divide 6
  EXPECT_THROW(make_layout(4, 2, 2, 64, 2), Error);  // 2 × 2 × 2 ≠ 4
  EXPECT_THROW(make_layout(4, 1, 1, 64, 0), Error);
  try {
    make_layout(4, 3, 1, 64, 2);
    ADD_FAILURE() << "2 × 3 ranks on 4 accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--pp 2 × --dp 3"), std::string::npos) << e.what();
  }
}

// Rank order pp, dp, ep (EP innermost): world rank = (pp_rank · dp + dp_rank) · ep + ep_rank.
TEST(Layout, PipelineGroupsOfTheWorld) {
  Comm& w = world();
  if (w.size() != 4) GTEST_SKIP() << "needs 4 ranks";
  for (const Layout& l : {Layout{.dp = 1, .ep = 2, .pp = 2}, Layout{.dp = 2, .ep = 1, .pp = 2}}) {
    const Groups g = make_groups(w, l);
    EXPECT_EQ(w.rank(), (g.pp_rank * l.dp + g.dp_rank) * l.ep + g.ep_rank);
    EXPECT_EQ(g.stage->size(), l.dp * l.ep);
    EXPECT_EQ(g.stage->rank(), g.lane());
    EXPECT_EQ(g.pp->size(), 2);
    EXPECT_EQ(g.pp->rank(), g.pp_rank);
    EXPECT_EQ(g.ep->size(), l.ep);
    EXPECT_EQ(g.dp->size(), l.dp);
    // A stage group is the block of dp · ep consecutive ranks; a lane's pipeline ranks are dp · ep apart.
    EXPECT_EQ(g.stage->allreduce_one<int64_t>(w.rank(), ReduceOp::Min), g.pp_rank * l.dp * l.ep);
    EXPECT_EQ(g.pp->allreduce_one<int64_t>(w.rank(), ReduceOp::Max), l.dp * l.ep + g.lane());
    EXPECT_EQ(g.ep->allreduce_one<int64_t>(w.rank(), ReduceOp::Min), w.rank() - g.ep_rank);
    EXPECT_NE(describe(g, w, 8).find("pipeline rank"), std::string::npos);
  }
}

TEST(Layout, GroupsOfTheWorld) {
  Comm& w = world();
  const int ep = w.size() % 2 == 0 ? 2 : 1;
  const Groups g = make_groups(w, make_layout(w.size(), 0, ep, 8));
  EXPECT_EQ(g.ep->size(), ep);
  EXPECT_EQ(g.dp->size(), w.size() / ep);
  EXPECT_EQ(g.ep->rank(), g.ep_rank);
  EXPECT_EQ(g.dp->rank(), g.dp_rank);
  // The EP group holds consecutive world ranks; the DP group ranks with the same EP rank.
  EXPECT_EQ(g.ep->allreduce_one<int64_t>(w.rank(), ReduceOp::Min), w.rank() - g.ep_rank);
  EXPECT_EQ(g.dp->allreduce_one<int64_t>(w.rank() % ep, ReduceOp::Max), g.ep_rank);
  EXPECT_NE(describe(g, w, 8).find("experts"), std::string::npos);
}

}  // namespace
}  // namespace dsv3::dist
