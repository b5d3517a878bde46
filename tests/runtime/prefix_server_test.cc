// `dsv3 serve --cache-mem`: the prefix cache end to end. Responses (text, tokens' logprobs) equal those of a
// server started with --cache-mem 0, greedy and seeded, with and without --spec mtp; usage reports the cached
// prompt tokens (OpenAI prompt_tokens_details.cached_tokens, streaming usage chunk too; Anthropic
// cache_read_input_tokens); /metrics has the hit rate; a load of many distinct prefixes keeps the held bytes
// under the limit and the server's RSS bounded; a bad --cache-mem is refused naming the flag.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "../server/serve_harness.h"
#include "test_models.h"

namespace dsv3 {
namespace {

using json = nlohmann::json;
using namespace dsv3::testing_models;
using namespace dsv3::serve_harness;

double metric(int port, const std::string& name) {
  const HttpResult r = http(port, "GET", "/metrics");
  const std::regex re("\n" + name + " ([0-9.e+-]+)");
  std::smatch m;
  if (!std::regex_search(r.body, m, re)) return -1;
  return std::stod(m[1]);
}

int64_t rss_kib(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6));
  return -1;
}

std::string ids_json(const std::vector<int32_t>& ids) {
  std::string s = "[";
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? "," : "") + std::to_string(ids[i]);
  return s + "]";
}

std::vector<int32_t> ids(int32_t from, int n, int32_t step = 7) {
  std::vector<int32_t> v;
  for (int i = 0; i < n; ++i) v.push_back(2 + (from + i * step) % 300);
  return v;
}

// Equal JSON, except that floating-point numbers (logprobs) may differ by rounding: the SIMD kernels group
// rows by batch shape, so a prompt prefilled after a cached prefix rounds differently in the last bits
// (tests/runtime/prefix_engine_test.cc shows the scalar kernels giving identical bits). Texts, tokens and
// every other field must be equal.
bool near(const json& a, const json& b, std::string path, std::string* why) {
  if (a.is_number_float() || b.is_number_float()) {
    if (a.is_number() && b.is_number() && std::abs(a.get<double>() - b.get<double>()) <= 1e-5) return true;
    *why = path + ": " + a.dump() + " vs " + b.dump();
    return false;
  }
  if (a.type() != b.type() || a.size() != b.size()) {
    *why = path + ": " + a.dump() + " vs " + b.dump();
    return false;
  }
  if (a.is_object()) {
    for (auto it = a.begin(); it != a.end(); ++it)
      if (!b.contains(it.key()) || !near(*it, b[it.key()], path + "." + it.key(), why)) {
        if (why->empty()) *why = path + "." + it.key() + " missing";
        return false;
      }
    return true;
  }
  if (a.is_array()) {
    for (size_t i = 0; i < a.size(); ++i)
      if (!near(a[i], b[i], path + "[" + std::to_string(i) + "]", why)) return false;
    return true;
  }
  if (a != b) *why = path + ": " + a.dump() + " vs " + b.dump();
  return a == b;
}

class PrefixServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { model_dir_ = write_chat_model(temp_dir("prefix_server_model"), 0.5, 23); }
  static inline std::string model_dir_;
};

// The requests both servers answer, in order; returns each response with its usage cut out (kept apart).
struct Answers {
  std::vector<json> bodies, usages;
};

