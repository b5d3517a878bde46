// Subcommand registry of the `dsv3` executable. Each src/cli/cmd_*.cc defines one static Registrar:
//
//   static cli::Registrar reg("info", "Summarise a model", [](CLI::App& app) {
//     auto opt = std::make_shared<Options>();
//     app.add_option("--model", opt->dir)->required();
//     return [opt] { return run_info(*opt); };   // exit status
//   });
//
// main.cc builds the CLI11 app from the registry, parses, runs the chosen command and turns a dsv3::Error
// into a one-line message on stderr and exit status 1.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <vector>

namespace dsv3::cli {

using Runner = std::function<int()>;
using Setup = std::function<Runner(CLI::App&)>;

struct CommandSpec {
  std::string name, help;
  Setup setup;
};

std::vector<CommandSpec>& registry();

struct Registrar {
  Registrar(std::string name, std::string help, Setup setup) {
    registry().push_back({std::move(name), std::move(help), std::move(setup)});
  }
};

}  // namespace dsv3::cli
