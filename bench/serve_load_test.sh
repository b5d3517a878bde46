#!/usr/bin/env bash
# Starts `dsv3 serve` on a free loopback port and runs bench/load_test.mjs against it (docs/PERF.md, "Server
# load test"): CLIENTS concurrent clients × REQUESTS requests each, every response checked, the server's RSS
# sampled; then prints the server's /metrics request and throughput counters and stops it (SIGINT).
#
#   bench/serve_load_test.sh MODEL_DIR [CLIENTS=32] [REQUESTS=500] [extra dsv3 serve flags...]
#   env: DSV3 (binary; default build-perf/dsv3, else build/dsv3), MAX_TOKENS (8)
# The model needs a tokenizer (chat and text prompts). Exits non-zero when any request failed.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MODEL=${1:?usage: serve_load_test.sh MODEL_DIR [CLIENTS] [REQUESTS] [serve flags...]}
CLIENTS=${2:-32}
REQUESTS=${3:-500}
shift $(( $# < 3 ? $# : 3 ))
if [[ -z "${DSV3:-}" ]]; then
  for b in "$ROOT/build-perf/dsv3" "$ROOT/build/dsv3"; do [[ -x "$b" ]] && { DSV3=$b; break; }; done
fi
[[ -x "${DSV3:-}" ]] || { echo "serve_load_test: no dsv3 binary (set DSV3)" >&2; exit 1; }
LOG=$(mktemp)
"$DSV3" serve --model "$MODEL" --port 0 "$@" 2>"$LOG" &
SP=$!
trap 'kill -INT $SP 2>/dev/null || true; rm -f "$LOG"' EXIT
for _ in $(seq 240); do grep -q "listening on" "$LOG" && break; kill -0 $SP 2>/dev/null || { cat "$LOG" >&2; exit 1; }; sleep 0.5; done
URL=$(sed -n 's/.*listening on \(http[^ ]*\).*/\1/p' "$LOG" | head -1)
echo "dsv3 serve (pid $SP) at $URL; $CLIENTS clients x $REQUESTS requests" >&2
rc=0
/usr/bin/time -f "load test wall %e s" node "$ROOT/bench/load_test.mjs" --url "$URL" --clients "$CLIENTS" \
  --requests "$REQUESTS" --max-tokens "${MAX_TOKENS:-8}" --pid "$SP" --json || rc=$?
curl -s "$URL/metrics" | grep -E "^dsv3_(requests|prefill|decode|engine_steps)" || true
exit $rc
