// Internal to src/kernels: the per-ISA entry points behind the public kernels, and per-thread scratch.
// The ISA files (*_avx512.cc, *_avx2.cc) are compiled with the portable baseline flags; each of their
// functions opts into its instruction set with a target attribute, and the public functions in
// linear.cc / ops.cc choose one at run time (kernels/isa.h). OpenMP regions live only in the generic
// files, so no outlined parallel body ever needs a target attribute.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "kernels/linear.h"

#define DSV3_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma,f16c,bmi,bmi2")))
#define DSV3_TARGET_AVX2 __attribute__((target("avx2,fma,f16c,bmi,bmi2")))
#define DSV3_INLINE_AVX512 \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma,f16c,bmi,bmi2"), always_inline)) inline
#define DSV3_INLINE_AVX2 __attribute__((target("avx2,fma,f16c,bmi,bmi2"), always_inline)) inline

namespace dsv3::kernels::detail {

// 64-byte aligned, per-thread, grow-only buffer (slot 0..5 are independent). Allocates only when a call
// needs more than any earlier call on this thread did.
float* thread_scratch(int slot, size_t floats);

// ---- linear ----
// GEMV (m <= 4): output columns [n0, n1) of y[m, n] for all m input rows.
void gemv_avx512(const float* x, int64_t m, const WeightRef& w, float* y, int64_t n0, int64_t n1);
void gemv_avx2(const float* x, int64_t m, const WeightRef& w, float* y, int64_t n0, int64_t n1);
// GEMM: rows [m0, m1) × columns [n0, n1) of y. xb16 (opt-in bf16 mode, AVX-512 BF16 and BF16 weights
// only): x rounded to bf16, [m, kp] with kp = k rounded up to even (zero-padded), else nullptr.
void gemm_avx512(const float* x, int64_t m0, int64_t m1, const WeightRef& w, float* y, int64_t n0, int64_t n1,
                 const uint16_t* xb16);
void gemm_avx2(const float* x, int64_t m0, int64_t m1, const WeightRef& w, float* y, int64_t n0, int64_t n1);
// Whether gemm_avx512 expects x in the weights' line order (linear_avx512.cc), and that copy of x.
bool gemm_permutes_x_avx512(const WeightRef& w);
void permute_rows_avx512(const WeightRef& w, const float* x, int64_t m, float* xp);
// x[m, k] -> bf16 [m, kp] (round to nearest even, zero pad to even kp).
void round_bf16_avx512(const float* x, int64_t m, int64_t k, uint16_t* out);

// BF16 only: the GEMV of gemv_avx512 with x already in the weights' line order (permute_rows_avx512).
void gemv_permuted_avx512(const float* xp, int64_t m, const WeightRef& w, float* y, int64_t n0, int64_t n1);
// BF16 only, AVX-512 BF16: the GEMV with x rounded to bf16 (round_bf16_avx512, [m, kp]), by vdpbf16ps.
void gemv_bf16x_avx512(const uint16_t* xb, int64_t m, const WeightRef& w, float* y, int64_t n0, int64_t n1);

// ---- block-quantized linear (quant.cc, quant_avx512.cc, quant_avx2.cc; kernels/quant.h) ----
// x quantized for the GEMV kernels. Compact layout (scalar, AVX2): q [m, kl = qblocks(k) · 32] in natural
// order, d / c [m, ld = qblocks(k)] per-block scale and code sum. AVX-512 layout: q [m, kl] padded to whole
// 64-byte lines (Int8: 2 blocks per line, natural order; Int4: 4 blocks, the low halves of the 4 blocks then
// the high halves, matching the nibbles), d [m, ld = lines · 16] the scale of each dword lane's block and
// c the lane's correction for the unsigned weight codes (−Σqx · zero point / lanes per block).
struct QActs {
  const int8_t* q = nullptr;
  const float* d = nullptr;
  const int32_t* c = nullptr;
  int64_t kl = 0, ld = 0;
};
// Bytes of per-thread scratch prepare_* needs for m rows.
size_t qacts_bytes(int64_t m, int64_t k);
void prepare_qacts_compact(const float* x, int64_t m, int64_t k, void* buf, QActs* out);
void prepare_qacts_avx512(const float* x, int64_t m, int64_t k, Quant q, void* buf, QActs* out);
// GEMV over columns [n0, n1) for all m rows, x prepared by the matching prepare_*.
void gemv_q_scalar(const QActs& xa, int64_t m, const WeightRef& w, float* y, int64_t n0, int64_t n1);
void gemv_q_avx2(const QActs& xa, int64_t m, const WeightRef& w, float* y, int64_t n0, int64_t n1);
void gemv_q_avx512(const QActs& xa, int64_t m, const WeightRef& w, float* y, int64_t n0, int64_t n1);

// ---- the GEMV regime's prepared input (linear.cc) ----
// x [m, k] prepared once for the single-thread GEMV kernels of one kind of weight (dtype, quant and k as
// `like`), so that a caller splitting the output columns over threads — linear() itself, or a fused block
// running several weights in one parallel region (swiglu.cc) — converts it once rather than per chunk:
// BF16 on AVX-512 in line order, Int8 / Int4 quantized as linear() quantizes them; other kinds are used as
// given (x must then outlive the prepared input). m <= gemv_max_rows(). rows() only reads: threads may
// share one prepared input. Buffers grow and are kept, so steady-state use allocates nothing.
class GemvInput {
 public:
  // bf16_x: BF16 weights on a CPU with AVX-512 BF16 take x rounded to bf16 (vdpbf16ps), the opt-in of
  // LinearOptions::bf16_activations; ignored elsewhere.
  void prepare(const float* x, int64_t m, const WeightRef& like, bool bf16_x = false);
  // Columns [n0, n1) of y[m, w.n] = x · wᵀ, on the calling thread; w of the kind prepare() was given.
  void rows(const WeightRef& w, float* y, int64_t n0, int64_t n1) const;
  int64_t m() const { return m_; }

