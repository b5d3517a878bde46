// `dsv3 serve` end to end: the binary is started on loopback (a free port; tests/server/serve_harness.h)
// over a tiny model with a trained tokenizer, then driven (1) by a raw HTTP client here — health, auth, OpenAI-shaped
// 4xx errors, a client that disconnects freeing its slot, overload → 503 — and (2) by the official `openai` npm package
// (tests/runtime/server_client.mjs) and a reduced run of bench/load_test.mjs. The Node parts are skipped
// when node/npm are absent or the package cannot be installed (no network); npm installs into the build
// tree (<build>/node_client, once). The official client's checks also run against `mpirun -np 2 dsv3 serve
// --ep 2` (DSV3_MPIRUN): rank 0 serves, the sequences and experts are spread over both ranks.
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
#include <filesystem>
#include <fstream>
#include <future>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <thread>

#include "../server/serve_harness.h"
#include "test_models.h"

namespace dsv3 {
namespace {

using json = nlohmann::json;
using namespace dsv3::testing_models;
using namespace dsv3::serve_harness;  // ServerProcess, the raw HTTP client
namespace fs = std::filesystem;

void expect_openai_error(const HttpResult& r, int status, const char* param, const char* what) {
  EXPECT_EQ(r.status, status) << what << ": " << r.body;
  const json j = json::parse(r.body, nullptr, false);
  ASSERT_TRUE(j.is_object() && j.contains("error")) << what << ": " << r.body;
  const json& e = j["error"];
  EXPECT_TRUE(e["message"].is_string()) << what;
  EXPECT_TRUE(e["type"].is_string()) << what;
  EXPECT_TRUE(e.contains("param") && e.contains("code")) << what;
  if (param) {
    EXPECT_EQ(e["param"], param) << what << ": " << r.body;
  }
}

int64_t metric(int port, const std::string& name) {
  const HttpResult r = http(port, "GET", "/metrics");
  const std::regex re("\n" + name + " ([0-9.e+]+)");
  std::smatch m;
  if (!std::regex_search(r.body, m, re)) return -1;
  return int64_t(std::stod(m[1]));
}

// ---- fixture -----------------------------------------------------------------------------------------------

const char* kKey = "sk-dsv3-test";

class ServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { model_dir_ = write_chat_model(temp_dir("server_model"), 0.5, 17); }
  static inline std::string model_dir_;
};

TEST_F(ServerTest, HealthAuthAndErrors) {
  ServerProcess s;
  std::string why;
  ASSERT_TRUE(s.start({"--model", model_dir_, "--api-key", kKey, "--ctx", "256", "--model-name", "tiny"}, &why)) << why;
  const int p = s.port();

  HttpResult h = http(p, "GET", "/health");
  EXPECT_EQ(h.status, 200);
  EXPECT_EQ(json::parse(h.body)["status"], "ok");
  expect_openai_error(http(p, "GET", "/v1/models"), 401, nullptr, "no key");
  expect_openai_error(http(p, "GET", "/v1/models", "", "wrong"), 401, nullptr, "wrong key");
  HttpResult m = http(p, "GET", "/v1/models", "", kKey);
  ASSERT_EQ(m.status, 200) << m.body;
  EXPECT_EQ(json::parse(m.body)["data"][0]["id"], "tiny");

  auto post = [&](const char* path, const std::string& body) { return http(p, "POST", path, body, kKey); };
  const std::string msgs = R"("messages": [{"role": "user", "content": "Hello there"}])";
  HttpResult ok = post("/v1/chat/completions", "{" + msgs + R"(, "max_tokens": 5, "ignore_eos": true})");
  ASSERT_EQ(ok.status, 200) << ok.body;
  const json okj = json::parse(ok.body);
  EXPECT_EQ(okj["object"], "chat.completion");
  EXPECT_EQ(okj["usage"]["completion_tokens"], 5);
  EXPECT_EQ(okj["choices"][0]["finish_reason"], "length");

  expect_openai_error(post("/v1/chat/completions", "{\"messages\": ["), 400, nullptr, "bad JSON");
  expect_openai_error(post("/v1/chat/completions", "[1, 2]"), 400, nullptr, "not an object");
  expect_openai_error(post("/v1/chat/completions", "{}"), 400, "messages", "no messages");
  expect_openai_error(post("/v1/chat/completions", R"({"messages": "hi"})"), 400, "messages", "messages type");
  expect_openai_error(post("/v1/chat/completions", R"({"messages": [{"role": "wizard", "content": "x"}]})"), 400,
                      "messages[0].role", "role");
  expect_openai_error(post("/v1/chat/completions", "{" + msgs + R"(, "temperature": "hot"})"), 400, "temperature",
                      "temperature type");
  expect_openai_error(post("/v1/chat/completions", "{" + msgs + R"(, "max_tokens": 1.5})"), 400, "max_tokens",
                      "max_tokens type");
  expect_openai_error(post("/v1/chat/completions", "{" + msgs + R"(, "stop": 5})"), 400, "stop", "stop type");
  expect_openai_error(post("/v1/chat/completions", "{" + msgs + R"(, "stream": "yes"})"), 400, "stream", "stream");
  expect_openai_error(post("/v1/chat/completions", "{" + msgs + R"(, "n": 3})"), 400, "n", "n > 1");
  expect_openai_error(post("/v1/completions", R"({"prompt": [1, 2, 99999]})"), 400, "prompt", "token id range");
  expect_openai_error(post("/v1/completions", R"({"prompt": ["a", "b"]})"), 400, "prompt", "batched prompts");
  std::string ids = "[0";
  for (int i = 0; i < 300; ++i) ids += ", 40";
  const HttpResult over = post("/v1/completions", R"({"prompt": )" + ids + "]}");
  expect_openai_error(over, 400, "prompt", "prompt over the context");
  EXPECT_EQ(json::parse(over.body)["error"]["code"], "context_length_exceeded");
  expect_openai_error(post("/v1/completions", R"({"prompt": "hi", "max_tokens": 1000})"), 400, "max_tokens",
                      "completion over the context");
  expect_openai_error(http(p, "GET", "/v1/nothing", "", kKey), 404, nullptr, "unknown path");

  EXPECT_GE(metric(p, "dsv3_requests_completed_total"), 1);
  EXPECT_EQ(s.stop(), 0) << s.log();  // SIGTERM shuts down cleanly
}

TEST_F(ServerTest, DisconnectFreesTheSlotAndOverloadIs503) {
  ServerProcess s;
  std::string why;
  ASSERT_TRUE(s.start({"--model", model_dir_, "--parallel", "1", "--max-queue", "1", "--ctx", "4096"}, &why)) << why;
  const int p = s.port();
  const std::string longreq =
      R"({"prompt": "Once upon a time", "max_tokens": 4000, "ignore_eos": true, "stream": true})";

  // A streaming client reads a little and goes away: its sequence is cancelled and the slot freed.
  const int fd = connect_to(p);
  ASSERT_GE(fd, 0);
  const std::string req = request_text("POST", "/v1/completions", longreq, "");
  ASSERT_EQ(::send(fd, req.data(), req.size(), MSG_NOSIGNAL), ssize_t(req.size()));
  char buf[512];
  ASSERT_GT(::recv(fd, buf, sizeof buf, 0), 0);
  ::close(fd);
  for (int i = 0; i < 100 && metric(p, "dsv3_requests_cancelled_total") < 1; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(metric(p, "dsv3_requests_cancelled_total"), 1);
  EXPECT_EQ(metric(p, "dsv3_active_sequences"), 0);
  HttpResult after = http(p, "POST", "/v1/completions", R"({"prompt": "Hello", "max_tokens": 3})");
  EXPECT_EQ(after.status, 200) << after.body;

  // One slot, one queue place: of four long requests at once at least one is refused with 503.
  std::vector<std::future<HttpResult>> fs;
  const std::string mid = R"({"prompt": "Hello", "max_tokens": 400, "ignore_eos": true})";
  for (int i = 0; i < 4; ++i)
    fs.push_back(std::async(std::launch::async, [&] { return http(p, "POST", "/v1/completions", mid); }));
  int ok = 0, busy = 0;
  for (auto& f : fs) {
    HttpResult r = f.get();
    if (r.status == 200) ++ok;
    if (r.status == 503) {
      ++busy;
      expect_openai_error(r, 503, nullptr, "overload");
      EXPECT_NE(r.headers.find("Retry-After"), std::string::npos);
    }
  }
  EXPECT_GE(ok, 1);
  EXPECT_GE(busy, 1);
  EXPECT_EQ(ok + busy, 4);
  EXPECT_EQ(http(p, "GET", "/health").status, 200);
  EXPECT_EQ(s.stop(), 0) << s.log();
}

// ---- the official client and the load test ------------------------------------------------------------------

std::string node_dir() {
  static std::string dir, failure;
  if (dir.empty() && failure.empty()) dir = npm_dir("node_client", "openai@6", "openai/package.json", &failure);
  return dir;
}

TEST_F(ServerTest, OfficialOpenAIClient) {
  const std::string d = node_dir();
  if (d.empty()) GTEST_SKIP() << "node client unavailable";
  fs::copy_file(std::string(DSV3_TEST_SRC) + "/runtime/server_client.mjs", d + "/server_client.mjs",
                fs::copy_options::overwrite_existing);
  for (const char* spec : {"none", "mtp"}) {
    SCOPED_TRACE(spec);
    ServerProcess s;
    std::string why;
    ASSERT_TRUE(s.start(
        {"--model", model_dir_, "--api-key", kKey, "--ctx", "512", "--parallel", "4", "--spec", spec, "--draft", "2"},
        &why))
        << why;
    std::string out;
    const int rc = shell(
        "cd '" + d + "' && node server_client.mjs http://127.0.0.1:" + std::to_string(s.port()) + "/v1 " + kKey, &out);
    EXPECT_EQ(rc, 0) << out << "\nserver log:\n" << s.log();
    EXPECT_NE(out.find("checks passed"), std::string::npos) << out;
    if (std::string(spec) == "mtp") {
      EXPECT_GT(metric(s.port(), "dsv3_spec_draft_tokens_total"), 0);
    }
    EXPECT_EQ(s.stop(), 0);
  }
}

TEST_F(ServerTest, OfficialOpenAIClientOverTwoRanks) {
  const std::string d = node_dir();
  if (d.empty()) GTEST_SKIP() << "node client unavailable";
  fs::copy_file(std::string(DSV3_TEST_SRC) + "/runtime/server_client.mjs", d + "/server_client.mjs",
                fs::copy_options::overwrite_existing);
  for (const char* spec : {"none", "mtp"}) {
    SCOPED_TRACE(spec);
    ServerProcess s;
    std::string why;
    ASSERT_TRUE(s.start({"--model", model_dir_, "--api-key", kKey, "--ctx", "512", "--parallel", "4", "--spec", spec,
                         "--draft", "2", "--ep", "2"},
                        &why, /*ranks=*/2))
        << why;
    std::string out;
    const int rc = shell(
        "cd '" + d + "' && node server_client.mjs http://127.0.0.1:" + std::to_string(s.port()) + "/v1 " + kKey, &out);
    EXPECT_EQ(rc, 0) << out << "\nserver log:\n" << s.log();
    EXPECT_NE(out.find("checks passed"), std::string::npos) << out;
    if (std::string(spec) == "mtp") {
      EXPECT_GT(metric(s.port(), "dsv3_spec_draft_tokens_total"), 0);
    }
    const std::string log = s.log();
    EXPECT_NE(log.find("EP rank 1, experts 8-15 of 16"), std::string::npos) << log;
    EXPECT_EQ(s.stop(), 0) << s.log();  // SIGTERM to rank 0 ends both ranks cleanly
  }
}

TEST_F(ServerTest, LoadTestReduced) {
  std::string out;
  if (shell("node --version", &out) != 0) GTEST_SKIP() << "node not found";
  ServerProcess s;
  std::string why;
  ASSERT_TRUE(s.start({"--model", model_dir_, "--api-key", kKey, "--parallel", "8", "--ctx", "256"}, &why)) << why;
  const int rc = shell("node '" + std::string(DSV3_TEST_SRC) +
                           "/../bench/load_test.mjs' --json --url http://127.0.0.1:" + std::to_string(s.port()) +
                           " --api-key " + kKey + " --clients 8 --requests 20 --pid " + std::to_string(s.pid()),
                       &out);
  EXPECT_EQ(rc, 0) << out;
  const json j = json::parse(out.substr(out.find('{')), nullptr, false);
  ASSERT_TRUE(j.is_object()) << out;
  EXPECT_EQ(j["errors"], 0);
  EXPECT_EQ(j["ok"], 160);
  // Resident memory does not keep growing once warm (generous bound: 64 MiB over the warm level).
  EXPECT_LT(j["rss_kib"]["end"].get<int64_t>(), j["rss_kib"]["after_warmup"].get<int64_t>() + 65536) << out;
  EXPECT_EQ(s.stop(), 0);
}

}  // namespace
}  // namespace dsv3
