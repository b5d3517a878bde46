// Random test weights in every storage format the kernels read: float dtypes (TestWeight) and the int8 /
// int4 block formats (QWeight), each starting a few bytes into its buffer (misalignment).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "kernels/linear.h"
#include "kernels/quant.h"
#include "test_util.h"

namespace dsv3::kernels::testing {

// A weight matrix in one storage dtype, built from random floats; data starts `offset` elements into
// its buffer (misalignment), scale_inv random in [0.25, 4) for fp8.
struct TestWeight {
  std::vector<uint8_t> bytes;
  std::vector<float> scales;
  WeightRef ref;

  TestWeight(DType dt, int64_t n, int64_t k, uint32_t seed, int64_t offset = 1, int64_t bn = 128, int64_t bk = 128) {
    const size_t es = dtype_size(dt);
    bytes.assign(static_cast<size_t>(n * k + offset) * es + 64, 0);
    uint8_t* base = bytes.data() + static_cast<size_t>(offset) * es;
    // fp8 values spread over the whole E4M3 range (incl. subnormals); others in [-1, 1).
    const auto v = random_floats(static_cast<size_t>(n * k), seed, dt == DType::F8_E4M3 ? -300.0f : -1.0f,
                                 dt == DType::F8_E4M3 ? 300.0f : 1.0f);
    std::mt19937 g(seed + 7);
    for (int64_t i = 0; i < n * k; ++i) {
      float f = v[static_cast<size_t>(i)];
      if (dt == DType::F8_E4M3 && (i % 5 == 0)) f *= 1e-3f;  // small and subnormal values too
      switch (dt) {
        case DType::F32:
          std::memcpy(base + i * 4, &f, 4);
          break;
        case DType::BF16: {
          uint16_t h = f32_to_bf16(f);
          std::memcpy(base + i * 2, &h, 2);
          break;
        }
        case DType::F16: {
          uint16_t h = f32_to_f16(f);
          std::memcpy(base + i * 2, &h, 2);
          break;
        }
        case DType::F8_E4M3:
          base[i] = f32_to_e4m3(f);
          break;
        default:
          break;
      }
    }
    ref.dtype = dt;
    ref.data = base;
    ref.n = n;
    ref.k = k;
    if (dt == DType::F8_E4M3) {
      ref.block_n = bn;
      ref.block_k = bk;
      const int64_t nb = (n + bn - 1) / bn, kb = (k + bk - 1) / bk;
      std::uniform_real_distribution<float> d(-2.0f, 2.0f);
      scales.resize(static_cast<size_t>(nb * kb));
      for (auto& s : scales) s = std::exp2(d(g)) * 1e-3f;
      ref.scale_inv = scales.data();
    }
  }
};

// Quantized copy of random weights; codes start `offset` bytes into their buffer (misalignment).
struct QWeight {
  std::vector<float> f32;  // the original values [n, k]
  std::vector<uint8_t> codes;
  std::vector<uint16_t> scales;
  WeightRef ref;

  QWeight(Quant q, int64_t n, int64_t k, uint32_t seed, int64_t offset = 1) {
    f32 = random_floats(size_t(n * k), seed);
    // Some blocks with a large outlier, some all zero, some tiny: the cases scales must handle.
    for (int64_t r = 0; r < n; ++r) {
      if (r % 5 == 1 && k > 3) f32[size_t(r * k + 3)] = 9.0f;
      if (r % 7 == 2)
        for (int64_t j = 0; j < std::min<int64_t>(k, kQBlock); ++j) f32[size_t(r * k + j)] = 0.0f;
      if (r % 11 == 3)
        for (int64_t j = 0; j < k; ++j) f32[size_t(r * k + j)] *= 1e-4f;
    }
    const int64_t rb = qrow_bytes(q, k), kb = qblocks(k);
    codes.assign(size_t(n * rb + offset + 64), 0xAA);
    scales.assign(size_t(n * kb), 0);
    for (int64_t r = 0; r < n; ++r)
      EXPECT_TRUE(quantize_row(q, f32.data() + r * k, k, codes.data() + offset + r * rb, scales.data() + r * kb));
    ref.dtype = q == Quant::Int8 ? DType::I8 : DType::U8;
    ref.quant = q;
    ref.data = codes.data() + offset;
    ref.qscale = scales.data();
    ref.n = n;
    ref.k = k;
  }
};

}  // namespace dsv3::kernels::testing
