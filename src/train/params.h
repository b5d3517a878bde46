// Trainable parameters: float32 master copies of every weight enumerate_weights lists (optional MTP
// copies of embedding/head excluded — the MTP module shares the main model's, as in the paper), in that
// order, plus gradients of the same shapes. The inference Model can run over them directly through
// as_lookup() + bind_weights().
//
// A SchemaScope restricts the routed experts held to [expert_begin, expert_end) (an expert-parallel rank's
// share, dist/layout.h expert_scope): the other experts' tensors are absent (index() throws for them,
// bind_params / bind_grads leave their MoeW::experts entries empty); every other tensor is held in full.
// The default scope holds every expert.
#pragma once

#include <string>
#include <unordered_map>
#include <vector>

#include "core/tensor.h"
#include "model/config.h"
#include "model/weights.h"

namespace dsv3::train {

class Params {
 public:
  // Zero-filled, shapes from enumerate_weights(c, scope).
  explicit Params(const ModelConfig& c, const SchemaScope& scope = {});

  const SchemaScope& scope() const { return scope_; }

  const std::vector<WeightSpec>& specs() const { return specs_; }
  size_t size() const { return specs_.size(); }
  std::vector<float>& value(size_t i) { return values_[i]; }
  const std::vector<float>& value(size_t i) const { return values_[i]; }
  // Index of a tensor by HF name; throws dsv3::Error when absent.
  size_t index(const std::string& name) const;
  bool has(const std::string& name) const { return by_name_.count(name) != 0; }
  float* data(const std::string& name) { return values_[index(name)].data(); }
  const float* data(const std::string& name) const { return values_[index(name)].data(); }
  int64_t total() const;  // number of scalars

  // Views (F32) by name, for bind_weights.
  TensorLookup as_lookup() const;

 private:
  SchemaScope scope_;
  std::vector<WeightSpec> specs_;
  std::vector<std::vector<float>> values_;
  std::vector<TensorView> views_;
  std::unordered_map<std::string, size_t> by_name_;
};

}  // namespace dsv3::train
