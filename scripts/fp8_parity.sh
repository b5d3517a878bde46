#!/usr/bin/env bash
# FP8 vs BF16 loss parity on the KJV data (docs/fp8.md): trains the same model from the same seed on the same
# batches with `dsv3 train --precision bf16` and `--precision fp8` for the same number of steps, then writes
# both loss curves and their relative difference to OUT.tsv and OUT.png (gnuplot) and prints the relative loss
# error at the end (DeepSeek-V3 §3.3: < 0.25%).
#
#   scripts/fp8_parity.sh [--steps N] [--blocks] [--fp32] [--out PREFIX] [--work DIR]
#   scripts/fp8_parity.sh --bench [--bench-steps N] [--bench-rounds R]
#     --blocks  also train fp8 with the Dgrad input (output gradient) in 128×128 blocks (the report's negative
#               result) and add it to the table and plot
#     --fp32    also train the float32 reference
#     --bench   instead: the cost per training step of fp32, bf16, fp8 (13-bit accumulator) and fp8 with a
#               float32 accumulator, each trained N steps (default 8) from scratch, R rounds (default 3)
#               interleaved; prints the median seconds per step (step 1, which includes warm-up, excluded)
#   env: STEPS (default 300), DSV3 (binary), KJV_WORK (runs/kjv: data from scripts/kjv.sh), FP8_WORK (runs/fp8)
#
# Finished runs with an identical config are reused; delete FP8_WORK/<name> to retrain one.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
STEPS=${STEPS:-300}
WORK=${FP8_WORK:-$ROOT/runs/fp8}
OUT=$ROOT/docs/fp8_parity
BLOCKS=0
FP32=0
BENCH=0
BENCH_STEPS=8
BENCH_ROUNDS=3
while [[ $# -gt 0 ]]; do
  case "$1" in
    --steps) STEPS=$2; shift 2 ;;
    --blocks) BLOCKS=1; shift ;;
    --fp32) FP32=1; shift ;;
    --bench) BENCH=1; shift ;;
    --bench-steps) BENCH_STEPS=$2; shift 2 ;;
    --bench-rounds) BENCH_ROUNDS=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --work) WORK=$2; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "fp8_parity.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

# Data, binary and thread settings as the ablation scripts have them (KJV shards from scripts/kjv.sh).
source "$ROOT/scripts/ablate_common.sh"
"$DSV3" train --help | grep -q -- --precision || { echo "$DSV3 has no --precision; rebuild it" >&2; exit 1; }
echo "== dsv3: $DSV3; data: $DATA; $STEPS steps per precision"

# The model: configs/kjv-tiny.json's training recipe on widths that are multiples of 128, so that 1×128 tiles
# and 128×128 blocks are what they are at scale: hidden 256, dense MLP 512, experts 128 wide (16 routed, top-2,
# 1 shared), MLA with q_lora 128 / kv_lora 128 and 4 heads (nope 32 + rope 32, v 32); MTP depth 1.
CFG=$WORK/parity.json
"$PY" - "$ROOT/configs/kjv-tiny.json" "$CFG" "$STEPS" <<'PYEOF'
import json, sys
j = json.load(open(sys.argv[1]))
j.update(hidden_size=256, intermediate_size=512, moe_intermediate_size=128, num_attention_heads=4,
         num_key_value_heads=4, q_lora_rank=128, kv_lora_rank=128, qk_nope_head_dim=32, qk_rope_head_dim=32,
         v_head_dim=32)
t = j["training"]
t.update(steps=int(sys.argv[3]), time_budget_minutes=0, batch_seqs=8, batch_seqs_start=0, batch_ramp_tokens=0,
         eval_every=50, ckpt_every=0, log_every=1)
json.dump(j, open(sys.argv[2], "w"), indent=2)
PYEOF

if [[ $BENCH -eq 1 ]]; then
  "$PY" - "$CFG" "$WORK/bench.json" "$WORK/bench_fp8_f32acc.json" <<'PYEOF'
