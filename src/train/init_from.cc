#include "train/init_from.h"

#include <algorithm>

#include "core/error.h"
#include "train/param_io.h"

namespace dsv3::train {

InitFromResult init_from_model_dir(const std::string& dir, Params& params) {
  const Params src = load_params(dir);
  const TensorLookup mine = params.as_lookup();
  InitFromResult r;
  std::vector<char> seen(params.size(), 0);
  for (size_t i = 0; i < src.size(); ++i) {
    const WeightSpec& s = src.specs()[i];
    if (!mine(s.name)) continue;
    const size_t j = params.index(s.name);
    if (params.specs()[j].shape != s.shape)
      fail("--init-from {}: tensor {} has shape {}, the run's model needs {}", dir, s.name, shape_str(s.shape),
           shape_str(params.specs()[j].shape));
    std::copy(src.value(i).begin(), src.value(i).end(), params.value(j).begin());
    seen[j] = 1;
    ++r.copied;
  }
  for (size_t j = 0; j < params.size(); ++j)
    if (!seen[j]) r.kept.push_back(params.specs()[j].name);
  if (r.copied == 0) fail("--init-from {}: none of its tensors is a tensor of the run's model", dir);
  return r;
}

}  // namespace dsv3::train
