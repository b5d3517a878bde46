// Errors at the boundary (files, configs, command lines, HTTP) are dsv3::Error exceptions carrying a
// message that names the culprit: the file, the tensor, the key. Kernels and hot loops never throw.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace dsv3 {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// Throws dsv3::Error with a fmt-formatted message.
template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace dsv3
