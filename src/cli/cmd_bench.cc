// dsv3 bench --model DIR [--prompt N] [--gen N] [--reps N] [--batch B] [--threads T] [--tg-empty] [--json]
//            [--bf16-activations] [--no-mmap]
// Prefill and decode throughput of the forward pass on a model directory: `reps` runs, medians reported.
// Decode steps run B sequences together (one token each per step), as continuous batching does.
// By default decoding continues the prefilled prompt; --tg-empty decodes from an empty cache instead, as
// llama-bench's tg test does (bench/vs_llamacpp.sh runs `--prompt $PP --gen $TG --reps $REPS --threads
// $THREADS --tg-empty --json`, the exec: protocol of ../shared/bench/llamacpp/bench_llamacpp.py).
// Under mpirun -np N with --ep N [--redundant-experts K] the model runs expert-parallel (cli/dist_flags.h)
// and the routed rows each rank computed are reported: max / mean over the ranks (load imbalance), over
// each MoE layer's calls after its first --redundant-warmup ones (the same window with and without K).
// There the B prompts are prefilled in one step (each rank attends over the sequences placed on it), and
// each rank's MoE time is split per prefill and per decode step: experts (routed + shared), comm (posting
// and completing the dispatch / combine all-to-alls: the transfer not hidden by --overlap), sync (the counts
// all-to-all opening each MoE call: waiting for the slowest rank), other (the rest of the step's wall time:
// attention, router, norms, head, the step protocol).
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <optional>

#include "cli/command.h"
#include "cli/dist_flags.h"
#include "cli/gen_flags.h"
#include "core/error.h"
#include "kernels/linear.h"
#include "model/transformer.h"
#include "runtime/model_bundle.h"

