#include "tools/init.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/splitmix.h"
#include "io/safetensors.h"

namespace dsv3 {

namespace {

void fill_normal(std::vector<float>& v, uint64_t seed, double std) {
  SplitMix64 g{seed};
  for (size_t i = 0; i < v.size(); i += 2) {
    const double u1 = 1.0 - g.uniform(), u2 = g.uniform();  // u1 in (0, 1]
    const double r = std::sqrt(-2.0 * std::log(u1)) * std;
    v[i] = float(r * std::cos(2.0 * M_PI * u2));
    if (i + 1 < v.size()) v[i + 1] = float(r * std::sin(2.0 * M_PI * u2));
  }
}

}  // namespace

std::vector<std::pair<WeightSpec, std::vector<float>>> init_weights_f32(const ModelConfig& c, const InitOptions& o) {
  const double std = o.std >= 0 ? o.std : c.initializer_range;
  std::vector<std::pair<WeightSpec, std::vector<float>>> out;
  const auto specs = enumerate_weights(c);
  for (size_t i = 0; i < specs.size(); ++i) {
    const WeightSpec& s = specs[i];
    if (s.optional) continue;
    std::vector<float> v(static_cast<size_t>(s.numel()));
    switch (s.role) {
      case WeightRole::Norm:
        std::fill(v.begin(), v.end(), 1.0f);
        break;
      case WeightRole::Bias:
      case WeightRole::NormBias:
        break;  // zeros
      default:
        fill_normal(v, o.seed * 0x100000001b3ull + i * 0x9e3779b97f4a7c15ull + 1, std);
    }
    out.emplace_back(s, std::move(v));
  }
  return out;
}

std::vector<InitTensor> encode_for_storage(const std::vector<std::pair<WeightSpec, std::vector<float>>>& w,
                                           InitDType dtype, int64_t block, bool ue8m0) {
  std::vector<InitTensor> out;
  for (const auto& [s, v] : w) {
    const bool vector_like = s.role == WeightRole::Norm || s.role == WeightRole::Bias || s.role == WeightRole::NormBias;
    if (dtype == InitDType::F32 || vector_like) {
      InitTensor t{s.name, DType::F32, s.shape, std::vector<uint8_t>(v.size() * 4)};
      std::memcpy(t.bytes.data(), v.data(), t.bytes.size());
      out.push_back(std::move(t));
    } else if (dtype == InitDType::BF16 || s.role != WeightRole::Linear) {
      InitTensor t{s.name, DType::BF16, s.shape, std::vector<uint8_t>(v.size() * 2)};
      auto* p = reinterpret_cast<uint16_t*>(t.bytes.data());
      for (size_t i = 0; i < v.size(); ++i) p[i] = f32_to_bf16(v[i]);
      out.push_back(std::move(t));
    } else {
      // E4M3 with one float32 multiplier per 128×128 block (DeepSeek's weight_scale_inv).
      const int64_t n = s.shape[0], k = s.shape[1];
      const int64_t nb = (n + block - 1) / block, kb = (k + block - 1) / block;
      std::vector<float> scale(size_t(nb * kb));
      for (int64_t bi = 0; bi < nb; ++bi)
        for (int64_t bj = 0; bj < kb; ++bj) {
          float amax = 0.0f;
          for (int64_t i = bi * block; i < std::min(n, (bi + 1) * block); ++i)
            for (int64_t j = bj * block; j < std::min(k, (bj + 1) * block); ++j)
              amax = std::max(amax, std::fabs(v[size_t(i * k + j)]));
          float sc = amax > 0 ? amax / 448.0f : 1.0f;
          if (ue8m0) {  // the smallest power of two >= sc (exact: frexp, not a rounded log2); codes stay in ±448
            int e = 0;
            const float m = std::frexp(sc, &e);  // sc = m * 2^e, m in [0.5, 1)
            sc = std::ldexp(1.0f, m == 0.5f ? e - 1 : e);
          }
          scale[size_t(bi * kb + bj)] = sc;
        }
      InitTensor t{s.name, DType::F8_E4M3, s.shape, std::vector<uint8_t>(v.size())};
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < k; ++j)
          t.bytes[size_t(i * k + j)] = f32_to_e4m3(v[size_t(i * k + j)] / scale[size_t((i / block) * kb + j / block)]);
      out.push_back(std::move(t));
      InitTensor st{s.name + "_scale_inv", DType::F32, {nb, kb}, std::vector<uint8_t>(scale.size() * 4)};
      std::memcpy(st.bytes.data(), scale.data(), st.bytes.size());
      out.push_back(std::move(st));
    }
  }
  return out;
}

void write_model_dir(const std::string& dir, ModelConfig c, const std::vector<InitTensor>& tensors, InitDType dtype) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) fail("cannot create directory {}: {}", dir, ec.message());
  c.fp8 = dtype == InitDType::FP8;
  c.torch_dtype = dtype == InitDType::F32 ? "float32" : "bfloat16";
  std::vector<io::TensorToWrite> w;
  w.reserve(tensors.size());
  for (const auto& t : tensors) w.push_back({t.name, t.dtype, t.shape, t.bytes.data()});
  io::write_checkpoint_tensors(dir, w);
  io::write_file_atomic(dir + "/config.json", c.raw_json().dump(2) + "\n");
}

}  // namespace dsv3
