// Drawing through gnuplot (Debian gnuplot-nox), shared by the commands that write PNGs (plot, schedule):
// quoting for the shell and for gnuplot strings, the PNG terminal available (pngcairo, else png), and running
// a script with its errors reported.
#pragma once

#include <string>

namespace dsv3::cli {

std::string shell_quote(const std::string& s);  // '...' for the shell and gnuplot single-quoted strings
std::string gp_string(const std::string& s);    // "..." for gnuplot double-quoted strings
// Fails naming the package when gnuplot is not installed.
void require_gnuplot();
// "pngcairo size W,H font ',F'" when the pngcairo terminal exists, else "png size W,H".
std::string png_terminal(int width, int height, int font_size = 10);
// Writes `script` into `dir`/name.gp and runs it; fails with gnuplot's message (the directory kept).
void run_gnuplot(const std::string& script, const std::string& dir, const std::string& name = "plot");

}  // namespace dsv3::cli
