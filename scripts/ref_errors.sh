#!/usr/bin/env bash
# Prints the relative L2 error ‖dsv3 − DeepSeek‖ / ‖DeepSeek‖ of every sequence's logits (and MTP logits) of
# every V3-family case of ../shared/testdata, through `dsv3 logits`: the figures a refactor's note states
# before and after (the tests only check them against the 1e-4 bar).
#   scripts/ref_errors.sh [DSV3_BINARY] [TESTDATA]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-build/dsv3}
td=${2:-../shared/testdata}
py=/usr/bin/python3
$py -c 'import numpy' 2>/dev/null || { echo "needs Debian's python3-numpy" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for case in v3_tiny v2lite_tiny v3_fp8 v3_mtp; do
  [ -f "$td/$case/config.json" ] || { echo "$case: absent"; continue; }
  k=0
  while read -r ids; do
    [ -n "$ids" ] || continue
    mtp=()
    [ -f "$td/$case/mtp_logits_$k.f32" ] && mtp=(--mtp-out "$tmp/m.f32")
    "$bin" logits --model "$td/$case" --ids "$ids" --out "$tmp/l.f32" "${mtp[@]}"
    $py - "$tmp" "$td/$case" "$k" "$case" <<'PY'
import sys, os, numpy as np
tmp, d, k, case = sys.argv[1:]
def err(got, want):
    a, b = np.fromfile(got, np.float32).astype(np.float64), np.fromfile(want, np.float32).astype(np.float64)
    return np.linalg.norm(a - b) / np.linalg.norm(b)
line = f"{case} seq {k}: logits {err(f'{tmp}/l.f32', f'{d}/logits_{k}.f32'):.3e}"
if os.path.exists(f"{d}/mtp_logits_{k}.f32"):
    line += f"  mtp {err(f'{tmp}/m.f32', f'{d}/mtp_logits_{k}.f32'):.3e}"
print(line)
PY
    k=$((k + 1))
  done < "$td/$case/ids.txt"
done
