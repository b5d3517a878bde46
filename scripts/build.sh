#!/usr/bin/env bash
# Installs dependencies (Debian packages) and builds dsv3 in ./build (Release). Prints the binary's path.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target dsv3 >&2
echo "$PWD/build/dsv3"
