// The web chat page at / of `dsv3 serve` (server/web_ui.h).
//
// WebUiServing*: the embedded files and how they are served (content types, ETag / 304, the page's CSP, 404
// for names not embedded, the API key not needed for the page but still for the API, --no-web-ui), over raw
// HTTP on loopback: no browser, no network.
//
// WebPageBrowser*: the page in a real browser — Debian's chromium, headless, driven by puppeteer-core from npm
// (tests/server/web_page.mjs holds the checks) — against `dsv3 serve` on a random model whose replies are
// forced by `--script-replies` (runtime/constraint.h; the model still runs every forward), written in the
// formats the templates render: R1's reasoning before </think>, DeepSeek-V3's tool calls. Checked: a streamed
// reply growing across observations, markdown and highlighted code, the collapsed thinking block, the
// tool-call card and the result sent back, Stop (the stream ends, the partial reply stays, the input works,
// the server counts the request cancelled), the sampling settings in the request, an HTTP error's message, the
// API key asked for and sent; the page fetches nothing from another origin. Skipped only when chromium or
// node/npm are missing or npm cannot install puppeteer-core.
//
// The chat test saves a screenshot of its conversation: $DSV3_WEB_SCREENSHOT when set (that is how
// docs/img/web_chat.png is made: DSV3_WEB_SCREENSHOT=$PWD/docs/img/web_chat.png ctest -R WebPageBrowser.Chat),
// else into the test's temporary folder.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "io/chat_template.h"
#include "serve_harness.h"
#include "server/web_ui.h"

namespace dsv3 {
namespace {

using json = nlohmann::json;
using namespace dsv3::testing_models;
using namespace dsv3::serve_harness;
namespace fs = std::filesystem;

constexpr const char* kKey = "sk-dsv3-web";

std::string header(const HttpResult& r, const std::string& name) {
  std::smatch m;
  const std::regex re("\r\n" + name + ": ([^\r\n]*)", std::regex::icase);
  return std::regex_search(r.headers, m, re) ? m[1].str() : "";
}

std::string source_file(const std::string& rel) {
  return read_file(std::string(DSV3_TEST_SRC) + "/../src/server/web/" + rel);
}

// The chat model every test serves (random weights, a byte-level BPE tokenizer, DeepSeek-V3's template).
class WebUi : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!model_dir_.empty()) return;
    model_dir_ = write_chat_model(temp_dir("web_page_model"), 0.5, 31);
    r1_template_ = model_dir_ + "/../r1_template.jinja";
    std::ofstream(r1_template_) << io::kDeepSeekR1ChatTemplateJinja;
    // A template with V3.1's switch: the generation prompt opens <think> when `thinking` is true.
    thinking_template_ = model_dir_ + "/../thinking_template.jinja";
    std::ofstream(thinking_template_)
        << "{{ bos_token }}{% for m in messages %}{% if m.role == 'system' %}{{ m.content }}"
           "{% elif m.role == 'user' %}<｜User｜>{{ m.content }}{% elif m.role == 'assistant' %}<｜Assistant｜>"
           "{{ m.content }}<｜end▁of▁sentence｜>{% endif %}{% endfor %}{% if add_generation_prompt %}"
           "<｜Assistant｜>{% if thinking %}<think>{% else %}</think>{% endif %}{% endif %}";
  }
  static inline std::string model_dir_, r1_template_, thinking_template_;
};

// ---- serving, no browser -----------------------------------------------------------------------------

