#include "dist/rank_memory.h"

#include <fmt/format.h>

#include "dist/layout.h"
#include "model/schema.h"

namespace dsv3::dist {

namespace {

// Bytes one tensor takes as the config implies it is stored (no checkpoint to read).
uint64_t implied_bytes(const ModelConfig& c, const WeightSpec& s) {
  const uint64_t n = uint64_t(s.numel());
  const uint64_t elem = c.torch_dtype == "float32" ? 4 : 2;  // bfloat16 / float16 (DeepSeek's releases)
  if (s.role != WeightRole::Linear) return n * elem;
  if (c.fp8) {  // E4M3 bytes + one float32 multiplier per weight_block_n × weight_block_k block
    const uint64_t bn = uint64_t((s.shape[0] + c.weight_block_n - 1) / c.weight_block_n);
    const uint64_t bk = uint64_t((s.shape[1] + c.weight_block_k - 1) / c.weight_block_k);
    return n + bn * bk * 4;
  }
  if (c.block_quant == "int8" || c.block_quant == "int4") {  // codes + one f16 scale per 32 along k
    const uint64_t kp = uint64_t((s.shape[1] + 31) / 32 * 32), rows = uint64_t(s.shape[0]);
    return rows * (c.block_quant == "int8" ? kp : kp / 2) + rows * (kp / 32) * 2;
  }
  return n * elem;
}

// Bytes as stored in the checkpoint, the tensor's scale tensor included; 0 for an absent optional copy.
uint64_t stored_bytes(const ModelConfig& c, const io::Checkpoint& ck, const WeightSpec& s) {
  const TensorView* t = ck.find(s.name);
  if (!t) return s.optional ? 0 : implied_bytes(c, s);
  uint64_t b = t->nbytes();
  for (const char* suffix : {"_scale_inv", "_scale"})
    if (const TensorView* sc = ck.find(s.name + suffix)) b += sc->nbytes();
  return b;
}

}  // namespace

std::vector<RankWeights> rank_weight_bytes(const ModelConfig& c, int ep, const io::Checkpoint* ckpt) {
  const int64_t E = c.n_routed_experts;
  std::vector<RankWeights> out(size_t(std::max(ep, 1)));
  for (int r = 0; r < int(out.size()); ++r) {
    const SchemaScope sc = expert_scope(E, ep, r);
    out[size_t(r)].expert_begin = E > 0 ? sc.expert_begin : 0;
    out[size_t(r)].expert_end = E > 0 ? (sc.expert_end < 0 ? E : sc.expert_end) : 0;
  }
  for (const WeightSpec& s : enumerate_weights(c)) {
    const uint64_t b = ckpt ? stored_bytes(c, *ckpt, s) : implied_bytes(c, s);
    if (s.expert < 0) {
      for (RankWeights& r : out) r.replicated += b;
    } else {
      out[size_t(expert_owner(E, ep, s.expert))].routed += b;
    }
  }
  return out;
}

std::string human_bytes(uint64_t b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = double(b);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  return u == 0 ? fmt::format("{} B", b) : fmt::format("{:.2f} {}", v, units[u]);
}

}  // namespace dsv3::dist
