// The DeepSeek-V3 family, one member at a time: tests/data/family/*.json are configs of our own making with every
// key of the member's published config.json (sizes scaled down, values our own). Each is loaded strictly (every
// key honoured or known harmless), given random weights by the project's own init (tools/init.h, as
// `dsv3 init` writes them), run (logits of a few tokens: finite, the same bits on a second load), and the keys
// that set the member apart are checked against what they must do, computed here independently: ue8m0 scales
// are powers of two, routing picks the experts the rule of the config picks, q_lora_rank null means q_proj,
// n_shared_experts sets the shared width, 64 heads, no MTP layer for num_nextn_predict_layers 0, V3.2's
// index_topk bounds what each query attends to.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/splitmix.h"
#include "io/safetensors.h"
#include "model/config.h"
#include "model/router.h"
#include "model/schema.h"
#include "model/transformer.h"
#include "tools/init.h"

namespace dsv3 {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct Member {
  const char* file;  // tests/data/family/
  const char* name;  // the published model it stands for
  InitDType dtype;   // as the release stores its linears
};

const Member kMembers[] = {
    {"deepseek_v3.json", "DeepSeek-V3", InitDType::FP8},
    {"deepseek_r1.json", "DeepSeek-R1", InitDType::FP8},
    {"deepseek_v3_0324.json", "DeepSeek-V3-0324", InitDType::FP8},
    {"deepseek_v3_1.json", "DeepSeek-V3.1", InitDType::FP8},
    {"deepseek_v3_1_terminus.json", "DeepSeek-V3.1-Terminus", InitDType::FP8},
    {"deepseek_v3_2_exp.json", "DeepSeek-V3.2-Exp", InitDType::FP8},
    {"deepseek_v3_2.json", "DeepSeek-V3.2", InitDType::FP8},
    {"deepseek_v2.json", "DeepSeek-V2", InitDType::BF16},
    {"deepseek_v2_lite.json", "DeepSeek-V2-Lite", InitDType::BF16},
    {"kimi_k2.json", "Kimi-K2", InitDType::FP8},
    {"moonlight.json", "Moonlight-16B-A3B", InitDType::BF16},
};

std::string family_file(const std::string& f) { return std::string(DSV3_TEST_SRC) + "/data/family/" + f; }

json read_json(const std::string& path) {
  std::ifstream f(path);
  return json::parse(f);
}

std::string temp_dir(const std::string& name) {
  const std::string d = ::testing::TempDir() + "dsv3_family_" + std::to_string(::getpid()) + "_" + name;
  fs::remove_all(d);
  return d;
}

// Random weights for `c` written by the project's init, under the member's own config.json (every published
// key, not the normalised subset init writes). `c_weights` may differ from the config the file says (tests of
// tensors the config does not explain).
std::string write_member(const std::string& name, const ModelConfig& c_weights, const json& config, InitDType dtype,
                         uint64_t seed = 3) {
  const std::string dir = temp_dir(name);
  const auto w = init_weights_f32(c_weights, {.seed = seed, .dtype = dtype});
  write_model_dir(dir, c_weights, encode_for_storage(w, dtype, c_weights.weight_block_n, c_weights.ue8m0_scales()),
                  dtype);
  io::write_file_atomic(dir + "/config.json", config.dump(2) + "\n");
  return dir;
}

std::vector<int32_t> some_ids(int64_t n, int64_t vocab) {
  std::vector<int32_t> ids;
  for (int64_t i = 0; i < n; ++i) ids.push_back(int32_t((i * 37 + 11) % vocab));
  return ids;
}

std::vector<float> logits_of(Model& m, const std::vector<int32_t>& ids) {
  KvCache cache = m.new_cache(int64_t(ids.size()));
  std::vector<float> logits(ids.size() * size_t(m.config().vocab_size));
  SeqChunk ch{&cache, int64_t(ids.size())};
  m.forward(ids, {&ch, 1}, nullptr, logits.data());
  return logits;
}

bool all_finite(const std::vector<float>& v) {
  return std::all_of(v.begin(), v.end(), [](float x) { return std::isfinite(x); });
}

// ---- Every member: the published keys load, the model runs, the result is finite and reproducible.

class Family : public ::testing::TestWithParam<Member> {};

TEST_P(Family, LoadsAndRunsFiniteAndDeterministic) {
  const Member& m = GetParam();
  const json cfg = read_json(family_file(m.file));
  const ModelConfig c = parse_config(cfg, m.file);
  const std::string dir = write_member(m.file, c, cfg, m.dtype);
  const std::vector<int32_t> ids = some_ids(9, c.vocab_size);

  auto a = Model::load(dir);
  EXPECT_EQ(a->config(), c);
  const std::vector<float> la = logits_of(*a, ids);
  EXPECT_TRUE(all_finite(la));
  EXPECT_GT(*std::max_element(la.begin(), la.end()), *std::min_element(la.begin(), la.end()));
  auto b = Model::load(dir);
  const std::vector<float> lb = logits_of(*b, ids);
  EXPECT_EQ(std::memcmp(la.data(), lb.data(), la.size() * sizeof(float)), 0) << "a second load computes other bits";

  // The MTP modules the config counts are there and run.
  EXPECT_EQ(a->num_mtp(), c.num_nextn_predict_layers);
  if (c.num_nextn_predict_layers > 0) {
    const int64_t n = int64_t(ids.size());
    KvCache cache = a->new_cache(n), mcache = a->new_mtp_cache(n - 1);
    std::vector<float> hidden(size_t(n * c.hidden_size)), logits(size_t(n * c.vocab_size)),
        mlogits(size_t((n - 1) * c.vocab_size));
    SeqChunk ch{&cache, n}, mch{&mcache, n - 1};
    a->forward(ids, {&ch, 1}, hidden.data(), logits.data());
    a->mtp_forward(0, std::span<const int32_t>(ids).subspan(1), hidden.data(), {&mch, 1}, nullptr, mlogits.data());
    EXPECT_TRUE(all_finite(mlogits));
  }

  // The checkpoint holds exactly what the schema names (+ FP8 scales): nothing the config does not explain.
  const io::Checkpoint ck = io::Checkpoint::open(dir);
  std::set<std::string> names;
  for (const WeightSpec& s : enumerate_weights(c)) names.insert(s.name);
  for (const std::string& n : ck.names()) {
    const bool scale = n.size() > 10 && n.compare(n.size() - 10, 10, "_scale_inv") == 0;
    EXPECT_TRUE(names.count(scale ? n.substr(0, n.size() - 10) : n)) << n;
  }
}

INSTANTIATE_TEST_SUITE_P(Members, Family, ::testing::ValuesIn(kMembers), [](const auto& info) {
  std::string s = info.param.name;
  for (char& ch : s)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return s;
});

// ---- Routing: what RouterParams::from(config) selects equals the rule of the member's keys, written out here.

struct Choice {
  std::map<int64_t, float> weight;  // expert -> gate weight
};

// DeepSeekMoE's gate from the keys, independently of model/router.cc: scores, + bias for selection, the
// groups (sum of the top-2 biased scores with a bias, the max score without), top-k, weights.
Choice route_by_keys(const ModelConfig& c, const std::vector<float>& u, const std::vector<float>* bias) {
  const int64_t E = c.n_routed_experts;
  std::vector<double> s(static_cast<size_t>(E));
  if (c.scoring_func == ScoringFunc::Sigmoid) {
    for (int64_t e = 0; e < E; ++e) s[size_t(e)] = 1.0 / (1.0 + std::exp(-double(u[size_t(e)])));
  } else {
    double mx = *std::max_element(u.begin(), u.end()), z = 0;
    for (int64_t e = 0; e < E; ++e) z += std::exp(double(u[size_t(e)]) - mx);
    for (int64_t e = 0; e < E; ++e) s[size_t(e)] = std::exp(double(u[size_t(e)]) - mx) / z;
  }
  std::vector<double> key(s);
  if (bias)
    for (int64_t e = 0; e < E; ++e) key[size_t(e)] += (*bias)[size_t(e)];
  std::vector<bool> allowed(size_t(E), true);
  if (c.n_group > 1) {
    const int64_t per = E / c.n_group;
    std::vector<std::pair<double, int64_t>> groups;
    for (int64_t g = 0; g < c.n_group; ++g) {
      std::vector<double> k(key.begin() + g * per, key.begin() + (g + 1) * per);
      std::sort(k.rbegin(), k.rend());
      const double score = bias ? k[0] + k[1] : *std::max_element(s.begin() + g * per, s.begin() + (g + 1) * per);
      groups.push_back({-score, g});
    }
    std::sort(groups.begin(), groups.end());
    std::fill(allowed.begin(), allowed.end(), false);
    for (int64_t i = 0; i < c.topk_group; ++i)
      for (int64_t e = 0; e < per; ++e) allowed[size_t(groups[size_t(i)].second * per + e)] = true;
  }
  std::vector<std::pair<double, int64_t>> order;
  for (int64_t e = 0; e < E; ++e)
    if (allowed[size_t(e)]) order.push_back({-key[size_t(e)], e});
  std::sort(order.begin(), order.end());
  double sum = 0;
  for (int64_t i = 0; i < c.num_experts_per_tok; ++i) sum += s[size_t(order[size_t(i)].second)];
  const bool v2 = c.model_type == "deepseek_v2";
  const double scale = c.norm_topk_prob ? (v2 ? 1.0 : c.routed_scaling_factor) : c.routed_scaling_factor;
  Choice out;
  for (int64_t i = 0; i < c.num_experts_per_tok; ++i) {
    const int64_t e = order[size_t(i)].second;
    out.weight[e] = float(s[size_t(e)] / (c.norm_topk_prob ? sum : 1.0) * scale);
  }
  return out;
}

TEST(FamilyRouting, EveryMemberRoutesByItsKeys) {
  for (const Member& m : kMembers) {
    SCOPED_TRACE(m.name);
    const ModelConfig c = load_config(family_file(m.file));
    const RouterParams p = RouterParams::from(c);
    const bool has_bias = c.topk_method == TopkMethod::NoauxTc;
    // The schema gives a noaux_tc model its e_score_correction_bias, and only it.
    bool bias_named = false;
    for (const WeightSpec& s : enumerate_weights(c)) bias_named = bias_named || s.role == WeightRole::Bias;
    EXPECT_EQ(bias_named, has_bias);
    SplitMix64 g{uint64_t(c.n_routed_experts * 131 + c.vocab_size)};
    for (int trial = 0; trial < 200; ++trial) {
      std::vector<float> u(size_t(c.n_routed_experts)), bias(size_t(c.n_routed_experts));
      for (float& x : u) x = float(g.uniform() * 6.0 - 3.0);
      for (float& x : bias) x = float(g.uniform() - 0.5);  // large enough to reorder experts
      const Choice want = route_by_keys(c, u, has_bias ? &bias : nullptr);
      std::vector<int64_t> experts(size_t(p.top_k));
      std::vector<float> weights(size_t(p.top_k)), scratch(size_t(p.scratch_floats()));
      route(p, u.data(), has_bias ? bias.data() : nullptr, experts.data(), weights.data(), scratch.data());
      std::map<int64_t, float> got;
      for (int64_t i = 0; i < p.top_k; ++i) got[experts[size_t(i)]] = weights[size_t(i)];
      ASSERT_EQ(got.size(), want.weight.size());
      for (const auto& [e, w] : want.weight) {
        ASSERT_TRUE(got.count(e)) << "expert " << e << " not selected (trial " << trial << ")";
        EXPECT_NEAR(got[e], w, 1e-5 * std::max(1.0f, std::fabs(w))) << "expert " << e;
      }
    }
  }
}

// Kimi-K2's single group with a bias: the selection is the plain top-k of s + bias, and the bias changes it.
TEST(FamilyRouting, KimiK2SelectsTopKOfBiasedScores) {
  const ModelConfig c = load_config(family_file("kimi_k2.json"));
  ASSERT_EQ(c.n_group, 1);
  ASSERT_EQ(c.topk_method, TopkMethod::NoauxTc);
  const RouterParams p = RouterParams::from(c);
  std::vector<float> u(size_t(c.n_routed_experts)), bias(size_t(c.n_routed_experts), 0.0f);
  for (int64_t e = 0; e < c.n_routed_experts; ++e) u[size_t(e)] = 0.25f * float(e);  // s increasing with e
  bias[0] = 10.0f;  // lifts the lowest-scored expert into the top-k
  std::vector<int64_t> experts(size_t(p.top_k));
  std::vector<float> weights(size_t(p.top_k)), scratch(size_t(p.scratch_floats()));
  route(p, u.data(), bias.data(), experts.data(), weights.data(), scratch.data());
  std::set<int64_t> got(experts.begin(), experts.end()), want = {0};
  for (int64_t e = c.n_routed_experts - 1; int64_t(want.size()) < c.num_experts_per_tok; --e) want.insert(e);
  EXPECT_EQ(got, want);
  // Gate weights from the unbiased scores, normalised over the selected, times routed_scaling_factor.
  double sum = 0;
  for (int64_t e : want) sum += 1.0 / (1.0 + std::exp(-double(u[size_t(e)])));
  for (int64_t i = 0; i < p.top_k; ++i) {
    const double s = 1.0 / (1.0 + std::exp(-double(u[size_t(experts[size_t(i)])])));
    EXPECT_NEAR(weights[size_t(i)], s / sum * 2.827, 1e-6);
  }
}

// ---- Keys that change the weights' layout.

const WeightSpec* find_spec(const std::vector<WeightSpec>& specs, const std::string& name) {
  for (const WeightSpec& s : specs)
    if (s.name == name) return &s;
  return nullptr;
}

TEST(FamilyLayout, QLoraRankNullMeansQProj) {
  for (const char* f : {"moonlight.json", "deepseek_v2_lite.json"}) {
    SCOPED_TRACE(f);
    const json cfg = read_json(family_file(f));
    ASSERT_TRUE(cfg["q_lora_rank"].is_null());
    const ModelConfig c = parse_config(cfg, f);
    const std::vector<WeightSpec> specs = enumerate_weights(c);
    const WeightSpec* q = find_spec(specs, "model.layers.0.self_attn.q_proj.weight");
    ASSERT_NE(q, nullptr);
    EXPECT_EQ(q->shape, (std::vector<int64_t>{c.num_attention_heads * c.qk_head_dim(), c.hidden_size}));
    EXPECT_EQ(find_spec(specs, "model.layers.0.self_attn.q_a_proj.weight"), nullptr);
    EXPECT_EQ(find_spec(specs, "model.layers.0.self_attn.q_b_proj.weight"), nullptr);
    // The loaded model reads q_proj: a checkpoint holding it runs, and changing it changes the logits.
    const std::string dir = write_member(std::string("qproj_") + f, c, cfg, InitDType::BF16);
    const std::vector<int32_t> ids = some_ids(5, c.vocab_size);
    const std::vector<float> base = logits_of(*Model::load(dir), ids);
    const std::string other = write_member(std::string("qproj2_") + f, c, cfg, InitDType::BF16, /*seed=*/4);
    EXPECT_NE(base, logits_of(*Model::load(other), ids));
  }
}

TEST(FamilyLayout, SharedExpertsWidthIsNSharedTimesMoeIntermediate) {
  for (const char* f : {"moonlight.json", "deepseek_v2.json", "deepseek_v2_lite.json", "deepseek_v3.json"}) {
    SCOPED_TRACE(f);
    const ModelConfig c = load_config(family_file(f));
    const int64_t l = c.first_k_dense_replace;  // the first MoE layer
    const std::vector<WeightSpec> specs = enumerate_weights(c);
    const WeightSpec* up = find_spec(specs, fmt::format("model.layers.{}.mlp.shared_experts.up_proj.weight", l));
    ASSERT_NE(up, nullptr);
    EXPECT_EQ(up->shape, (std::vector<int64_t>{c.n_shared_experts * c.moe_intermediate_size, c.hidden_size}));
    // Layers before first_k_dense_replace are dense MLPs of intermediate_size.
    const WeightSpec* dense = find_spec(specs, "model.layers.0.mlp.gate_proj.weight");
    ASSERT_NE(dense, nullptr);
    EXPECT_EQ(dense->shape, (std::vector<int64_t>{c.intermediate_size, c.hidden_size}));
  }
  EXPECT_EQ(load_config(family_file("moonlight.json")).n_shared_experts, 2);
}

TEST(FamilyLayout, KimiK2Has64HeadsAndNoMtpLayer) {
  const ModelConfig c = load_config(family_file("kimi_k2.json"));
  EXPECT_EQ(c.num_attention_heads, 64);
  EXPECT_EQ(c.num_nextn_predict_layers, 0);
  const std::vector<WeightSpec> specs = enumerate_weights(c);
  const WeightSpec* qb = find_spec(specs, "model.layers.0.self_attn.q_b_proj.weight");
  ASSERT_NE(qb, nullptr);
  EXPECT_EQ(qb->shape[0], 64 * c.qk_head_dim());
  for (const WeightSpec& s : specs) EXPECT_LT(s.layer, c.num_hidden_layers) << s.name;
}

// ---- scale_fmt: ue8m0 (V3.1, V3.1-Terminus, V3.2): every FP8 block scale a power of two; without it they are not.

bool power_of_two(float x) {
  int e = 0;
  return x > 0 && std::frexp(x, &e) == 0.5f;
}

TEST(FamilyScales, Ue8m0ScalesArePowersOfTwo) {
  for (const Member& m : kMembers) {
    if (m.dtype != InitDType::FP8) continue;
    SCOPED_TRACE(m.name);
    const json cfg = read_json(family_file(m.file));
    const ModelConfig c = parse_config(cfg, m.file);
    const bool ue8m0 = cfg["quantization_config"].value("scale_fmt", "") == "ue8m0";
    EXPECT_EQ(c.ue8m0_scales(), ue8m0);
    const std::string dir = write_member(std::string("scales_") + m.file, c, cfg, m.dtype);
    const io::Checkpoint ck = io::Checkpoint::open(dir);
    int64_t scales = 0, pow2 = 0;
    for (const std::string& n : ck.names()) {
      if (n.size() < 10 || n.compare(n.size() - 10, 10, "_scale_inv") != 0) continue;
      const TensorView& t = ck.get(n);
      ASSERT_EQ(t.dtype, DType::F32) << n;
      std::vector<float> v(size_t(t.numel()));
      std::memcpy(v.data(), t.data, v.size() * 4);
      for (float x : v) {
        ++scales;
        pow2 += power_of_two(x);
      }
      const TensorView& w = ck.get(n.substr(0, n.size() - 10));  // the scale's matrix, stored as E4M3
      ASSERT_EQ(w.dtype, DType::F8_E4M3) << n;
    }
    ASSERT_GT(scales, 0);
    if (ue8m0)
      EXPECT_EQ(pow2, scales);
    else
      EXPECT_LT(pow2, scales);  // amax / 448 is a power of two only by chance
  }
}

// ---- V3.2: index_topk bounds each query's keys: rows with at most index_topk keys equal the dense run, later
// rows attend to index_topk of them and differ from it.

TEST(FamilySparse, IndexTopkBoundsTheKeysEachQueryAttends) {
  for (const char* f : {"deepseek_v3_2_exp.json", "deepseek_v3_2.json"}) {
    SCOPED_TRACE(f);
    const json cfg = read_json(family_file(f));
    const ModelConfig c = parse_config(cfg, f);
    ASSERT_TRUE(c.has_indexer());
    const std::string dir = write_member(std::string("sparse_") + f, c, cfg, InitDType::FP8);
    const int64_t n = c.index_topk + 6, V = c.vocab_size;
    const std::vector<int32_t> ids = some_ids(n, V);
    const std::vector<float> sparse = logits_of(*Model::load(dir), ids);
    const std::vector<float> dense = logits_of(*Model::load(dir, {.sparse_attention = false}), ids);
    EXPECT_TRUE(all_finite(sparse));
    auto rel = [&](int64_t row) {
      double d = 0, r = 0;
      for (int64_t v = 0; v < V; ++v) {
        const double a = sparse[size_t(row * V + v)], b = dense[size_t(row * V + v)];
        d += (a - b) * (a - b);
        r += b * b;
      }
      return std::sqrt(d / r);
    };
    for (int64_t row = 0; row < c.index_topk; ++row) EXPECT_LT(rel(row), 1e-6) << "row " << row;
    double later = 0;
    for (int64_t row = c.index_topk; row < n; ++row) later = std::max(later, rel(row));
    EXPECT_GT(later, 1e-4) << "no row past index_topk attends to fewer keys than the dense run";
  }
}

// ---- YaRN's attention scale from rope_scaling (mscale_all_dim), for the members that have it.

TEST(FamilyRope, SoftmaxScaleFollowsMscaleAllDim) {
  for (const Member& m : kMembers) {
    SCOPED_TRACE(m.name);
    const json cfg = read_json(family_file(m.file));
    const ModelConfig c = parse_config(cfg, m.file);
    double want = 1.0 / std::sqrt(double(c.qk_nope_head_dim + c.qk_rope_head_dim));
    if (cfg.contains("rope_scaling") && cfg["rope_scaling"].is_object()) {
      const double f = cfg["rope_scaling"]["factor"].get<double>(),
                   a = cfg["rope_scaling"]["mscale_all_dim"].get<double>();
      const double ms = 0.1 * a * std::log(f) + 1.0;
      want *= ms * ms;
    }
    EXPECT_NEAR(c.softmax_scale(), want, 1e-12 * want);
  }
}

// ---- num_nextn_predict_layers 0 with a checkpoint that holds an MTP layer (as V3's release does under 1):
// refused, listing the layer; --allow-extra-tensors ignores it and computes the same logits.

TEST(FamilyMtp, AnMtpLayerTheConfigDoesNotCountIsRefused) {
  const json cfg = read_json(family_file("kimi_k2.json"));
  const ModelConfig c = parse_config(cfg, "kimi_k2.json");
  ModelConfig with_mtp = c;
  with_mtp.num_nextn_predict_layers = 1;
  const std::string clean = write_member("kimi_clean", c, cfg, InitDType::FP8);
  const std::string extra = write_member("kimi_extra_mtp", with_mtp, cfg, InitDType::FP8);
  try {
    Model::load(extra);
    ADD_FAILURE() << "a checkpoint with an MTP layer the config does not count loaded";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(fmt::format("model.layers.{}.", c.num_hidden_layers)), std::string::npos) << what;
    EXPECT_NE(what.find("--allow-extra-tensors"), std::string::npos) << what;
  }
  const std::vector<int32_t> ids = some_ids(6, c.vocab_size);
  auto m = Model::load(extra, {.extra_tensors = ExtraTensors::Warn});
  EXPECT_EQ(m->num_mtp(), 0);
  const std::vector<float> got = logits_of(*m, ids), want = logits_of(*Model::load(clean), ids);
  EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0);
}

}  // namespace
}  // namespace dsv3
