#include "tools/quantize.h"

#include <fmt/format.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "core/error.h"
#include "io/safetensors.h"
#include "kernels/quant.h"

namespace dsv3 {

namespace fs = std::filesystem;
using json = nlohmann::json;

QuantizeType parse_quantize_type(const std::string& s) {
  if (s == "int8") return QuantizeType::Int8;
  if (s == "int4") return QuantizeType::Int4;
  if (s == "bf16") return QuantizeType::BF16;
  fail("unknown quantization type '{}'; expected int8, int4 or bf16", s);
}

namespace {

// What one output tensor is made of.
enum class Conv { Copy, ToBf16, ToInt8, ToInt4, Scale };

struct Planned {
  std::string name;
  std::string source;  // source tensor name
  Conv conv;
  DType dtype;
  std::vector<int64_t> shape;
  uint64_t bytes;
};

uint64_t nbytes(DType d, const std::vector<int64_t>& shape) {
  uint64_t n = dtype_size(d);
  for (int64_t s : shape) n *= uint64_t(s);
  return n;
}

// A source matrix as the kernels see it (FP8 with its weight_scale_inv), for decoding rows to float32.
kernels::WeightRef source_ref(const ModelConfig& c, const io::Checkpoint& ck, const std::string& name) {
  const TensorView& t = ck.get(name);
  if (t.rank() != 2) fail("{}: {} has shape {}, expected a matrix", ck.dir(), name, shape_str(t.shape));
  kernels::WeightRef r;
  r.dtype = t.dtype;
  r.data = t.data;
  r.n = t.shape[0];
  r.k = t.shape[1];
  if (t.dtype == DType::F8_E4M3) {
    const TensorView& s = ck.get(name + "_scale_inv");
    r.scale_inv = s.as<float>();
    r.block_n = c.weight_block_n;
    r.block_k = c.weight_block_k;
  } else if (t.dtype == DType::I8 || t.dtype == DType::U8) {
    fail(
        "{}: {} is already block-quantized ({}); quantize from the original checkpoint (re-quantizing would "
        "compound the rounding)",
        ck.dir(), name, dtype_name(t.dtype));
  } else if (t.dtype != DType::F32 && t.dtype != DType::BF16 && t.dtype != DType::F16) {
    fail("{}: {} has dtype {}; quantize reads F32, BF16, F16 or F8_E4M3 matrices", ck.dir(), name, dtype_name(t.dtype));
  }
  return r;
}

// Output bytes of one planned tensor, filled in: Copy points into the source mapping, the others own.
struct Produced {
  std::vector<uint8_t> owned;
  const void* data = nullptr;
};

void produce(const ModelConfig& c, const io::Checkpoint& ck, const Planned& p, const Planned* scale_of, Produced& out,
             Produced* scale_out) {
  if (p.conv == Conv::Copy) {
    out.data = ck.get(p.source).data;
    return;
  }
  const kernels::WeightRef w = source_ref(c, ck, p.source);
  out.owned.resize(p.bytes);
  out.data = out.owned.data();
  if (p.conv == Conv::ToBf16) {
    auto* dst = reinterpret_cast<uint16_t*>(out.owned.data());
#pragma omp parallel
    {
      std::vector<float> row(size_t(w.k));
#pragma omp for schedule(static)
      for (int64_t r = 0; r < w.n; ++r) {
        kernels::weight_row(w, r, row.data());
        for (int64_t j = 0; j < w.k; ++j) dst[r * w.k + j] = f32_to_bf16(row[size_t(j)]);
      }
    }
    return;
  }
  const kernels::Quant q = p.conv == Conv::ToInt8 ? kernels::Quant::Int8 : kernels::Quant::Int4;
  const int64_t rb = kernels::qrow_bytes(q, w.k), kb = kernels::qblocks(w.k);
  scale_out->owned.resize(scale_of->bytes);
  scale_out->data = scale_out->owned.data();
  auto* scales = reinterpret_cast<uint16_t*>(scale_out->owned.data());
  int64_t bad_row = -1;
#pragma omp parallel
  {
    std::vector<float> row(size_t(w.k));
#pragma omp for schedule(static)
    for (int64_t r = 0; r < w.n; ++r) {
      kernels::weight_row(w, r, row.data());
      if (!kernels::quantize_row(q, row.data(), w.k, out.owned.data() + r * rb, scales + r * kb)) {
#pragma omp critical
        bad_row = bad_row < 0 ? r : std::min(bad_row, r);
      }
    }
  }
  if (bad_row >= 0)
    fail("{}: {} row {} holds a value that is not finite or too large for an f16 block scale", ck.dir(), p.source,
         bad_row);
}

const char* kTokenizerFiles[] = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                                 "generation_config.json"};

}  // namespace