TEST_F(WebUi, EmbeddedFilesAreTheSourcesAndDebianLibraries) {
  for (const char* name : {"index.html", "app.js", "app.css", "icon.svg"}) {
    const server::WebAsset* a = server::find_web_asset(name);
    ASSERT_NE(a, nullptr) << name;
    EXPECT_EQ(a->body, source_file(name)) << name << ": the embedded copy is not the source file";
  }
  const std::pair<const char*, const char*> libs[] = {
      {"marked.min.js", "a markdown parser"}, {"purify.min.js", "DOMPurify"}, {"highlight.min.js", "registerLanguage"}};
  for (const auto& [name, marker] : libs) {
    const server::WebAsset* a = server::find_web_asset(name);
    ASSERT_NE(a, nullptr) << name;
    EXPECT_GT(a->body.size(), 10000u) << name;
    EXPECT_NE(a->body.find(marker), std::string::npos) << name << " does not look like " << marker;
  }
  EXPECT_EQ(server::find_web_asset("../index.html"), nullptr);
  EXPECT_EQ(server::find_web_asset(""), nullptr);
  std::set<std::string> etags;
  for (const server::WebAsset& a : server::web_assets()) {
    EXPECT_TRUE(std::regex_match(std::string(a.etag), std::regex("\"[0-9a-f]{16}\""))) << a.name << " " << a.etag;
    etags.insert(std::string(a.etag));
  }
  EXPECT_EQ(etags.size(), server::web_assets().size()) << "ETags must differ";
  // Every file the page loads is embedded: no reference to anything the server does not have.
  const std::string page(server::find_web_asset("index.html")->body);
  const std::regex ref(R"((?:src|href)="([^"]+)\")");
  int refs = 0;
  for (auto it = std::sregex_iterator(page.begin(), page.end(), ref); it != std::sregex_iterator(); ++it, ++refs) {
    const std::string url = (*it)[1];
    ASSERT_EQ(url.rfind("/web/", 0), 0u) << "the page refers to " << url << ", not one of its own files";
    EXPECT_NE(server::find_web_asset(url.substr(5)), nullptr) << url;
  }
  EXPECT_GE(refs, 8);
}

TEST_F(WebUi, ServingContentTypesEtagsAnd404s) {
  ServerProcess s;
  std::string why;
  ASSERT_TRUE(s.start({"--model", model_dir_, "--ctx", "512", "--api-key", kKey}, &why)) << why;
  const int port = s.port();

  // The page: no key needed (it holds no data), HTML, a policy allowing this origin only, revalidated.
  const HttpResult page = http(port, "GET", "/");
  ASSERT_EQ(page.status, 200) << page.body;
  EXPECT_EQ(header(page, "Content-Type"), "text/html; charset=utf-8");
  EXPECT_EQ(page.body, source_file("index.html"));
  EXPECT_EQ(header(page, "Cache-Control"), "no-cache");
  EXPECT_EQ(header(page, "X-Content-Type-Options"), "nosniff");
  const std::string csp = header(page, "Content-Security-Policy");
  EXPECT_NE(csp.find("default-src 'none'"), std::string::npos) << csp;
  EXPECT_NE(csp.find("script-src 'self'"), std::string::npos) << csp;
  EXPECT_NE(csp.find("connect-src 'self'"), std::string::npos) << csp;
  const std::string etag = header(page, "ETag");
  EXPECT_EQ(etag, std::string(server::find_web_asset("index.html")->etag));

  // Conditional GET: 304 without a body for the same ETag (alone or in a list), 200 for another.
  auto conditional = [&](const std::string& path, const std::string& inm) {
    return round_trip(port, "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nIf-None-Match: " +
                                inm + "\r\n\r\n");
  };
  const HttpResult same = conditional("/", etag);
  EXPECT_EQ(same.status, 304);
  EXPECT_TRUE(same.body.empty());
  EXPECT_EQ(conditional("/", "\"0000000000000000\", " + etag).status, 304);
  EXPECT_EQ(conditional("/", "\"0000000000000000\"").status, 200);

  const std::pair<const char*, const char*> types[] = {{"app.js", "text/javascript; charset=utf-8"},
                                                       {"marked.min.js", "text/javascript; charset=utf-8"},
                                                       {"purify.min.js", "text/javascript; charset=utf-8"},
                                                       {"highlight.min.js", "text/javascript; charset=utf-8"},
                                                       {"app.css", "text/css; charset=utf-8"},
                                                       {"hljs-light.css", "text/css; charset=utf-8"},
                                                       {"hljs-dark.css", "text/css; charset=utf-8"},
                                                       {"icon.svg", "image/svg+xml"}};
  for (const auto& [name, type] : types) {
    const HttpResult r = http(port, "GET", std::string("/web/") + name);
    ASSERT_EQ(r.status, 200) << name;
    EXPECT_EQ(header(r, "Content-Type"), type) << name;
    EXPECT_EQ(r.body, server::find_web_asset(name)->body) << name;
    EXPECT_EQ(header(r, "ETag"), std::string(server::find_web_asset(name)->etag)) << name;
    EXPECT_EQ(conditional(std::string("/web/") + name, header(r, "ETag")).status, 304) << name;
  }
  EXPECT_EQ(http(port, "GET", "/web/marked.min.js").body, read_file(DSV3_WEB_MARKED_JS));  // Debian's file

  // HEAD: the headers without the body.
  const HttpResult head = round_trip(port, "HEAD / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(header(head, "Content-Type"), "text/html; charset=utf-8");
  EXPECT_TRUE(head.body.empty());

  // Names not embedded: the API's 404 (JSON, unknown_url); never a file of the disk.
  for (const char* path : {"/web/nope.js", "/web/", "/web", "/index.html", "/web/app.js/x", "/webapp.js",
                           "/web/%2e%2e%2fCMakeLists.txt", "/web/..%2fapp.js", "/favicon.ico"}) {
    const HttpResult r = http(port, "GET", path);
    EXPECT_TRUE(r.status == 404 || r.status == 400) << path << " -> " << r.status;
    if (r.status == 404) {
      EXPECT_EQ(json::parse(r.body)["error"]["code"], "unknown_url") << path;
    }
  }
  EXPECT_EQ(http(port, "POST", "/", "{}").status, 404);

  // The page is open, the API it calls is not.
  EXPECT_EQ(http(port, "GET", "/v1/models").status, 401);
  EXPECT_EQ(http(port, "GET", "/v1/models", "", kKey).status, 200);
  EXPECT_EQ(s.stop(), 0) << s.log();
}

TEST_F(WebUi, NoWebUiFlagTurnsThePageOff) {
  ServerProcess s;
  std::string why;
  ASSERT_TRUE(s.start({"--model", model_dir_, "--ctx", "512", "--no-web-ui"}, &why)) << why;
  EXPECT_EQ(http(s.port(), "GET", "/").status, 404);
  EXPECT_EQ(http(s.port(), "GET", "/web/app.js").status, 404);
  EXPECT_EQ(http(s.port(), "GET", "/health").status, 200);
  EXPECT_EQ(http(s.port(), "GET", "/v1/models").status, 200);
  EXPECT_EQ(s.stop(), 0) << s.log();
}

// ---- in a browser ------------------------------------------------------------------------------------

// DeepSeek-V3's tool-call rendering (the published template; server/chat_output.h).
std::string v3_call(const std::string& name, const std::string& args) {
  return "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>" + name + "\n```json\n" + args +
         "\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>";
}

// R1's prompt opens <think>: a reply is reasoning, </think>, then the answer. This one has markdown, inline
// code and a fenced python block; long enough to stream over many frames.
const std::string kCodeReply =
    "The user wants code. I will show a small Python function and explain it.</think>\n\n"
    "**Here** is a function named `add`:\n\n"
    "```python\ndef add(a, b):\n    return a + b\n\nprint(add(2, 40))\n```\n\n"
    "It adds two numbers and returns the sum. The quick brown fox jumps over the lazy dog, and the cat sat on "
    "the mat while the dog sat on the log.\n\n"
    "- one item\n- two items\n- three items\n";
const std::string kToolReply =
    "The user asks for the weather; I call the tool.</think>\n\n" + v3_call("get_weather", R"({"city": "Paris"})");
// R1's template ends a prompt after tool outputs without opening <think>: the answer is plain text.
const std::string kSunny = "It is sunny in Paris.";
std::string long_story() {
  std::string s = "A long story.</think>\n\nOnce upon a time there was a little model that wanted to talk.";
  while (s.size() < 6000) s += " The quick brown fox jumps over the lazy dog, and the cat sat on the mat.";
  return s;
}
// With HTML the sanitizer must take out (an <img> whose onerror would fire at once, a <script>).
const std::string kDone =
    "Short.</think>\n\nDone. <script>window.__pwned = 1</script><img src=\"data:,\" onerror=\"window.__pwned = 2\">";

// The browser must see a reply grow and press Stop in the middle of one: the tiny test model decodes
// thousands of tokens a second, so the browser tests serve a wider one (dense, hidden 768, 4 layers, one thread: some
// hundred tokens a second) with the same tokenizer and template.
std::string write_slow_chat_model(const std::string& dir) {
  write_chat_model(dir, 0.5, 31);
  const int64_t vocab = json::parse(read_file(dir + "/config.json"))["vocab_size"];
  json c = tiny_mtp_config(vocab);
  c["hidden_size"] = 768;
  c["intermediate_size"] = 3072;
  c["num_hidden_layers"] = 4;
  c["first_k_dense_replace"] = 4;
  c["num_nextn_predict_layers"] = 0;
  write_random_model(dir, 31, c);
  return dir;
}

class WebPageBrowser : public WebUi {
 protected:
  static void SetUpTestSuite() {
    WebUi::SetUpTestSuite();
    slow_model_dir_ = write_slow_chat_model(temp_dir("web_page_slow_model"));
  }
  static inline std::string slow_model_dir_;

  // The npm folder with puppeteer-core, "" (test skipped) without chromium, node or the package.
  static std::string browser_dir(std::string* why) {
    static std::string dir, failure;
    if (!fs::exists(chromium())) {
      *why = chromium() + " not found (Debian package chromium; scripts/setup.sh installs it)";
      return "";
    }
    if (dir.empty() && failure.empty())
      dir = npm_dir("node_browser", "puppeteer-core@24.43.1", "puppeteer-core/package.json", &failure);
    *why = failure;
    return dir;
  }
  static std::string chromium() {
    const char* c = std::getenv("DSV3_CHROMIUM");
    return c && *c ? c : "/usr/bin/chromium";
  }

  // Starts the server with `replies` forced, runs one mode of web_page.mjs; returns the server's /metrics.
  std::string run_mode(const std::string& mode, const std::vector<std::string>& replies, std::vector<std::string> flags,
                       const std::string& extra = "") {
    std::string why;
    const std::string d = browser_dir(&why);
    if (d.empty()) {
      skipped_ = true;
      return why;
    }
    fs::copy_file(std::string(DSV3_TEST_SRC) + "/server/web_page.mjs", d + "/web_page.mjs",
                  fs::copy_options::overwrite_existing);
    const std::string script = temp_dir("web_page_script") + "/" + mode + ".json";
    std::ofstream(script) << json(replies).dump();
    std::vector<std::string> args = {"--model",          slow_model_dir_, "--ctx",      "4096",
                                     "--model-name",     "web-test",      "--parallel", "2",
                                     "--script-replies", script};
    args.insert(args.end(), flags.begin(), flags.end());
    // One OpenMP thread: on a machine shared with other jobs, threads spinning at barriers made decoding
    // crawl now and then; the page needs a steady stream, not a fast one.
    ::setenv("OMP_NUM_THREADS", "1", 1);
    ::setenv("OMP_WAIT_POLICY", "passive", 1);
    ServerProcess s;
    const bool started = s.start(args, &why);
    ::unsetenv("OMP_NUM_THREADS");
    ::unsetenv("OMP_WAIT_POLICY");
    if (!started) {
      ADD_FAILURE() << why;
      return "";
    }
    std::string out;
    const auto t0 = std::chrono::steady_clock::now();
    const int rc = shell("cd '" + d + "' && timeout 500 node web_page.mjs " + mode +
                             " http://127.0.0.1:" + std::to_string(s.port()) + " " + extra,
                         &out);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_EQ(rc, 0) << out << "\nserver log:\n" << s.log();
    EXPECT_NE(out.find("checks passed"), std::string::npos) << out;
    std::printf("web_page.mjs %s: %.1f s: %s", mode.c_str(), secs,
                out.substr(out.rfind('\n', out.size() - 2) + 1).c_str());
    const std::string metrics = http(s.port(), "GET", "/metrics").body;
    EXPECT_EQ(s.stop(), 0) << s.log();
    return metrics;
  }
  bool skipped_ = false;
};

double metric(const std::string& text, const std::string& name) {
  std::smatch m;
  return std::regex_search(text, m, std::regex("\n" + name + " ([0-9.e+]+)")) ? std::stod(m[1]) : -1;
}

TEST_F(WebPageBrowser, ChatStreamingThinkingToolCallsStop) {
  const char* env = std::getenv("DSV3_WEB_SCREENSHOT");
  const std::string shot = env && *env ? env : temp_dir("web_page_shot") + "/web_chat.png";
  const std::string m = run_mode("chat", {kCodeReply, kToolReply, kSunny, long_story(), kDone},
                                 {"--chat-template", r1_template_}, "web-test '" + shot + "'");
  if (skipped_) GTEST_SKIP() << m;
  // The stopped reply's request was cancelled by the server (the browser closed the stream), not finished.
  EXPECT_EQ(metric(m, "dsv3_requests_cancelled_total"), 1) << m;
  EXPECT_EQ(metric(m, "dsv3_requests_completed_total"), 4) << m;
  EXPECT_GT(fs::file_size(shot), 10000u) << shot;
}

TEST_F(WebPageBrowser, ApiKeyAskedStoredAndSent) {
  const std::string m = run_mode("key", {"Hello from dsv3."}, {"--api-key", kKey}, kKey);
  if (skipped_) GTEST_SKIP() << m;
  EXPECT_EQ(metric(m, "dsv3_requests_completed_total"), 1) << m;
}

TEST_F(WebPageBrowser, SettingsThinkingSwitchAndErrors) {
  const std::string m = run_mode("settings", {"Short thought.</think>\n\nAnswer with thought.", "Plain answer."},
                                 {"--chat-template", thinking_template_});
  if (skipped_) GTEST_SKIP() << m;
  EXPECT_EQ(metric(m, "dsv3_requests_completed_total"), 2) << m;
}

}  // namespace
}  // namespace dsv3
