#!/usr/bin/env bash
# Installs every build and test dependency of dsv3 from Debian 12 packages.
# Each package is chosen on purpose; README.md ("Dependencies") says why.
set -euo pipefail
pkgs=(
  build-essential cmake ninja-build pkg-config   # toolchain: g++ 12 (C++20), CMake, Ninja
  nlohmann-json3-dev                             # JSON: config.json, safetensors headers, index files
  libcli11-dev                                   # command-line parsing for the dsv3 CLI
  libfmt-dev                                     # formatting (g++ 12 lacks <format>)
  libpcre2-dev                                   # Unicode regexes for tokenizer pre-tokenizers (UTF+UCP+JIT)
  libcpp-httplib-dev                             # HTTP server for the OpenAI-compatible API
  libgtest-dev libgmock-dev                      # unit tests through ctest
  libbenchmark-dev                               # micro-benchmarks in bench/
  clang-14 libclang-rt-14-dev                    # libFuzzer target for the safetensors header parser
  clang-format-14                                # the code's format (.clang-format), checked by scripts/test.sh
  gnuplot-nox                                    # training plots
  tmux                                           # tests drive `dsv3 chat` in a real terminal
  bible-kjv                                      # the King James text for the main job
  libopenmpi-dev openmpi-bin                     # MPI: expert/data parallelism across processes and machines (src/dist/)
  python3-numpy                                  # tests/reference/deepseek_ref.py builds the generated reference cases
  libjs-marked node-dompurify libjs-highlight.js # the web chat page of `dsv3 serve`: markdown, sanitizing, code highlighting (embedded)
  chromium                                       # tests drive the web chat page in a real (headless) browser
)
missing=()
# Node.js runs the peer tokenizer (transformers.js) and the openai SDK in tests; machines that already
# carry a Node.js with its own npm (e.g. nodesource) keep it, since Debian's npm conflicts with that.
command -v node >/dev/null || pkgs+=(nodejs)
command -v npm >/dev/null || pkgs+=(npm)
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
