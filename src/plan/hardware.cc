// Hardware presets and the cpu:FILE reader.
//
// Sources (per GPU; "one way" = one direction of a link):
//   H800 SXM: compute as the H100 SXM (NVIDIA H100 datasheet: 989.5 TFLOP/s dense BF16, 1979 TFLOP/s dense FP8;
//     80 GB HBM3 at 3.35 TB/s). NVLink 160 GB/s and InfiniBand 50 GB/s per GPU: DeepSeek-V3 technical report
//     §3.2.2 ("NVLink offers a bandwidth of 160 GB/s, roughly 3.2 times that of IB (50 GB/s)") — achieved
//     rates, 80 % of H800's 200 GB/s NVLink per direction and all of a 400 Gb/s ConnectX-7 port.
//   H100 SXM: the same compute and HBM; NVLink 4 is 900 GB/s both ways (datasheet) = 450 GB/s one way, taken at
//     the same 80 % the paper achieves on H800 = 360 GB/s; one 400 Gb/s ConnectX-7 per GPU (DGX H100) = 50 GB/s.
//   B200 (HGX/DGX B200, datasheet): 2.25 PFLOP/s dense BF16, 4.5 PFLOP/s dense FP8 (the datasheet's 72 PFLOP/s
//     FP8 training per 8 GPUs is with sparsity), 180 GB HBM3e (1440 GB per 8), 8 TB/s; NVLink 5 1.8 TB/s both
//     ways = 900 GB/s one way, at 80 % = 720 GB/s; one 400 Gb/s ConnectX-7 per GPU = 50 GB/s.
//   Link latency: 10 µs per exchange on every GPU preset (order of an NCCL/DeepEP all-to-all start-up; it
//     matters only for decode's small messages).
// The default MFU, 0.45 of the dense BF16 peak while computing (the planner adds bubbles and exposed
// communication on top): production BF16 training on H100-class silicon reaches 38-43 % end to end for Llama 3
// 405B on 8K-16K H100s (Llama 3 paper, Table 4) and up to 47 % for Megatron-Core's GPT runs (Megatron-LM README),
// figures that include their own pipeline bubbles and exposed communication, so the kernels run at ≈ 0.43-0.47
// while computing. DeepSeek-V3 runs its GEMMs in FP8 (2× the peak) but also fine-grained MoE GEMMs, 20 of 132
// SMs kept for communication (§3.2.2) and per-tile quantization; the planner assumes these cancel and counts
// FLOPs against the BF16 peak. docs/scale-out.md shows how the 671B estimate moves with this number.
#include "plan/hardware.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"

namespace dsv3::plan {

using nlohmann::json;

namespace {

Hardware gpu(std::string name, double bf16, double fp8, double mem, double bw, double nvlink, double ib) {
  Hardware h;
  h.name = std::move(name);
  h.peak_flops = bf16;
  h.fp8_flops = fp8;
  h.memory_bytes = mem;
  h.memory_bandwidth = bw;
  h.intra_node_bandwidth = nvlink;
  h.inter_node_bandwidth = ib;
  h.link_latency = 10e-6;
  h.mfu = 0.45;
  return h;
}

}  // namespace

Hardware parse_hardware(const std::string& spec) {
  if (spec == "h800") return gpu("h800", 989.5e12, 1979e12, 80e9, 3.35e12, 160e9, 50e9);
  if (spec == "h100") return gpu("h100", 989.5e12, 1979e12, 80e9, 3.35e12, 360e9, 50e9);
  if (spec == "b200") return gpu("b200", 2.25e15, 4.5e15, 180e9, 8e12, 720e9, 50e9);
  if (spec.rfind("cpu:", 0) == 0) {
    if (spec.size() == 4) fail("--hardware cpu:FILE: no file named");
    return load_cpu_hardware(spec.substr(4));
  }
  fail("--hardware '{}': unknown (want h800, h100, b200 or cpu:FILE)", spec);
}

Hardware load_cpu_hardware(const std::string& path) {
  std::ifstream f(path);
  if (!f) fail("--hardware cpu:{}: cannot open the file", path);
  json j;
  try {
    j = json::parse(f);
  } catch (const json::parse_error& e) {
    fail("--hardware cpu:{}: not JSON: {}", path, e.what());
  }
  if (!j.is_object()) fail("--hardware cpu:{}: want a JSON object", path);
  static const std::set<std::string> known = {"name",
                                              "notes",
                                              "cores",
                                              "memory_bytes",
                                              "memory_bandwidth_bytes_per_s",
                                              "gemm_flops_per_s",
                                              "alltoall_bandwidth_bytes_per_s",
                                              "alltoall_latency_s",
                                              "network_bandwidth_bytes_per_s",
                                              "mfu"};
  for (const auto& [k, v] : j.items())
    if (!known.count(k)) fail("--hardware cpu:{}: unknown key '{}'", path, k);
  auto number = [&](const char* key, bool required) -> double {
    auto it = j.find(key);
    if (it == j.end()) {
      if (required) fail("--hardware cpu:{}: missing key '{}'", path, key);
      return 0;
    }
    if (!it->is_number()) fail("--hardware cpu:{}: key '{}' must be a number", path, key);
    const double v = it->get<double>();
    if (!(v > 0)) fail("--hardware cpu:{}: key '{}' must be positive (got {})", path, key, v);
    return v;
  };
  Hardware h;
  h.cpu = true;
  h.name = "cpu:" + path;
  if (auto it = j.find("name"); it != j.end()) {
    if (!it->is_string()) fail("--hardware cpu:{}: key 'name' must be a string", path);
    h.name = it->get<std::string>();
  }
  if (auto it = j.find("notes"); it != j.end() && !it->is_string() && !it->is_array())
    fail("--hardware cpu:{}: key 'notes' must be a string or a list of strings", path);
  const double cores = number("cores", true);
  if (cores != double(int(cores))) fail("--hardware cpu:{}: key 'cores' must be an integer", path);
  h.cores = int(cores);
  h.memory_bytes = number("memory_bytes", true);
  h.memory_bandwidth = number("memory_bandwidth_bytes_per_s", true);
  h.peak_flops = number("gemm_flops_per_s", true);
  h.intra_node_bandwidth = number("alltoall_bandwidth_bytes_per_s", true);
  h.link_latency = number("alltoall_latency_s", true);
  h.inter_node_bandwidth = number("network_bandwidth_bytes_per_s", false);
  if (h.inter_node_bandwidth == 0) h.inter_node_bandwidth = h.intra_node_bandwidth;
  h.mfu = j.contains("mfu") ? number("mfu", false) : 1.0;
  if (h.mfu > 1) fail("--hardware cpu:{}: key 'mfu' must be at most 1 (got {})", path, h.mfu);
  return h;
}

Hardware share_of_node(const Hardware& node, int ranks_per_node) {
  if (!node.cpu || ranks_per_node <= 1) return node;
  Hardware h = node;
  const double r = ranks_per_node;
  h.peak_flops /= r;  // the node's cores divided among its ranks (oversubscribed ranks share a core)
  h.memory_bytes /= r;
  h.memory_bandwidth /= r;
  h.inter_node_bandwidth /= r;  // one network port per node
  return h;
}

}  // namespace dsv3::plan
