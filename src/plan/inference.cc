#include "plan/inference.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "plan/flops.h"
#include "plan/memory.h"

namespace dsv3::plan {

InferencePlan plan_inference(const ModelConfig& c, const Cluster& k, const Hardware& node_hw,
                             const InferenceOptions& o) {
  if (o.redundant_experts < 0) fail("--redundant-experts {}: want at least 0", o.redundant_experts);
  validate(c, k, Schedule::OneFOneB, c.n_routed_experts + o.redundant_experts);
  if (k.pp != 1) fail("--pp {}: inference plans have no pipeline (want --pp 1)", k.pp);
  if (o.attention_tp < 1 || k.world() % o.attention_tp != 0)
    fail("--attention-tp {}: must divide the {} devices", o.attention_tp, k.world());
  if (o.batch < 1) fail("--batch-size {}: want at least 1", o.batch);
  const Hardware hw = share_of_node(node_hw, k.gpus_per_node);
  const double h = double(c.hidden_size), v = double(c.vocab_size);
  const double tp = o.attention_tp;
  InferencePlan p;

  // Weights per device (the MTP module is not loaded: decoding without MTP drafts).
  const double expert = expert_params(c);
  double moe_layers = 0, replicated = 0;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    if (c.is_moe_layer(l)) {
      moe_layers += 1;
      replicated += h * double(c.n_routed_experts) + (o.shared_as_routed ? 0 : double(c.n_shared_experts) * expert);
    } else {
      replicated += 3 * h * double(c.intermediate_size);
    }
  }
  const double attention = double(c.num_hidden_layers) * attention_params(c) + h;  // + the final norm
  const double experts_per_device =
      c.n_routed_experts > 0 ? std::ceil(double(c.n_routed_experts + o.redundant_experts) / k.ep) : 0;
  p.weights = o.weight_bytes * (attention / tp + replicated + moe_layers * experts_per_device * expert) +
              2 * 2 * h * v;  // embedding + head, BF16

  // KV cache per sequence (the latent cache is not split by heads: every TP rank of a group keeps it).
  const double kv_per_token = o.kv_bytes * double(c.kv_cache_values_per_token()) * double(c.num_hidden_layers);
  const double seq_tokens = o.phase == Phase::Prefill ? double(o.prompt) : double(o.context);
  p.kv_cache = kv_per_token * seq_tokens * double(o.batch);
  p.max_batch = int64_t(std::floor(std::max(0.0, hw.memory_bytes - p.weights) / (kv_per_token * seq_tokens)));

  // One step of one device: its attention group's tokens, shared over the group's TP ranks.
  const ModelFlops mf = model_flops(c, o.phase == Phase::Prefill ? o.prompt : 1);
  const double linear = mf.layers.linear + mf.head.linear;
  const double rate = hw.peak_flops * o.mfu;
  const double slots_extra = o.shared_as_routed ? double(c.n_shared_experts) : 0;
  const AllToAll a2a = moe_all_to_all(c, k, hw, o.wire, o.max_nodes, int(slots_extra));
  if (o.phase == Phase::Prefill) {
    p.tokens_per_step = double(o.batch) * double(o.prompt) / tp;
    p.flops_per_token = linear + mf.layers.attention;
    p.compute = p.tokens_per_step * p.flops_per_token / rate;
    p.memory = p.weights / hw.memory_bandwidth;
  } else {
    p.tokens_per_step = double(o.batch) / tp;
    p.flops_per_token = linear + decode_attention_flops(c, o.context);
    p.compute = p.tokens_per_step * p.flops_per_token / rate;
    p.memory = (p.weights + p.kv_cache / tp) / hw.memory_bandwidth;
  }
  p.comm = moe_layers * (p.tokens_per_step * a2a.seconds_per_token + a2a.latency_per_layer);
  const double local = std::max(p.compute, p.memory);
  p.step = o.overlap ? std::max(local, p.comm) : local + p.comm;
  p.tokens_per_s_device = p.tokens_per_step / p.step;
  p.tokens_per_s_node = p.tokens_per_s_device * k.gpus_per_node;
  p.tokens_per_s = p.tokens_per_s_device * k.world();
  return p;
}

}  // namespace dsv3::plan
