#!/usr/bin/env bash
# The main job. Until the KJV training pipeline lands, it shows the engine core on a random model:
# create a small DeepSeek-V3 (MLA + MoE + MTP) with `dsv3 init`, summarise it, compute logits.
set -euo pipefail
cd "$(dirname "$0")/.."
dsv3=$(bash scripts/build.sh)
out=${DSV3_OUT:-runs/demo}
mkdir -p "$out"
"$dsv3" init --config configs/v3-demo.json --out "$out/model" --seed 1 --dtype bf16
"$dsv3" info --model "$out/model"
"$dsv3" logits --model "$out/model" --ids "0 17 42 4095 7" --out "$out/logits.f32" --mtp-out "$out/mtp_logits.f32"
echo "logits: $out/logits.f32 ($(stat -c %s "$out/logits.f32") bytes = 5 x 8192 float32)"
"$dsv3" bench --model "$out/model" --prompt 128 --gen 64
