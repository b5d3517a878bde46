// Output head + cross-entropy (reference: Transformer.forward's head; the loss of the reference vectors):
//   logits = hn·headᵀ,  CE = logsumexp(logits) − logits[target]
// fused with its backward, in chunks of rows so the [rows, vocab] logits never exist at once:
//   dlogits = coef · (softmax(logits) − onehot(target)),  dhn += dlogits·head,  dhead += dlogitsᵀ·hn
#pragma once

#include <cstdint>
#include <vector>

namespace dsv3::train {

struct CeTarget {
  int64_t row;     // row of hn
  int32_t target;  // token the row predicts
};

// hn [rows, hidden] (after the final norm), head [vocab, hidden]. Returns Σ CE over `targets` (not the mean).
// With dhn (and dhead) non-null also accumulates coef · ∂ΣCE/∂hn into dhn [rows, hidden] and
// coef · ∂ΣCE/∂head into dhead [vocab, hidden].
double head_cross_entropy(const float* hn, const float* head, int64_t vocab, int64_t hidden,
                          const std::vector<CeTarget>& targets, float coef, float* dhn, float* dhead);

}  // namespace dsv3::train
