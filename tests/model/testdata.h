// Access to ../shared/testdata (reference vectors from DeepSeek's inference/model.py; see its README).
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace dsv3::testing {

inline std::string testdata_dir() { return DSV3_TESTDATA; }

inline bool have_case(const std::string& name) {
  return std::filesystem::exists(testdata_dir() + "/" + name + "/config.json");
}

#define DSV3_REQUIRE_CASE(name)                                                                  \
  do {                                                                                           \
    if (!::dsv3::testing::have_case(name))                                                       \
      GTEST_SKIP() << "reference vectors " << ::dsv3::testing::testdata_dir() << "/" << (name)   \
                   << " absent (they live in ../shared/testdata beside the checkout); skipping"; \
  } while (0)

inline std::vector<std::vector<int32_t>> read_ids(const std::string& path) {
  std::ifstream f(path);
  std::vector<std::vector<int32_t>> out;
  std::string line;
  while (std::getline(f, line)) {
    std::istringstream ss(line);
    std::vector<int32_t> ids;
    int32_t v;
    while (ss >> v) ids.push_back(v);
    if (!ids.empty()) out.push_back(ids);
  }
  return out;
}

// int32 little-endian (DSA's index_topk_K.i32).
inline std::vector<int32_t> read_i32(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::vector<int32_t> v(bytes.size() / 4);
  std::memcpy(v.data(), bytes.data(), v.size() * 4);
  return v;
}

inline std::vector<float> read_f32(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::vector<float> v(bytes.size() / 4);
  std::memcpy(v.data(), bytes.data(), v.size() * 4);
  return v;
}

// ‖a − b‖ / ‖b‖, in double.
inline double rel_err(const float* a, const float* b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; ++i) {
    const double d = double(a[i]) - double(b[i]);
    num += d * d;
    den += double(b[i]) * double(b[i]);
  }
  return std::sqrt(num / (den > 0 ? den : 1.0));
}

}  // namespace dsv3::testing
