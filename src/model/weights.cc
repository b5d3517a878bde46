#include "model/weights.h"

#include <fmt/format.h>

#include <cstring>

#include "core/error.h"
#include "kernels/quant.h"

namespace dsv3 {

namespace {

std::string layer_prefix(int64_t l) { return fmt::format("model.layers.{}.", l); }

void add_ffn(std::vector<WeightSpec>& out, const std::string& p, int64_t hidden, int64_t inter) {
  out.push_back({p + "gate_proj.weight", {inter, hidden}, WeightRole::Linear});
  out.push_back({p + "up_proj.weight", {inter, hidden}, WeightRole::Linear});
  out.push_back({p + "down_proj.weight", {hidden, inter}, WeightRole::Linear});
}

void add_layer(std::vector<WeightSpec>& out, const ModelConfig& c, int64_t l) {
  const std::string p = layer_prefix(l);
  const int64_t D = c.hidden_size, H = c.num_attention_heads;
  out.push_back({p + "input_layernorm.weight", {D}, WeightRole::Norm});
  const std::string a = p + "self_attn.";
  if (c.q_lora_rank > 0) {
    out.push_back({a + "q_a_proj.weight", {c.q_lora_rank, D}, WeightRole::Linear});
    out.push_back({a + "q_a_layernorm.weight", {c.q_lora_rank}, WeightRole::Norm});
    out.push_back({a + "q_b_proj.weight", {H * c.qk_head_dim(), c.q_lora_rank}, WeightRole::Linear});
  } else {
    out.push_back({a + "q_proj.weight", {H * c.qk_head_dim(), D}, WeightRole::Linear});
  }
  out.push_back({a + "kv_a_proj_with_mqa.weight", {c.kv_lora_rank + c.qk_rope_head_dim, D}, WeightRole::Linear});
  out.push_back({a + "kv_a_layernorm.weight", {c.kv_lora_rank}, WeightRole::Norm});
  out.push_back(
      {a + "kv_b_proj.weight", {H * (c.qk_nope_head_dim + c.v_head_dim), c.kv_lora_rank}, WeightRole::Linear});
  out.push_back({a + "o_proj.weight", {D, H * c.v_head_dim}, WeightRole::Linear});
  out.push_back({p + "post_attention_layernorm.weight", {D}, WeightRole::Norm});
  if (c.is_moe_layer(l)) {
    const int64_t E = c.n_routed_experts;
    out.push_back({p + "mlp.gate.weight", {E, D}, WeightRole::Gate});
    if (c.topk_method == TopkMethod::NoauxTc)
      out.push_back({p + "mlp.gate.e_score_correction_bias", {E}, WeightRole::Bias});
    for (int64_t e = 0; e < E; ++e) add_ffn(out, fmt::format("{}mlp.experts.{}.", p, e), D, c.moe_intermediate_size);
    if (c.n_shared_experts > 0)
      add_ffn(out, p + "mlp.shared_experts.", D, c.n_shared_experts * c.moe_intermediate_size);
  } else {
    add_ffn(out, p + "mlp.", D, c.intermediate_size);
  }
}

}  // namespace

std::vector<WeightSpec> enumerate_weights(const ModelConfig& c) {
  std::vector<WeightSpec> out;
  const int64_t V = c.vocab_size, D = c.hidden_size;
  out.push_back({"model.embed_tokens.weight", {V, D}, WeightRole::Embedding});
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) add_layer(out, c, l);
  out.push_back({"model.norm.weight", {D}, WeightRole::Norm});
  if (!c.tie_word_embeddings) out.push_back({"lm_head.weight", {V, D}, WeightRole::Head});
  for (int64_t k = 0; k < c.num_nextn_predict_layers; ++k) {
    const int64_t l = c.num_hidden_layers + k;
    const std::string p = layer_prefix(l);
    out.push_back({p + "enorm.weight", {D}, WeightRole::Norm});
    out.push_back({p + "hnorm.weight", {D}, WeightRole::Norm});
    out.push_back({p + "eh_proj.weight", {D, 2 * D}, WeightRole::Linear});
    add_layer(out, c, l);
    out.push_back({p + "shared_head.norm.weight", {D}, WeightRole::Norm});
    out.push_back({p + "embed_tokens.weight", {V, D}, WeightRole::Embedding, /*optional=*/true});
    out.push_back({p + "shared_head.head.weight", {V, D}, WeightRole::Head, /*optional=*/true});
  }
  return out;
}

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
    if (t.dtype == DType::F32 && reinterpret_cast<uintptr_t>(t.data) % alignof(float) == 0)
      return t.as<float>();
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
      fail("{}: {} has shape {}; blocks of 32 over {} need {}", label_, sname, shape_str(s->shape),
           shape_str({n, k}), shape_str(want));
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

  FfnWeights ffn(const std::string& p, int64_t hidden, int64_t inter) {
    return {.w1 = mat(p + "gate_proj.weight", inter, hidden),
            .w2 = mat(p + "down_proj.weight", hidden, inter),
            .w3 = mat(p + "up_proj.weight", inter, hidden)};
  }

  LayerWeights layer(int64_t l) {
    const ModelConfig& c = c_;
    const std::string p = layer_prefix(l), a = p + "self_attn.";
    const int64_t D = c.hidden_size, H = c.num_attention_heads;
    LayerWeights lw;
    lw.attn_norm = vec(p + "input_layernorm.weight", D);
    lw.ffn_norm = vec(p + "post_attention_layernorm.weight", D);
    MlaWeights& m = lw.attn;
    if (c.q_lora_rank > 0) {
      m.wq_a = mat(a + "q_a_proj.weight", c.q_lora_rank, D);
      m.q_norm = vec(a + "q_a_layernorm.weight", c.q_lora_rank);
      m.wq_b = mat(a + "q_b_proj.weight", H * c.qk_head_dim(), c.q_lora_rank);
    } else {
      m.wq = mat(a + "q_proj.weight", H * c.qk_head_dim(), D);
    }
    m.wkv_a = mat(a + "kv_a_proj_with_mqa.weight", c.kv_lora_rank + c.qk_rope_head_dim, D);
    m.kv_norm = vec(a + "kv_a_layernorm.weight", c.kv_lora_rank);
    m.wkv_b = mat(a + "kv_b_proj.weight", H * (c.qk_nope_head_dim + c.v_head_dim), c.kv_lora_rank);
    m.wo = mat(a + "o_proj.weight", D, H * c.v_head_dim);
    lw.is_moe = c.is_moe_layer(l);
    if (lw.is_moe) {
      MoeWeights& e = lw.moe;
      const int64_t E = c.n_routed_experts;
      e.gate = mat(p + "mlp.gate.weight", E, D, /*fp8_ok=*/false, /*quant_ok=*/false);
      if (c.topk_method == TopkMethod::NoauxTc) e.bias = vec(p + "mlp.gate.e_score_correction_bias", E);
      e.experts.reserve(size_t(E));
      for (int64_t i = 0; i < E; ++i)
        e.experts.push_back(ffn(fmt::format("{}mlp.experts.{}.", p, i), D, c.moe_intermediate_size));
      e.has_shared = c.n_shared_experts > 0;
      if (e.has_shared) e.shared = ffn(p + "mlp.shared_experts.", D, c.n_shared_experts * c.moe_intermediate_size);
    } else {
      lw.mlp = ffn(p + "mlp.", D, c.intermediate_size);
    }
    return lw;
  }

 private:
  const ModelConfig& c_;
  const TensorLookup& lookup_;
  const std::string& label_;
  ModelWeights& w_;
};

}  // namespace

