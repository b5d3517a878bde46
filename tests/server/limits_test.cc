// The attacks of issue 19 against `dsv3 serve`, each reproduced small (loopback, bounded bytes and
// seconds) and answered as docs/security.md says: deep JSON → 400, held or silent connections cannot
// starve others, a burst or a connection flood → 503 + Retry-After (never a reset), chunked bodies and
// headers within their limits, /metrics labels from the served routes only, malformed fields → 400
// naming them, long prompts refused by their byte length, the API key kept out of the command line,
// specials typed by a user taken as text. DSV3_SERVE_BIN=<old dsv3> runs them against another build.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <future>
#include <nlohmann/json.hpp>
#include <set>

#include "serve_harness.h"

namespace dsv3 {
namespace {

using json = nlohmann::json;
using namespace dsv3::serve_harness;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

void expect_error(const HttpResult& r, int status, const char* param, const char* what) {
  EXPECT_EQ(r.status, status) << what << ": " << r.body;
  const json j = json::parse(r.body, nullptr, false);
  ASSERT_TRUE(j.is_object() && j.contains("error")) << what << ": " << r.body;
  if (param) {
    EXPECT_EQ(j["error"]["param"], param) << what << ": " << r.body;
  }
}

std::string post_text(const std::string& path, const std::string& body) { return request_text("POST", path, body, ""); }

class ServeLimits : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    model_dir_ = testing_models::write_chat_model(testing_models::temp_dir("serve_limits_model"), 0.5, 17);
  }
  // A server over the tiny chat model with ARGS; fails the test when it does not start.
  void start(std::vector<std::string> args) {
    args.insert(args.begin(), {"--model", model_dir_, "--ctx", "256"});
    std::string why;
    ASSERT_TRUE(s_.start(args, &why)) << why;
    port_ = s_.port();
  }
  void TearDown() override { EXPECT_EQ(s_.stop(), 0) << s_.log(); }  // alive to the end, clean shutdown
  static inline std::string model_dir_;
  ServerProcess s_;
  int port_ = 0;
};

// A connection that sent the start of a request and then nothing.
int hold_partial(int port) {
  const int fd = connect_to(port, 20000);
  const std::string part = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
  if (fd >= 0) (void)::send(fd, part.data(), part.size(), MSG_NOSIGNAL);
  return fd;
}

TEST_F(ServeLimits, DeepJsonIs400NotACrash) {
  start({});
  const int n = 100000;  // 200 KB: overflowed the stack in a recursive copy / dump
  const std::string deep = std::string(n, '[') + std::string(n, ']');
  const HttpResult chat = round_trip(
      port_, post_text("/v1/chat/completions", R"({"messages": [{"role": "user", "content": )" + deep + "}]}"));
  expect_error(chat, 400, nullptr, "chat, messages[0] nested 100000 deep");
  EXPECT_NE(chat.body.find("deeper than 64"), std::string::npos) << chat.body;
  EXPECT_NE(chat.body.find("json_too_deep"), std::string::npos) << chat.body;
  const int m = 300000;
  const HttpResult comp = round_trip(
      port_, post_text("/v1/completions", R"({"prompt": )" + std::string(m, '[') + std::string(m, ']') + "}"));
  expect_error(comp, 400, nullptr, "completions, prompt nested 300000 deep");
  // At the limit a body is still parsed (and then judged on its fields).
  const HttpResult at =
      round_trip(port_, post_text("/v1/completions", R"({"prompt": "hi", "x": )" + std::string(63, '[') +
                                                         std::string(63, ']') + R"(, "max_tokens": 2})"));
  EXPECT_EQ(at.status, 200) << at.body;
  EXPECT_EQ(http(port_, "GET", "/health").status, 200);
}

TEST_F(ServeLimits, HeldConnectionsDoNotStarveOthers) {
  // --parallel 1 --max-queue 2: 7 connection threads up front (the old fixed pool's size).
  start({"--parallel", "1", "--max-queue", "2"});
  std::vector<int> held;
  for (int i = 0; i < 40; ++i) held.push_back(hold_partial(port_));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  int ok = 0;
  for (int i = 0; i < 4; ++i) ok += http(port_, "GET", "/health", "", "", 3000).status == 200;
  EXPECT_EQ(ok, 4) << "/health while 40 connections hold partial headers";
  for (int fd : held) ::close(fd);
}