Answers ask(int port) {
  const std::vector<int32_t> shared = ids(5, 70);  // 4 whole blocks of 16 and more
  auto with = [&](std::vector<int32_t> tail) {
    std::vector<int32_t> p = shared;
    p.insert(p.end(), tail.begin(), tail.end());
    return p;
  };
  const std::string sys = "You are a helpful assistant. Answer briefly and politely, and mention the fox. ";
  std::vector<std::pair<std::string, std::string>> reqs;  // path, body
  for (const char* sampling : {R"("temperature": 0)", R"("temperature": 0.9, "seed": 4)"}) {
    const std::string s = sampling;
    reqs.push_back({"/v1/completions", R"({"prompt": )" + ids_json(with({9, 9})) +
                                           R"(, "max_tokens": 8, "ignore_eos": true, "logprobs": 2, )" + s + "}"});
    reqs.push_back({"/v1/completions", R"({"prompt": )" + ids_json(with({9, 9})) +
                                           R"(, "max_tokens": 8, "ignore_eos": true, "logprobs": 2, )" + s + "}"});
    reqs.push_back({"/v1/completions", R"({"prompt": )" + ids_json(with({4, 5, 6, 7})) +
                                           R"(, "max_tokens": 8, "ignore_eos": true, "logprobs": 2, )" + s + "}"});
    for (int turn = 0; turn < 2; ++turn)
      reqs.push_back({"/v1/chat/completions",
                      R"({"messages": [{"role": "system", "content": ")" + sys + R"("}, {"role": "user", "content": )" +
                          (turn ? R"("How are you today?")" : R"("Hello there!")") +
                          R"(}], "max_tokens": 6, "ignore_eos": true, "logprobs": true, "top_logprobs": 2, )" + s +
                          "}"});
    // (Anthropic's API has no seed: greedy both rounds.)
    reqs.push_back({"/v1/messages", R"({"model": "m", "max_tokens": 5, "temperature": 0, "system": ")" + sys +
                                        R"(", "messages": [{"role": "user", "content": "Hello there!"}]})"});
  }
  Answers a;
  for (const auto& [path, body] : reqs) {
    const HttpResult r = http(port, "POST", path, body);
    EXPECT_EQ(r.status, 200) << path << " " << body << " → " << r.body;
    json j = json::parse(r.body, nullptr, false);
    a.usages.push_back(j.value("usage", json()));
    for (const char* k : {"usage", "id", "created"}) j.erase(k);
    a.bodies.push_back(j);
  }
  return a;
}

TEST_F(PrefixServerTest, SameAnswersWithAndWithoutTheCacheAndUsageCountsCachedTokens) {
  for (const char* spec : {"none", "mtp"}) {
    SCOPED_TRACE(std::string("--spec ") + spec);
    std::string why;
    ServerProcess off, on;
    ASSERT_TRUE(off.start({"--model", model_dir_, "--ctx", "512", "--spec", spec, "--cache-mem", "0"}, &why)) << why;
    ASSERT_TRUE(on.start({"--model", model_dir_, "--ctx", "512", "--spec", spec, "--cache-mem", "64MiB"}, &why)) << why;
    const Answers ref = ask(off.port()), got = ask(on.port());
    ASSERT_EQ(ref.bodies.size(), got.bodies.size());
    for (size_t i = 0; i < ref.bodies.size(); ++i) {
      std::string why;
      EXPECT_TRUE(near(got.bodies[i], ref.bodies[i], "", &why)) << "request " << i << ": " << why;
      const json& u = ref.usages[i];
      if (u.contains("prompt_tokens_details")) {
        EXPECT_EQ(u["prompt_tokens_details"]["cached_tokens"], 0) << "request " << i;
      } else {
        EXPECT_FALSE(u.contains("cache_read_input_tokens")) << u;
      }
    }
    // Completions: 72 prompt tokens; the repeat finds 4 blocks (64 tokens), so does the one sharing 70.
    EXPECT_EQ(got.usages[0]["prompt_tokens_details"]["cached_tokens"], 0);
    EXPECT_EQ(got.usages[1]["prompt_tokens_details"]["cached_tokens"], 64);
    EXPECT_EQ(got.usages[2]["prompt_tokens_details"]["cached_tokens"], 64);
    // The seeded round repeats the greedy round's prompts: all hit.
    EXPECT_EQ(got.usages[6]["prompt_tokens_details"]["cached_tokens"], 64);
    // The second chat turn shares the system prompt's rendering: at least one block.
    EXPECT_GE(got.usages[4]["prompt_tokens_details"]["cached_tokens"].get<int64_t>(), 16) << got.usages[4];
    EXPECT_EQ(got.usages[4]["prompt_tokens_details"]["cached_tokens"].get<int64_t>() % 16, 0);
    // Anthropic: the second /v1/messages repeats the first; cached tokens are split out of input_tokens.
    const json& m = got.usages[11];
    ASSERT_TRUE(m.contains("cache_read_input_tokens")) << m;
    const int64_t cached = m["cache_read_input_tokens"], computed = m["input_tokens"];
    EXPECT_GE(cached, 16);
    EXPECT_EQ(cached + computed, ref.usages[11]["input_tokens"].get<int64_t>()) << m;
    // Streaming: the usage chunk carries cached_tokens too.
    const HttpResult st = http(on.port(), "POST", "/v1/completions",
                               R"({"prompt": )" + ids_json(ids(5, 72)) +
                                   R"(, "max_tokens": 3, "stream": true, "stream_options": {"include_usage": true}})");
    ASSERT_EQ(st.status, 200);
    const std::regex usage_re(R"re("cached_tokens":(\d+))re");
    std::smatch sm;
    ASSERT_TRUE(std::regex_search(st.body, sm, usage_re)) << st.body;
    EXPECT_EQ(std::stoi(sm[1]), 64);
    // /metrics.
    EXPECT_GT(metric(on.port(), "dsv3_prefix_cache_hit_rate"), 0.3);
    EXPECT_GE(metric(on.port(), "dsv3_prefix_cache_hits_total"), 8);
    EXPECT_EQ(metric(on.port(), "dsv3_prefix_cache_max_bytes"), double(64 << 20));
    EXPECT_GT(metric(on.port(), "dsv3_prefix_cache_bytes"), 0);
    EXPECT_EQ(metric(off.port(), "dsv3_prefix_cache_bytes"), 0);
    EXPECT_EQ(metric(off.port(), "dsv3_prefix_cache_hit_rate"), 0);
    EXPECT_EQ(on.stop(), 0) << on.log();
    EXPECT_EQ(off.stop(), 0) << off.log();
  }
}