 private:
  enum class Path : uint8_t { Scalar, Avx2, Avx512, Avx512Permuted, Avx512Bf16x, QuantScalar, QuantAvx2, QuantAvx512 };
  Path path_ = Path::Scalar;
  const float* x_ = nullptr;      // x as the float kernels read it (given, or permuted into the buffer)
  const uint16_t* xb_ = nullptr;  // Avx512Bf16x: x rounded to bf16 [m, kp] in the buffer
  int64_t m_ = 0;
  QActs qa_;
  float* buf_ = nullptr;  // 64-byte aligned, cap_ floats
  size_t cap_ = 0;
  struct Free {
    void operator()(float* p) const;
  };
  std::unique_ptr<float, Free> own_;
};
// Rows of x linear() and GemvInput take in the GEMV regime on the active ISA.
int64_t gemv_max_rows();
// Output-column chunk for splitting a GEMV of w over `threads` threads (a multiple of 16, of the fp8 scale
// block for F8_E4M3 weights, about n / (8 · threads) so a preempted thread holds nobody up for long).
int64_t gemv_chunk(const WeightRef& w, int threads);
// GEMM with quantized x (AVX-512 VNNI; x in the compact layout): rows [m0, m1) × columns [n0, n1).
void gemm_q_avx512(const QActs& xa, int64_t m0, int64_t m1, const WeightRef& w, float* y, int64_t n0, int64_t n1);
// GEMM decode: staging[r][0, kcp) = W[row0 + r, col0 .. col0 + kc) as fp32 for r < nrows, zeros for
// nrows <= r < rows and for kc <= p < kcp (kc rounded up to 16); col0 a multiple of 32.
void quant_decode_rows_avx512(const WeightRef& w, int64_t row0, int64_t nrows, int rows, int64_t col0, int64_t kc,
                              float* staging, int64_t lds);
void quant_decode_rows_avx2(const WeightRef& w, int64_t row0, int64_t nrows, int rows, int64_t col0, int64_t kc,
                            float* staging, int64_t lds);

// ---- ops ----
void rmsnorm_avx512(const float* x, const float* w, int64_t m, int64_t n, float eps, float* y);
void rmsnorm_avx2(const float* x, const float* w, int64_t m, int64_t n, float eps, float* y);
void silu_mul_avx512(const float* gate, const float* up, int64_t n, float* out);
void silu_mul_avx2(const float* gate, const float* up, int64_t n, float* out);
void softmax_avx512(float* x, int64_t n);
void softmax_avx2(float* x, int64_t n);
void rope_pairs_avx512(float* x, int64_t d, const float* cos_sin);
void rope_pairs_avx2(float* x, int64_t d, const float* cos_sin);
void exp_avx512(const float* x, int64_t n, float* y);
void exp_avx2(const float* x, int64_t n, float* y);
// Absorbed MLA decode for heads [h0, h1) (see ops.h); state: 2 * (h1 - h0) floats of scratch.
void latent_attention_avx512(const float* q, int64_t h0, int64_t h1, const float* kv, int64_t t, int64_t ld, int64_t c,
                             int64_t r, float scale, float* o, float* state);
void latent_attention_avx2(const float* q, int64_t h0, int64_t h1, const float* kv, int64_t t, int64_t ld, int64_t c,
                           int64_t r, float scale, float* o, float* state);

// ---- the DSA indexer's scores (indexer.cc; kernels/indexer.h index_scores) ----
void index_scores_avx512(const float* q, const float* w, int64_t h, const uint8_t* k, const float* ks, int64_t t,
                         int64_t d, float* out);
void index_scores_avx2(const float* q, const float* w, int64_t h, const uint8_t* k, const float* ks, int64_t t,
                       int64_t d, float* out);

}  // namespace dsv3::kernels::detail
