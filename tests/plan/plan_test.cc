// The planner's library (src/plan/): memory against hand-computed values of a tiny config, FLOPs against the
// weight schema's independent count and DeepSeek-V3's published 37B activated parameters, the bubble formulas of
// the paper's Table 2, the stage split, the hardware descriptions, and the 671B run against the published
// GPU-hours.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/config.h"
#include "model/schema.h"
#include "plan/bubble.h"
#include "plan/cluster.h"
#include "plan/flops.h"
#include "plan/hardware.h"
#include "plan/inference.h"
#include "plan/memory.h"
#include "plan/presets.h"
#include "plan/step_time.h"

namespace dsv3::plan {
namespace {

using nlohmann::json;

// hidden 64, 2 layers (layer 0 dense), 2 heads, q_lora 16, kv_lora 8, rope 4, nope 8, v 8, dense width 96,
// 4 routed experts of width 32 (top-2) + 1 shared, vocab 100, no MTP.
ModelConfig tiny() {
  return parse_config(json{{"model_type", "deepseek_v3"},
                           {"vocab_size", 100},
                           {"hidden_size", 64},
                           {"intermediate_size", 96},
                           {"moe_intermediate_size", 32},
                           {"num_hidden_layers", 2},
                           {"num_nextn_predict_layers", 0},
                           {"num_attention_heads", 2},
                           {"n_shared_experts", 1},
                           {"n_routed_experts", 4},
                           {"num_experts_per_tok", 2},
                           {"n_group", 1},
                           {"topk_group", 1},
                           {"first_k_dense_replace", 1},
                           {"q_lora_rank", 16},
                           {"kv_lora_rank", 8},
                           {"qk_nope_head_dim", 8},
                           {"qk_rope_head_dim", 4},
                           {"v_head_dim", 8},
                           {"max_position_embeddings", 64}},
                      "tiny");
}

TEST(PlanMemory, TinyConfigByHand) {
  const ModelConfig c = tiny();
  // MLA: q_a 64·16 + q_a_norm 16 + q_b 16·2·12 + kv_a 64·12 + kv_a_norm 8 + kv_b 8·2·16 + o 2·8·64 + 2 norms 2·64
  EXPECT_DOUBLE_EQ(attention_params(c), 1024 + 16 + 384 + 768 + 8 + 256 + 1024 + 128);
  EXPECT_DOUBLE_EQ(expert_params(c), 3 * 64 * 32);

  Stage all{.first_layer = 0, .n_layers = 2, .embedding = true, .head = true};
  const StageParams p2 = stage_params(c, all, 2);
  // 2 × 3608 attention + dense 3·64·96 + gate 64·4 + bias 4 + shared 6144 + embedding 6400 + norm 64 + head 6400
  EXPECT_DOUBLE_EQ(p2.replicated, 7216 + 18432 + 260 + 6144 + 6400 + 64 + 6400);
  EXPECT_DOUBLE_EQ(p2.experts, 2 * 6144);  // 4 experts over 2 EP ranks
  // The weight schema counts the same model independently.
  // (+ the router's e_score_correction_bias, which the schema does not count as a parameter)
  EXPECT_DOUBLE_EQ(stage_params(c, all, 1).total(), double(count_params(c).total_main) + 4);

  // Per token: layer 0 (dense) 2h + 2·q_lora + 2·(kv+rope) + 1.5·H·v + 4H + 2h + fp8(h) + fp8(2·96)
  EXPECT_DOUBLE_EQ(layer_activation_bytes(c, 0), 128 + 32 + 24 + 24 + 8 + 128 + 66 + 198);
  // layer 1 (MoE): the same attention part + scores 4·4 + (2 routed + 1 shared) × (fp8(64) + fp8(2·32))
  EXPECT_DOUBLE_EQ(layer_activation_bytes(c, 1), 344 + 16 + 3 * (66 + 66));
  EXPECT_DOUBLE_EQ(head_activation_bytes(c), 128);

  // One device holding everything (PP 1, 1F1B), EP 2, DP 1; micro-batch 2 sequences × 8 tokens.
  const Cluster k{.nodes = 1, .gpus_per_node = 2, .pp = 1, .ep = 2, .dp = 1};
  const TrainingMemory m = training_memory(c, k, Schedule::OneFOneB, 8, 2);
  const double params = 44916 + 12288;
  EXPECT_DOUBLE_EQ(m.params, params);
  EXPECT_DOUBLE_EQ(m.weights, 2 * params);                         // BF16
  EXPECT_DOUBLE_EQ(m.gradients, 4 * params);                       // FP32
  EXPECT_DOUBLE_EQ(m.optimizer, 8 * (44916.0 / 2 + 12288.0 / 1));  // FP32 master + 2 BF16 moments, ZeRO-1
  EXPECT_DOUBLE_EQ(m.activations, 16 * (608 + 756 + 128));
}

TEST(PlanMemory, InFlightFollowsTable2) {
  EXPECT_EQ(activations_in_flight(Schedule::OneFOneB, 16), 16);
  EXPECT_EQ(activations_in_flight(Schedule::ZB1P, 16), 16);
  EXPECT_EQ(activations_in_flight(Schedule::DualPipe, 16), 17);
  EXPECT_EQ(activations_in_flight(Schedule::DualPipeV, 8), 17);
  // DualPipe: 2× parameters per device.
  const ModelConfig c = preset_config("deepseek-v3-671b");
  const Cluster k{.nodes = 256, .gpus_per_node = 8, .pp = 16, .ep = 64, .dp = 2};
  const TrainingMemory one = training_memory(c, k, Schedule::OneFOneB, 4096, 1);
  const TrainingMemory dual = training_memory(c, k, Schedule::DualPipe, 4096, 1);
  EXPECT_GT(dual.params, 1.6 * one.params);
  EXPECT_LT(dual.params, 2.4 * one.params);
}

TEST(PlanFlops, MatchesTheSchemaAndThePaper) {
  const ModelConfig c = preset_config("deepseek-v3-671b");
  const ModelFlops f = model_flops(c, 4096);
  const ParamCounts n = count_params(c);
  // Linear FLOPs of the main model = 2 × activated parameters (the schema's walk; it also counts norms: < 0.1 %).
  EXPECT_NEAR((f.layers.linear + f.head.linear) / (2.0 * double(n.activated)), 1.0, 1e-3);
  // DeepSeek-V3: "37B activated parameters" → ≈ 2 × 37e9 FLOPs per token forward, ±10 %.
  EXPECT_NEAR((f.layers.linear + f.head.linear) / (2 * 37e9), 1.0, 0.10);
  // Attention grows linearly in S: the finite difference of the causal count 2·H·(qk + v)·(S + 1)/2 per layer.
  const double d = model_flops(c, 8192).layers.attention - f.layers.attention;
  EXPECT_DOUBLE_EQ(d, 61.0 * 2 * 128 * (192 + 128) * 4096 / 2);
  // Training = 3 × forward + the recomputed MLA up-projections (q_b 1536 → 128·192, kv_b 512 → 128·256).
  const LayerFlops t = f.total();
  EXPECT_DOUBLE_EQ(t.training(), 3 * t.forward() + 61.0 * 2 * (1536.0 * 128 * 192 + 512.0 * 128 * 256) +
                                     2 * (1536.0 * 128 * 192 + 512.0 * 128 * 256));  // + the MTP layer's
}

TEST(PlanBubble, PaperTable2) {
  const ChunkTimes t{.F = 1.0, .B = 2.0, .W = 0.5, .FB = 2.5};
  EXPECT_DOUBLE_EQ(bubble_seconds(Schedule::OneFOneB, 8, t), (8 - 1) * (1.0 + 2.0));
  EXPECT_DOUBLE_EQ(bubble_seconds(Schedule::ZB1P, 8, t), (8 - 1) * (1.0 + 2.0 - 2 * 0.5));
  EXPECT_DOUBLE_EQ(bubble_seconds(Schedule::DualPipe, 8, t), (8 / 2 - 1) * (2.5 + 2.0 - 3 * 0.5));
  EXPECT_DOUBLE_EQ(bubble_seconds(Schedule::DualPipe, 2, t), 0.0);
  EXPECT_DOUBLE_EQ(bubble_seconds(Schedule::DualPipeV, 4, t), (2 * 4 / 2 - 1) * (2.5 + 2.0 - 3 * 0.5));
}

TEST(PlanCluster, StagesCoverTheLayers) {
  const ModelConfig c = preset_config("deepseek-v3-671b");
  for (int n : {1, 2, 8, 16, 32, 61}) {
    const auto st = split_stages(c, n, 4096);
    ASSERT_EQ(int(st.size()), n);
    int64_t next = 0;
    for (const auto& s : st) {
      EXPECT_EQ(s.first_layer, next);
      EXPECT_GE(s.n_layers, 1);
      next += s.n_layers;
    }
    EXPECT_EQ(next, 61);
    EXPECT_TRUE(st.front().embedding);
    EXPECT_TRUE(st.back().head);
  }
  // 16 stages: the head and the MTP module cost about three layers, so the last stage gets the fewest.
  const auto st = split_stages(c, 16, 4096);
  EXPECT_LE(st.back().n_layers, 2);
  EXPECT_EQ(device_stages(Schedule::DualPipe, 16, 3), (std::vector<int>{3, 12}));
  EXPECT_EQ(device_stages(Schedule::DualPipeV, 4, 1), (std::vector<int>{1, 6}));
}

TEST(PlanCluster, RejectsBadLayouts) {
  const ModelConfig c = preset_config("deepseek-v3-671b");
  auto msg = [&](Cluster k, Schedule s) {
    try {
      validate(c, k, s);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(msg({.nodes = 256, .gpus_per_node = 8, .pp = 16, .ep = 64, .dp = 4}, Schedule::DualPipe)
                .find("--pp 16 × --ep 64 × --dp 4"),
            std::string::npos);
  EXPECT_NE(msg({.nodes = 64, .gpus_per_node = 8, .pp = 64, .ep = 8, .dp = 1}, Schedule::OneFOneB).find("--pp 64"),
            std::string::npos);
  EXPECT_NE(msg({.nodes = 3, .gpus_per_node = 8, .pp = 3, .ep = 8, .dp = 1}, Schedule::DualPipe).find("even"),
            std::string::npos);
  EXPECT_NE(msg({.nodes = 64, .gpus_per_node = 8, .pp = 1, .ep = 512, .dp = 1}, Schedule::OneFOneB).find("--ep 512"),
            std::string::npos);
  EXPECT_THROW(parse_schedule("gpipe"), Error);
  EXPECT_THROW(preset_config("deepseek-v4"), Error);
}

TEST(PlanHardware, PresetsAndCpuFiles) {
  EXPECT_DOUBLE_EQ(parse_hardware("h800").intra_node_bandwidth, 160e9);
  EXPECT_DOUBLE_EQ(parse_hardware("h800").inter_node_bandwidth, 50e9);
  EXPECT_THROW(parse_hardware("a100"), Error);
  const Hardware m = parse_hardware(std::string("cpu:") + DSV3_TEST_SRC + "/../configs/hardware/this-machine.json");
  EXPECT_TRUE(m.cpu);
  EXPECT_EQ(m.cores, 2);
  EXPECT_DOUBLE_EQ(share_of_node(m, 2).peak_flops, m.peak_flops / 2);

  const std::string dir = ::testing::TempDir();
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir + "/" + name) << text;
    return "cpu:" + dir + "/" + name;
  };
  auto what = [&](const std::string& spec) {
    try {
      parse_hardware(spec);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  const std::string good = R"("cores": 4, "memory_bytes": 1e10, "memory_bandwidth_bytes_per_s": 2e10,
    "gemm_flops_per_s": 1e11, "alltoall_bandwidth_bytes_per_s": 1e10, "alltoall_latency_s": 1e-5)";
  EXPECT_EQ(what(write("good.json", "{" + good + "}")), "");
  EXPECT_NE(
      what(write("unknown.json", "{" + good + R"(, "gemm_flop_per_s": 3})")).find("unknown key 'gemm_flop_per_s'"),
      std::string::npos);
  EXPECT_NE(what(write("missing.json", R"({"cores": 4})")).find("missing key 'memory_bytes'"), std::string::npos);
  EXPECT_NE(what(write("bad.json", "{\"cores\": ")).find("not JSON"), std::string::npos);
  EXPECT_NE(what(write("neg.json", "{" + good + R"(, "mfu": -1})")).find("'mfu' must be positive"), std::string::npos);
  EXPECT_NE(what("cpu:/nonexistent/dsv3.json").find("cannot open"), std::string::npos);
}

TEST(PlanPreset, EqualsTheConfigFile) {
  const ModelConfig file = load_config(std::string(DSV3_TEST_SRC) + "/../configs/deepseek-v3-671b.json");
  EXPECT_EQ(file, preset_config("deepseek-v3-671b"));
  const ModelConfig published = load_config(std::string(DSV3_TEST_SRC) + "/data/deepseek_v3_config.json");
  EXPECT_EQ(count_params(file).total_main, count_params(published).total_main);
  EXPECT_EQ(count_params(file).activated, count_params(published).activated);
}

// DeepSeek-V3 on 2048 H800: PP 16 (DualPipe) × DP 2 × EP 64 over 8 nodes, 15360 × 4096-token sequences per step:
// the paper's 180K H800 GPU-hours per trillion tokens, within ±20 %, and the layout fits 80 GB.
TEST(PlanStep, DeepSeekV3GpuHours) {
  const ModelConfig c = preset_config("deepseek-v3-671b");
  const Cluster k{.nodes = 256, .gpus_per_node = 8, .pp = 16, .ep = 64, .dp = 2};
  const StepTime t = training_step(c, k, parse_hardware("h800"), TrainOptions{});
  EXPECT_NEAR(t.device_hours_per_trillion_tokens / 180e3, 1.0, 0.20) << t.device_hours_per_trillion_tokens;
  EXPECT_NEAR(t.device_hours / 2.664e6, 1.0, 0.20);
  EXPECT_EQ(t.micro_batches, 120);
  EXPECT_GT(t.bubble_fraction(), 0.0);
  EXPECT_LT(t.bubble_fraction(), 0.10);
  EXPECT_DOUBLE_EQ(t.exposed_a2a, 0.0);  // DualPipe hides the all-to-all
  EXPECT_LE(training_memory(c, k, Schedule::DualPipe, 4096, 1).total(), 80e9);
  // 1F1B pays for its bubble and the exposed all-to-all.
  TrainOptions o;
  o.schedule = Schedule::OneFOneB;
  const StepTime s = training_step(c, k, parse_hardware("h800"), o);
  EXPECT_GT(s.step, t.step);
  EXPECT_GT(s.bubble_fraction(), t.bubble_fraction());
}

TEST(PlanStep, RejectsBatchesThatDoNotSplit) {
  const ModelConfig c = preset_config("deepseek-v3-671b");
  const Cluster k{.nodes = 256, .gpus_per_node = 8, .pp = 16, .ep = 64, .dp = 2};
  TrainOptions o;
  o.batch = 15361;
  EXPECT_THROW(training_step(c, k, parse_hardware("h800"), o), Error);
  o.batch = 128 * 16;  // 16 micro-batches < 2 × PP
  EXPECT_THROW(training_step(c, k, parse_hardware("h800"), o), Error);
}

TEST(PlanInference, PaperDeployments) {
  const ModelConfig c = preset_config("deepseek-v3-671b");
  // Prefill: 4 nodes × 8 H800, EP32 with 32 redundant experts (9 per GPU), attention TP4 × DP8.
  InferenceOptions pre{.phase = Phase::Prefill, .attention_tp = 4, .redundant_experts = 32, .batch = 16};
  const InferencePlan p =
      plan_inference(c, {.nodes = 4, .gpus_per_node = 8, .pp = 1, .ep = 32, .dp = 1}, parse_hardware("h800"), pre);
  EXPECT_LT(p.total(), 80e9);
  EXPECT_GT(p.tokens_per_s_device, 1000);
  // Decode: 40 nodes, EP320, one expert per GPU (shared expert as routed among the 64 extra).
  InferenceOptions dec{.phase = Phase::Decode,
                       .attention_tp = 4,
                       .redundant_experts = 64,
                       .shared_as_routed = true,
                       .batch = 256,
                       .context = 4096};
  const InferencePlan d =
      plan_inference(c, {.nodes = 40, .gpus_per_node = 8, .pp = 1, .ep = 320, .dp = 1}, parse_hardware("h800"), dec);
  EXPECT_LT(d.weights, p.weights);
  EXPECT_GT(d.tokens_per_s, 0);
}

}  // namespace
}  // namespace dsv3::plan
