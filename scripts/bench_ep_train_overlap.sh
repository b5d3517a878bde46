#!/bin/bash
# The EP training step with the two-micro-batch overlap off and on, against one process (docs/PERF.md
# "Scale-out: training", docs/scale-out-training-ep.md). Makes the random model once, then runs
# `dsv3 grad` interleaved (2 threads, --ep 2 off, --ep 2 on, 1 thread) REPS times and prints the medians of the
# step and of the per-rank split.
#   scripts/bench_ep_train_overlap.sh [BUILD_DIR] [REPS] [SEQS]      (defaults: build 5 8)
set -euo pipefail
BUILD=${1:-build}
REPS=${2:-5}
SEQS=${3:-8}
BIN=$BUILD/dsv3
W=${DSV3_BENCH_DIR:-/tmp/dsv3_ep_overlap}
NICE=${DSV3_BENCH_NICE:-0}
mkdir -p "$W"
if [ ! -f "$W/model/config.json" ]; then
  python3 - "$W" <<'PY'
import json, sys
w = sys.argv[1]
c = {"model_type": "deepseek_v3", "vocab_size": 2048, "hidden_size": 512, "intermediate_size": 1024,
     "moe_intermediate_size": 256, "num_hidden_layers": 4, "num_nextn_predict_layers": 1,
     "num_attention_heads": 8, "num_key_value_heads": 8, "n_shared_experts": 1, "n_routed_experts": 64,
     "num_experts_per_tok": 6, "n_group": 8, "topk_group": 4, "routed_scaling_factor": 2.5,
     "scoring_func": "sigmoid", "topk_method": "noaux_tc", "norm_topk_prob": True, "first_k_dense_replace": 1,
     "moe_layer_freq": 1, "q_lora_rank": 128, "kv_lora_rank": 128, "qk_nope_head_dim": 32,
     "qk_rope_head_dim": 16, "v_head_dim": 32, "rope_theta": 10000.0, "rms_norm_eps": 1e-6,
     "max_position_embeddings": 4096, "tie_word_embeddings": False, "bos_token_id": 0, "eos_token_id": 1,
     "hidden_act": "silu", "initializer_range": 0.02}
json.dump(c, open(w + "/config.json", "w"), indent=2)
PY
  "$BIN" init --config "$W/config.json" --out "$W/model" --seed 1
fi
python3 -c "
import random
random.seed(3)
for b in range($SEQS): print(' '.join(str(random.randrange(2048)) for _ in range(128)))" > "$W/ids.txt"
IDS=()
while read -r l; do IDS+=(--ids "$l"); done < "$W/ids.txt"
MPI="mpirun --oversubscribe --allow-run-as-root -np 2 -x OMP_NUM_THREADS=1"
LOG="$W/results.txt"
: > "$LOG"
for i in $(seq 1 "$REPS"); do
  for mode in 2t ep_off ep_on 1t; do
    case $mode in
      1t | 2t) cmd=(env OMP_NUM_THREADS=${mode%t} nice -n "$NICE" "$BIN" grad --model "$W/model" --out "$W/g.safetensors" "${IDS[@]}") ;;
      ep_*) cmd=(nice -n "$NICE" $MPI "$BIN" grad --model "$W/model" --out "$W/g.safetensors" "${IDS[@]}" --ep 2 --overlap "${mode#ep_}") ;;
    esac
    echo "== $mode load $(cut -d' ' -f1 /proc/loadavg)" >> "$LOG"
    "${cmd[@]}" 2>&1 | grep -E "^step|^rank" >> "$LOG"
  done
done
python3 - "$LOG" <<'PY'
import re, statistics as st, sys
runs = {}
cur = None
for l in open(sys.argv[1]):
    m = re.match(r"== (\S+) load (\S+)", l)
    if m:
        cur = runs.setdefault(m.group(1), {"step": [], "split": [], "load": []})
        cur["load"].append(float(m.group(2)))
        continue
    m = re.match(r"step ([\d.]+) s", l)
    if m:
        cur["step"].append(float(m.group(1)))
    m = re.match(r"rank \d: step ([\d.]+) s = compute ([\d.]+) \+ all-to-all post ([\d.]+) \+ wait ([\d.]+)", l)
    if m:
        cur["split"].append([float(x) for x in m.groups()])
base = st.median(runs["2t"]["step"])
for k in ("1t", "2t", "ep_off", "ep_on"):
    r = runs[k]
    line = f"{k:7s} step {st.median(r['step']):.3f} s (x{base / st.median(r['step']):.2f} vs 2 threads, load {st.median(r['load']):.1f})"
    if r["split"]:
        s = [st.median(c) for c in zip(*r["split"])]
        line += f"  ranks: compute {s[1]:.3f} + post {s[2]:.4f} + wait {s[3]:.3f} s"
    print(line)
PY
