#include "model/extra_tensors.h"

#include <fmt/format.h>

#include <cstdio>
#include <set>

#include "core/error.h"
#include "model/schema.h"

namespace dsv3 {

std::vector<std::string> unexplained_tensors(const ModelConfig& c, const io::Checkpoint& ckpt) {
  std::set<std::string> explained;
  for (const WeightSpec& s : enumerate_weights(c)) {
    explained.insert(s.name);
    // A companion is explained only beside a tensor stored in the form that needs it.
    const TensorView* t = ckpt.find(s.name);
    if (!t) continue;
    if (t->dtype == DType::F8_E4M3) explained.insert(s.name + "_scale_inv");
    if (t->dtype == DType::I8 || t->dtype == DType::U8) explained.insert(s.name + "_scale");
  }
  std::vector<std::string> extra;
  for (const std::string& n : ckpt.names())  // sorted
    if (!explained.count(n)) extra.push_back(n);
  return extra;
}

void check_extra_tensors(const ModelConfig& c, const io::Checkpoint& ckpt, ExtraTensors policy) {
  const std::vector<std::string> extra = unexplained_tensors(c, ckpt);
  if (extra.empty()) return;
  constexpr size_t kShown = 5;
  std::string list;
  for (size_t i = 0; i < extra.size() && i < kShown; ++i) list += (i ? ", " : "") + extra[i];
  if (extra.size() > kShown) list += ", ...";
  const std::string what = fmt::format(
      "{}: {} tensor{} that config.json does not explain ({}); the config describes another model than the "
      "checkpoint holds (num_nextn_predict_layers, n_routed_experts, tie_word_embeddings, ...)",
      ckpt.dir(), extra.size(), extra.size() == 1 ? "" : "s", list);
  if (policy == ExtraTensors::Refuse) fail("{}; --allow-extra-tensors loads it anyway, ignoring them", what);
  std::fprintf(stderr, "warning: %s; ignoring them (--allow-extra-tensors)\n", what.c_str());
}

}  // namespace dsv3
