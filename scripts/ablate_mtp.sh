#!/usr/bin/env bash
# Multi-token-prediction ablation on KJV (docs/recipe.md): configs/kjv-tiny.json trained for the same number
# of steps with MTP (depth 1, λ = 0.3 → 0.1) and without (λ = 0: the MTP module is not run), compared on the
# MAIN head's validation loss (the MTP module is discarded at inference, as in DeepSeek-V3 §2.2).
# Writes docs/ablate_mtp.{tsv,png} and prints a Markdown table.
#
#   scripts/ablate_mtp.sh [--steps N] [--work DIR]      env: ABL_STEPS (default 300), DSV3
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
STEPS=${ABL_STEPS:-300}
WORK=${ABL_WORK:-$ROOT/runs/ablate}
while [[ $# -gt 0 ]]; do
  case "$1" in
    --steps) STEPS=$2; shift 2 ;;
    --work) WORK=$2; shift 2 ;;
    *) echo "ablate_mtp.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
source "$ROOT/scripts/ablate_common.sh"

# The aux-free baseline run is shared with ablate_balance.sh when it already exists.
run_variant "balance_aux_free" "t['balance'] = {'mode': 'aux_free', 'alpha': 1e-4, 'gamma': 1e-3, 'gamma_off_frac': 0.05}"
run_variant "mtp_off" "t['balance'] = {'mode': 'aux_free', 'alpha': 1e-4, 'gamma': 1e-3, 'gamma_off_frac': 0.05}; t['mtp_lambda'] = 0.0; t['mtp_lambda_final'] = 0.0"
summarise "$ROOT/docs/ablate_mtp" balance_aux_free mtp_off
"$DSV3" plot --run "$WORK/balance_aux_free" --run "$WORK/mtp_off" --label "MTP on" --label "MTP off" \
  --out "$ROOT/docs/ablate_mtp.png" --title "KJV: MTP on vs off at $STEPS steps" >/dev/null
echo "plot: docs/ablate_mtp.png"