namespace dsv3::cli {
namespace {

struct Options {
  std::string model;
  int64_t prompt = 128, gen = 64, reps = 3, batch = 1, threads = 0;
  bool json = false, tg_empty = false;
  ModelOptions model_options;  // --bf16-activations, --no-mmap
  DistFlags dist;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double stddev(const std::vector<double>& v) {
  double mean = 0, ss = 0;
  for (double x : v) mean += x / double(v.size());
  for (double x : v) ss += (x - mean) * (x - mean);
  return v.size() > 1 ? std::sqrt(ss / double(v.size() - 1)) : 0.0;
}

size_t matrix_bytes(const kernels::WeightRef& w) { return size_t(kernels::weight_bytes(w)); }

// Weight bytes one decoded token reads: every dense matrix, top_k of the routed experts (on average),
// one embedding row, the head; norms are negligible and left out. MTP modules are not counted.
double active_weight_bytes_per_token(const Model& model) {
  const ModelConfig& c = model.config();
  const ModelWeights& w = model.weights();
  double bytes = double(matrix_bytes(w.embed)) / double(c.vocab_size) + double(matrix_bytes(w.head));
  auto ffn = [](const FfnWeights& f) { return double(matrix_bytes(f.w1) + matrix_bytes(f.w2) + matrix_bytes(f.w3)); };
  for (const LayerWeights& l : w.layers) {
    const MlaWeights& a = l.attn;
    for (const auto* m : {&a.wq_a, &a.wq_b, &a.wq, &a.wkv_a, &a.wkv_b, &a.wo})
      if (m->data) bytes += double(matrix_bytes(*m));
    if (!l.is_moe) {
      bytes += ffn(l.mlp);
      continue;
    }
    bytes += double(matrix_bytes(l.moe.gate));
    if (l.moe.has_shared) bytes += ffn(l.moe.shared);
    if (!l.moe.experts.empty()) bytes += ffn(l.moe.experts[0]) * double(c.num_experts_per_tok);
  }
  return bytes;
}

int run(const Options& o) {
  if (o.prompt < 1 || o.gen < 1 || o.reps < 1 || o.batch < 1) fail("--prompt, --gen, --reps and --batch must be >= 1");
  if (o.threads < 0) fail("--threads must be >= 0");
  if (o.threads > 0) omp_set_num_threads(int(o.threads));
  ModelOptions options = o.model_options;
  auto job = o.dist.start(o.model, options);
  if (job && !job->leads()) return follow(*job, o.model, options);
  JobStopper stopper{job};
  runtime::ModelBundle bundle = runtime::ModelBundle::load(o.model, options);
  Model* model = bundle.model.get();
  const ModelOptions& mo = model->options();
  const ModelConfig& c = model->config();
  const int64_t V = c.vocab_size;
  // Deterministic pseudo-random prompt ids.
  std::vector<int32_t> prompt(size_t(o.prompt));
  uint64_t x = 88172645463325252ull;
  for (auto& t : prompt) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    t = int32_t(x % uint64_t(V));
  }
  using clock = std::chrono::steady_clock;
  std::vector<double> prefill_tps, decode_tps;
  // Under --ep: each rank's MoE time over the measured prefills and decode steps, and their wall time.
  std::vector<dist::ExchangeTime> split[2];
  double split_wall[2] = {0, 0};
  auto take_split = [&](int phase, bool keep, double wall) {
    const dist::TimeReport t = job->time_report();
    if (!keep) return;
    split[phase].resize(t.ranks.size());
    for (size_t r = 0; r < t.ranks.size(); ++r) {
      split[phase][r].sync += t.ranks[r].sync;
      split[phase][r].comm += t.ranks[r].comm;
      split[phase][r].experts += t.ranks[r].experts;
      split[phase][r].calls += t.ranks[r].calls;
    }
    split_wall[phase] += wall;
  };
  std::vector<float> logits(size_t(o.batch * V));
  for (int64_t rep = 0; rep < o.reps + 1; ++rep) {  // rep 0 warms up
    std::vector<KvCache> caches;
    for (int64_t b = 0; b < o.batch; ++b) caches.push_back(model->new_cache(o.prompt + o.gen));
    auto t0 = clock::now();
    if (job) {  // one step: every rank prefills the sequences placed on it
      std::vector<SeqChunk> all;
      std::vector<int32_t> ids;
      for (auto& cache : caches) {
        all.push_back({&cache, o.prompt});
        ids.insert(ids.end(), prompt.begin(), prompt.end());
      }
      model->forward(ids, all, nullptr, logits.data(), {.logits = LogitRows::LastOfEachChunk});
    } else {
      for (int64_t b = 0; b < o.batch; ++b) {
        SeqChunk ch{&caches[size_t(b)], o.prompt};
        model->forward(prompt, {&ch, 1}, nullptr, logits.data() + b * V, {.logits = LogitRows::LastOfEachChunk});
      }
    }
    if (o.tg_empty) {  // decode from position 0 of fresh caches, starting from the prompt's first id
      caches.clear();
      for (int64_t b = 0; b < o.batch; ++b) caches.push_back(model->new_cache(o.gen));
      for (int64_t b = 0; b < o.batch; ++b)
        std::fill(logits.begin() + b * V, logits.begin() + (b + 1) * V, 0.0f), logits[size_t(b * V + prompt[0])] = 1;
    }
    auto t1 = clock::now();
    if (job) {
      take_split(0, rep > 0, std::chrono::duration<double>(t1 - t0).count());
      t1 = clock::now();
    }
    std::vector<SeqChunk> chunks;
    for (auto& cache : caches) chunks.push_back({&cache, 1});
    std::vector<int32_t> next(size_t(o.batch));
    for (int64_t step = 0; step < o.gen; ++step) {
      for (int64_t b = 0; b < o.batch; ++b)  // greedy
        next[size_t(b)] =
            int32_t(std::max_element(logits.begin() + b * V, logits.begin() + (b + 1) * V) - (logits.begin() + b * V));
      model->forward(next, chunks, nullptr, logits.data(), {.logits = LogitRows::LastOfEachChunk});
    }
    auto t2 = clock::now();
    if (job) take_split(1, rep > 0, std::chrono::duration<double>(t2 - t1).count());
    if (rep == 0) continue;
    prefill_tps.push_back(double(o.prompt * o.batch) / std::chrono::duration<double>(t1 - t0).count());
    decode_tps.push_back(double(o.gen * o.batch) / std::chrono::duration<double>(t2 - t1).count());
  }
  const double pp = median(prefill_tps), tg = median(decode_tps);
  const double bpt = active_weight_bytes_per_token(*model);
  std::optional<dist::LoadReport> load;
  if (job) load = job->load_report(o.dist.redundant_warmup);
  if (o.json) {
    // pp_tps / tg_tps (+ _sd, _best, bytes_per_token) are the keys ../shared/bench/llamacpp's
    // bench_llamacpp.py reads from an exec: entry.
    nlohmann::json j{{"model", o.model},
                     {"threads", omp_get_max_threads()},
                     {"prompt", o.prompt},
                     {"gen", o.gen},
                     {"batch", o.batch},
                     {"reps", o.reps},
                     {"tg_from_empty_cache", o.tg_empty},
                     {"bf16_activations", mo.bf16_activations},
                     {"mmap", mo.load_mode == io::LoadMode::Mmap},
                     {"pp_tps", pp},
                     {"tg_tps", tg},
                     {"pp_tps_sd", stddev(prefill_tps)},
                     {"tg_tps_sd", stddev(decode_tps)},
                     {"pp_tps_best", *std::max_element(prefill_tps.begin(), prefill_tps.end())},
                     {"tg_tps_best", *std::max_element(decode_tps.begin(), decode_tps.end())},
                     {"bytes_per_token", bpt}};
    if (load) {
      j["ep"] = load->ranks;
      j["redundant_experts"] = o.dist.redundant_experts;
      j["load_rows_per_rank"] = load->total;
      j["load_calls"] = load->calls;
      j["load_imbalance"] = load->imbalance;
      j["load_step_imbalance"] = load->step_imbalance;
      j["overlap"] = o.dist.overlap;
      for (int ph = 0; ph < 2; ++ph) {
        const double per = double(o.reps) * (ph == 0 ? 1.0 : double(o.gen));  // prefills / decode steps
        nlohmann::json ranks = nlohmann::json::array();
        for (const dist::ExchangeTime& t : split[ph])
          ranks.push_back({{"experts_ms", 1e3 * t.experts / per},
                           {"comm_ms", 1e3 * t.comm / per},
                           {"sync_ms", 1e3 * t.sync / per},
                           {"other_ms", 1e3 * (split_wall[ph] - t.experts - t.comm - t.sync) / per},
                           {"moe_calls", double(t.calls) / per}});
        j[ph == 0 ? "prefill_split" : "decode_split"] = {{"wall_ms", 1e3 * split_wall[ph] / per}, {"ranks", ranks}};
      }
    }
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("model %s, %d threads, batch %lld, median of %lld runs%s%s\n", o.model.c_str(), omp_get_max_threads(),
                (long long)o.batch, (long long)o.reps, mo.bf16_activations ? ", bf16 activations" : "",
                mo.load_mode == io::LoadMode::Read ? ", weights read into memory (no mmap)" : "");
    std::printf("prefill  pp%-5lld %10.1f tok/s\n", (long long)o.prompt, pp);
    std::printf("decode   tg%-5lld %10.1f tok/s   (%.1f MB of weights per token: %.1f GB/s)\n", (long long)o.gen, tg,
                bpt / 1e6, bpt * tg / 1e9);
    if (load) {
      std::string rows;
      for (int64_t r : load->total) rows += " " + std::to_string(r);
      std::printf(
          "experts  --ep %d, %lld redundant per layer: routed rows per rank%s over %lld MoE calls (each "
          "layer's from call %lld on)\n",
          load->ranks, (long long)o.dist.redundant_experts, rows.c_str(), (long long)load->calls,
          (long long)o.dist.redundant_warmup);
      std::printf("         load imbalance max/mean %.3f over the run, %.3f per MoE call (mean)\n", load->imbalance,
                  load->step_imbalance);
      for (int ph = 0; ph < 2; ++ph) {
        const double per = double(o.reps) * (ph == 0 ? 1.0 : double(o.gen));
        std::printf("%s ms per %s (--overlap %s), wall %.3f:\n", ph == 0 ? "prefill " : "decode  ",
                    ph == 0 ? "prefill" : "step", o.dist.overlap.c_str(), 1e3 * split_wall[ph] / per);
        for (size_t r = 0; r < split[ph].size(); ++r) {
          const dist::ExchangeTime& t = split[ph][r];
          std::printf("         rank %zu: experts %.3f  comm %.3f  sync %.3f  other %.3f\n", r, 1e3 * t.experts / per,
                      1e3 * t.comm / per, 1e3 * t.sync / per,
                      1e3 * (split_wall[ph] - t.experts - t.comm - t.sync) / per);
        }
      }
    }
  }
  return 0;
}

Registrar reg("bench", "Measure prefill and decode tokens/s", [](CLI::App& app) {
  auto o = std::make_shared<Options>();
  app.add_option("--model", o->model, "Model directory")->required();
  app.add_option("--prompt", o->prompt, "Prompt tokens for prefill (default 128)");
  app.add_option("--gen", o->gen, "Decoded tokens (default 64)");
  app.add_option("--reps", o->reps, "Measured repetitions; the median is reported (default 3)");
  app.add_option("--batch", o->batch, "Sequences decoded together (default 1)");
  app.add_option("--threads", o->threads, "Threads (default: OMP_NUM_THREADS or every core)");
  app.add_flag("--tg-empty", o->tg_empty, "Decode from an empty cache (llama-bench's tg) instead of after the prompt");
  app.add_flag("--json", o->json, "Print one JSON object");
  add_engine_flags(app, o->model_options);
  o->dist.add_to(app);
  return [o] { return run(*o); };
});

}  // namespace
}  // namespace dsv3::cli
