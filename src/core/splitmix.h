// SplitMix64 (Steele, Lea & Flood 2014): a tiny generator with a fixed definition, so a seed gives the same
// stream on every machine. Used for weight init, data shuffling/FIM and to seed the sampler's xoshiro.
#pragma once

#include <cstdint>

namespace dsv3 {

struct SplitMix64 {
  uint64_t s = 0;
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return double(next() >> 11) * (1.0 / 9007199254740992.0); }
  // Uniform in [0, n) (n > 0), by rejection so every value is equally likely.
  uint64_t below(uint64_t n) {
    const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = next();
    while (x >= limit);
    return x % n;
  }
};

}  // namespace dsv3
