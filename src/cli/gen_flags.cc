#include "cli/gen_flags.h"

#include <algorithm>
#include <cstdio>
#include <random>

namespace dsv3::cli {

void add_engine_flags(CLI::App& app, ModelOptions& options) {
  app.add_flag("--bf16-activations", options.bf16_activations,
               "Matmuls over BF16 weights round their input to bf16 and use vdpbf16ps, as llama.cpp does "
               "(faster prefill and decode, ~4e-3 relative error per product; default exact fp32)");
  app.add_flag_callback(
      "--no-mmap", [&options] { options.load_mode = io::LoadMode::Read; },
      "Read the weights into memory at load instead of mapping the files (slower start; the "
      "weights cannot be evicted from the page cache under the process)");
  add_extra_tensors_flag(app, options.extra_tensors);
}

void add_extra_tensors_flag(CLI::App& app, ExtraTensors& policy) {
  app.add_flag_callback(
      "--allow-extra-tensors", [&policy] { policy = ExtraTensors::Warn; },
      "Load a checkpoint holding tensors its config.json does not explain (default: refused, listing them), "
      "ignoring them with a warning");
}

void GenFlags::add_to(CLI::App& app) {
  app.add_option("--model", model, "Model directory (config.json, safetensors, tokenizer.json)")->required();
  app.add_option("-n,--max-tokens", max_tokens, "Most tokens to generate (default 200)")->check(CLI::PositiveNumber);
  app.add_option("--temp,--temperature", temperature, "Sampling temperature; 0 = greedy (default 0.2)");
  app.add_option("--top-k", top_k, "Keep the k most probable tokens; 0 = off (default)");
  app.add_option("--top-p", top_p, "Nucleus sampling mass in (0, 1] (default 1 = off)");
  app.add_option("--min-p", min_p, "Drop tokens below min_p * p_max (default 0 = off)");
  app.add_option("--repeat-penalty", repetition_penalty, "Repetition penalty (CTRL), 1 = off");
  app.add_option("--frequency-penalty", frequency_penalty, "OpenAI frequency penalty (default 0)");
  app.add_option("--presence-penalty", presence_penalty, "OpenAI presence penalty (default 0)");
  app.add_option("--seed", seed, "Random seed (default: a random one)");
  app.add_option("--spec", spec, "Speculative decoding: none | mtp (default none)")
      ->check(CLI::IsMember({"none", "mtp"}));
  app.add_option("--draft", draft, "MTP draft depth (default 1)")->check(CLI::PositiveNumber);
  app.add_option("--ctx", ctx, "Context size in tokens (default: max_position_embeddings)");
  app.add_option("--stop", stop, "Stop string (repeatable)");
  app.add_flag("--ignore-eos", ignore_eos, "Keep generating after end-of-sequence (benchmarks)");
  app.add_flag("--stats", stats, "Print prefill/decode tokens/s (and MTP acceptance) to stderr");
  add_engine_flags(app, options);
}

runtime::SamplingParams GenFlags::sampling() const {
  runtime::SamplingParams p;
  p.temperature = temperature;
  p.top_k = top_k;
  p.top_p = top_p;
  p.min_p = min_p;
  p.repetition_penalty = repetition_penalty;
  p.frequency_penalty = frequency_penalty;
  p.presence_penalty = presence_penalty;
  p.seed = seed ? *seed : (uint64_t(std::random_device{}()) << 32) ^ std::random_device{}();
  p.validate();
  return p;
}

runtime::EngineOptions GenFlags::engine() const {
  return {.spec = runtime::parse_spec_mode(spec), .draft = draft, .max_context = ctx};
}

void print_stats(const runtime::SequenceStats& s, bool speculative) {
  const int64_t prefilled = s.prompt_tokens - s.reused;
  std::fprintf(stderr, "\nprefill: %lld tokens in %.3f s (%.1f tok/s)\n", (long long)prefilled, s.prefill_s,
               s.prefill_s > 0 ? double(prefilled) / s.prefill_s : 0.0);
  // The first generated token comes from the prefill's logits; decode produced the rest.
  const int64_t decoded = std::max<int64_t>(s.generated - 1, 0);
  std::fprintf(stderr, "decode: %lld tokens in %.3f s (%.1f tok/s)\n", (long long)decoded, s.decode_s,
               s.decode_s > 0 ? double(decoded) / s.decode_s : 0.0);
  if (speculative)
    std::fprintf(stderr,
                 "mtp: %lld drafted, %lld accepted (acceptance %.1f%%), mean accepted length %.2f, "
                 "%.2f tokens per verify step\n",
                 (long long)s.drafted, (long long)s.accepted,
                 s.drafted ? 100.0 * double(s.accepted) / double(s.drafted) : 0.0,
                 s.verify_steps ? double(s.accepted) / double(s.verify_steps) : 0.0,
                 s.verify_steps ? double(decoded) / double(s.verify_steps) : 0.0);
}

}  // namespace dsv3::cli
