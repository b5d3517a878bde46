// DeepSeek Sparse Attention's decode cost against context length (docs/PERF.md, "DSA decode vs context"):
// one decoded token's forward at contexts of 1K, 4K, 16K and 64K cached tokens on a V3.2-shaped random
// model, with DSA (the indexer picks index_topk = 2048 keys, MLA attends to those) and the same model run
// dense (ModelOptions::sparse_attention = false: every key), and the indexer's own cost (one layer's
// Indexer::prepare + select for one query) separately.
//
//   build-dsa/bench/dsa_bench --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
//
// The model (kConfig): V3.2's attention exactly — 128 heads, q_lora 1536, kv_lora 512, nope / rope / v =
// 128 / 64 / 128, the indexer's 64 heads × 128 and top-2048, YaRN — around a reduced trunk (hidden 2048,
// 2 dense layers, vocab 2048) so that weights (0.5 GB BF16) do not hide the attention's cost on a small
// machine. The caches are filled with random latent rows and random E4M3 index keys (timing does not
// depend on the values), then each iteration decodes one token at position L and rolls back to L.
#include <benchmark/benchmark.h>

#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "model/indexer.h"
#include "model/transformer.h"
#include "tools/init.h"

namespace {

using namespace dsv3;

constexpr const char* kConfig = R"({
  "architectures": ["DeepseekV32ForCausalLM"], "model_type": "deepseek_v32",
  "vocab_size": 2048, "hidden_size": 2048, "intermediate_size": 2048, "num_hidden_layers": 2,
  "num_attention_heads": 128, "num_key_value_heads": 128, "q_lora_rank": 1536, "kv_lora_rank": 512,
  "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128,
  "n_routed_experts": null, "n_shared_experts": null, "first_k_dense_replace": 2, "num_nextn_predict_layers": 0,
  "index_n_heads": 64, "index_head_dim": 128, "index_topk": 2048,
  "max_position_embeddings": 163840, "rms_norm_eps": 1e-6, "rope_theta": 10000,
  "rope_scaling": {"type": "yarn", "factor": 40, "original_max_position_embeddings": 4096, "beta_fast": 32,
                   "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 1.0},
  "bos_token_id": 0, "eos_token_id": 1, "torch_dtype": "bfloat16"
})";

// The random checkpoint, written once per process (BF16, seed 1).
const std::string& model_dir() {
  static const std::string dir = [] {
    namespace fs = std::filesystem;
    const std::string d = (fs::temp_directory_path() / ("dsv3_dsa_bench_" + std::to_string(::getpid()))).string();
    const ModelConfig c = parse_config(nlohmann::json::parse(kConfig), "dsa_bench config");
    auto w = init_weights_f32(c, {.seed = 1, .dtype = InitDType::BF16});
    write_model_dir(d, c, encode_for_storage(w, InitDType::BF16), InitDType::BF16);
    return d;
  }();
  return dir;
}

Model& model(bool sparse) {
  static std::unique_ptr<Model> m[2];
  if (!m[sparse]) m[sparse] = Model::load(model_dir(), {.sparse_attention = sparse});
  return *m[sparse];
}

// A cache holding `len` tokens of random rows in every layer, with room for one more.
KvCache filled_cache(const Model& m, int64_t len) {
  KvCache c = m.new_cache(len + 1);
  c.ensure(len + 1);
  std::mt19937 g(static_cast<uint32_t>(len));
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::uniform_int_distribution<int> byte(0, 255);
  for (int64_t l = 0; l < c.layers(); ++l)
    for (int64_t p = 0; p < len; ++p) {
      float* row = c.row(l, p);
      for (int64_t j = 0; j < c.width(); ++j) row[j] = u(g);
      uint8_t* k = c.index_key(l, p);
      for (int64_t j = 0; j < c.index_dim(); ++j) {
        int b;
        do b = byte(g);
        while ((b & 0x7f) == 0x7f);  // not NaN
        k[j] = uint8_t(b);
      }
      *c.index_scale(l, p) = 0.01f;
    }
  c.advance(len);
  return c;
}

void BM_Decode(benchmark::State& state) {
  const int64_t len = state.range(0);
  const bool sparse = state.range(1) != 0;
  Model& m = model(sparse);
  KvCache cache = filled_cache(m, len);
  std::vector<float> logits(size_t(m.config().vocab_size));
  const int32_t tok = 7;
  for (auto _ : state) {
    SeqChunk ch{&cache, 1};
    m.forward({&tok, 1}, {&ch, 1}, nullptr, logits.data());
    cache.truncate(len);
  }
  state.SetLabel(sparse ? "DSA" : "dense");
  state.counters["ctx"] = double(len);
}

// One layer's indexer for one query at position len: its projections, the key it caches, and the scores
// and top-k over the len + 1 cached keys — the O(L) part DSA adds.
void BM_Indexer(benchmark::State& state) {
  const int64_t len = state.range(0);
  Model& m = model(true);
  const ModelConfig& c = m.config();
  KvCache cache = filled_cache(m, len);
  RopeTable rope(c);
  rope.ensure(len + 1);
  Indexer ix(c, m.weights().layers[0].attn.indexer, m.options().linear());
  Batch b{.m = 1, .pos = {len}, .cache = {&cache}};
  std::mt19937 g(3);
  std::normal_distribution<float> n(0.0f, 1.0f);
  std::vector<float> x(size_t(c.hidden_size)), qr(size_t(c.q_lora_rank));
  for (auto& v : x) v = n(g);
  for (auto& v : qr) v = n(g);
  for (auto _ : state) {
    ix.prepare(x.data(), qr.data(), b, 0, rope);
    ix.select(b, 0, 0, 1);
    benchmark::DoNotOptimize(ix.selected(0));
  }
  state.counters["ctx"] = double(len);
}

void contexts(benchmark::internal::Benchmark* b) {
  for (int64_t len : {1024, 4096, 16384, 65536})
    for (int sparse : {1, 0}) b->Args({len, sparse});
}

BENCHMARK(BM_Decode)->Apply(contexts)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);
BENCHMARK(BM_Indexer)
    ->Arg(1024)
    ->Arg(4096)
    ->Arg(16384)
    ->Arg(65536)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MinTime(1.0);

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  std::filesystem::remove_all(model_dir());
  return 0;
}
