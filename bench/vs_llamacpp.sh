#!/usr/bin/env bash
# dsv3 next to llama.cpp on the same random DeepSeek-V3-architecture models, in one interleaved run
# (issue #7; docs/PERF.md "dsv3 vs llama.cpp"). Steps, each skipped when its output is already there:
#   1. llama.cpp (npm-prebuilt, ../shared/bench/llamacpp/setup.sh) into $LLCPP
#   2. models with ../shared/bench/llamacpp/make_dsv3_model.py into $MODELS: the same weights as a Hugging Face
#      dir (read by dsv3) and a BF16 GGUF (read by llama.cpp); Q8_0 GGUF by llama.cpp's own quantizer; the dsv3
#      int8 checkpoint by `dsv3 quantize --type int8` when this dsv3 has that command
#   3. the machine's read bandwidth (build/bench/stream_bench), the roofline of the bandwidth fraction
#   4. bench_llamacpp.py: every entry pp$PP / tg$TG, $REPS repetitions, the whole list $ROUNDS times
#      round-robin; llama.cpp through llama_peer, dsv3 through `exec:dsv3 bench ... --tg-empty --json`
#      (both: $THREADS threads, prefill = one $PP-token batch from an empty cache, decode = $TG single-token
#      steps from an empty cache, weights in RAM: llama_peer --load none, dsv3 --no-mmap ($DSV3_FLAGS))
#   5. a Markdown side-by-side (medians over rounds, dsv3 ÷ llama.cpp ratios, bandwidth fractions, the CPU
#      load of other processes) printed and written to $OUT, ready to paste into docs/PERF.md
#
# Usage (from anywhere; ~6 min for small, ~20 min with medium at ROUNDS=2):
#   bench/vs_llamacpp.sh [small] [medium]            # presets (default: small, plus medium if disk/RAM allow)
# Environment (defaults in brackets):
#   DSV3 [build-perf/dsv3, else build/dsv3]  STREAM_BENCH [next to DSV3: bench/stream_bench]
#   LLCPP [/tmp/llcpp]  MODELS [/tmp/dsv3m]  PEER_DIR [../shared/bench/llamacpp beside the checkout]
#   THREADS [2]  PP [512]  TG [128]  REPS [3]  ROUNDS [2]
#   OUT [/tmp/vs_llamacpp.md]  JSON [/tmp/vs_llamacpp.json]
#   BW_GBPS [measured]: the bandwidth (GB/s, 1e9) that the bandwidth fraction divides by
#   REPORT_ONLY [unset]: set to 1 to skip steps 1-4 and rebuild the table from an earlier run's $JSON (+ $JSON.env)
#   DSV3_FLAGS [--no-mmap]: added to every dsv3 entry; the default reads the weights into RAM as llama_peer's
#     --load none does (mmap'ed weights get evicted from this VM's page cache between and during runs)
#   BF16_ACT [0]: 1 adds a dsv3 BF16 entry with --bf16-activations (prefill with bf16-rounded activations, as
#     llama.cpp does for BF16 weights; not the exact path)
#   INT8 [auto]: auto = include dsv3 int8 vs llama.cpp Q8_0 when `dsv3 quantize` exists; 0 = never
#   WAIT_POLICIES [default]: one dsv3 entry per OpenMP wait policy listed (default = libgomp's own, spinning
#     then sleeping; passive; active), e.g. "default passive" on a machine shared with other work, where
#     spinning threads lose their core to other processes (docs/PERF.md)
# Python: Debian's /usr/bin/python3 with python3-numpy (installed with apt when missing; the model writer
# needs it). Big files stay under $MODELS (small: 1 GB, medium: 18 GB of disk).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PEER_DIR=${PEER_DIR:-$(cd "$ROOT/.." && pwd)/shared/bench/llamacpp}
LLCPP=${LLCPP:-/tmp/llcpp}
MODELS=${MODELS:-/tmp/dsv3m}
THREADS=${THREADS:-2} PP=${PP:-512} TG=${TG:-128} REPS=${REPS:-3} ROUNDS=${ROUNDS:-2}
OUT=${OUT:-/tmp/vs_llamacpp.md}
JSON=${JSON:-/tmp/vs_llamacpp.json}
INT8=${INT8:-auto}
PY=/usr/bin/python3
if [[ -z "${DSV3:-}" ]]; then
  for b in "$ROOT/build-perf/dsv3" "$ROOT/build/dsv3"; do [[ -x "$b" ]] && { DSV3=$b; break; }; done
