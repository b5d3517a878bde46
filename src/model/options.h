// Per-model options: what one Model instance computes with and how its weights are brought in. Passed to
// Model::load (and the Model constructor), never process-wide switches (DESIGN.md, model/): two models with
// different options live side by side in one process. Commands fill it from --bf16-activations / --no-mmap
// (cli/gen_flags.h); `parallel` from --ep (cli/dist_flags.h).
#pragma once

#include <memory>

#include "io/safetensors.h"
#include "kernels/linear.h"
#include "model/extra_tensors.h"

namespace dsv3 {

class ModelParallel;  // model/parallel.h

struct ModelOptions {
  // Matmuls over BF16 weights round their input to bf16 (kernels::LinearOptions::bf16_activations): MLA,
  // dense and expert FFNs, eh_proj, the head. The MoE router gate stays exact whatever this says (rounded
  // scores flip near-tied experts). Off: every product exact fp32, the reference's numerics (1e-4).
  bool bf16_activations = false;
  // How the safetensors files are brought into memory (io::LoadMode; Read = `--no-mmap`).
  io::LoadMode load_mode = io::LoadMode::Mmap;
  // The model's part in a multi-process job (model/parallel.h: expert parallelism, attention data-parallel
  // steps); null = this process alone. Shared by the copies of these options (one job per model).
  std::shared_ptr<ModelParallel> parallel = nullptr;
  // DeepSeek-V3.2 (DSA): true attends to the index_topk keys the indexer selects (the model as trained);
  // false attends to every key (the dense baseline of `dsv3 bench` / bench/dsa_bench: the indexer still
  // caches its keys but selects nothing). No effect on models without an indexer.
  bool sparse_attention = true;
  // Checkpoint tensors the config does not explain (model/extra_tensors.h): refused, or with
  // `--allow-extra-tensors` a warning and ignored.
  ExtraTensors extra_tensors = ExtraTensors::Refuse;

  // The options of the model's matmuls (those this struct covers; the router gate uses LinearOptions{}).
  kernels::LinearOptions linear() const { return {.bf16_activations = bf16_activations}; }
};

}  // namespace dsv3
