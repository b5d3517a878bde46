// Runs the built `dsv3` binary (DSV3_BIN) from a test: exit status and stdout + stderr together.
#pragma once

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

namespace dsv3::testing {

struct BinaryResult {
  int status = -1;
  std::string out;  // stdout and stderr together
};

inline BinaryResult run_dsv3(const std::string& args) {
  BinaryResult r;
  const std::string cmd = std::string(DSV3_BIN) + " " + args + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  const int st = ::pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

}  // namespace dsv3::testing
