// Which instruction-set path the kernels take. Chosen once at start-up from the CPU's features
// (`__builtin_cpu_supports`); tests and benchmarks may force a lower path to compare all of them.
#pragma once

#include <cstdint>
#include <string_view>

namespace dsv3::kernels {

enum class Isa : uint8_t {
  Scalar,  // portable C++ (the references, threaded where it matters)
  Avx2,    // AVX2 + FMA + F16C, 256-bit
  Avx512,  // AVX-512 F/BW/VL/DQ (+ BF16 where the CPU has it), 512-bit
};

// The best path this CPU can run.
Isa best_isa();
// The path the kernels take now (best_isa() unless forced).
Isa active_isa();
// Forces a path; a request above best_isa() is clamped to it. Returns the path now active.
// Not meant to be called while kernels run on other threads.
Isa set_isa(Isa isa);
// Whether the CPU has AVX-512 BF16 (vdpbf16ps), used by the opt-in bf16 linear mode.
bool has_avx512_bf16();
// Whether the CPU has AVX-512 VNNI (vpdpbusd), used by the int8 / int4 GEMV kernels (else the AVX2 ones).
bool has_avx512_vnni();

std::string_view isa_name(Isa isa);

}  // namespace dsv3::kernels
