#include "plan/cluster.h"

#include <algorithm>

#include "core/error.h"
#include "plan/flops.h"

namespace dsv3::plan {

Schedule parse_schedule(const std::string& s) {
  if (s == "1f1b") return Schedule::OneFOneB;
  if (s == "zb1p") return Schedule::ZB1P;
  if (s == "dualpipe") return Schedule::DualPipe;
  if (s == "dualpipev") return Schedule::DualPipeV;
  fail("--schedule '{}': unknown (want dualpipe, dualpipev, 1f1b or zb1p)", s);
}

const char* schedule_name(Schedule s) {
  switch (s) {
    case Schedule::OneFOneB:
      return "1f1b";
    case Schedule::ZB1P:
      return "zb1p";
    case Schedule::DualPipe:
      return "dualpipe";
    case Schedule::DualPipeV:
      return "dualpipev";
  }
  return "?";
}

void validate(const ModelConfig& c, const Cluster& k, Schedule s, int64_t expert_copies) {
  if (expert_copies == 0) expert_copies = c.n_routed_experts;
  if (k.nodes < 1) fail("--nodes {}: want at least 1", k.nodes);
  if (k.gpus_per_node < 1) fail("--gpus-per-node {}: want at least 1", k.gpus_per_node);
  if (k.pp < 1) fail("--pp {}: want at least 1", k.pp);
  if (k.ep < 1) fail("--ep {}: want at least 1", k.ep);
  if (k.dp < 1) fail("--dp {}: want at least 1", k.dp);
  if (int64_t(k.pp) * k.ep * k.dp != int64_t(k.nodes) * k.gpus_per_node)
    fail("--pp {} × --ep {} × --dp {} = {} devices, but --nodes {} × --gpus-per-node {} = {}", k.pp, k.ep, k.dp,
         int64_t(k.pp) * k.ep * k.dp, k.nodes, k.gpus_per_node, int64_t(k.nodes) * k.gpus_per_node);
  if (c.n_routed_experts == 0 && k.ep > 1) fail("--ep {}: the model has no routed experts (want --ep 1)", k.ep);
  if (c.n_routed_experts > 0 && k.ep > expert_copies)
    fail("--ep {}: more EP ranks than the {} routed experts{}", k.ep, expert_copies,
         expert_copies > c.n_routed_experts ? " and their redundant copies" : "");
  if (s == Schedule::DualPipe && k.pp > 1 && k.pp % 2 != 0)
    fail("--pp {}: DualPipe pairs stage d with stage PP-1-d and needs an even PP", k.pp);
  const int n = stage_count(s, k.pp);
  if (n > c.num_hidden_layers)
    fail("--pp {}: {} pipeline stages{} for {} decoder layers (every stage needs at least one layer)", k.pp, n,
         s == Schedule::DualPipeV ? " (DualPipeV: 2 per device)" : "", c.num_hidden_layers);
}

int stage_count(Schedule s, int pp) { return s == Schedule::DualPipeV ? 2 * pp : pp; }

std::vector<Stage> split_stages(const ModelConfig& c, int n, int64_t seq) {
  const int64_t L = c.num_hidden_layers;
  std::vector<double> prefix(size_t(L) + 1, 0.0);  // prefix[j]: training FLOPs of layers [0, j)
  for (int64_t l = 0; l < L; ++l) prefix[size_t(l) + 1] = prefix[size_t(l)] + layer_flops(c, l, seq).training();
  double tail = head_flops(c).training();
  for (int64_t k = 0; k < c.num_nextn_predict_layers; ++k) tail += mtp_flops(c, seq).training();
  auto cost = [&](int64_t a, int64_t b, bool last) {
    return prefix[size_t(b)] - prefix[size_t(a)] + (last ? tail : 0);
  };
  // best[i][j]: the smallest possible largest stage over splits of layers [0, j) into i stages; cut[i][j] where
  // the last of them starts.
  const double inf = 1e300;
  std::vector<std::vector<double>> best(size_t(n) + 1, std::vector<double>(size_t(L) + 1, inf));
  std::vector<std::vector<int64_t>> cut(size_t(n) + 1, std::vector<int64_t>(size_t(L) + 1, 0));
  best[0][0] = 0;
  for (int i = 1; i <= n; ++i)
    for (int64_t j = i; j <= L; ++j)
      for (int64_t a = i - 1; a < j; ++a) {
        const double v = std::max(best[size_t(i) - 1][size_t(a)], cost(a, j, i == n && j == L));
        if (v < best[size_t(i)][size_t(j)]) best[size_t(i)][size_t(j)] = v, cut[size_t(i)][size_t(j)] = a;
      }
  std::vector<Stage> st(static_cast<size_t>(n));
  int64_t j = L;
  for (int i = n; i >= 1; --i) {
    const int64_t a = cut[size_t(i)][size_t(j)];
    st[size_t(i) - 1].first_layer = a;
    st[size_t(i) - 1].n_layers = j - a;
    j = a;
  }
  st.front().embedding = true;
  st.back().head = true;
  return st;
}

std::vector<int> device_stages(Schedule s, int pp, int d) {
  switch (s) {
    case Schedule::DualPipe:
      return pp == 1 ? std::vector<int>{0} : std::vector<int>{d, pp - 1 - d};
    case Schedule::DualPipeV:
      return {d, 2 * pp - 1 - d};
    default:
      return {d};
  }
}

}  // namespace dsv3::plan
