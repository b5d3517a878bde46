#include "model/weights.h"

#include <fmt/format.h>

#include <cstring>

#include "core/error.h"
#include "kernels/quant.h"

namespace dsv3 {

namespace {

class Binder {
 public:
  Binder(const ModelConfig& c, const TensorLookup& lookup, const std::string& label, ModelWeights& w)
      : c_(c), lookup_(lookup), label_(label), w_(w) {}

  const TensorView* find(const std::string& name) const { return lookup_(name); }

  const TensorView& get(const std::string& name) const {
    const TensorView* t = lookup_(name);
    if (!t) fail("{}: missing tensor {}", label_, name);
    return *t;
  }

  void check_shape(const std::string& name, const TensorView& t, const std::vector<int64_t>& want) const {
    if (t.shape != want)
      fail("{}: tensor {} has shape {}, the config implies {}", label_, name, shape_str(t.shape), shape_str(want));
  }

  // A float32 vector, copied when stored in another dtype or misaligned.
  const float* vec(const std::string& name, int64_t n) {
    const TensorView& t = get(name);
    check_shape(name, t, {n});
    if (t.dtype == DType::F32 && reinterpret_cast<uintptr_t>(t.data) % alignof(float) == 0) return t.as<float>();
    if (t.dtype != DType::F32 && t.dtype != DType::BF16 && t.dtype != DType::F16)
      fail("{}: tensor {} has dtype {}; expected F32, BF16 or F16", label_, name, dtype_name(t.dtype));
    auto& v = w_.owned.emplace_back(size_t(n));
    if (t.dtype == DType::F32) {
      std::memcpy(v.data(), t.data, size_t(n) * 4);
    } else {
      std::vector<uint16_t> tmp(static_cast<size_t>(n));
      std::memcpy(tmp.data(), t.data, size_t(n) * 2);
      to_f32(t.dtype, tmp.data(), v.data(), size_t(n));
    }
    return v.data();
  }

  // A matrix [n, k] in its stored dtype; FP8 requires `<name>_scale_inv`, the int8 / int4 block formats of
  // `dsv3 quantize` (I8 / U8 codes) require `<name>_scale` and a dsv3_block quantization_config.
  kernels::WeightRef mat(const std::string& name, int64_t n, int64_t k, bool fp8_ok = true, bool quant_ok = true) {
    const TensorView& t = get(name);
    if (t.dtype == DType::I8 || t.dtype == DType::U8) return block_quant(name, t, n, k, quant_ok);
    return mat_from(name, t, n, k, fp8_ok);
  }

  kernels::WeightRef block_quant(const std::string& name, const TensorView& t, int64_t n, int64_t k, bool quant_ok) {
    const kernels::Quant q = t.dtype == DType::I8 ? kernels::Quant::Int8 : kernels::Quant::Int4;
    const char* qname = q == kernels::Quant::Int8 ? "int8" : "int4";
    if (c_.block_quant.empty())
      fail("{}: tensor {} has dtype {} (block-quantized {}), but config.json has no dsv3_block quantization_config",
           label_, name, dtype_name(t.dtype), qname);
    if (!quant_ok) fail("{}: tensor {} is block-quantized ({}), which this role does not allow", label_, name, qname);
    check_shape(name, t, {n, kernels::qrow_bytes(q, k)});
    const std::string sname = name + "_scale";
    const TensorView* s = find(sname);
    if (!s) fail("{}: {} is block-quantized ({}) without {}", label_, name, qname, sname);
    if (s->dtype != DType::F16) fail("{}: {} must be F16, found {}", label_, sname, dtype_name(s->dtype));
    const std::vector<int64_t> want{n, kernels::qblocks(k)};
    if (s->shape != want)
      fail("{}: {} has shape {}; blocks of 32 over {} need {}", label_, sname, shape_str(s->shape), shape_str({n, k}),
           shape_str(want));
    kernels::WeightRef r;
    r.dtype = t.dtype;
    r.quant = q;
    r.data = t.data;
    r.n = n;
    r.k = k;
    const uint16_t* sc = aligned_halves(*s);
    for (int64_t i = 0; i < s->numel(); ++i)
      if ((sc[i] & 0x7c00) == 0x7c00)
        fail("{}: {} holds a non-finite scale (f16 bits 0x{:04x}) at block {} of row {}", label_, sname, sc[i],
             i % want[1], i / want[1]);
    r.qscale = sc;
    return r;
  }

  const uint16_t* aligned_halves(const TensorView& t) {
    if (reinterpret_cast<uintptr_t>(t.data) % alignof(uint16_t) == 0) return reinterpret_cast<const uint16_t*>(t.data);
    auto& v = w_.owned.emplace_back((t.nbytes() + 3) / 4);
    std::memcpy(v.data(), t.data, t.nbytes());
    return reinterpret_cast<const uint16_t*>(v.data());
  }