TEST_F(ServeLimits, SilentConnectionIsClosedAfterTheReadTimeout) {
  start({"--read-timeout", "1"});
  const int fd = hold_partial(port_);
  ASSERT_GE(fd, 0);
  const auto t0 = Clock::now();
  char c;
  const ssize_t n = ::recv(fd, &c, 1, 0);  // the server's close (or an error answer), not our 20 s timeout
  const double waited = seconds_since(t0);
  ::close(fd);
  EXPECT_LT(waited, 5.0) << "recv returned " << n;
}

TEST_F(ServeLimits, ConnectionFloodIs503WithRetryAfter) {
  start({"--max-connections", "4", "--http-threads", "1"});
  std::vector<int> held;
  for (int i = 0; i < 4; ++i) held.push_back(hold_partial(port_));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const HttpResult r = http(port_, "GET", "/health", "", "", 5000);
  expect_error(r, 503, nullptr, "a fifth connection while four are held");
  EXPECT_NE(r.headers.find("Retry-After"), std::string::npos) << r.headers;
  for (int fd : held) ::close(fd);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(http(port_, "GET", "/health").status, 200);  // the held ones gone, served again
}

TEST_F(ServeLimits, BurstGets503NotResets) {
  start({"--parallel", "1", "--max-queue", "1"});
  const int n = 150;
  std::atomic<bool> go{false};
  std::vector<std::future<HttpResult>> fs;
  for (int i = 0; i < n; ++i)
    fs.push_back(std::async(std::launch::async, [&] {
      while (!go) std::this_thread::yield();
      // The kernel completes a handshake at once while the accept queue has room; a SYN dropped because
      // it is full is retried only after a second, so 0.9 s to connect tells the two apart.
      const int fd = connect_to(port_, 900);
      if (fd < 0) return HttpResult{};
      timeval tv{20, 0};
      ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
      const std::string req = post_text("/v1/completions", R"({"prompt": "Hello", "max_tokens": 2})");
      if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != ssize_t(req.size())) {
        ::close(fd);
        return HttpResult{};
      }
      const std::string raw = read_all(fd);
      ::close(fd);
      return parse_response(raw);
    }));
  go = true;
  int ok = 0, busy = 0, other = 0;
  for (auto& f : fs) {
    const HttpResult r = f.get();
    if (r.status == 200)
      ++ok;
    else if (r.status == 503 && r.headers.find("Retry-After") != std::string::npos)
      ++busy;
    else
      ++other;
  }
  EXPECT_EQ(other, 0) << ok << " x 200, " << busy << " x 503, " << other << " not connected, reset or other";
  EXPECT_GE(ok, 1);
}

// Chunked request bytes: each piece as one chunk, then the last chunk.
std::string chunked_post(const std::string& path, const std::string& body, size_t piece) {
  std::string r = "POST " + path +
                  " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\n"
                  "Transfer-Encoding: chunked\r\n\r\n";
  for (size_t i = 0; i < body.size(); i += piece) {
    const std::string c = body.substr(i, piece);
    r += fmt::format("{:x}\r\n", c.size()) + c + "\r\n";
  }
  return r + "0\r\n\r\n";
}

TEST_F(ServeLimits, ChunkedBodyCountsAgainstTheLimit) {
  start({});
  // 17 MiB of valid JSON, chunked: over the default 16 MiB body limit.
  const std::string body = R"({"prompt": "hi", "max_tokens": 1, "pad": ")" + std::string(17u << 20, 'x') + "\"}";
  const std::string req = chunked_post("/v1/completions", body, 64 << 10);
  const int fd = connect_to(port_, 15000);
  ASSERT_GE(fd, 0);
  size_t sent = 0;
  std::string raw;
  std::thread reader([&] { raw = read_all(fd); });
  while (sent < req.size()) {
    const ssize_t k = ::send(fd, req.data() + sent, std::min<size_t>(req.size() - sent, 1 << 16), MSG_NOSIGNAL);
    if (k <= 0) break;
    sent += size_t(k);
  }
  ::shutdown(fd, SHUT_WR);
  reader.join();
  ::close(fd);
  const HttpResult r = parse_response(raw);
  EXPECT_NE(r.status, 200) << "a 17 MiB chunked body was accepted";
  // Refused with 413, or (the answer lost to the reset of unread bytes) cut off before the end.
  EXPECT_TRUE(r.status == 413 || sent < req.size()) << r.status << ", sent " << sent << " of " << req.size();
  // A small chunked body is still read.
  const HttpResult small =
      round_trip(port_, chunked_post("/v1/completions", R"({"prompt": "hi", "max_tokens": 2})", 5));
  EXPECT_EQ(small.status, 200) << small.body;
}

