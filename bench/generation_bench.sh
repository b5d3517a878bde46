#!/usr/bin/env bash
# Generation speed (docs/PERF.md "Generation"): decode tokens/s of `dsv3 generate` without and with MTP
# drafts (depth 1-3), and the aggregate throughput of 1, 4 and 16 streams decoded together (continuous
# batching, `generate --batch`). Three models of one architecture: a random `dsv3 init` checkpoint (its MTP
# module drafts at chance: the overhead of speculation), and the same checkpoint made "draftable" by
# bench/make_draftable_model.py with alpha 0.03 (partial acceptance) and alpha 0 (every draft accepted:
# the ceiling).
#
#   bench/generation_bench.sh [--bin BUILD/dsv3] [--config CONFIG.json] [--work DIR] [--gen N] [--reps N]
#
# Prints Markdown tables; each number is the best of --reps runs (default 3). Set OMP_NUM_THREADS to pin
# the thread count.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
BIN=${BIN:-$here/../build/dsv3}
WORK=${WORK:-/tmp/dsv3_generation_bench}
CONFIG=""
GEN=128
REPS=3
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) BIN=$2; shift 2 ;;
    --config) CONFIG=$2; shift 2 ;;
    --work) WORK=$2; shift 2 ;;
    --gen) GEN=$2; shift 2 ;;
    --reps) REPS=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$WORK"
if [ -z "$CONFIG" ]; then
  # A small DeepSeek-V3-shaped MoE with one MTP module (~65M parameters, BF16).
  CONFIG=$WORK/bench_config.json
  cat > "$CONFIG" <<'EOF'
{"model_type": "deepseek_v3", "vocab_size": 8192, "hidden_size": 512, "intermediate_size": 1536,
 "moe_intermediate_size": 256, "num_hidden_layers": 4, "num_nextn_predict_layers": 1, "num_attention_heads": 8,
 "num_key_value_heads": 8, "n_shared_experts": 1, "n_routed_experts": 32, "num_experts_per_tok": 4, "n_group": 4,
 "topk_group": 2, "routed_scaling_factor": 2.5, "scoring_func": "sigmoid", "topk_method": "noaux_tc",
 "norm_topk_prob": true, "first_k_dense_replace": 1, "moe_layer_freq": 1, "q_lora_rank": 192, "kv_lora_rank": 128,
 "qk_nope_head_dim": 64, "qk_rope_head_dim": 32, "v_head_dim": 64, "rope_theta": 10000.0, "rms_norm_eps": 1e-6,
 "max_position_embeddings": 4096, "tie_word_embeddings": false, "bos_token_id": 0, "eos_token_id": 1,
 "hidden_act": "silu", "initializer_range": 0.02}
EOF
fi
"$BIN" init --config "$CONFIG" --out "$WORK/random" --seed 1 > /dev/null
for a in 0.03 0; do
  rm -rf "$WORK/draftable_$a" && cp -r "$WORK/random" "$WORK/draftable_$a"
  python3 "$here/make_draftable_model.py" "$WORK/draftable_$a" --alpha "$a" > /dev/null
done

PROMPT=$(seq -s ' ' 2 33)  # 32 prompt tokens
# best decode tok/s (and the last acceptance line) over REPS runs of: generate ARGS...
run() {
  local best=0 acc="" out
  for _ in $(seq "$REPS"); do
    out=$("$BIN" generate --ids "$PROMPT" -n "$GEN" --ignore-eos --stats --print-ids "$@" 2>&1 >/dev/null)
    local tps
    tps=$(echo "$out" | sed -n 's/^decode: .*(\([0-9.]*\) tok\/s.*/\1/p')
    best=$(python3 -c "print(max($best, $tps))")
    acc=$(echo "$out" | sed -n 's/^mtp: .*(acceptance \([0-9.]*%\)), mean accepted length \([0-9.]*\).*/\1 accepted, \2 per step/p')
  done
  echo "$best|$acc"
}

echo "threads: ${OMP_NUM_THREADS:-$(nproc)} (OMP_NUM_THREADS), $GEN generated tokens, 32-token prompt, best of $REPS"
echo
echo "| model | decoding | decode tok/s | MTP acceptance |"
echo "|---|---|---:|---|"
for m in random draftable_0.03 draftable_0; do
  for spec in "none" "mtp 1" "mtp 2" "mtp 3"; do
    set -- $spec
    if [ "$1" = none ]; then r=$(run --model "$WORK/$m" --temp 0); label="plain (greedy)"
    else r=$(run --model "$WORK/$m" --temp 0 --spec mtp --draft "$2"); label="MTP draft $2 (greedy)"; fi
    echo "| $m | $label | ${r%%|*} | ${r#*|} |"
  done
done
echo
echo "| model | decoding | streams | aggregate decode tok/s |"
echo "|---|---|---:|---:|"
for spec in none mtp; do
  for b in 1 4 16; do
    args=(--model "$WORK/draftable_0.03" --temp 0.8 --seed 5 --batch "$b")
    [ "$spec" = mtp ] && args+=(--spec mtp --draft 1)
    best=0
    for _ in $(seq "$REPS"); do
      out=$("$BIN" generate --ids "$PROMPT" -n "$GEN" --ignore-eos --stats --print-ids "${args[@]}" 2>&1 >/dev/null)
      tps=$(echo "$out" | sed -n 's/^decode: .*(\([0-9.]*\) tok\/s.*/\1/p')
      best=$(python3 -c "print(max($best, $tps))")
    done
    echo "| draftable_0.03 | $( [ "$spec" = mtp ] && echo "MTP draft 1 (T 0.8)" || echo "plain (T 0.8)") | $b | $best |"
  done
done
