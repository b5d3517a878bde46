#include "train/params.h"

#include "core/error.h"

namespace dsv3::train {

Params::Params(const ModelConfig& c, const SchemaScope& scope) : scope_(scope) {
  for (WeightSpec& s : enumerate_weights(c, scope)) {
    if (s.optional) continue;
    by_name_[s.name] = specs_.size();
    values_.emplace_back(static_cast<size_t>(s.numel()), 0.0f);
    specs_.push_back(std::move(s));
  }
  views_.resize(specs_.size());
  for (size_t i = 0; i < specs_.size(); ++i)
    views_[i] = TensorView{DType::F32, specs_[i].shape, reinterpret_cast<const std::byte*>(values_[i].data())};
}

size_t Params::index(const std::string& name) const {
  auto it = by_name_.find(name);
  if (it == by_name_.end()) fail("no parameter named {}", name);
  return it->second;
}

int64_t Params::total() const {
  int64_t n = 0;
  for (const auto& v : values_) n += int64_t(v.size());
  return n;
}

TensorLookup Params::as_lookup() const {
  return [this](const std::string& name) -> const TensorView* {
    auto it = by_name_.find(name);
    return it == by_name_.end() ? nullptr : &views_[it->second];
  };
}

}  // namespace dsv3::train
