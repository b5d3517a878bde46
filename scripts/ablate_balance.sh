#!/usr/bin/env bash
# Load-balancing ablation on KJV (docs/recipe.md): the same tiny DeepSeek-V3 (configs/kjv-tiny.json) trained
# for the same number of steps with
#   aux_free  — DeepSeek-V3: bias-adjusted selection, γ = 1e-3, plus the tiny sequence-wise loss α = 1e-4
#   aux_free_g1e-2 — the same with γ = 1e-2 (a short run gives the bias few steps to move)
#   aux_loss  — a classic auxiliary balance loss, α = 0.01, no bias
#   none      — no balancing at all
# and compared on MaxVio_batch (mean over MoE layers; over the whole run and its last quarter) and the
# main-head validation loss. Writes docs/ablate_balance.{tsv,png} and prints a Markdown table.
#
#   scripts/ablate_balance.sh [--steps N] [--work DIR]      env: ABL_STEPS (default 300), DSV3
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
STEPS=${ABL_STEPS:-300}
WORK=${ABL_WORK:-$ROOT/runs/ablate}
while [[ $# -gt 0 ]]; do
  case "$1" in
    --steps) STEPS=$2; shift 2 ;;
    --work) WORK=$2; shift 2 ;;
    *) echo "ablate_balance.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
source "$ROOT/scripts/ablate_common.sh"

for mode in aux_free aux_free_g1e-2 aux_loss none; do
  case $mode in
    aux_free) bal='{"mode": "aux_free", "alpha": 1e-4, "gamma": 1e-3, "gamma_off_frac": 0.05}' ;;
    aux_free_g1e-2) bal='{"mode": "aux_free", "alpha": 1e-4, "gamma": 1e-2, "gamma_off_frac": 0.05}' ;;
    aux_loss) bal='{"mode": "aux_loss", "alpha": 0.01}' ;;
    none)     bal='{"mode": "none"}' ;;
  esac
  run_variant "balance_$mode" "t['balance'] = json.loads('''$bal''')"
done
summarise "$ROOT/docs/ablate_balance" balance_aux_free balance_aux_free_g1e-2 balance_aux_loss balance_none
"$DSV3" plot --run "$WORK/balance_aux_free" --run "$WORK/balance_aux_free_g1e-2" --run "$WORK/balance_aux_loss" \
  --run "$WORK/balance_none" --label "aux_free γ=1e-3" --label "aux_free γ=1e-2" --label aux_loss --label none --out "$ROOT/docs/ablate_balance.png" \
  --title "KJV: load balancing at $STEPS steps" >/dev/null
echo "plot: docs/ablate_balance.png"