import json, sys
j = json.load(open(sys.argv[1]))
j["training"].update(eval_every=0, eval_batches=1)
json.dump(j, open(sys.argv[2], "w"), indent=2)
j["training"].update(precision="fp8", fp8={"accum_bits": 23})
json.dump(j, open(sys.argv[3], "w"), indent=2)
PYEOF
  for ((r = 0; r < BENCH_ROUNDS; r++)); do
    for v in fp32 bf16 fp8 fp8_f32acc; do
      cfg=$WORK/bench.json prec=$v
      [[ $v == fp8_f32acc ]] && cfg=$WORK/bench_fp8_f32acc.json prec=fp8
      rm -rf "$WORK/bench_$v.$r"
      "$DSV3" train --config "$cfg" --data "$DATA" --out "$WORK/bench_$v.$r" --precision "$prec" --steps "$BENCH_STEPS" \
        --no-progress >/dev/null 2>&1
    done
  done
  "$PY" - "$WORK" "$BENCH_ROUNDS" <<'PYEOF'
import json, statistics, sys
work, rounds = sys.argv[1], int(sys.argv[2])
base = None
print("| linear layers | s/step (median) | tokens/s | vs bf16 |")
print("|---|---|---|---|")
for v in ["fp32", "bf16", "fp8", "fp8_f32acc"]:
    dts = []
    for r in range(rounds):
        for line in open(f"{work}/bench_{v}.{r}/metrics.jsonl"):
            j = json.loads(line)
            if j["type"] == "train" and j["step"] > 1:
                dts.append(j["batch_seqs"] * 128 / j["tokens_per_s"])
    med = statistics.median(dts)
    if v == "bf16": base = med
    label = {"fp8": "fp8 (13-bit accumulator, promotion every 128)", "fp8_f32acc": "fp8 (float32 accumulator)"}.get(v, v)
    print(f"| {label} | {med:.3f} | {8 * 128 / med:.0f} | {'' if base is None else f'{med / base:.2f}×'} |")
PYEOF
  exit 0
fi

# run NAME PRECISION [PYTHON edit of the training object]
run() {
  local name=$1 prec=$2 edit=${3:-} cfg="$WORK/$1.json"
  "$PY" - "$CFG" "$cfg" <<PYEOF
import json, sys
j = json.load(open(sys.argv[1]))
t = j["training"]
$edit
json.dump(j, open(sys.argv[2], "w"), indent=2)
PYEOF
  if grep -qs '"finished": true' "$WORK/$name/summary.json" && cmp -s "$cfg" "$WORK/$name/variant.json" &&
     [[ $(cat "$WORK/$name/precision" 2>/dev/null) == "$prec" ]]; then
    echo "== $name: done already"
    return
  fi
  rm -rf "${WORK:?}/$name"
  echo "== $name: $STEPS steps, --precision $prec"
  "$DSV3" train --config "$cfg" --data "$DATA" --out "$WORK/$name" --precision "$prec" --no-progress
  cp "$cfg" "$WORK/$name/variant.json"
  echo "$prec" >"$WORK/$name/precision"
}

RUNS=(bf16 fp8)
run bf16 bf16
run fp8 fp8
if [[ $BLOCKS -eq 1 ]]; then
  run fp8_dgrad_blocks fp8 't["precision"] = "fp8"; t["fp8"] = {"dgrad_quant": "128x128"}'
  RUNS+=(fp8_dgrad_blocks)
fi
if [[ $FP32 -eq 1 ]]; then
  run fp32 fp32
  RUNS+=(fp32)
fi

# Table: per step the training loss (main-head cross-entropy, the number comparable across runs: the total
# objective also jumps when the MTP weight λ switches) of each run and the relative difference to bf16;
# summary: the relative error of the loss at the end (mean over the last 10% of the steps, and the final
# validation loss).
"$PY" - "$OUT" "$WORK" "${RUNS[@]}" <<'PYEOF'
import json, sys
out, work, runs = sys.argv[1], sys.argv[2], sys.argv[3:]
train, val, summ = {}, {}, {}
for r in runs:
    train[r], val[r] = {}, {}
    for line in open(f"{work}/{r}/metrics.jsonl"):
        j = json.loads(line)
        if j["type"] == "train": train[r][j["step"]] = j
        else: val[r][j["step"]] = j["val_loss"]
    summ[r] = json.load(open(f"{work}/{r}/summary.json"))
