// Flags and helpers shared by `dsv3 generate` and `dsv3 chat` (docs/serving.md lists every flag).
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "model/options.h"
#include "runtime/generator.h"
#include "runtime/model_bundle.h"
#include "runtime/sampler.h"

namespace dsv3::cli {

struct GenFlags {
  std::string model;
  int64_t max_tokens = 200;
  double temperature = 0.2;  // inference/generate.py's default
  int64_t top_k = 0;
  double top_p = 1.0, min_p = 0.0;
  double repetition_penalty = 1.0, frequency_penalty = 0.0, presence_penalty = 0.0;
  std::optional<uint64_t> seed;
  std::string spec = "none";
  int64_t draft = 1;
  int64_t ctx = 0;
  bool stats = false, ignore_eos = false;
  std::vector<std::string> stop;
  ModelOptions options;  // --bf16-activations, --no-mmap

  void add_to(CLI::App& app);
  runtime::SamplingParams sampling() const;  // a random seed when --seed is absent
  runtime::EngineOptions engine() const;
};

// Flags of every command that runs the model (generate, chat, serve, bench), filling `options` (which must
// outlive the parse) for runtime::ModelBundle::load:
//   --bf16-activations  matmuls over BF16 weights with x rounded to bf16 (vdpbf16ps, as llama.cpp does for
//                       BF16 models); off = exact fp32 activations (ModelOptions::bf16_activations)
//   --no-mmap           read the weights into the process's memory instead of mapping the files
//                       (ModelOptions::load_mode = io::LoadMode::Read)
//   --allow-extra-tensors  load a checkpoint with tensors the config does not explain, with a warning
//                       (ModelOptions::extra_tensors; model/extra_tensors.h)
void add_engine_flags(CLI::App& app, ModelOptions& options);
// --allow-extra-tensors alone, for the commands that load a checkpoint without the engine flags (logits,
// divergence, quantize, info, grad).
void add_extra_tensors_flag(CLI::App& app, ExtraTensors& policy);

// "prefill: ... tok/s", "decode: ... tok/s" and, with MTP, acceptance, on stderr.
void print_stats(const runtime::SequenceStats& s, bool speculative);

}  // namespace dsv3::cli