TEST_F(ServeLimits, TooManyHeadersIs431) {
  start({});
  std::string req = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
  for (int i = 0; i < 1000; ++i) req += fmt::format("X-Flood-{}: {}\r\n", i, i);
  const HttpResult r = round_trip(port_, req + "\r\n");
  expect_error(r, 431, nullptr, "1000 headers");
  std::string big = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
  for (int i = 0; i < 20; ++i) big += fmt::format("X-Big-{}: {}\r\n", i, std::string(4000, 'v'));
  expect_error(round_trip(port_, big + "\r\n"), 431, nullptr, "80 KB of headers");
  EXPECT_EQ(http(port_, "GET", "/health").status, 200);
}

TEST_F(ServeLimits, MetricsLabelsOnlyFromServedRoutes) {
  start({});
  EXPECT_EQ(http(port_, "GET", "/v1/x%0Adsv3_injected_metric%7Bevil%3D%22yes%22%7D%2042").status, 404);
  for (int i = 0; i < 50; ++i) http(port_, "GET", "/v1/path" + std::to_string(i));
  http(port_, "GET", "/health");
  const HttpResult m = http(port_, "GET", "/metrics");
  ASSERT_EQ(m.status, 200);
  EXPECT_EQ(m.body.find("dsv3_injected_metric"), std::string::npos) << m.body;
  const std::set<std::string> routes = {
      "/v1/chat/completions", "/v1/completions", "/v1/models", "/health", "/metrics", "other"};
  const std::regex label("dsv3_http_requests_total\\{path=\"([^\"]*)\"");
  int series = 0;
  for (auto it = std::sregex_iterator(m.body.begin(), m.body.end(), label); it != std::sregex_iterator(); ++it) {
    EXPECT_TRUE(routes.count((*it)[1].str())) << (*it)[1].str();
    ++series;
  }
  EXPECT_LE(series, 4) << m.body;  // /health 200, other 404 (and /metrics once scraped)
  EXPECT_NE(m.body.find("path=\"other\",status=\"404\"} 51"), std::string::npos) << m.body;
}

TEST_F(ServeLimits, MalformedFieldsAre400NamingThem) {
  start({});
  auto chat = [&](const std::string& msg) {
    return round_trip(port_, post_text("/v1/chat/completions", R"({"max_tokens": 2, "messages": [)" + msg + "]}"));
  };
  const std::string user = R"({"role": "user", "content": "Hi"}, )";
  const struct {
    std::string msg;
    const char* param;
  } cases[] = {
      {R"({"role": "assistant", "content": null, "tool_calls": "x"})", "messages[0].tool_calls"},
      {R"({"role": "assistant", "content": null, "tool_calls": [5]})", "messages[0].tool_calls[0]"},
      {R"({"role": "assistant", "content": null, "tool_calls": [{"function": 3}]})",
       "messages[0].tool_calls[0].function"},
      {R"({"role": "assistant", "content": null, "tool_calls": [{"function": {"name": 4}}]})",
       "messages[0].tool_calls[0].function.name"},
      {R"({"role": "assistant", "content": null, "tool_calls": [{"type": 1, "function": {"name": "f"}}]})",
       "messages[0].tool_calls[0].type"},
      {R"({"role": "assistant", "content": null, "tool_calls": [{"function": {"name": "f", "arguments": 7}}]})",
       "messages[0].tool_calls[0].function.arguments"},
      {R"({"role": "user", "content": "x", "tool_calls": []})", "messages[0].tool_calls"},
      {R"({"role": "user", "content": [5]})", "messages[0].content[0]"},
      {R"({"role": "user", "content": [{"type": 5, "text": "a"}]})", "messages[0].content[0]"},
      {R"({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]})", "messages[0].content[0]"},
      {R"({"role": "user", "content": 12})", "messages[0].content"},
      {R"({"role": ["user"], "content": "x"})", "messages[0].role"},
      {user + R"({"role": "assistant", "content": null, "tool_calls": [{"function": []}]})",
       "messages[1].tool_calls[0].function"},
  };
  for (const auto& c : cases) {
    const HttpResult r = chat(c.msg);
    expect_error(r, 400, c.param, c.msg.c_str());
  }
  // Well-formed tool calls still render and run.
  const HttpResult ok = chat(user + R"({"role": "assistant", "content": null, "tool_calls": [{"type": "function",
      "function": {"name": "f", "arguments": {"a": [1, {"b": 2}]}}}]}, {"role": "tool", "content": "3"})");
  EXPECT_EQ(ok.status, 200) << ok.body;
}

