// Output head + cross-entropy (reference: Transformer.forward's head; the loss of the reference vectors):
//   logits = hn·headᵀ,  CE = logsumexp(logits) − logits[target]
// fused with its backward, in chunks of rows so the [rows, vocab] logits never exist at once:
//   dlogits = coef · (softmax(logits) − onehot(target)),  dhn += dlogits·head,  dhead += dlogitsᵀ·hn
// With a WeightGradStore (the zero-bubble B/W split, train/weight_grad_store.h) the head's weight gradient
// dhead += dlogitsᵀ·hn of every chunk is pushed there for the schedule's W instead (copies of the chunk's
// dlogits and rows; the same GEMM, so B then W gives the same bits).
#pragma once

#include <cstdint>
#include <vector>

namespace dsv3::train {

class WeightGradStore;

struct CeTarget {
  int64_t row;     // row of hn
  int32_t target;  // token the row predicts
};

// hn [rows, hidden] (after the final norm), head [vocab, hidden]. Returns Σ CE over `targets` (not the mean).
// With dhn (and dhead) non-null also accumulates coef · ∂ΣCE/∂hn into dhn [rows, hidden] and
// coef · ∂ΣCE/∂head into dhead [vocab, hidden] (pushed to wgrad when given, see above).
double head_cross_entropy(const float* hn, const float* head, int64_t vocab, int64_t hidden,
                          const std::vector<CeTarget>& targets, float coef, float* dhn, float* dhead,
                          WeightGradStore* wgrad = nullptr);

}  // namespace dsv3::train
