#!/usr/bin/env bash
# The main job: install dependencies, build dsv3, then train a small DeepSeek-V3 (MLA, DeepSeekMoE with
# aux-loss-free balancing, MTP) on the King James Bible and print samples from it (scripts/kjv.sh,
# docs/training.md). Then talk to it:  build/dsv3 chat --model runs/kjv/run/checkpoint
#   KJV_MINUTES=N bash scripts/main.sh   training budget in minutes (default 10); other flags: scripts/kjv.sh --help
set -euo pipefail
cd "$(dirname "$0")/.."
dsv3=$(bash scripts/build.sh)
DSV3="$dsv3" bash scripts/kjv.sh "$@"
echo "== talk to it:  $dsv3 chat --model ${KJV_WORK:-runs/kjv}/run/checkpoint"
echo "==   or serve:  $dsv3 serve --model ${KJV_WORK:-runs/kjv}/run/checkpoint --port 8080"