ModelWeights bind_weights(const ModelConfig& c, const TensorLookup& lookup, const std::string& label) {
  ModelWeights w;
  Binder b(c, lookup, label, w);
  const int64_t V = c.vocab_size, D = c.hidden_size;
  w.embed = b.mat("model.embed_tokens.weight", V, D, /*fp8_ok=*/false, /*quant_ok=*/false);
  w.layers.reserve(size_t(c.num_hidden_layers));
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) w.layers.push_back(b.layer(l));
  w.norm = b.vec("model.norm.weight", D);
  if (c.tie_word_embeddings) {
    w.head = w.embed;
  } else {
    w.head = b.mat("lm_head.weight", V, D, /*fp8_ok=*/false);
  }
  for (int64_t k = 0; k < c.num_nextn_predict_layers; ++k) {
    const int64_t l = c.num_hidden_layers + k;
    const std::string p = layer_prefix(l);
    MtpWeights m;
    m.enorm = b.vec(p + "enorm.weight", D);
    m.hnorm = b.vec(p + "hnorm.weight", D);
    m.eh_proj = b.mat(p + "eh_proj.weight", D, 2 * D);
    m.layer = b.layer(l);
    m.head_norm = b.vec(p + "shared_head.norm.weight", D);
    m.embed = b.find(p + "embed_tokens.weight") ? b.mat(p + "embed_tokens.weight", V, D, false, false) : w.embed;
    m.head = b.find(p + "shared_head.head.weight") ? b.mat(p + "shared_head.head.weight", V, D, false) : w.head;
    w.mtp.push_back(std::move(m));
  }
  return w;
}

ModelWeights bind_weights(const ModelConfig& c, const io::Checkpoint& ckpt) {
  return bind_weights(c, [&](const std::string& n) { return ckpt.find(n); }, ckpt.dir());
}

}  // namespace dsv3