QuantizeReport quantize_model(const std::string& in_dir, const std::string& out_dir, const QuantizeOptions& opt) {
  std::error_code ec;
  if (fs::exists(out_dir, ec)) {
    if (fs::equivalent(in_dir, out_dir, ec)) fail("--out {} is the input directory", out_dir);
    if (!fs::is_directory(out_dir) || !fs::is_empty(out_dir, ec))
      fail("--out {} exists and is not an empty directory", out_dir);
  }
  const ModelConfig c = load_config(in_dir);
  const io::Checkpoint ck = io::Checkpoint::open(in_dir);
  check_extra_tensors(c, ck, opt.extra_tensors);
  // Validate the whole source first (names, shapes, dtypes, FP8 scales): errors name the tensor.
  (void)bind_weights(c, ck);

  const bool to_int = opt.type != QuantizeType::BF16;
  const Conv lin = opt.type == QuantizeType::Int8   ? Conv::ToInt8
                   : opt.type == QuantizeType::Int4 ? Conv::ToInt4
                                                    : Conv::ToBf16;
  std::vector<Planned> plan;
  std::set<std::string> used;
  QuantizeReport rep;
  auto add_quant = [&](const std::string& name, const TensorView& t, Conv conv) {
    const int64_t n = t.shape[0], k = t.shape[1];
    const kernels::Quant q = conv == Conv::ToInt8 ? kernels::Quant::Int8 : kernels::Quant::Int4;
    const DType dt = conv == Conv::ToInt8 ? DType::I8 : DType::U8;
    const std::vector<int64_t> shape{n, kernels::qrow_bytes(q, k)}, sshape{n, kernels::qblocks(k)};
    plan.push_back({name, name, conv, dt, shape, nbytes(dt, shape)});
    plan.push_back({name + "_scale", name, Conv::Scale, DType::F16, sshape, nbytes(DType::F16, sshape)});
    ++rep.quantized;
  };
  for (const WeightSpec& s : enumerate_weights(c)) {
    const TensorView* t = ck.find(s.name);
    if (!t) continue;  // optional MTP copies (bind_weights checked the required ones)
    used.insert(s.name);
    if (t->dtype == DType::I8 || t->dtype == DType::U8)
      fail(
          "{}: {} is already block-quantized ({}); quantize from the original checkpoint (re-quantizing would "
          "compound the rounding)",
          in_dir, s.name, dtype_name(t->dtype));
    const bool matrix = t->rank() == 2;
    Conv conv = Conv::Copy;
    if (matrix && s.role == WeightRole::Linear) conv = lin;
    if (matrix && s.role == WeightRole::Head) conv = to_int ? Conv::ToInt8 : Conv::ToBf16;
    if (matrix && !to_int &&
        (s.role == WeightRole::Embedding || s.role == WeightRole::Gate || s.role == WeightRole::Projection))
      conv = Conv::ToBf16;
    // FP8 never stays FP8 (the output config drops the fp8 quantization_config).
    if (conv == Conv::Copy && t->dtype == DType::F8_E4M3) conv = Conv::ToBf16;
    if (conv == Conv::ToBf16 && t->dtype == DType::BF16) conv = Conv::Copy;
    if (conv == Conv::ToInt8 || conv == Conv::ToInt4) {
      add_quant(s.name, *t, conv);
    } else if (conv == Conv::ToBf16) {
      plan.push_back({s.name, s.name, conv, DType::BF16, t->shape, nbytes(DType::BF16, t->shape)});
      ++rep.quantized;
    } else {
      plan.push_back({s.name, s.name, conv, t->dtype, t->shape, t->nbytes()});
    }
  }
  for (const std::string& n : ck.names()) {
    rep.bytes_in += ck.get(n).nbytes();
    if (!used.count(n)) ++rep.dropped;
  }

  // Shards planned up front (greedy in table order, as io::write_checkpoint_tensors does), so that each
  // can be produced, written and freed in turn.
  std::vector<std::vector<size_t>> shards(1);
  uint64_t cur = 0, total = 0;
  for (size_t i = 0; i < plan.size(); ++i) {
    const bool pair_start = plan[i].conv == Conv::ToInt8 || plan[i].conv == Conv::ToInt4;
    const uint64_t b = plan[i].bytes + (pair_start ? plan[i + 1].bytes : 0);
    if (plan[i].conv != Conv::Scale && !shards.back().empty() && cur + b > opt.max_shard_bytes) {
      shards.emplace_back();
      cur = 0;
    }
    shards.back().push_back(i);
    cur += plan[i].bytes;
    total += plan[i].bytes;
  }
  fs::create_directories(out_dir, ec);
  if (ec) fail("cannot create directory {}: {}", out_dir, ec.message());
  const std::map<std::string, std::string> meta = {{"format", "pt"}};
  json weight_map = json::object();
  for (size_t s = 0; s < shards.size(); ++s) {
    const std::string file = shards.size() == 1
                                 ? "model.safetensors"
                                 : fmt::format("model-{:05d}-of-{:05d}.safetensors", s + 1, shards.size());
    std::vector<Produced> made(shards[s].size());
    for (size_t j = 0; j < shards[s].size(); ++j) {
      const Planned& p = plan[shards[s][j]];
      if (p.conv == Conv::Scale) continue;  // produced with its codes
      const bool pair = p.conv == Conv::ToInt8 || p.conv == Conv::ToInt4;
      produce(c, ck, p, pair ? &plan[shards[s][j] + 1] : nullptr, made[j], pair ? &made[j + 1] : nullptr);
    }
    std::vector<io::TensorToWrite> part;
    for (size_t j = 0; j < shards[s].size(); ++j) {
      const Planned& p = plan[shards[s][j]];
      part.push_back({p.name, p.dtype, p.shape, made[j].data});
      weight_map[p.name] = file;
      rep.bytes_out += p.bytes;
    }
    io::write_safetensors((fs::path(out_dir) / file).string(), part, meta);
  }
  rep.shards = int64_t(shards.size());
  rep.tensors = int64_t(plan.size());
  if (shards.size() > 1) {
    json idx = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
    io::write_file_atomic((fs::path(out_dir) / "model.safetensors.index.json").string(), idx.dump(2) + "\n");
  }

  // config.json: the source's own keys (architectures, auto_map, ...) with quantization_config replaced.
  json cfg;
  {
    const fs::path src = fs::path(in_dir) / "config.json";
    std::ifstream f(src);
    if (!f) fail("cannot read {}", src.string());
    try {
      cfg = json::parse(f);
    } catch (const json::exception& e) {
      fail("{}: {}", src.string(), e.what());
    }
  }
  cfg.erase("quantization_config");
  if (to_int) {
    ModelConfig qc = c;
    qc.block_quant = opt.type == QuantizeType::Int8 ? "int8" : "int4";
    qc.block_quant_head = c.tie_word_embeddings ? "none" : "int8";
    cfg["quantization_config"] = qc.block_quant_json();
  }
  if (cfg.contains("dtype")) cfg["dtype"] = "bfloat16";
  cfg["torch_dtype"] = "bfloat16";
  io::write_file_atomic((fs::path(out_dir) / "config.json").string(), cfg.dump(2) + "\n");
  (void)parse_config(cfg, out_dir + "/config.json");  // what we wrote must load

  for (const char* name : kTokenizerFiles) {
    const fs::path src = fs::path(in_dir) / name;
    if (!fs::is_regular_file(src, ec)) continue;
    std::ifstream f(src, std::ios::binary);
    std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    if (!f.good() && !f.eof()) fail("cannot read {}", src.string());
    io::write_file_atomic((fs::path(out_dir) / name).string(), text);
  }
  return rep;
}

}  // namespace dsv3
