// Starting `dsv3 serve` on loopback for a test and talking raw HTTP/1.1 to it (the harness of
// tests/runtime/server_test.cc, shared by the attack tests here). The binary is DSV3_BIN, or
// $DSV3_SERVE_BIN when set: that runs the same attacks against another build (an older one, to see them
// succeed there).
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../runtime/test_models.h"

namespace dsv3::serve_harness {

using testing_models::temp_dir;

inline std::string serve_bin() {
  const char* b = std::getenv("DSV3_SERVE_BIN");
  return b && *b ? b : DSV3_BIN;
}

inline std::string read_file(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Runs a shell command; returns its exit status and output (stdout + stderr).
inline int shell(const std::string& cmd, std::string* out = nullptr) {
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return -1;
  std::string s;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) s.append(buf, n);
  const int st = ::pclose(p);
  if (out) *out = s;
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

// A folder of the build tree (<dir of DSV3_BIN>/NAME) with the npm `packages` installed (--ignore-scripts),
// once; "" with *failure set when node/npm are missing or the install fails (offline). ctest runs the tests
// that need it in parallel processes: one installs while holding a lock (flock), the others wait for it and
// find the packages there (without the lock a concurrent install failed and its test skipped).
// `probe`: a file under node_modules whose presence means the install is done.
inline std::string npm_dir(const std::string& name, const std::string& packages, const std::string& probe,
                           std::string* failure) {
  std::string out;
  if (shell("node --version", &out) != 0 || shell("npm --version", &out) != 0) {
    *failure = "node/npm not found";
    return "";
  }
  const std::string d = std::string(DSV3_BIN).substr(0, std::string(DSV3_BIN).rfind('/')) + "/" + name;
  shell("mkdir -p '" + d + "'");
  const int lock = ::open((d + "/.install.lock").c_str(), O_CREAT | O_RDWR, 0644);
  if (lock >= 0) ::flock(lock, LOCK_EX);
  bool ok = true;
  if (!std::ifstream(d + "/node_modules/" + probe)) {
    std::ofstream(d + "/package.json") << R"({"private": true, "type": "module"})"
                                       << "\n";
    if (shell("cd '" + d + "' && npm install --ignore-scripts --no-audit --no-fund --loglevel=error " + packages,
              &out) != 0) {
      *failure = "npm install " + packages + " failed (offline?): " + out;
      ok = false;
    }
  }
  if (lock >= 0) ::close(lock);  // releases the lock
  return ok ? d : "";
}

class ServerProcess {
 public:
  // Starts `dsv3 serve ARGS --port 0` and waits for its "listening on" line. ranks > 1: under
  // `DSV3_MPIRUN -np ranks` (ARGS then carry --ep); SIGTERM then goes to rank 0, which stops the job.
  bool start(const std::vector<std::string>& args, std::string* why, int ranks = 1) {
    log_ = temp_dir("serve_logs") + "/serve_" + std::to_string(counter_++) + ".log";
    // Emptied here, before the fork: a process of an earlier test with the same pid (pids are reused) may have
    // left a log at this path, and the loop below must not read its "listening on" line.
    std::ofstream(log_, std::ios::trunc).flush();
    pid_ = ::fork();
    if (pid_ == 0) {
      FILE* f = std::freopen(log_.c_str(), "w", stderr);
      (void)f;
      ::dup2(STDERR_FILENO, STDOUT_FILENO);
      const int null_in = ::open("/dev/null", O_RDONLY);  // mpirun forwards stdin
      ::dup2(null_in, STDIN_FILENO);
      std::vector<std::string> all = {serve_bin(), "serve"};
      all.insert(all.end(), args.begin(), args.end());
      all.insert(all.end(), {"--port", "0", "--host", "127.0.0.1"});
      if (ranks > 1) {
        std::string cmd = "exec " + std::string(DSV3_MPIRUN) + " -np " + std::to_string(ranks);
        for (auto& a : all) cmd += " '" + a + "'";
        ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
        ::_exit(127);
      }
      std::vector<char*> argv;
      for (auto& a : all) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(all[0].c_str(), argv.data());
      ::_exit(127);
    }
    const std::regex re("listening on http://127\\.0\\.0\\.1:(\\d+)");
    const std::regex rank0("EP rank 0,[^;]*; pid (\\d+)");  // rank 0's start-up line (cli/dist_flags.h)
    for (int i = 0; i < 600; ++i) {
      std::smatch m;
      const std::string log = read_file(log_);
      if (std::regex_search(log, m, re)) {
        port_ = std::stoi(m[1]);
        if (ranks > 1) {
          std::smatch p;
          if (!std::regex_search(log, p, rank0)) {
            *why = "no rank 0 start-up line with its pid: " + log;
            return false;
          }
          rank0_ = pid_t(std::stol(p[1]));
        }
        return true;
      }
      int st = 0;
      if (::waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        *why = log;
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    *why = "no 'listening on' line after 30 s: " + read_file(log_);
    return false;
  }
  ~ServerProcess() { stop(); }
  // SIGTERM, and the exit status (0 = a clean shutdown).
  int stop() {
    if (pid_ <= 0) return -1;
    ::kill(rank0_ > 0 ? rank0_ : pid_, SIGTERM);
    int st = 0;
    for (int i = 0; i < 200; ++i) {
      if (::waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &st, 0);
    pid_ = -1;
    return -2;
  }
  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  std::string log() const { return read_file(log_); }

 private:
  static inline int counter_ = 0;
  pid_t pid_ = -1, rank0_ = -1;
  int port_ = 0;
  std::string log_;
};

// ---- a minimal HTTP/1.1 client (Connection: close; chunked bodies decoded) --------------------------------

// A loopback connection whose reads and writes give up after timeout_ms (a test never hangs on one).
inline int connect_to(int port, int timeout_ms = 15000) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(uint16_t(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

inline std::string request_text(const std::string& method, const std::string& path, const std::string& body,
                                const std::string& key) {
  std::string r = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
  if (!key.empty()) r += "Authorization: Bearer " + key + "\r\n";
  if (method == "POST")
    r += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  return r + "\r\n" + body;
}

struct HttpResult {
  int status = 0;
  std::string headers, body;
};

// A response as read off the wire; status 0 when there was none (refused, reset, timed out, closed).
inline HttpResult parse_response(const std::string& raw) {
  HttpResult res;
  const size_t he = raw.find("\r\n\r\n");
  if (he == std::string::npos || raw.size() < 12) return res;
  res.status = std::stoi(raw.substr(9, 3));
  res.headers = raw.substr(0, he);
  std::string b = raw.substr(he + 4);
  if (res.headers.find("Transfer-Encoding: chunked") != std::string::npos) {
    std::string out;
    size_t i = 0;
    while (i < b.size()) {
      const size_t le = b.find("\r\n", i);
      if (le == std::string::npos) break;
      const size_t len = std::stoul(b.substr(i, le - i), nullptr, 16);
      if (len == 0) break;
      out += b.substr(le + 2, len);
      i = le + 2 + len + 2;
    }
    b = out;
  }
  res.body = b;
  return res;
}

// Reads until the server closes (or the timeout).
inline std::string read_all(int fd) {
  std::string raw;
  char buf[8192];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) raw.append(buf, size_t(n));
  return raw;
}

// Sends raw request bytes on a fresh connection and reads the answer.
inline HttpResult round_trip(int port, const std::string& raw_request, int timeout_ms = 15000) {
  const int fd = connect_to(port, timeout_ms);
  if (fd < 0) return {};
  if (::send(fd, raw_request.data(), raw_request.size(), MSG_NOSIGNAL) != ssize_t(raw_request.size())) {
    ::close(fd);
    return {};
  }
  const std::string raw = read_all(fd);
  ::close(fd);
  return parse_response(raw);
}

inline HttpResult http(int port, const std::string& method, const std::string& path, const std::string& body = "",
                       const std::string& key = "", int timeout_ms = 15000) {
  return round_trip(port, request_text(method, path, body, key), timeout_ms);
}

}  // namespace dsv3::serve_harness
