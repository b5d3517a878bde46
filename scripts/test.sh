#!/usr/bin/env bash
# Runs every test of dsv3 from a fresh checkout: installs dependencies, builds (Release), runs the whole
# ctest suite, then rebuilds under AddressSanitizer + UndefinedBehaviorSanitizer and runs it again.
#   DSV3_SKIP_SANITIZE=1  skip the sanitizer pass (local iteration)
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

bash scripts/setup.sh

echo "== format (.clang-format)"
git ls-files 'src/*.h' 'src/*.cc' 'tests/*.h' 'tests/*.cc' 'bench/*.cc' 'fuzz/*.cc' |
  xargs clang-format-14 --dry-run -Werror || { echo "run clang-format-14 -i on the files above" >&2; exit 1; }

echo "== build (Release)"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs"
echo "== tests (Release)"
ctest --test-dir build --output-on-failure -j"$jobs" --timeout 900

if [ "${DSV3_SKIP_SANITIZE:-0}" != 1 ]; then
  echo "== build (ASan + UBSan)"
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDSV3_SANITIZE=ON -DDSV3_BENCH=OFF >/dev/null
  cmake --build build-asan -j"$jobs"
  echo "== tests (ASan + UBSan)"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan --output-on-failure -j"$jobs" --timeout 1800
fi
echo "== all tests passed"
