// dsv3 plan (--config CONFIG.json | --preset deepseek-v3-671b) --nodes N --gpus-per-node G --pp P --ep E [--dp D]
//           [--hardware h800|h100|b200|cpu:FILE] [--mode train|prefill|decode] [--sweep] [--json] ...
// The cluster planner (src/plan/): per-device memory, the pipeline bubble, step time and GPU-hours of a training
// layout, or memory and tokens/s of an inference deployment, from the model's own config loader and a roofline.
// docs/scale-out.md "Planning a cluster" has the model, its assumptions and its check against the paper.
#include <fmt/format.h>

#include <nlohmann/json.hpp>
#include <optional>

#include "cli/command.h"
#include "core/error.h"
#include "model/config.h"
#include "plan/cluster.h"
#include "plan/comm.h"
#include "plan/flops.h"
#include "plan/hardware.h"
#include "plan/inference.h"
#include "plan/memory.h"
#include "plan/presets.h"
#include "plan/step_time.h"

namespace dsv3::cli {
namespace {

using nlohmann::json;
using namespace dsv3::plan;

struct Options {
  std::string config, preset, hardware = "h800", schedule = "dualpipe", mode = "train", wire, weight_dtype = "fp8";
  int nodes = 1, gpus_per_node = 8, pp = 1, ep = 1, dp = 0;  // dp 0: the world / (pp × ep)
  double tokens = 14.8e12;
  int64_t seq = 4096, batch = 15360, micro_batch = 1;
  std::optional<double> mfu;
  int max_nodes = 4;
  bool json = false, sweep = false;
  // inference
  int attention_tp = 1, redundant_experts = 0;
  bool shared_as_routed = false;
  int64_t prompt = 4096, context = 4096;
  std::string overlap = "auto";
};

double gb(double b) { return b / 1e9; }

Wire wire_of(const Options& o, const Hardware& hw) {
  if (o.wire.empty()) return hw.cpu ? Wire::F32 : Wire::Fp8Bf16;
  if (o.wire == "fp8") return Wire::Fp8Bf16;
  if (o.wire == "f32") return Wire::F32;
  fail("--wire '{}': unknown (want fp8 or f32)", o.wire);
}

double weight_bytes(const std::string& d) {
  if (d == "fp8") return 1 + 4.0 / (128 * 128);
  if (d == "bf16") return 2;
  if (d == "int8") return 1 + 2.0 / 32;  // dsv3 quantize: 32-element blocks, f16 scales
  if (d == "int4") return 0.5 + 2.0 / 32;
  if (d == "f32") return 4;
  fail("--weight-dtype '{}': unknown (want fp8, bf16, int8, int4 or f32)", d);
}

Cluster cluster_of(const Options& o, int pp, int ep, int dp_flag) {
  Cluster k{.nodes = o.nodes, .gpus_per_node = o.gpus_per_node, .pp = pp, .ep = ep, .dp = dp_flag};
  if (k.dp == 0) {
    const int64_t world = int64_t(o.nodes) * o.gpus_per_node, pe = int64_t(pp) * ep;
    if (pe < 1 || world % pe != 0)
      fail("--pp {} × --ep {} = {} does not divide --nodes {} × --gpus-per-node {} = {} devices", pp, ep, pe, o.nodes,
           o.gpus_per_node, world);
    k.dp = int(world / pe);
  }
  return k;
}

TrainOptions train_options(const Options& o, const Hardware& hw) {
  TrainOptions t;
  t.seq = o.seq;
  t.batch = o.batch;
  t.micro_batch = o.micro_batch;
  t.tokens = o.tokens;
  t.mfu = o.mfu.value_or(hw.mfu);
  t.schedule = parse_schedule(o.schedule);
  t.wire = wire_of(o, hw);
  t.max_nodes = o.max_nodes;
  if (o.tokens <= 0) fail("--tokens {}: want a positive number of training tokens", o.tokens);
  if (o.max_nodes < 1) fail("--max-nodes {}: want at least 1", o.max_nodes);
  return t;
}

json train_json(const ModelConfig& c, const Cluster& k, const Hardware& hw, const TrainOptions& t) {
  const StepTime s = training_step(c, k, hw, t);
  const TrainingMemory m = training_memory(c, k, t.schedule, t.seq, t.micro_batch);
  const AllToAll a = moe_all_to_all(c, k, share_of_node(hw, k.gpus_per_node), t.wire, t.max_nodes);
  json j;
  j["mode"] = "train";
  j["hardware"] = hw.name;
  j["layout"] = {
      {"nodes", k.nodes},         {"gpus_per_node", k.gpus_per_node},     {"pp", k.pp}, {"ep", k.ep}, {"dp", k.dp},
      {"ep_nodes", k.ep_nodes()}, {"schedule", schedule_name(t.schedule)}};
  j["memory_per_device_bytes"] = m.total();
  j["device_memory_bytes"] = share_of_node(hw, k.gpus_per_node).memory_bytes;
  j["fits"] = m.total() <= share_of_node(hw, k.gpus_per_node).memory_bytes;
  j["memory"] = {{"device", m.device},
                 {"params", m.params},
                 {"expert_params", m.expert_params},
                 {"weights_bytes", m.weights},
                 {"gradients_bytes", m.gradients},
                 {"optimizer_bytes", m.optimizer},
                 {"activations_bytes", m.activations},
                 {"activation_per_microbatch_bytes", m.activation_per_microbatch},
                 {"microbatches_in_flight", m.in_flight}};
  j["all_to_all"] = {{"dispatch_bytes_per_slot", a.dispatch_bytes_per_slot},
                     {"combine_bytes_per_slot", a.combine_bytes_per_slot},
                     {"remote_nodes_per_token", a.remote_nodes_per_token},
                     {"inter_node_bytes_per_token_per_layer", a.inter_node_bytes},
                     {"intra_node_bytes_per_token_per_layer", a.intra_node_bytes},
                     {"seconds_per_token_per_layer", a.seconds_per_token}};
  j["flops_per_token"] = s.flops_per_token;
  j["micro_batches"] = s.micro_batches;
  j["chunk_seconds"] = {{"F", s.chunk.F},
                        {"B", s.chunk.B},
                        {"W", s.chunk.W},
                        {"F&B", s.chunk.FB},
                        {"all_to_all_forward", s.a2a_forward},
                        {"all_to_all_backward", s.a2a_backward}};
  j["compute_seconds"] = s.compute;
  j["exposed_all_to_all_seconds"] = s.exposed_a2a;
  j["bubble_seconds"] = s.bubble;
  j["zero1_seconds"] = s.zero1;
  j["bubble_fraction"] = s.bubble_fraction();
  j["step_seconds"] = s.step;
  j["tokens_per_step"] = s.tokens_per_step;
  j["mfu_assumed"] = t.mfu;
  j["mfu_achieved"] = s.achieved_mfu;
  j["gpu_hours_per_trillion_tokens"] = s.device_hours_per_trillion_tokens;
  j["tokens"] = t.tokens;
  j["gpu_hours"] = s.device_hours;
  return j;
}

void print_train(const json& j) {
  const auto& L = j["layout"];
  const auto& m = j["memory"];
  fmt::print("layout: {} nodes × {} = {} devices ({}): PP {} × DP {} × EP {} (EP over {} nodes), {}\n",
             L["nodes"].get<int>(), L["gpus_per_node"].get<int>(),
             L["nodes"].get<int>() * L["gpus_per_node"].get<int>(), j["hardware"].get<std::string>(),
             L["pp"].get<int>(), L["dp"].get<int>(), L["ep"].get<int>(), L["ep_nodes"].get<int>(),
             L["schedule"].get<std::string>());
  fmt::print("memory per device (pipeline device {}): {:.1f} GB of {:.1f} GB — {}\n", m["device"].get<int>(),
             gb(j["memory_per_device_bytes"]), gb(j["device_memory_bytes"]),
             j["fits"].get<bool>() ? "fits" : "DOES NOT FIT");
  fmt::print(
      "  params {:.2f} B ({:.2f} B routed experts): weights {:.1f} GB, gradients {:.1f} GB, optimizer {:.1f} GB\n",
      m["params"].get<double>() / 1e9, m["expert_params"].get<double>() / 1e9, gb(m["weights_bytes"]),
      gb(m["gradients_bytes"]), gb(m["optimizer_bytes"]));
  fmt::print("  activations {:.1f} GB = {} micro-batches in flight × {:.2f} GB\n", gb(m["activations_bytes"]),
             m["microbatches_in_flight"].get<double>(), gb(m["activation_per_microbatch_bytes"]));
  const auto& a = j["all_to_all"];
  fmt::print(
      "all-to-all per token and MoE layer (dispatch + combine): {:.1f} KB inter-node, {:.1f} KB intra-node, "
      "{:.2f} µs\n",
      a["inter_node_bytes_per_token_per_layer"].get<double>() / 1e3,
      a["intra_node_bytes_per_token_per_layer"].get<double>() / 1e3,
      a["seconds_per_token_per_layer"].get<double>() * 1e6);
  const auto& c = j["chunk_seconds"];
  fmt::print("chunk (ms): F {:.2f}, B {:.2f}, W {:.2f}, F&B {:.2f}; all-to-all fwd {:.2f}, bwd {:.2f}\n",
             c["F"].get<double>() * 1e3, c["B"].get<double>() * 1e3, c["W"].get<double>() * 1e3,
             c["F&B"].get<double>() * 1e3, c["all_to_all_forward"].get<double>() * 1e3,
             c["all_to_all_backward"].get<double>() * 1e3);
  fmt::print(
      "step: {:.3f} s = compute {:.3f} + exposed all-to-all {:.3f} + bubble {:.3f} ({:.1f} %) + ZeRO-1 {:.3f}; "
      "{} micro-batches\n",
      j["step_seconds"].get<double>(), j["compute_seconds"].get<double>(),
      j["exposed_all_to_all_seconds"].get<double>(), j["bubble_seconds"].get<double>(),
      100 * j["bubble_fraction"].get<double>(), j["zero1_seconds"].get<double>(), j["micro_batches"].get<int64_t>());
  fmt::print("FLOPs per token {:.1f} G (training); MFU assumed {:.2f}, achieved {:.3f}\n",
             j["flops_per_token"].get<double>() / 1e9, j["mfu_assumed"].get<double>(), j["mfu_achieved"].get<double>());
  fmt::print("device-hours: {:.1f} K per trillion tokens; {:.3f} M for {:.3g} tokens\n",
             j["gpu_hours_per_trillion_tokens"].get<double>() / 1e3, j["gpu_hours"].get<double>() / 1e6,
             j["tokens"].get<double>());
}

int run_sweep(const Options& o, const ModelConfig& c, const Hardware& hw) {
  const TrainOptions t = train_options(o, hw);
  json rows = json::array();
  for (int pp : {8, 16, 32})
    for (int ep : {32, 64}) {
      json r = {{"pp", pp}, {"ep", ep}};
      try {
        const Cluster k = cluster_of(o, pp, ep, 0);
        json j = train_json(c, k, hw, t);
        r["dp"] = k.dp;
        for (const char* key :
             {"memory_per_device_bytes", "fits", "bubble_fraction", "step_seconds", "gpu_hours_per_trillion_tokens"})
          r[key] = j[key];
      } catch (const Error& e) {
        r["error"] = e.what();
      }
      rows.push_back(r);
    }
  if (o.json) {
    fmt::print("{}\n", json{{"sweep", rows}}.dump(2));
    return 0;
  }
  fmt::print("| PP | EP | DP | memory / device | fits {:.0f} GB | bubble | step | GPU-hours / 1T tokens |\n",
             gb(share_of_node(hw, o.gpus_per_node).memory_bytes));
  fmt::print("|---|---|---|---|---|---|---|---|\n");
  for (const auto& r : rows) {
    if (r.contains("error")) {
      fmt::print("| {} | {} | | | no: {} | | | |\n", r["pp"].get<int>(), r["ep"].get<int>(),
                 r["error"].get<std::string>());
      continue;
    }
    fmt::print("| {} | {} | {} | {:.1f} GB | {} | {:.1f} % | {:.2f} s | {:.0f} K |\n", r["pp"].get<int>(),
               r["ep"].get<int>(), r["dp"].get<int>(), gb(r["memory_per_device_bytes"]),
               r["fits"].get<bool>() ? "yes" : "no", 100 * r["bubble_fraction"].get<double>(),
               r["step_seconds"].get<double>(), r["gpu_hours_per_trillion_tokens"].get<double>() / 1e3);
  }
  return 0;
}

int run_inference(const Options& o, const ModelConfig& c, const Hardware& hw) {
  InferenceOptions io;
  io.phase = o.mode == "prefill" ? Phase::Prefill : Phase::Decode;
  io.attention_tp = o.attention_tp;
  io.redundant_experts = o.redundant_experts;
  io.shared_as_routed = o.shared_as_routed;
  io.batch = o.batch;
  io.prompt = o.prompt;
  io.context = o.context;
  io.weight_bytes = weight_bytes(o.weight_dtype);
  io.kv_bytes = hw.cpu ? 4 : 2;  // dsv3 keeps its latent cache in float32; GPUs in BF16
  io.mfu = o.mfu.value_or(hw.mfu);
  io.wire = wire_of(o, hw);
  io.max_nodes = o.max_nodes;
  if (o.overlap == "auto")
    io.overlap = !hw.cpu;  // on one CPU machine the copies are made by the same cores (scale-out-inference.md)
  else if (o.overlap == "on" || o.overlap == "off")
    io.overlap = o.overlap == "on";
  else
    fail("--overlap '{}': want auto, on or off", o.overlap);
  if (!(io.mfu > 0 && io.mfu <= 1)) fail("--mfu {}: want 0 < mfu <= 1", io.mfu);
  const Cluster k = cluster_of(o, o.pp, o.ep, o.dp);
  const InferencePlan p = plan_inference(c, k, hw, io);
  json j = {{"mode", o.mode},
            {"hardware", hw.name},
            {"layout",
             {{"nodes", k.nodes},
              {"gpus_per_node", k.gpus_per_node},
              {"ep", k.ep},
              {"dp", k.dp},
              {"attention_tp", io.attention_tp},
              {"redundant_experts", io.redundant_experts}}},
            {"memory_per_device_bytes", p.total()},
            {"weights_bytes", p.weights},
            {"kv_cache_bytes", p.kv_cache},
            {"device_memory_bytes", share_of_node(hw, k.gpus_per_node).memory_bytes},
            {"fits", p.total() <= share_of_node(hw, k.gpus_per_node).memory_bytes},
            {"max_batch", p.max_batch},
            {"flops_per_token", p.flops_per_token},
            {"tokens_per_step_per_device", p.tokens_per_step},
            {"compute_seconds", p.compute},
            {"memory_seconds", p.memory},
            {"comm_seconds", p.comm},
            {"step_seconds", p.step},
            {"tokens_per_s_per_device", p.tokens_per_s_device},
            {"tokens_per_s_per_node", p.tokens_per_s_node},
            {"tokens_per_s", p.tokens_per_s}};
  if (o.json) {
    fmt::print("{}\n", j.dump(2));
    return 0;
  }
  fmt::print("{}: {} nodes × {} ({}), EP {} (+{} redundant experts), attention TP {} × DP {}\n", o.mode, k.nodes,
             k.gpus_per_node, hw.name, k.ep, io.redundant_experts, io.attention_tp, k.world() / io.attention_tp);
  fmt::print(
      "memory per device: {:.2f} GB weights + {:.2f} GB KV cache = {:.2f} GB of {:.1f} GB ({}; at most {} "
      "sequences per attention group)\n",
      gb(p.weights), gb(p.kv_cache), gb(p.total()), gb(share_of_node(hw, k.gpus_per_node).memory_bytes),
      p.total() <= share_of_node(hw, k.gpus_per_node).memory_bytes ? "fits" : "DOES NOT FIT", p.max_batch);
  fmt::print("step: {:.2f} ms (compute {:.2f}, memory {:.2f}, all-to-all {:.2f}{}), {:.0f} tokens per device\n",
             p.step * 1e3, p.compute * 1e3, p.memory * 1e3, p.comm * 1e3, io.overlap ? ", overlapped" : "",
             p.tokens_per_step);
  fmt::print("tokens/s: {:.0f} per device, {:.0f} per node, {:.0f} in all\n", p.tokens_per_s_device,
             p.tokens_per_s_node, p.tokens_per_s);
  return 0;
}

int run_plan(const Options& o) {
  if (o.config.empty() == o.preset.empty()) fail("want exactly one of --config CONFIG.json and --preset NAME");
  const ModelConfig c = o.preset.empty() ? load_config(o.config) : preset_config(o.preset);
  const Hardware hw = parse_hardware(o.hardware);
  if (o.mode != "train" && o.mode != "prefill" && o.mode != "decode")
    fail("--mode '{}': want train, prefill or decode", o.mode);
  if (o.mode != "train") return run_inference(o, c, hw);
  if (o.sweep) return run_sweep(o, c, hw);
  const TrainOptions t = train_options(o, hw);
  const json j = train_json(c, cluster_of(o, o.pp, o.ep, o.dp), hw, t);
  if (o.json)
    fmt::print("{}\n", j.dump(2));
  else
    print_train(j);
  return 0;
}

Registrar reg("plan", "Plan a cluster: memory, bubble, step time and GPU-hours of a layout", [](CLI::App& app) {
  auto o = std::make_shared<Options>();
  app.add_option("--config", o->config, "Model config.json (or a directory holding one)");
  app.add_option("--preset", o->preset, "Built-in model: deepseek-v3-671b");
  app.add_option("--nodes", o->nodes, "Nodes")->required();
  app.add_option("--gpus-per-node", o->gpus_per_node, "Devices (GPUs, or ranks on a CPU server) per node (default 8)");
  app.add_option("--pp", o->pp, "Pipeline-parallel devices (default 1)");
  app.add_option("--ep", o->ep, "Expert-parallel ranks per stage (default 1)");
  app.add_option("--dp", o->dp, "Replicas of the expert layout (default: devices / (pp × ep))");
  app.add_option("--hardware", o->hardware, "h800 (default), h100, b200 or cpu:FILE");
  app.add_option("--mode", o->mode, "train (default), prefill or decode");
  app.add_option("--schedule", o->schedule, "Training pipeline schedule: dualpipe (default), dualpipev, 1f1b, zb1p");
  app.add_option("--tokens", o->tokens, "Training tokens for the GPU-hours total (default 14.8e12)");
  app.add_option("--seq", o->seq, "Training sequence length (default 4096)");
  app.add_option("--batch-size", o->batch,
                 "Training: sequences per step (default 15360); inference: sequences per attention group");
  app.add_option("--micro-batch", o->micro_batch, "Sequences per micro-batch (default 1)");
  app.add_option("--mfu", o->mfu, "Fraction of peak reached while computing (default: the hardware's, 0.45 for GPUs)");
  app.add_option("--max-nodes", o->max_nodes, "Node-limited routing: nodes per token at most (default 4)");
  app.add_option("--wire", o->wire, "All-to-all format: fp8 (FP8 dispatch, BF16 combine; GPU default) or f32 (dsv3's)");
  app.add_flag("--sweep", o->sweep, "Training: PP 8/16/32 × EP 32/64 on these nodes, which fit");
  app.add_option("--attention-tp", o->attention_tp, "Inference: attention tensor parallelism (default 1)");
  app.add_option("--redundant-experts", o->redundant_experts, "Inference: extra expert copies (default 0)");
  app.add_flag("--shared-as-routed", o->shared_as_routed, "Decode: the shared expert served as a routed one");
  app.add_option("--prompt", o->prompt, "Prefill: tokens per sequence (default 4096)");
  app.add_option("--context", o->context, "Decode: cached tokens per sequence (default 4096)");
  app.add_option("--weight-dtype", o->weight_dtype, "Inference weights: fp8 (default), bf16, int8, int4, f32");
  app.add_option("--overlap", o->overlap, "Inference: two-micro-batch overlap auto (GPU on, CPU off), on, off");
  app.add_flag("--json", o->json, "Print one JSON object");
  return [o] { return run_plan(*o); };
});

}  // namespace
}  // namespace dsv3::cli
