#include "kernels/isa.h"

#include <atomic>

namespace dsv3::kernels {

namespace {

Isa detect() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c"))
    return Isa::Avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c"))
    return Isa::Avx2;
#endif
  return Isa::Scalar;
}

// 0xff = not chosen yet (function-local statics keep this safe during static initialisation).
std::atomic<uint8_t> g_active{0xff};

}  // namespace

Isa best_isa() {
  static const Isa best = detect();
  return best;
}

Isa active_isa() {
  uint8_t a = g_active.load(std::memory_order_relaxed);
  if (a == 0xff) {
    a = uint8_t(best_isa());
    g_active.store(a, std::memory_order_relaxed);
  }
  return Isa(a);
}

Isa set_isa(Isa isa) {
  if (uint8_t(isa) > uint8_t(best_isa())) isa = best_isa();
  g_active.store(uint8_t(isa), std::memory_order_relaxed);
  return isa;
}

bool has_avx512_bf16() {
#if defined(__x86_64__) || defined(__i386__)
  static const bool has = best_isa() == Isa::Avx512 && __builtin_cpu_supports("avx512bf16");
  return has;
#else
  return false;
#endif
}

bool has_avx512_vnni() {
#if defined(__x86_64__) || defined(__i386__)
  static const bool has = best_isa() == Isa::Avx512 && __builtin_cpu_supports("avx512vnni");
  return has;
#else
  return false;
#endif
}

std::string_view isa_name(Isa isa) {
  switch (isa) {
    case Isa::Scalar:
      return "scalar";
    case Isa::Avx2:
      return "avx2";
    case Isa::Avx512:
      return "avx512";
  }
  return "?";
}

}  // namespace dsv3::kernels

// ---- per-thread scratch (internal.h) ----
#include <cstdlib>
#include <new>

#include "kernels/internal.h"

namespace dsv3::kernels::detail {

namespace {
struct Scratch {
  float* p[6] = {};
  size_t cap[6] = {};
  ~Scratch() {
    for (float* q : p) std::free(q);
  }
};
thread_local Scratch t_scratch;
}  // namespace

float* thread_scratch(int slot, size_t floats) {
  Scratch& s = t_scratch;
  if (floats > s.cap[slot]) {
    std::free(s.p[slot]);
    size_t bytes = (floats * sizeof(float) + 63) & ~size_t(63);
    s.p[slot] = static_cast<float*>(std::aligned_alloc(64, bytes));
    if (!s.p[slot]) throw std::bad_alloc();
    s.cap[slot] = floats;
  }
  return s.p[slot];
}

}  // namespace dsv3::kernels::detail
