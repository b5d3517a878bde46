#include "train/layout.h"

namespace dsv3::train {

namespace {

// Every tensor of the schema is a buffer of `p`, except the MTP modules' optional copies of the embedding and
// head, which Params does not hold (visit_model then points them at the main model's). The walk covers the
// scope the buffers were made for, so routed experts outside it stay empty.
template <typename Kit, typename Buffers>
ModelW<Kit> bind(const ModelConfig& c, Buffers& p) {
  ModelW<Kit> w;
  visit_model(
      c, w,
      [&](const WeightSpec& s, auto& field) {
        if (s.optional) return;
        field = p.data(s.name);
      },
      p.scope());
  return w;
}

}  // namespace

ModelP bind_params(const ModelConfig& c, const Params& p) { return bind<FloatKit<const float>>(c, p); }

ModelG bind_grads(const ModelConfig& c, Params& g) { return bind<FloatKit<float>>(c, g); }

}  // namespace dsv3::train
