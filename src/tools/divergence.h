// `dsv3 divergence`: how far a model's logits (a quantized copy, an option such as bf16 activations) are
// from a reference model's on the same token sequences — relative error, top-1 agreement, KL.
#pragma once

#include <cstdint>
#include <vector>

#include "model/transformer.h"

namespace dsv3 {

struct LogitDivergence {
  int64_t rows = 0;
  double max_rel_err = 0;          // max over rows of max_j |got − ref| / max_j |ref|
  double rel_l2 = 0;               // ‖got − ref‖ / ‖ref‖ over all rows
  double top1_agree = 0;           // fraction of rows whose argmax agrees
  double kl_mean = 0, kl_max = 0;  // KL(softmax(ref) ‖ softmax(got)) per row, nats
};
// Compares logits [rows, vocab].
LogitDivergence compare_logits(const float* got, const float* ref, int64_t rows, int64_t vocab);

struct DivergenceOptions {
  int64_t sequences = 4, length = 24;  // random token sequences (ignored when ids is given)
  uint64_t seed = 1;
  std::vector<std::vector<int32_t>> ids;
};
struct DivergenceReport {
  LogitDivergence prefill;  // every position of each sequence in one forward (GEMM regime; exact x without VNNI)
  LogitDivergence decode;   // one token per forward (GEMV regime: int8 x with quantized weights)
};
// Runs `test` and `ref` (same config shape) over the same sequences; logits of `test` against `ref`.
DivergenceReport measure_divergence(Model& test, Model& ref, const DivergenceOptions& opt);

}  // namespace dsv3
