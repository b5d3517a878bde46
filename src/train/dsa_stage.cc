#include "train/dsa_stage.h"

namespace dsv3::train {

std::vector<double> dsa_lr_scale(const Params& p, DsaStage stage, double lr, double indexer_lr) {
  const double ix = indexer_lr < 0 ? 1.0 : indexer_lr / lr;
  std::vector<double> s(p.size());
  for (size_t i = 0; i < p.size(); ++i) s[i] = p.specs()[i].indexer ? ix : (stage == DsaStage::DenseWarmup ? 0.0 : 1.0);
  return s;
}

}  // namespace dsv3::train