  kernels::WeightRef mat_from(const std::string& name, const TensorView& t, int64_t n, int64_t k, bool fp8_ok) {
    check_shape(name, t, {n, k});
    kernels::WeightRef r;
    r.dtype = t.dtype;
    r.data = t.data;
    r.n = n;
    r.k = k;
    switch (t.dtype) {
      case DType::F32:
      case DType::BF16:
      case DType::F16:
        break;
      case DType::F8_E4M3: {
        if (!fp8_ok) fail("{}: tensor {} is F8_E4M3, which this role does not allow", label_, name);
        const std::string sname = name + "_scale_inv";
        const TensorView* s = find(sname);
        if (!s) fail("{}: {} is F8_E4M3 without {}", label_, name, sname);
        if (s->dtype != DType::F32) fail("{}: {} must be F32, found {}", label_, sname, dtype_name(s->dtype));
        r.block_n = c_.weight_block_n;
        r.block_k = c_.weight_block_k;
        const std::vector<int64_t> want{(n + r.block_n - 1) / r.block_n, (k + r.block_k - 1) / r.block_k};
        if (s->shape != want)
          fail("{}: {} has shape {}; blocks of {}x{} over {} need {}", label_, sname, shape_str(s->shape), r.block_n,
               r.block_k, shape_str({n, k}), shape_str(want));
        r.scale_inv = aligned_floats(*s);
        break;
      }
      default:
        fail("{}: tensor {} has unsupported dtype {} for a weight matrix", label_, name, dtype_name(t.dtype));
    }
    if (reinterpret_cast<uintptr_t>(t.data) % dtype_size(t.dtype) != 0) {
      // Misaligned storage (possible in hand-made files): keep an aligned copy of the stored bytes.
      auto& v = w_.owned.emplace_back((t.nbytes() + 3) / 4);
      std::memcpy(v.data(), t.data, t.nbytes());
      r.data = v.data();
    }
    return r;
  }

  const float* aligned_floats(const TensorView& t) {
    if (reinterpret_cast<uintptr_t>(t.data) % alignof(float) == 0) return t.as<float>();
    auto& v = w_.owned.emplace_back(size_t(t.numel()));
    std::memcpy(v.data(), t.data, t.nbytes());
    return v.data();
  }

  // The schema's visitor: each tensor bound by its role.
  void operator()(const WeightSpec& s, kernels::WeightRef& r) {
    if (s.optional && !find(s.name)) return;  // the main model's copy stands in (visit_model)
    const int64_t n = s.shape[0], k = s.shape[1];
    switch (s.role) {
      case WeightRole::Linear:
        r = mat(s.name, n, k);
        break;
      case WeightRole::Head:
        r = mat(s.name, n, k, /*fp8_ok=*/false);
        break;
      default:  // Embedding, Gate: as stored (F32 / BF16 / F16)
        r = mat(s.name, n, k, /*fp8_ok=*/false, /*quant_ok=*/false);
    }
  }
  void operator()(const WeightSpec& s, const float*& v) { v = vec(s.name, s.shape[0]); }

 private:
  const ModelConfig& c_;
  const TensorLookup& lookup_;
  const std::string& label_;
  ModelWeights& w_;
};

}  // namespace

ModelWeights bind_weights(const ModelConfig& c, const TensorLookup& lookup, const std::string& label,
                          const SchemaScope& scope) {
  ModelWeights w;
  Binder b(c, lookup, label, w);
  visit_model(c, w, b, scope);
  return w;
}

FfnWeights bind_expert(const ModelConfig& c, const io::Checkpoint& ckpt, int64_t layer, int64_t expert,
                       std::vector<std::vector<float>>& owned) {
  if (layer < 0 || layer >= c.num_hidden_layers + c.num_nextn_predict_layers || !c.is_moe_layer(layer))
    fail("{}: layer {} is not a MoE layer", ckpt.dir(), layer);
  if (expert < 0 || expert >= c.n_routed_experts)
    fail("{}: expert {} is outside the {} routed experts", ckpt.dir(), expert, c.n_routed_experts);
  // The layer's walk (the only place its names are spelled) scoped to this one expert.
  ModelWeights tmp;
  const TensorLookup lookup = [&](const std::string& n) { return ckpt.find(n); };
  Binder b(c, lookup, ckpt.dir(), tmp);
  LayerWeights lw;
  visit_layer(c, layer, lw, b, SchemaScope{.expert_begin = expert, .expert_end = expert + 1});
  for (auto& v : tmp.owned) owned.push_back(std::move(v));
  return lw.moe.experts[size_t(expert)];
}

ModelWeights bind_weights(const ModelConfig& c, const io::Checkpoint& ckpt, const SchemaScope& scope) {
  return bind_weights(
      c, [&](const std::string& n) { return ckpt.find(n); }, ckpt.dir(), scope);
}

}  // namespace dsv3