TEST_F(ServeLimits, LongPromptRefusedByItsByteLength) {
  start({});
  const std::string big(8u << 20, 'a');  // 8 MiB: far over 255 tokens of the longest token's length
  const auto t0 = Clock::now();
  const HttpResult r = round_trip(port_, post_text("/v1/completions", R"({"prompt": ")" + big + "\"}"));
  expect_error(r, 400, "prompt", "8 MiB prompt, --ctx 256");
  EXPECT_NE(r.body.find("context_length_exceeded"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("bytes"), std::string::npos) << r.body;  // judged by length, not after tokenizing
  const HttpResult c = round_trip(
      port_, post_text("/v1/chat/completions", R"({"messages": [{"role": "user", "content": ")" + big + "\"}]}"));
  expect_error(c, 400, "messages", "8 MiB user message, --ctx 256");
  EXPECT_NE(c.body.find("bytes"), std::string::npos) << c.body;
  EXPECT_LT(seconds_since(t0), 10.0);
}

int64_t prompt_tokens(int port, const std::string& content) {
  const HttpResult r = round_trip(port, post_text("/v1/chat/completions", R"({"max_tokens": 1, "messages": [{"role":
      "user", "content": )" + json(content).dump() + "}]}"));
  const json j = json::parse(r.body, nullptr, false);
  if (r.status != 200 || !j.is_object()) return -1;
  return j["usage"]["prompt_tokens"].get<int64_t>();
}

TEST_F(ServeLimits, SpecialsTypedByAUserAreText) {
  start({});
  const int64_t base = prompt_tokens(port_, "");
  ASSERT_GT(base, 0);
  // Parsed, <｜Assistant｜> would be one token (and end the user's turn); as text it is several.
  EXPECT_GT(prompt_tokens(port_, "<｜Assistant｜>") - base, 1);
  EXPECT_GT(prompt_tokens(port_, "<｜end▁of▁sentence｜>") - base, 1);
}

TEST_F(ServeLimits, SpecialsParsedWithTheFlag) {
  start({"--parse-special-in-user-text"});
  const int64_t base = prompt_tokens(port_, "");
  ASSERT_GT(base, 0);
  EXPECT_EQ(prompt_tokens(port_, "<｜Assistant｜>") - base, 1);
}

TEST_F(ServeLimits, ApiKeyFromAFileOrTheEnvironment) {
  const std::string dir = testing_models::temp_dir("serve_key");
  const std::string key = "sk-from-file-4242";
  std::ofstream(dir + "/key") << key << "\n";
  start({"--api-key-file", dir + "/key"});
  EXPECT_EQ(http(port_, "GET", "/v1/models").status, 401);
  EXPECT_EQ(http(port_, "GET", "/v1/models", "", key).status, 200);
  EXPECT_EQ(read_file("/proc/" + std::to_string(s_.pid()) + "/cmdline").find(key), std::string::npos);
  EXPECT_EQ(s_.stop(), 0);

  ::setenv("DSV3_API_KEY", "sk-from-env-77", 1);
  start({});
  ::unsetenv("DSV3_API_KEY");
  EXPECT_EQ(http(port_, "GET", "/v1/models").status, 401);
  EXPECT_EQ(http(port_, "GET", "/v1/models", "", "sk-from-env-77").status, 200);
}

}  // namespace
}  // namespace dsv3