TEST_F(PrefixServerTest, ManyDistinctPrefixesStayUnderTheLimit) {
  // 480 bytes of rows per token (3 layers × 40 floats): 1 MiB holds ~2,200 tokens; the load sends 60 distinct
  // prompts of 1,000 tokens (29 MB of rows unbounded).
  const double limit = 1 << 20;
  ServerProcess s;
  std::string why;
  ASSERT_TRUE(s.start({"--model", model_dir_, "--ctx", "2048", "--cache-mem", "1MiB", "--parallel", "2"}, &why)) << why;
  int64_t rss0 = 0;
  for (int r = 0; r < 60; ++r) {
    const HttpResult h =
        http(s.port(), "POST", "/v1/completions",
             R"({"prompt": )" + ids_json(ids(r * 11, 1000, 1 + r % 5)) + R"(, "max_tokens": 2, "ignore_eos": true})",
             "", 60000);
    ASSERT_EQ(h.status, 200) << h.body;
    ASSERT_LE(metric(s.port(), "dsv3_prefix_cache_bytes"), limit) << "after request " << r;
    if (r == 9) rss0 = rss_kib(s.pid());
  }
  EXPECT_GT(metric(s.port(), "dsv3_prefix_cache_evictions_total"), 1000);
  EXPECT_GT(metric(s.port(), "dsv3_prefix_cache_bytes"), limit / 2);
  const int64_t rss1 = rss_kib(s.pid());
  ASSERT_GT(rss0, 0);
  // 50 more prompts would have added ~24 MB of rows without the bound.
#if defined(__SANITIZE_ADDRESS__)
  // Not under ASan: its allocator quarantines freed memory and keeps per-size-class pools, so the server's RSS
  // grows by about what it frees (+94 MB here; +21 MB even with quarantine_size_mb=0). Release checks RSS.
  std::fprintf(stderr, "note: RSS bound not checked under AddressSanitizer (grew %lld KiB)\n",
               static_cast<long long>(rss1 - rss0));
#else
  EXPECT_LT(rss1 - rss0, 12 * 1024) << "RSS grew from " << rss0 << " KiB to " << rss1 << " KiB";
#endif
  EXPECT_EQ(s.stop(), 0) << s.log();
}

TEST_F(PrefixServerTest, BadCacheMemIsRefusedNamingTheFlag) {
  for (const char* bad : {"lots", "2XB", "1.5.2G"}) {
    ServerProcess s;
    std::string why;
    EXPECT_FALSE(s.start({"--model", model_dir_, "--cache-mem", bad}, &why)) << bad;
    EXPECT_NE(why.find("--cache-mem"), std::string::npos) << why;
  }
}

}  // namespace
}  // namespace dsv3
