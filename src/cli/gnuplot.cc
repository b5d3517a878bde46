#include "cli/gnuplot.h"

#include <fmt/format.h>

#include <cstdlib>
#include <fstream>
#include <iterator>

#include "core/error.h"

namespace dsv3::cli {

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char ch : s) q += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
  return q + "'";
}

std::string gp_string(const std::string& s) {
  std::string q = "\"";
  for (char ch : s) {
    if (ch == '"' || ch == '\\') q += '\\';
    q += ch;
  }
  return q + "\"";
}

void require_gnuplot() {
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0)
    fail("gnuplot not found (Debian: apt-get install gnuplot-nox)");
}

std::string png_terminal(int width, int height, int font_size) {
  const std::string probe = "gnuplot -e " + shell_quote("set terminal pngcairo") + " >/dev/null 2>&1";
  if (std::system(probe.c_str()) == 0) return fmt::format("pngcairo size {},{} font ',{}'", width, height, font_size);
  return fmt::format("png size {},{}", width, height);
}

void run_gnuplot(const std::string& script, const std::string& dir, const std::string& name) {
  const std::string path = dir + "/" + name + ".gp", err_path = dir + "/" + name + ".err";
  std::ofstream(path) << script;
  const std::string cmd = "gnuplot " + shell_quote(path) + " 2>" + shell_quote(err_path);
  const int rc = std::system(cmd.c_str());
  std::ifstream err(err_path);
  const std::string msg((std::istreambuf_iterator<char>(err)), std::istreambuf_iterator<char>());
  if (rc != 0) fail("gnuplot failed (script kept in {}): {}", dir, msg);
}

}  // namespace dsv3::cli
