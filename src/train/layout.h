// Typed pointers into a Params (trainable float32 tensors by HF name), structured like the model: the
// training forward reads the parameters through ModelP, the backward accumulates into the gradients through
// ModelG. Both are the weight schema's struct family (model/schema.h) over float pointers, bound by walking
// the schema, so names and shapes cannot drift from the inference loader. Shapes are those of the schema
// (row-major [out, in] for matrices). An MTP module's embedding and head are the main model's (shared).
#pragma once

#include <cstdint>
#include <vector>

#include "model/config.h"
#include "model/schema.h"
#include "train/params.h"

namespace dsv3::train {

// T = const float (parameters) or float (gradients). The router bias gets no gradient: const in both.
template <typename T>
struct FloatKit {
  using Mat = T*;
  using Vec = T*;
  using Bias = const float*;
  static bool is_set(const float* p) { return p != nullptr; }
};

using FfnP = FfnW<FloatKit<const float>>;
using FfnG = FfnW<FloatKit<float>>;
using MlaP = MlaW<FloatKit<const float>>;
using MlaG = MlaW<FloatKit<float>>;
using MoeP = MoeW<FloatKit<const float>>;
using MoeG = MoeW<FloatKit<float>>;
using LayerP = LayerW<FloatKit<const float>>;
using LayerG = LayerW<FloatKit<float>>;
using MtpP = MtpW<FloatKit<const float>>;
using MtpG = MtpW<FloatKit<float>>;
using ModelP = ModelW<FloatKit<const float>>;
using ModelG = ModelW<FloatKit<float>>;

// Walk the schema over p.scope(): routed experts outside it keep empty entries (null pointers).
ModelP bind_params(const ModelConfig& c, const Params& p);
ModelG bind_grads(const ModelConfig& c, Params& g);

}  // namespace dsv3::train
