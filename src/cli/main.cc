// dsv3: the DeepSeek-V3 system. Subcommands live one per file in src/cli/cmd_*.cc.
#include <algorithm>
#include <cstdio>
#include <map>

#include "cli/command.h"
#include "core/error.h"
#include "dist/world.h"

namespace dsv3::cli {
std::vector<CommandSpec>& registry() {
  static std::vector<CommandSpec> r;
  return r;
}
}  // namespace dsv3::cli

namespace {

// A failed command: one line on stderr and exit status 1. Under mpirun with several ranks the line names
// the rank and the whole job is aborted, so no other rank waits forever in a collective.
int command_failed(const std::string& cmd, const char* what) {
  const std::string msg = "dsv3 " + cmd + ": error: " + what;
  if (dsv3::dist::world().size() > 1) dsv3::dist::abort_job(1, msg);
  std::fprintf(stderr, "%s\n", msg.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace dsv3::cli;
  dsv3::dist::init(&argc, &argv);
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
    const int rc = app.exit(e);
    dsv3::dist::finalize();
    return rc;
  }
  for (auto& [sub, run] : runners) {
    if (!sub->parsed()) continue;
    int rc = 0;
    try {
      rc = run();
    } catch (const std::exception& e) {  // dsv3::Error and the library's own
      return command_failed(sub->get_name(), e.what());
    }
    dsv3::dist::finalize();
    return rc;
  }
  dsv3::dist::finalize();
  return 0;
}