steps = sorted(set.intersection(*[set(train[r]) for r in runs]))
others = [r for r in runs if r != "bf16"]
with open(out + ".tsv", "w") as f:
    f.write("step\t" + "\t".join(f"loss_{r}" for r in runs) + "\t" + "\t".join(f"reldiff_{r}_vs_bf16" for r in others)
            + "\t" + "\t".join(f"reldiff_{r}_vs_bf16_mean20" for r in others)
            + "\t" + "\t".join(f"val_{r}" for r in runs) + "\n")
    rel = {r: [] for r in others}
    for s in steps:
        L = {r: train[r][s]["main_ce"] for r in runs}
        for r in others: rel[r].append((L[r] - L["bf16"]) / L["bf16"])
        ma = {r: sum(rel[r][-20:]) / len(rel[r][-20:]) for r in others}  # trailing 20-step mean
        vals = "\t".join("" if s not in val[r] else f"{val[r][s]:.6f}" for r in runs)
        f.write(f"{s}\t" + "\t".join(f"{L[r]:.6f}" for r in runs) + "\t"
                + "\t".join(f"{rel[r][-1]:.6e}" for r in others) + "\t"
                + "\t".join(f"{ma[r]:.6e}" for r in others) + "\t" + vals + "\n")
tail = max(1, len(steps) // 10)
last = steps[-tail:]
print(f"| run | steps | train main CE (mean of last {tail}) | rel. error vs bf16 | final val loss | rel. error vs bf16 | tokens/s | wall s |")
print("|---|---|---|---|---|---|---|---|")
ref_tail = sum(train["bf16"][s]["main_ce"] for s in last) / tail
ref_val = val["bf16"][max(val["bf16"])]
for r in runs:
    m = sum(train[r][s]["main_ce"] for s in last) / tail
    v = val[r][max(val[r])]
    print(f"| {r} | {steps[-1]} | {m:.4f} | {100 * (m - ref_tail) / ref_tail:+.3f}% | {v:.4f} | "
          f"{100 * (v - ref_val) / ref_val:+.3f}% | {summ[r]['tokens_per_s']:.0f} | {summ[r]['seconds']:.0f} |")
print(f"(written to {out}.tsv)")
PYEOF

# Plot: the loss curves, and the relative difference to bf16 (per step, and its trailing 20-step mean) with
# the report's ±0.25% band. Column layout of OUT.tsv: step, NCOL losses, NCOL−1 differences, NCOL−1 means, ...
NCOL=${#RUNS[@]}
TERM_GP="png size 1400,1000"
gnuplot -e "set terminal pngcairo" >/dev/null 2>&1 && TERM_GP="pngcairo size 1400,1000 font ',10'"
{
  echo "set terminal $TERM_GP noenhanced"
  echo "set output '$OUT.png'"
  echo "set multiplot layout 2,1 title 'dsv3 KJV, $STEPS steps, same seed and batches: fp8 = E4M3, 1x128 / 128x128 tiles, 13-bit accumulation promoted every 128'"
  echo "set grid; set key top right; set xlabel 'step'; set ylabel 'training loss (main-head CE)'; set yrange [3.5:8]"
  printf "plot"
  for ((i = 0; i < NCOL; i++)); do
    printf " '%s.tsv' using 1:%d with lines lw 1.2 lc %d title '%s'%s" "$OUT" $((i + 2)) $((i + 1)) "${RUNS[$i]}" \
      "$([[ $i -lt $((NCOL - 1)) ]] && echo ",")"
  done
  echo
  echo "set ylabel 'loss relative to bf16 (%)'; set yrange [-2:4]"
  echo "set arrow from graph 0, first 0.25 to graph 1, first 0.25 nohead dt 2 lc rgb 'red'"
  echo "set arrow from graph 0, first -0.25 to graph 1, first -0.25 nohead dt 2 lc rgb 'red'"
  echo "set label 'paper bound +-0.25%' at graph 0.01, first 0.4 tc rgb 'red'"
  printf "plot"
  for ((i = 1; i < NCOL; i++)); do
    printf " '%s.tsv' using 1:(100*\$%d) with lines lw 0.4 lc %d notitle," "$OUT" $((NCOL + 1 + i)) $((i + 1))
    printf " '%s.tsv' using 1:(100*\$%d) with lines lw 2.5 lc %d title '%s (20-step mean)'%s" "$OUT" $((2 * NCOL + i)) \
      $((i + 1)) "${RUNS[$i]}" "$([[ $i -lt $((NCOL - 1)) ]] && echo ",")"
  done
  echo
  echo "unset multiplot"
} >"$WORK/plot.gp"
gnuplot "$WORK/plot.gp"
echo "== plot: $OUT.png"
