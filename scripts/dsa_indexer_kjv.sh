#!/usr/bin/env bash
# DeepSeek-V3.2's two indexer-training stages on the KJV Bible (docs/dsa-training.md):
#   1. a dense KJV model: scripts/kjv.sh --work WORK (reused when WORK/run has finished)
#   2. its config as deepseek_v32 (index_n_heads 4, index_head_dim 128, index_topk TOPK): fresh indexers
#   3. dense warm-up: WARMUP steps from the dense checkpoint (dsv3 train --init-from); only the indexers train,
#      toward the main attention distribution (KL), MLA still dense
#   4. sparse training: SPARSE steps from the warm-up's checkpoint; MLA attends to each row's top-k, the main
#      model trains on the LM loss and the indexers on the KL over the selected keys
#   5. dsv3 plot --indexer: the top-k recall of the dense attention mass over both stages → PNG
#
#   scripts/dsa_indexer_kjv.sh [--work DIR] [--base-minutes M] [--warmup N] [--sparse N] [--topk K] [--png FILE]
#   env: DSV3 (binary), as scripts/kjv.sh
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$ROOT/runs/dsa-kjv
BASE_MINUTES=4
WARMUP=150
SPARSE=150
TOPK=32
PNG=$ROOT/docs/images/dsa_indexer_kjv.png
while [[ $# -gt 0 ]]; do
  case "$1" in
    --work) WORK=$2; shift 2 ;;
    --base-minutes) BASE_MINUTES=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --sparse) SPARSE=$2; shift 2 ;;
    --topk) TOPK=$2; shift 2 ;;
    --png) PNG=$2; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "dsa_indexer_kjv.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [[ -z "${DSV3:-}" ]]; then
  for b in "$ROOT/build/dsv3" "$ROOT"/build-*/dsv3; do
    [[ "$b" == *san* || "$b" == *fuzz* ]] && continue
    if [[ -x "$b" ]] && "$b" plot --help 2>/dev/null | grep -q -- --indexer; then DSV3=$b; break; fi
  done
fi
[[ -x "${DSV3:-}" ]] || { echo "dsa_indexer_kjv.sh: no dsv3 binary with plot --indexer; build it or set DSV3" >&2; exit 1; }
export DSV3
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}

# 1. The dense model.
"$ROOT/scripts/kjv.sh" --work "$WORK" --minutes "$BASE_MINUTES"
DENSE=$WORK/run/checkpoint

# 2.–4. The V3.2 configs of the two stages: the dense model's architecture plus the indexer keys, and a
# "training" object per stage (constant learning rates; the warm-up's is the report's 1e-3).
python3 - "$DENSE/config.json" "$WORK" "$TOPK" "$WARMUP" "$SPARSE" <<'EOF'
import json, sys
src, work, topk, warmup, sparse = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
c = json.load(open(src))
for k in ("torch_dtype", "quantization_config"):
    c.pop(k, None)
c.update(model_type="deepseek_v32", architectures=["DeepseekV32ForCausalLM"],
         index_n_heads=4, index_head_dim=128, index_topk=topk)
common = dict(seq_len=128, batch_seqs=8, grad_accum=1, warmup_steps=0, constant_frac=1.0, decay_frac=0.0,
              weight_decay=0.1, clip=1.0, seed=1, mtp_lambda=0.1, eval_every=50, eval_batches=4, ckpt_every=0)
stages = {
    "warmup": dict(common, steps=warmup, lr=1e-3, min_lr=1e-3,
                   balance={"mode": "aux_free", "alpha": 1e-4, "gamma": 0.0},
                   dsa={"stage": "dense_warmup", "kl_weight": 1.0}),
    "sparse": dict(common, steps=sparse, lr=3e-4, min_lr=3e-4,
                   balance={"mode": "aux_free", "alpha": 1e-4, "gamma": 1e-3},
                   dsa={"stage": "sparse", "indexer_lr": 1e-3, "kl_weight": 1.0}),
}
for name, t in stages.items():
    json.dump(dict(c, training=t), open(f"{work}/v32-{name}.json", "w"), indent=2)
EOF

run_stage() {  # name, init-from dir
  local name=$1 init=$2 out=$WORK/v32-$1
  if [[ -f "$out/summary.json" ]] && python3 -c "import json,sys;sys.exit(0 if json.load(open('$out/summary.json'))['finished'] else 1)"; then
    echo "== $out already finished"
    return
  fi
  rm -rf "$out"
  echo "== $name: dsv3 train --config $WORK/v32-$name.json --init-from $init"
  "$DSV3" train --config "$WORK/v32-$name.json" --data "$WORK/data" --out "$out" --init-from "$init"
}
run_stage warmup "$DENSE"
run_stage sparse "$WORK/v32-warmup/checkpoint"

# 5. The plot and the numbers.
mkdir -p "$(dirname "$PNG")"
"$DSV3" plot --indexer --run "$WORK/v32-warmup" --run "$WORK/v32-sparse" --label "dense warm-up" \
  --label "sparse" --title "KJV: lightning indexer (top-$TOPK of 128), dense warm-up then sparse training" --out "$PNG"
python3 - "$WORK" <<'EOF'
import json, sys
work = sys.argv[1]
def lines(name, kind):
    return [j for j in map(json.loads, open(f"{work}/v32-{name}/metrics.jsonl")) if j["type"] == kind]
for name in ("warmup", "sparse"):
    tr = lines(name, "train")
    mean = lambda xs: sum(xs) / len(xs)
    first, last = tr[0], tr[-10:]
    print(f"{name}: step 1 recall {first['index_recall_mean']:.4f} KL {mean(first['indexer_kl']):.4f} "
          f"main CE {first['main_ce']:.4f}; last 10 steps recall {mean([j['index_recall_mean'] for j in last]):.4f} "
          f"KL {mean([mean(j['indexer_kl']) for j in last]):.4f} main CE {mean([j['main_ce'] for j in last]):.4f}; "
          f"val {[round(j['val_loss'], 4) for j in lines(name, 'val')]}")
EOF
