// dsv3: the DeepSeek-V3 system. Subcommands live one per file in src/cli/cmd_*.cc.
#include <algorithm>
#include <cstdio>
#include <map>

#include "cli/command.h"
#include "core/error.h"

namespace dsv3::cli {
std::vector<CommandSpec>& registry() {
  static std::vector<CommandSpec> r;
  return r;
}
}  // namespace dsv3::cli

int main(int argc, char** argv) {
  using namespace dsv3::cli;
  CLI::App app{"dsv3: DeepSeek-V3 inference and training in C++"};
  app.require_subcommand(1);
  auto specs = registry();
  std::sort(specs.begin(), specs.end(), [](auto& a, auto& b) { return a.name < b.name; });
  std::map<CLI::App*, Runner> runners;
  for (auto& s : specs) {
    CLI::App* sub = app.add_subcommand(s.name, s.help);
    runners[sub] = s.setup(*sub);
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  for (auto& [sub, run] : runners) {
    if (!sub->parsed()) continue;
    try {
      return run();
    } catch (const dsv3::Error& e) {
      std::fprintf(stderr, "dsv3 %s: error: %s\n", sub->get_name().c_str(), e.what());
      return 1;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "dsv3 %s: error: %s\n", sub->get_name().c_str(), e.what());
      return 1;
    }
  }
  return 0;
}
