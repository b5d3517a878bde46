#include "dist/layout.h"

#include <fmt/format.h>

#include "core/error.h"

namespace dsv3::dist {

Layout make_layout(int world_size, int dp, int ep, int64_t n_routed_experts, int pp) {
  if (pp < 1) fail("--pp {}: must be at least 1", pp);
  if (ep < 1) fail("--ep {}: must be at least 1", ep);
  if (dp < 0) fail("--dp {}: must be at least 1", dp);
  if (dp == 0) {
    if (world_size % (ep * pp) != 0) {
      if (pp == 1) fail("--ep {}: does not divide the {} ranks of the job", ep, world_size);
      fail("--pp {} × --ep {}: does not divide the {} ranks of the job", pp, ep, world_size);
    }
    dp = world_size / (ep * pp);
  }
  if (pp * dp * ep != world_size) {
    if (pp == 1)
      fail("--dp {} × --ep {} = {} ranks, but the job has {} (start it with mpirun -np {})", dp, ep, dp * ep,
           world_size, dp * ep);
    fail("--pp {} × --dp {} × --ep {} = {} ranks, but the job has {} (start it with mpirun -np {})", pp, dp, ep,
         pp * dp * ep, world_size, pp * dp * ep);
  }
  if (ep > 1 && n_routed_experts <= 0) fail("--ep {}: the model has no routed experts to shard", ep);
  if (ep > 1 && ep > n_routed_experts)
    fail("--ep {}: more EP ranks than the model's {} routed experts", ep, n_routed_experts);
  return Layout{.dp = dp, .ep = ep, .pp = pp};
}

SchemaScope expert_scope(int64_t n_routed_experts, int ep, int ep_rank) {
  if (ep <= 1) return {};
  const int64_t E = n_routed_experts;
  return SchemaScope{.expert_begin = E * ep_rank / ep, .expert_end = E * (ep_rank + 1) / ep};
}

int expert_owner(int64_t n_routed_experts, int ep, int64_t e) {
  if (ep <= 1) return 0;
  // The largest i with ⌊E·i/ep⌋ ≤ e.
  int i = int((e * ep) / n_routed_experts);
  while (i + 1 < ep && n_routed_experts * (i + 1) / ep <= e) ++i;
  while (i > 0 && n_routed_experts * i / ep > e) --i;
  return i;
}

Groups make_groups(Comm& world, const Layout& layout) {
  if (layout.ranks() != world.size())
    fail("layout pp {} × dp {} × ep {} does not match the job's {} ranks", layout.pp, layout.dp, layout.ep,
         world.size());
  Groups g;
  g.layout = layout;
  g.rank = world.rank();
  const int S = layout.stage_ranks();
  g.ep_rank = g.rank % layout.ep;
  g.dp_rank = (g.rank % S) / layout.ep;
  g.pp_rank = g.rank / S;
  g.ep = world.split(g.pp_rank * layout.dp + g.dp_rank, g.ep_rank);
  g.dp = world.split(g.pp_rank * layout.ep + g.ep_rank, g.dp_rank);
  g.stage = world.split(g.pp_rank, g.lane());
  g.pp = world.split(g.lane(), g.pp_rank);
  return g;
}

std::string describe(const Groups& g, const Comm& world, int64_t n_routed_experts) {
  const std::string pp = g.layout.pp > 1 ? fmt::format("pp {} × ", g.layout.pp) : "";
  const std::string stage = g.layout.pp > 1 ? fmt::format("pipeline rank {}, ", g.pp_rank) : "";
  std::string s = fmt::format("{} rank{} ({}): {}dp {} × ep {}; rank {}: {}replica {}, EP rank {}", world.size(),
                              world.size() == 1 ? "" : "s", world.backend(), pp, g.layout.dp, g.layout.ep, g.rank,
                              stage, g.dp_rank, g.ep_rank);
  if (n_routed_experts > 0) {
    const SchemaScope sc = expert_scope(n_routed_experts, g.layout.ep, g.ep_rank);
    const int64_t b = sc.expert_begin, e = sc.expert_end < 0 ? n_routed_experts : sc.expert_end;
    s += fmt::format(", experts {}-{} of {}", b, e - 1, n_routed_experts);
  }
  return s;
}

}  // namespace dsv3::dist
