// A non-owning view of a contiguous row-major tensor in some storage dtype: what the safetensors reader
// hands out (pointing into an mmap) and what the model's weight table holds.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace dsv3 {

struct TensorView {
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const std::byte* data = nullptr;

  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype); }
  int rank() const { return int(shape.size()); }
  template <typename T>
  const T* as() const {
    return reinterpret_cast<const T*>(data);
  }
};

// "[7168, 2048]"
std::string shape_str(const std::vector<int64_t>& shape);

}  // namespace dsv3
