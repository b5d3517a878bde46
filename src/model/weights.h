// The inference view of the weights: the schema's struct family (model/schema.h) over kernels::WeightRef
// matrices in their stored dtype (mmap'd checkpoint or a trainer's buffers) and float32 vectors (converted
// once at load when stored in another dtype). bind_weights walks the schema over a checkpoint, validating
// names, shapes, dtypes and FP8 / block scales.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "kernels/linear.h"
#include "model/config.h"
#include "model/schema.h"

namespace dsv3 {

struct InferKit {
  using Mat = kernels::WeightRef;
  using Vec = const float*;
  using Bias = const float*;
  static bool is_set(const kernels::WeightRef& w) { return w.data != nullptr; }
  static bool is_set(const float* p) { return p != nullptr; }
};

using FfnWeights = FfnW<InferKit>;
using MlaWeights = MlaW<InferKit>;
using IndexerWeights = IndexerW<InferKit>;
using MoeWeights = MoeW<InferKit>;
using LayerWeights = LayerW<InferKit>;
using MtpWeights = MtpW<InferKit>;

struct ModelWeights : ModelW<InferKit> {
  std::vector<std::vector<float>> owned;  // float32 copies of vectors stored in another dtype
};

// Binds weights from an opened checkpoint, validating names, shapes, dtypes and FP8 scales; errors name the
// tensor. The checkpoint must outlive the returned views.
ModelWeights bind_weights(const ModelConfig& c, const io::Checkpoint& ckpt, const SchemaScope& scope = {});

// A source of tensors by name: the generic form used by bind_weights (and by the trainer over its own
// float32 buffers). Returns nullptr when absent.
using TensorLookup = std::function<const TensorView*(const std::string&)>;
ModelWeights bind_weights(const ModelConfig& c, const TensorLookup& lookup, const std::string& label,
                          const SchemaScope& scope = {});

// One routed expert of MoE layer `layer` (HF index; MTP layers included), bound and validated as
// bind_weights binds it; `owned` receives the aligned copies its views may point into (keep it alive with
// them). Expert parallelism's redundant copies are bound this way after the rank's own block.
FfnWeights bind_expert(const ModelConfig& c, const io::Checkpoint& ckpt, int64_t layer, int64_t expert,
                       std::vector<std::vector<float>>& owned);

// A source of single routed experts (bind_expert over the model's checkpoint); empty when the weights do
// not come from a checkpoint.
using ExpertBinder = std::function<FfnWeights(int64_t layer, int64_t expert, std::vector<std::vector<float>>& owned)>;

}  // namespace dsv3