fi
[[ -x "${DSV3:-}" ]] || { echo "vs_llamacpp: no dsv3 binary; build one (ninja -C build-perf dsv3 stream_bench) or set DSV3" >&2; exit 1; }
DSV3=$(cd "$(dirname "$DSV3")" && pwd)/$(basename "$DSV3")
STREAM_BENCH=${STREAM_BENCH:-$(dirname "$DSV3")/bench/stream_bench}
[[ -f "$PEER_DIR/bench_llamacpp.py" ]] || { echo "vs_llamacpp: no $PEER_DIR/bench_llamacpp.py (set PEER_DIR)" >&2; exit 1; }

PRESETS=("$@")
if [[ ${#PRESETS[@]} -eq 0 ]]; then
  PRESETS=(small)
  free_gb=$(df -BG --output=avail "$(dirname "$MODELS")" | tail -1 | tr -dc 0-9)
  mem_gb=$(awk '/MemTotal/ {print int($2 / 1048576)}' /proc/meminfo)
  if [[ -f "$MODELS/medium-bf16.gguf" ]] || { [[ $free_gb -ge 30 ]] && [[ $mem_gb -ge 16 ]]; }; then
    PRESETS+=(medium)
  else
    echo "vs_llamacpp: skipping medium (needs ~25 GB free under $MODELS and 16 GB RAM; have ${free_gb} GB, ${mem_gb} GB)" >&2
  fi
fi
SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO=sudo
log() { echo "== $*" >&2; }

if [[ -n "${REPORT_ONLY:-}" ]]; then  # only step 5, again, from an earlier run's $JSON (and $JSON.env)
  # shellcheck disable=SC1090
  source "$JSON.env"
else
# 1. llama.cpp
if [[ ! -x "$LLCPP/bin/llama_peer" || ! -d "$LLCPP/lib/" ]]; then
  log "installing llama.cpp into $LLCPP"
  bash "$PEER_DIR/setup.sh" "$LLCPP" >&2
fi

# 2. models
$PY -c 'import numpy' 2>/dev/null || { log "installing python3-numpy"; $SUDO apt-get install -y python3-numpy >&2; }
mkdir -p "$MODELS"
have_quantize=0
if [[ $INT8 != 0 ]] && "$DSV3" quantize --help >/dev/null 2>&1; then have_quantize=1; fi
for p in "${PRESETS[@]}"; do
  if [[ ! -f "$MODELS/$p-bf16.gguf" || ! -f "$MODELS/$p-hf/config.json" ]]; then
    log "writing the $p model (HF + BF16 GGUF) into $MODELS"
    rm -rf "$MODELS/$p-hf"
    $PY "$PEER_DIR/make_dsv3_model.py" --preset "$p" --hf "$MODELS/$p-hf" --gguf-bf16 "$MODELS/$p-bf16.gguf" >&2
  fi
  if [[ ! -f "$MODELS/$p-q8_0.gguf" ]]; then
    log "llama.cpp Q8_0 of $p"
    "$LLCPP/bin/llama_peer" quantize --libdir "$LLCPP/lib" -i "$MODELS/$p-bf16.gguf" -o "$MODELS/$p-q8_0.gguf" \
      --type q8_0 -t "$THREADS" >&2
  fi
  if [[ $have_quantize == 1 && ! -f "$MODELS/$p-int8/config.json" ]]; then
    log "dsv3 int8 of $p"
    "$DSV3" quantize --model "$MODELS/$p-hf" --out "$MODELS/$p-int8" --type int8 >&2 ||
      { log "dsv3 quantize failed: int8 entries left out"; rm -rf "$MODELS/$p-int8"; }
  fi
done

# 3. bandwidth: the best of 5 repetitions of stream_bench's $THREADS-thread reads of a 1 GiB array (one stream per
#    thread, and 4 / 8 streams per thread with software prefetch: the decode kernels' pattern)
stream_gbps() {
  "$STREAM_BENCH" --benchmark_filter="$1" --benchmark_repetitions=5 --benchmark_format=json 2>/dev/null |
    $PY -c 'import json,sys; r=[b for b in json.load(sys.stdin)["benchmarks"] if b.get("run_type")=="iteration"]; print(round(max(b["bytes_per_second"] for b in r)/1e9, 2))'
}
BW_FILTER="BM_ReadAvx512/$THREADS/|BM_ReadStreams/$THREADS/[48]/2048/"
if [[ -z "${BW_GBPS:-}" ]]; then
  [[ -x "$STREAM_BENCH" ]] || { echo "vs_llamacpp: no $STREAM_BENCH (ninja -C build-perf stream_bench) and no BW_GBPS" >&2; exit 1; }
  log "read bandwidth ($STREAM_BENCH $BW_FILTER)"
  BW_GBPS=$(stream_gbps "$BW_FILTER")
  BW_SRC="stream_bench --benchmark_filter='$BW_FILTER', best of 5, measured before the run"
else
  BW_SRC="BW_GBPS given"
fi
log "bandwidth roofline: $BW_GBPS GB/s"

# 4. the interleaved run
dsv3_exec() {  # the exec: entry for a model dir (THREADS/PP/TG/REPS come from bench_llamacpp.py)
  echo "exec:'$DSV3' bench --model '$1' --threads \$THREADS --prompt \$PP --gen \$TG --reps \$REPS --tg-empty --json $DSV3_FLAGS"
}
WAIT_POLICIES=${WAIT_POLICIES:-default}
DSV3_FLAGS=${DSV3_FLAGS---no-mmap}
dsv3_entries() {  # name suffix, model dir
  for w in $WAIT_POLICIES; do
    if [[ $w == default ]]; then ENTRIES+=("dsv3:$1=$(dsv3_exec "$2")")
    else ENTRIES+=("dsv3-$w:$1=$(dsv3_exec "$2" | sed "s|^exec:|exec:OMP_WAIT_POLICY=$w |")"); fi
  done
}
ENTRIES=()
for p in "${PRESETS[@]}"; do
  ENTRIES+=("llama.cpp:$p:BF16=$MODELS/$p-bf16.gguf")
  dsv3_entries "$p:BF16" "$MODELS/$p-hf"
  if [[ ${BF16_ACT:-0} == 1 ]]; then  # the opt-in bf16 activations (prefill), default wait policy
    ENTRIES+=("dsv3-bf16act:$p:BF16=$(dsv3_exec "$MODELS/$p-hf") --bf16-activations")
  fi
  if [[ -f "$MODELS/$p-int8/config.json" ]]; then
    ENTRIES+=("llama.cpp:$p:Q8_0=$MODELS/$p-q8_0.gguf")
    dsv3_entries "$p:INT8" "$MODELS/$p-int8"
  fi
done
log "bench_llamacpp.py: ${#ENTRIES[@]} entries x $ROUNDS rounds, $THREADS threads, pp$PP tg$TG, $REPS reps"
START=$(date -u +%FT%TZ)
$PY "$PEER_DIR/bench_llamacpp.py" --peer "$LLCPP/bin/llama_peer" --libdir "$LLCPP/lib" -t "$THREADS" \
  --pp "$PP" --tg "$TG" --reps "$REPS" --rounds "$ROUNDS" --out-json "$JSON" "${ENTRIES[@]}" >"$JSON.table.md"
END=$(date -u +%FT%TZ)
BW_AFTER=""
[[ -x "$STREAM_BENCH" ]] && BW_AFTER=$(stream_gbps "$BW_FILTER" || true)

# 5. the side-by-side
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
DIRTY=$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo "+local changes" || true)
printf 'BW_GBPS=%q BW_SRC=%q BW_AFTER=%q START=%q END=%q COMMIT=%q DIRTY=%q DSV3_FLAGS=%q\n' "$BW_GBPS" "$BW_SRC" \
  "$BW_AFTER" "$START" "$END" "$COMMIT" "$DIRTY" "$DSV3_FLAGS" >"$JSON.env"
fi  # REPORT_ONLY
export BW_GBPS BW_SRC BW_AFTER COMMIT DIRTY START END THREADS PP TG REPS ROUNDS DSV3 JSON DSV3_FLAGS
$PY - "$JSON" >"$OUT" <<'EOF'
import json, os, statistics, sys, platform
E = os.environ
res = json.load(open(sys.argv[1]))
bw = float(E["BW_GBPS"])
if E["BW_SRC"].startswith("stream_bench") and E.get("BW_AFTER"):  # measured twice: the better one is nearer
    bw = max(bw, float(E["BW_AFTER"]))                               # the machine's real limit
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
ncpu = os.cpu_count()
mem = int(next(l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal"))) / 1048576
by = {}
for r in res:
    by.setdefault(r["name"], []).append(r)
def med(name, key):
    return statistics.median(r[key] for r in by[name])
def fmt(x, d=1):
    return f"{x:.{d}f}"
print(f"Machine: {cpu}, {ncpu} cores, {mem:.0f} GiB; dsv3 {E['COMMIT']}{E['DIRTY']} ({E['DSV3']}); "
      f"llama.cpp {next((r.get('llama_cpp') for r in res if r.get('llama_cpp')), 'llama_peer')}.  ")
print(f"Run {E['START']} – {E['END']}: {E['THREADS']} threads, pp{E['PP']} / tg{E['TG']} (both from an empty cache), "
      f"{E['REPS']} reps per entry, the list {E['ROUNDS']}× round-robin; figures are medians over the rounds of each "
      f"entry's mean; every dsv3 entry with `{E.get('DSV3_FLAGS', '')}`.  ")
after = f"; {E['BW_AFTER']} GB/s after the run" if E.get("BW_AFTER") else ""
print(f"Bandwidth roofline: {bw} GB/s ({E['BW_GBPS']} GB/s: {E['BW_SRC']}{after}; the higher one is used). "
      f"Bandwidth fraction = weight bytes read per decoded token × tg t/s ÷ roofline.\n")
print(f"| model | weights | engine | pp{E['PP']} t/s | tg{E['TG']} t/s | MB weights/token | tg GB/s | "
      f"% of roofline | other load (cores) | dsv3 ÷ llama.cpp pp | dsv3 ÷ llama.cpp tg |")
print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for name in by:
    eng, preset, wt = name.split(":")  # names carry no "/": bench_llamacpp.py puts them in a file name
    pp, tg = med(name, "pp_tps"), med(name, "tg_tps")
    bpt = med(name, "bytes_per_token")
    gbps = tg * bpt / 1e9
    load = max(r["background_cores"] for r in by[name])
    per_round = " / ".join(fmt(r["tg_tps"]) for r in by[name])
    ratio_pp = ratio_tg = ""
    if eng.startswith("dsv3"):
        peer = f"llama.cpp:{preset}:" + ("Q8_0" if wt == "INT8" else wt)
        if peer in by:
            ratio_pp = fmt(pp / med(peer, "pp_tps"), 2)
            ratio_tg = fmt(tg / med(peer, "tg_tps"), 2)
    eng = "dsv3 --bf16-activations" if eng == "dsv3-bf16act" else eng.replace("dsv3-", "dsv3, OMP_WAIT_POLICY=")
    print(f"| {preset} | {wt} | {eng} | {fmt(pp)} | {fmt(tg)} ({per_round}) | {fmt(bpt / 1e6)} | {fmt(gbps)} | "
          f"{fmt(100 * gbps / bw, 0)}% | ≤ {load} | {ratio_pp} | {ratio_tg} |")
print("\ntg column: median (each round's mean). Weight bytes per token: llama.cpp from the GGUF tensor table "
      "(experts × top-k/E, one embedding row), dsv3 from its own weight table (same rule, norms left out).")
EOF
cat "$OUT"
log "table written to $OUT (raw results: $JSON)"
