// dsv3 info --model DIR|config.json [--json] [--ep N]: architecture summary of a model, parameter counts,
// KV-cache size per token, and the storage dtypes of the checkpoint's tensors (when the directory holds
// weights). --check instead scans every floating-point weight for NaN / Inf and exits 1 naming the tensors
// that hold any. --ep N adds what each rank of an N-rank expert-parallel job holds (dist/rank_memory.h): its
// replicated weights plus its block of routed experts, and its KV bytes per token (no mpirun needed).
#include <fmt/format.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "cli/gen_flags.h"
#include "core/error.h"
#include "dist/layout.h"
#include "dist/rank_memory.h"
#include "io/safetensors.h"
#include "model/config.h"
#include "model/extra_tensors.h"
#include "model/schema.h"

namespace dsv3::cli {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct Options {
  std::string model;
  bool json = false;
  int ep = 0;                                         // 0: no per-rank table
  bool check = false;                                 // --check: scan every floating-point tensor for NaN / Inf
  ExtraTensors extra_tensors = ExtraTensors::Refuse;  // tensors config.json does not explain
};

std::string human_bytes(uint64_t b);
std::optional<std::string> weights_dir(const std::string& model);

// A tensor holding non-finite values.
struct Bad {
  std::string name;
  int64_t nonfinite = 0, first = 0;
};

bool is_float(DType t) {
  return t == DType::F32 || t == DType::F16 || t == DType::BF16 || t == DType::F8_E4M3 || t == DType::F8_E5M2 ||
         t == DType::F64;
}

// --check: every value of every floating-point tensor decoded (integer tensors — quantized blocks — hold no
// NaN; their f16 scales are tensors of their own and are scanned). Reads the whole checkpoint.
std::vector<Bad> check_weights(const ModelConfig& c, const std::string& dir, ExtraTensors extra, int64_t& scanned,
                               uint64_t& bytes) {
  io::Checkpoint ck = io::Checkpoint::open(dir);
  check_extra_tensors(c, ck, extra);
  std::vector<Bad> bad;
  std::vector<float> buf;
  constexpr int64_t kChunk = 1 << 16;
  scanned = 0;
  bytes = 0;
  for (const auto& name : ck.names()) {
    const TensorView& v = ck.get(name);
    if (!is_float(v.dtype)) continue;
    ++scanned;
    bytes += v.nbytes();
    Bad b{.name = name};
    const int64_t n = v.numel(), esz = int64_t(dtype_size(v.dtype));
    for (int64_t at = 0; at < n; at += kChunk) {
      const int64_t len = std::min(kChunk, n - at);
      buf.resize(size_t(len));
      to_f32(v.dtype, v.data + at * esz, buf.data(), size_t(len));
      for (int64_t i = 0; i < len; ++i)
        if (!std::isfinite(buf[size_t(i)]) && b.nonfinite++ == 0) b.first = at + i;
    }
    if (b.nonfinite > 0) bad.push_back(b);
  }
  return bad;
}

int run_check(const Options& o, const ModelConfig& c) {
  const std::optional<std::string> dir = weights_dir(o.model);
  if (!dir) fail("--check: {} holds no safetensors weights to scan", o.model);
  int64_t scanned = 0;
  uint64_t bytes = 0;
  const std::vector<Bad> bad = check_weights(c, *dir, o.extra_tensors, scanned, bytes);
  if (o.json) {
    json list = json::array();
    for (const Bad& b : bad) list.push_back({{"tensor", b.name}, {"nonfinite", b.nonfinite}, {"first_index", b.first}});
    fmt::print("{}\n",
               json{{"dir", *dir}, {"tensors_scanned", scanned}, {"bytes_scanned", bytes}, {"bad", list}}.dump(2));
  } else {
    for (const Bad& b : bad)
      fmt::print("{}: {} non-finite value{} (first at flat index {})\n", b.name, b.nonfinite,
                 b.nonfinite == 1 ? "" : "s", b.first);
    fmt::print("check: {} floating-point tensors ({}) scanned in {}: {}\n", scanned, human_bytes(bytes), *dir,
               bad.empty() ? "every value finite" : fmt::format("{} hold NaN or Inf", bad.size()));
  }
  return bad.empty() ? 0 : 1;
}

struct DtypeStats {
  int64_t tensors = 0;
  uint64_t bytes = 0;
};

struct Weights {
  std::string dir;
  int64_t tensors = 0;
  uint64_t bytes = 0;
  std::map<std::string, DtypeStats> by_dtype;
};

// The directory whose weights describe this model: the --model directory, or the directory of a file named
// config.json. A config file under another name (tests/data/*_config.json) has no weights.
std::optional<std::string> weights_dir(const std::string& model) {
  std::error_code ec;
  fs::path p(model);
  fs::path dir;
  if (fs::is_directory(p, ec))
    dir = p;
  else if (p.filename() == "config.json")
    dir = p.parent_path().empty() ? fs::path(".") : p.parent_path();
  else
    return std::nullopt;
  if (fs::exists(dir / "model.safetensors", ec) || fs::exists(dir / "model.safetensors.index.json", ec))
    return dir.string();
  for (const auto& de : fs::directory_iterator(dir, ec))
    if (de.path().extension() == ".safetensors") return dir.string();
  return std::nullopt;
}

std::optional<Weights> scan_weights(const std::string& model, const ModelConfig& c, ExtraTensors extra) {
  auto dir = weights_dir(model);
  if (!dir) return std::nullopt;
  io::Checkpoint ck = io::Checkpoint::open(*dir);
  check_extra_tensors(c, ck, extra);
  Weights w;
  w.dir = *dir;
  for (const auto& name : ck.names()) {
    const TensorView& v = ck.get(name);
    DtypeStats& s = w.by_dtype[std::string(dtype_name(v.dtype))];
    ++s.tensors;
    s.bytes += v.nbytes();
    ++w.tensors;
    w.bytes += v.nbytes();
  }
  return w;
}

// 671.0B, 15.7B, 2.81M: billions with one decimal from 1e9 up (the figures papers quote), else millions.
std::string billions(int64_t n) {
  if (n >= 1'000'000'000) return fmt::format("{:.1f}B", double(n) / 1e9);
  if (n >= 1'000'000) return fmt::format("{:.2f}M", double(n) / 1e6);
  return fmt::format("{}", n);
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

const char* scoring_str(ScoringFunc s) { return s == ScoringFunc::Sigmoid ? "sigmoid" : "softmax"; }
const char* topk_str(TopkMethod t) {
  return t == TopkMethod::NoauxTc ? "noaux_tc" : t == TopkMethod::Greedy ? "greedy" : "group_limited_greedy";
}

int run_info(const Options& o) {
  ModelConfig c = load_config(o.model);
  if (o.check) return run_check(o, c);
  ParamCounts p = count_params(c);
  std::optional<Weights> w = scan_weights(o.model, c, o.extra_tensors);

  int64_t moe_layers = 0;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) moe_layers += c.is_moe_layer(l);
  const int64_t dense_layers = c.num_hidden_layers - moe_layers;
  const int64_t cache_layers = c.num_hidden_layers + c.num_nextn_predict_layers;
  const int64_t index_layers = c.index_cache_layers() + (c.has_indexer() ? c.num_nextn_predict_layers : 0);
  const int64_t values_per_layer = c.kv_cache_values_per_token();
  const int64_t values_per_token = values_per_layer * cache_layers;
  std::vector<dist::RankWeights> ranks;
  if (o.ep != 0) {
    dist::make_layout(o.ep, 1, o.ep, c.n_routed_experts);  // refusals name --ep
    std::optional<io::Checkpoint> ck;
    if (w) ck = io::Checkpoint::open(w->dir);
    ranks = dist::rank_weight_bytes(c, o.ep, ck ? &*ck : nullptr);
  }

  if (o.json) {
    json j;
    j["model_type"] = c.model_type;
    j["layers"] = {{"total", c.num_hidden_layers},
                   {"dense", dense_layers},
                   {"moe", moe_layers},
                   {"mtp", c.num_nextn_predict_layers}};
    j["hidden_size"] = c.hidden_size;
    j["vocab_size"] = c.vocab_size;
    j["num_attention_heads"] = c.num_attention_heads;
    j["mla"] = {{"q_lora_rank", c.q_lora_rank},
                {"kv_lora_rank", c.kv_lora_rank},
                {"qk_nope_head_dim", c.qk_nope_head_dim},
                {"qk_rope_head_dim", c.qk_rope_head_dim},
                {"v_head_dim", c.v_head_dim},
                {"softmax_scale", c.softmax_scale()}};
    j["experts"] = {{"routed", c.n_routed_experts},
                    {"shared", c.n_shared_experts},
                    {"top_k", c.num_experts_per_tok},
                    {"n_group", c.n_group},
                    {"topk_group", c.topk_group},
                    {"scoring_func", scoring_str(c.scoring_func)},
                    {"topk_method", topk_str(c.topk_method)},
                    {"routed_scaling_factor", c.routed_scaling_factor},
                    {"moe_intermediate_size", c.moe_intermediate_size}};
    j["rope"] = {{"theta", c.rope_theta}};
    if (c.rope_scaling) j["rope"]["yarn"] = c.raw_json()["rope_scaling"];
    j["fp8"] = c.fp8;
    j["params"] = {{"total_main", p.total_main}, {"activated", p.activated}, {"mtp", p.mtp}};
    j["kv_cache"] = {{"values_per_token_per_layer", values_per_layer},
                     {"layers", cache_layers},
                     {"values_per_token", values_per_token},
                     {"bytes_per_token_fp32", values_per_token * 4},
                     {"bytes_per_token_bf16", values_per_token * 2}};
    if (c.has_indexer())  // DSA: the index-key cache beside the latent one
      j["index_cache"] = {{"bytes_per_token_per_layer", c.index_cache_bytes_per_token()},
                          {"layers", index_layers},
                          {"shared_layers", c.num_hidden_layers - c.index_cache_layers()},
                          {"bytes_per_token", c.index_cache_bytes_per_token() * index_layers},
                          {"index_n_heads", c.index_n_heads},
                          {"index_head_dim", c.index_head_dim},
                          {"index_topk", c.index_topk},
                          {"rope", c.indexer_rope_interleave ? "interleaved" : "rotate-half"}};
    if (w) {
      json dt = json::object();
      for (const auto& [name, s] : w->by_dtype) dt[name] = {{"tensors", s.tensors}, {"bytes", s.bytes}};
      j["weights"] = {{"dir", w->dir}, {"tensors", w->tensors}, {"bytes", w->bytes}, {"dtypes", dt}};
    } else {
      j["weights"] = nullptr;
    }
    if (!ranks.empty()) {
      json per = json::array();
      for (size_t r = 0; r < ranks.size(); ++r)
        per.push_back({{"rank", r},
                       {"experts", {ranks[r].expert_begin, ranks[r].expert_end}},
                       {"replicated_bytes", ranks[r].replicated},
                       {"routed_bytes", ranks[r].routed},
                       {"weight_bytes", ranks[r].total()},
                       {"kv_bytes_per_token_fp32", values_per_token * 4}});
      j["ep"] = {{"ranks", o.ep}, {"stored_sizes", w.has_value()}, {"per_rank", per}};
    }
    j["config"] = c.raw_json();
    fmt::print("{}\n", j.dump(2));
    return 0;
  }

  fmt::print("model_type     {}\n", c.model_type);
  fmt::print("layers         {} ({} dense + {} MoE), {} MTP module(s)\n", c.num_hidden_layers, dense_layers, moe_layers,
             c.num_nextn_predict_layers);
  fmt::print("hidden         {}, vocab {}, max positions {}, rms_norm_eps {:g}\n", c.hidden_size, c.vocab_size,
             c.max_position_embeddings, c.rms_norm_eps);
  fmt::print("attention      {} heads, MLA q_lora_rank {}{}, kv_lora_rank {}, qk_nope {}, qk_rope {}, v {}\n",
             c.num_attention_heads, c.q_lora_rank, c.q_lora_rank == 0 ? " (plain q_proj)" : "", c.kv_lora_rank,
             c.qk_nope_head_dim, c.qk_rope_head_dim, c.v_head_dim);
  fmt::print("               softmax scale {:.6g}\n", c.softmax_scale());
  if (c.n_routed_experts > 0) {
    std::string groups = c.n_group > 1 ? fmt::format(" within the top {} of {} groups", c.topk_group, c.n_group)
                                       : std::string(", no groups");
    fmt::print("experts        {} routed + {} shared, top-{}{}, {} scores, {}, ", c.n_routed_experts,
               c.n_shared_experts, c.num_experts_per_tok, groups, scoring_str(c.scoring_func), topk_str(c.topk_method));
    fmt::print("norm_topk_prob {}, scaling {:g}\n", c.norm_topk_prob, c.routed_scaling_factor);
    fmt::print("               expert width {}, dense MLP width {}\n", c.moe_intermediate_size, c.intermediate_size);
  } else {
    fmt::print("experts        none (dense MLP width {})\n", c.intermediate_size);
  }
  if (c.rope_scaling) {
    const YarnScaling& y = *c.rope_scaling;
    fmt::print(
        "rope           theta {:g}, YaRN factor {:g} over {} (beta_fast {:g}, beta_slow {:g}, mscale {:g}, "
        "mscale_all_dim {:g})\n",
        c.rope_theta, y.factor, y.original_max_position_embeddings, y.beta_fast, y.beta_slow, y.mscale,
        y.mscale_all_dim);
  } else {
    fmt::print("rope           theta {:g}, no scaling\n", c.rope_theta);
  }
  if (c.fp8)
    fmt::print("quantization   fp8 e4m3, {}x{} blocks{}\n", c.weight_block_n, c.weight_block_k,
               c.ue8m0_scales() ? ", ue8m0 (power-of-two) scales" : "");
  fmt::print("parameters     total {} ({}), activated {} ({}) per token, MTP {} ({})\n", billions(p.total_main),
             p.total_main, billions(p.activated), p.activated, billions(p.mtp), p.mtp);
  fmt::print("               activated counts the head, not the embedding; no scales or router biases\n");
  fmt::print(
      "kv cache       {} values/token/layer x {} layers = {} values/token: {} bytes fp32 ({}), {} bytes "
      "bf16\n",
      values_per_layer, cache_layers, values_per_token, values_per_token * 4,
      human_bytes(uint64_t(values_per_token) * 4), values_per_token * 2);
  if (c.has_indexer()) {
    const int64_t ib = c.index_cache_bytes_per_token();
    fmt::print(
        "sparse attn    DSA: indexer {} heads x {}, top-{} keys per query, {} RoPE; index-key cache {} bytes/token/"
        "layer (E4M3 + scale) x {} layers = {} bytes/token ({}), beside the latent cache\n",
        c.index_n_heads, c.index_head_dim, c.index_topk, c.indexer_rope_interleave ? "interleaved" : "rotate-half", ib,
        index_layers, ib * index_layers, human_bytes(uint64_t(ib * index_layers)));
    if (c.index_cache_layers() < c.num_hidden_layers)
      fmt::print("               indexer_types: {} of {} layers share the selection of the full layer above them\n",
                 c.num_hidden_layers - c.index_cache_layers(), c.num_hidden_layers);
  }
  if (!w) {
    fmt::print("weights        no weights (config only)\n");
  } else {
    fmt::print("weights        {}: {} tensors, {} bytes ({})\n", w->dir, w->tensors, w->bytes, human_bytes(w->bytes));
    for (const auto& [name, s] : w->by_dtype)
      fmt::print("               {:<8} {:>6} tensors {:>16} bytes ({})\n", name, s.tensors, s.bytes,
                 human_bytes(s.bytes));
  }
  if (!ranks.empty()) {
    fmt::print(
        "expert parallel --ep {}: attention data-parallel (each rank its own sequences), routed experts in "
        "contiguous blocks; {} sizes\n",
        o.ep, w ? "stored" : "config-implied");
    for (size_t r = 0; r < ranks.size(); ++r) {
      const dist::RankWeights& rw = ranks[r];
      fmt::print("  rank {:<3} experts {:>9}  replicated {} + routed {} = {} ({} bytes)\n", r,
                 rw.expert_end > rw.expert_begin ? fmt::format("{}-{}", rw.expert_begin, rw.expert_end - 1) : "none",
                 human_bytes(rw.replicated), human_bytes(rw.routed), human_bytes(rw.total()), rw.total());
    }
    fmt::print("  kv cache {} bytes fp32 per token of a sequence, on the one rank holding it (every rank alike)\n",
               values_per_token * 4);
  }
  return 0;
}

Registrar reg("info", "Summarise a model: architecture, parameter counts, KV cache, weight dtypes", [](CLI::App& app) {
  auto o = std::make_shared<Options>();
  app.add_option("--model", o->model, "Model directory (with config.json) or a config.json file")->required();
  app.add_flag("--json", o->json, "Machine-readable JSON output");
  add_extra_tensors_flag(app, o->extra_tensors);
  app.add_option("--ep", o->ep, "Also show what each rank of an N-rank expert-parallel job holds");
  app.add_flag("--check", o->check,
               "Scan every floating-point weight for NaN / Inf (reads the whole checkpoint); exit 1 naming the "
               "tensors that hold any");
  return [o] { return run_info(*o); };
});

}  // namespace
}  // namespace dsv3::cli
