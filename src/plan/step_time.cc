#include "plan/step_time.h"

#include <algorithm>
#include <vector>

#include "core/error.h"
#include "plan/flops.h"

namespace dsv3::plan {

namespace {

LayerFlops stage_flops(const ModelConfig& c, const Stage& s, int64_t seq) {
  LayerFlops f;
  for (int64_t l = s.first_layer; l < s.first_layer + s.n_layers; ++l) f += layer_flops(c, l, seq);
  if (s.head) {
    f += head_flops(c);
    for (int64_t k = 0; k < c.num_nextn_predict_layers; ++k) f += mtp_flops(c, seq);
  }
  return f;
}

int64_t moe_layers(const ModelConfig& c, const Stage& s) {
  int64_t n = 0;
  for (int64_t l = s.first_layer; l < s.first_layer + s.n_layers; ++l) n += c.is_moe_layer(l);
  if (s.head)
    for (int64_t k = 0; k < c.num_nextn_predict_layers; ++k) n += c.is_moe_layer(c.num_hidden_layers + k);
  return n;
}

}  // namespace

StepTime training_step(const ModelConfig& c, const Cluster& k, const Hardware& node_hw, const TrainOptions& o) {
  validate(c, k, o.schedule);
  if (o.seq < 1) fail("--seq {}: want at least 1", o.seq);
  if (o.micro_batch < 1) fail("--micro-batch {}: want at least 1", o.micro_batch);
  if (!(o.mfu > 0 && o.mfu <= 1)) fail("--mfu {}: want 0 < mfu <= 1", o.mfu);
  const int64_t replicas = int64_t(k.dp) * k.ep;  // attention data parallelism of one stage
  if (o.batch < 1 || o.batch % (replicas * o.micro_batch) != 0)
    fail(
        "--batch-size {}: must split into micro-batches of --micro-batch {} sequences over the --dp {} × --ep {} "
        "= {} data-parallel ranks",
        o.batch, o.micro_batch, k.dp, k.ep, replicas);
  StepTime t;
  t.micro_batches = o.batch / (replicas * o.micro_batch);
  if (o.schedule == Schedule::DualPipe && k.pp > 1 && t.micro_batches < 2 * k.pp)
    fail("--batch-size {}: {} micro-batches per pipeline, DualPipe needs at least 2 × --pp = {}", o.batch,
         t.micro_batches, 2 * k.pp);
  if (o.schedule == Schedule::DualPipe && k.pp > 1 && t.micro_batches % 2 != 0)
    fail("--batch-size {}: {} micro-batches per pipeline, DualPipe feeds them from both ends and needs an even number",
         o.batch, t.micro_batches);
  t.micro_tokens = double(o.micro_batch) * double(o.seq);
  t.tokens_per_step = double(o.batch) * double(o.seq);

  const Hardware hw = share_of_node(node_hw, k.gpus_per_node);
  const double rate = hw.peak_flops * o.mfu;
  const std::vector<Stage> stages = split_stages(c, stage_count(o.schedule, k.pp), o.seq);
  const AllToAll a2a = moe_all_to_all(c, k, hw, o.wire, o.max_nodes);

  // The slowest device: its chunks' mean F, B, W; per micro-batch it runs one chunk (1F1B, ZB1P; DualPipe: one
  // of its two, half the micro-batches each way) or both (DualPipeV: down then up the V).
  for (int d = 0; d < k.pp; ++d) {
    const std::vector<int> held = device_stages(o.schedule, k.pp, d);
    ChunkTimes ct;
    double a2a_f = 0;
    for (int si : held) {
      const LayerFlops f = stage_flops(c, stages[size_t(si)], o.seq);
      ct.F += f.forward() * t.micro_tokens / rate;
      ct.B += f.backward() * t.micro_tokens / rate;
      ct.W += f.weight_grad() * t.micro_tokens / rate;
      const double layers = double(moe_layers(c, stages[size_t(si)]));
      a2a_f += layers * (a2a.seconds_per_token * t.micro_tokens + a2a.latency_per_layer);
    }
    const double n = double(held.size());
    ct.F /= n, ct.B /= n, ct.W /= n, a2a_f /= n;
    const double chunks_per_micro = o.schedule == Schedule::DualPipeV ? 2 : 1;
    const double compute = double(t.micro_batches) * chunks_per_micro * (ct.F + ct.B);
    if (d == 0 || compute > t.compute) {
      t.compute = compute;
      t.chunk = ct;
      t.a2a_forward = a2a_f;
      t.a2a_backward = a2a_f;  // the transposes: the same rows back
    }
  }
  const bool overlapped = o.schedule == Schedule::DualPipe || o.schedule == Schedule::DualPipeV;
  const double comm = t.a2a_forward + t.a2a_backward;
  const double chunks = double(t.micro_batches) * (o.schedule == Schedule::DualPipeV ? 2 : 1);
  if (overlapped) {
    t.exposed_a2a = chunks * std::max(0.0, comm - (t.chunk.F + t.chunk.B));
    t.chunk.FB = std::max(t.chunk.F + t.chunk.B, comm);
  } else {
    t.exposed_a2a = chunks * comm;
    t.chunk.F += t.a2a_forward;  // 1F1B's F and B include their blocking exchanges
    t.chunk.B += t.a2a_backward;
    t.chunk.FB = t.chunk.F + t.chunk.B;
  }
  t.bubble = bubble_seconds(o.schedule, k.pp, t.chunk);

  // ZeRO-1 over the devices holding each tensor (the worst device's parameters).
  const TrainingMemory mem = training_memory(c, k, o.schedule, o.seq, o.micro_batch);
  const double mirror = (o.schedule == Schedule::DualPipe && k.pp > 1) ? 2 : 1;
  t.zero1 = zero1_seconds(mem.params - mem.expert_params, mirror * k.dp * k.ep, mem.expert_params, mirror * k.dp, k, hw,
                          o.wire);

  t.step = t.compute + t.exposed_a2a + t.bubble + t.zero1;
  t.device_hours_per_trillion_tokens = t.step * double(k.world()) / t.tokens_per_step * 1e12 / 3600;
  t.device_hours = t.device_hours_per_trillion_tokens * o.tokens / 1e12;
  const LayerFlops all = model_flops(c, o.seq).total();
  t.flops_per_token = all.training();
  t.achieved_mfu = 3 * all.forward() * t.tokens_per_step / double(k.world()) / (t.step * hw.peak_flops);
  return t;
}

}  // namespace dsv3::plan
