// Block-quantized weights (kernels/quant.h): weight quantization, the activation quantization of the GEMV
// regime, and their scalar references. The SIMD kernels are in quant_avx512.cc / quant_avx2.cc; linear.cc
// chooses between them.
#include "kernels/quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/dtype.h"
#include "kernels/internal.h"
#include "kernels/isa.h"

namespace dsv3::kernels {

namespace {

// f16 bits of a scale, or false when it is not finite after rounding.
bool round_scale(float s, uint16_t* bits, float* value) {
  *bits = f32_to_f16(s);
  *value = f16_to_f32(*bits);
  return std::isfinite(*value);
}

// Squared error of quantizing v[0, n) with scale s (as f16) into codes [lo, hi]; codes written to q.
double int_error(const float* v, int64_t n, float s, int lo, int hi, int* q) {
  double err = 0;
  const float inv = s != 0.0f ? 1.0f / s : 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    const int c = std::clamp(int(std::lrintf(v[i] * inv)), lo, hi);
    q[i] = c;
    const double d = double(v[i]) - double(c) * double(s);
    err += d * d;
  }
  return err;
}

}  // namespace

bool quantize_row(Quant q, const float* w, int64_t k, uint8_t* codes, uint16_t* scales) {
  const int64_t kb = qblocks(k);
  int best[kQBlock], tmp[kQBlock];
  for (int64_t b = 0; b < kb; ++b) {
    const float* v = w + b * kQBlock;
    const int64_t n = std::min(kQBlock, k - b * kQBlock);
    float amax = 0.0f, extreme = 0.0f;  // extreme: the signed value of largest magnitude
    for (int64_t i = 0; i < n; ++i) {
      if (!std::isfinite(v[i])) return false;
      if (std::fabs(v[i]) > amax) amax = std::fabs(v[i]), extreme = v[i];
    }
    std::fill(best, best + kQBlock, 0);
    uint16_t sbits = 0;
    if (amax > 0.0f) {
      float s;
      if (q == Quant::Int8) {
        if (!round_scale(amax / 127.0f, &sbits, &s)) return false;
        int_error(v, n, s, -127, 127, best);
      } else {
        // Candidates: the extreme mapped to -8, -7.5, -7.25 (codes -8..7, the opposite end clamped at 7),
        // and the symmetric amax / 7; the smallest squared error wins.
        double best_err = INFINITY;
        for (float t : {-8.0f, -7.5f, -7.25f, -7.0f}) {
          uint16_t bits;
          float sc;
          if (!round_scale(t == -7.0f ? amax / 7.0f : extreme / t, &bits, &sc)) return false;
          if (sc == 0.0f) continue;
          const double e = int_error(v, n, sc, -8, 7, tmp);
          if (e < best_err) best_err = e, sbits = bits, std::copy(tmp, tmp + n, best);
        }
      }
    }
    scales[b] = sbits;
    if (q == Quant::Int8) {
      auto* out = reinterpret_cast<int8_t*>(codes) + b * kQBlock;
      for (int64_t i = 0; i < kQBlock; ++i) out[i] = int8_t(best[i]);
    } else {
      uint8_t* out = codes + b * 16;
      for (int i = 0; i < 16; ++i) out[i] = uint8_t((best[i] + 8) | ((best[i + 16] + 8) << 4));
    }
  }
  return true;
}

void quantize_acts_ref(const float* x, int64_t k, int8_t* qx, float* d, int32_t* sum) {
  const int64_t kb = qblocks(k);
  for (int64_t b = 0; b < kb; ++b) {
    const int64_t j0 = b * kQBlock, n = std::min(kQBlock, k - j0);
    float amax = 0.0f;
    for (int64_t i = 0; i < n; ++i) amax = std::max(amax, std::fabs(x[j0 + i]));
    const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
    int32_t s = 0;
    for (int64_t i = 0; i < kQBlock; ++i) {
      const int c = i < n ? std::clamp(int(std::lrintf(x[j0 + i] * id)), -127, 127) : 0;
      qx[j0 + i] = int8_t(c);
      s += c;
    }
    d[b] = amax / 127.0f;
    sum[b] = s;
  }
}

namespace detail {

size_t qacts_bytes(int64_t m, int64_t k) {
  // Room for either layout: codes padded to 128-element lines, and up to 16 lanes of d and c per 32 codes.
  const int64_t kl = (k + 127) / 128 * 128;
  return size_t(m) * size_t(kl + 2 * (kl / 32) * 16 * 4) + 256;
}

void prepare_qacts_compact(const float* x, int64_t m, int64_t k, void* buf, QActs* out) {
  const int64_t kb = qblocks(k), kl = kb * kQBlock;
  auto* q = static_cast<int8_t*>(buf);
  auto* d = reinterpret_cast<float*>(q + ((m * kl + 63) & ~int64_t(63)));
  auto* c = reinterpret_cast<int32_t*>(d + m * kb);
  for (int64_t i = 0; i < m; ++i) quantize_acts_ref(x + i * k, k, q + i * kl, d + i * kb, c + i * kb);
  *out = QActs{.q = q, .d = d, .c = c, .kl = kl, .ld = kb};
}

void gemv_q_scalar(const QActs& xa, int64_t m, const WeightRef& w, float* y, int64_t n0, int64_t n1) {
  const int64_t kb = qblocks(w.k), rb = qrow_bytes(w.quant, w.k);
  const auto* codes = static_cast<const uint8_t*>(w.data);
  int32_t qw[kQBlock];
  for (int64_t o = n0; o < n1; ++o) {
    const uint8_t* row = codes + o * rb;
    for (int64_t i = 0; i < m; ++i) {
      const int8_t* qx = xa.q + i * xa.kl;
      float acc = 0.0f;
      for (int64_t b = 0; b < kb; ++b) {
        if (w.quant == Quant::Int8) {
          for (int j = 0; j < kQBlock; ++j) qw[j] = int8_t(row[b * kQBlock + j]);
        } else {
          for (int j = 0; j < 16; ++j) {
            qw[j] = int32_t(row[b * 16 + j] & 15) - 8;
            qw[j + 16] = int32_t(row[b * 16 + j] >> 4) - 8;
          }
        }
        int32_t dot = 0;
        for (int j = 0; j < kQBlock; ++j) dot += qw[j] * int32_t(qx[b * kQBlock + j]);
        acc += float(dot) * (f16_to_f32(w.qscale[o * kb + b]) * xa.d[i * xa.ld + b]);
      }
      y[i * w.n + o] = acc;
    }
  }
}

}  // namespace detail

void linear_qact_ref(const float* x, int64_t m, const WeightRef& w, float* y) {
  if (w.quant == Quant::None) return linear_ref(x, m, w, y);
  std::vector<uint8_t> buf(detail::qacts_bytes(m, w.k));
  detail::QActs xa;
  detail::prepare_qacts_compact(x, m, w.k, buf.data(), &xa);
  detail::gemv_q_scalar(xa, m, w, y, 0, w.n);
}

}  // namespace dsv3::kernels
