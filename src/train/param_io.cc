#include "train/param_io.h"

#include <cstring>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace dsv3::train {

namespace {

// Decodes t (shape [n, k] or [n]) into out, applying FP8 block scales from `scale` when given.
void decode(const std::string& label, const std::string& name, const TensorView& t, const TensorView* scale,
            const ModelConfig& c, float* out) {
  const size_t n = size_t(t.numel());
  switch (t.dtype) {
    case DType::F32:
      std::memcpy(out, t.data, n * sizeof(float));
      return;
    case DType::BF16:
    case DType::F16:
      to_f32(t.dtype, t.data, out, n);
      return;
    case DType::F8_E4M3:
    case DType::F8_E5M2: {
      if (!scale) fail("{}: {} is {} without {}_scale_inv", label, name, dtype_name(t.dtype), name);
      if (scale->dtype != DType::F32)
        fail("{}: {}_scale_inv must be F32, found {}", label, name, dtype_name(scale->dtype));
      if (t.rank() != 2) fail("{}: {} is {} but not a matrix", label, name, dtype_name(t.dtype));
      const int64_t rows = t.shape[0], cols = t.shape[1], bn = c.weight_block_n, bk = c.weight_block_k;
      const std::vector<int64_t> want{(rows + bn - 1) / bn, (cols + bk - 1) / bk};
      if (scale->shape != want)
        fail("{}: {}_scale_inv has shape {}; blocks of {}x{} over {} need {}", label, name, shape_str(scale->shape), bn,
             bk, shape_str(t.shape), shape_str(want));
      const auto* bytes = reinterpret_cast<const uint8_t*>(t.data);
      for (int64_t i = 0; i < rows; ++i)
        for (int64_t j = 0; j < cols; ++j) {
          float s;
          std::memcpy(&s, scale->data + size_t((i / bn) * want[1] + j / bk) * 4, 4);
          const uint8_t b = bytes[i * cols + j];
          const float v = t.dtype == DType::F8_E4M3 ? e4m3_to_f32(b) : e5m2_to_f32(b);
          out[i * cols + j] = v * s;
        }
      return;
    }
    default:
      fail("{}: {} has unsupported dtype {} for a trainable weight", label, name, dtype_name(t.dtype));
  }
}

}  // namespace

Params load_params(const ModelConfig& c, const io::Checkpoint& ckpt, const SchemaScope& scope, ExtraTensors extra) {
  check_extra_tensors(c, ckpt, extra);
  Params p(c, scope);
  for (size_t i = 0; i < p.size(); ++i) {
    const WeightSpec& s = p.specs()[i];
    const TensorView* t = ckpt.find(s.name);
    if (!t) fail("{}: missing tensor {}", ckpt.dir(), s.name);
    if (t->shape != s.shape)
      fail("{}: tensor {} has shape {}, the config implies {}", ckpt.dir(), s.name, shape_str(t->shape),
           shape_str(s.shape));
    decode(ckpt.dir(), s.name, *t, ckpt.find(s.name + "_scale_inv"), c, p.value(i).data());
  }
  return p;
}

Params load_params(const std::string& dir) {
  const ModelConfig c = load_config(dir);
  return load_params(c, io::Checkpoint::open(dir));
}

void save_params(const std::string& dir, const ModelConfig& c, const Params& p, InitDType dtype) {
  std::vector<std::pair<WeightSpec, std::vector<float>>> w;
  w.reserve(p.size());
  for (size_t i = 0; i < p.size(); ++i) w.emplace_back(p.specs()[i], p.value(i));
  write_model_dir(dir, c, encode_for_storage(w, dtype), dtype);
}

uint64_t save_params_file(const std::string& path, const Params& p, const std::vector<char>& only) {
  std::vector<io::TensorToWrite> w;
  uint64_t bytes = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    if (!only.empty() && !only[i]) continue;
    const WeightSpec& s = p.specs()[i];
    w.push_back({s.name, DType::F32, s.shape, p.value(i).data()});
    bytes += uint64_t(p.value(i).size()) * sizeof(float);
  }
  io::write_safetensors(path, w);
  return bytes;
}

void save_config_json(const std::string& dir, ModelConfig c) {
  c.fp8 = false;
  c.torch_dtype = "float32";
  io::write_file_atomic(dir + "/config.json", c.raw_json().dump(2) + "\n");
}

}  // namespace dsv3::train
