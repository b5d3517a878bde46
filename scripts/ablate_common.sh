# Shared by scripts/ablate_*.sh (sourced): data preparation, one training run per variant, summaries.
# Needs ROOT, STEPS, WORK.
if [[ -z "${DSV3:-}" ]]; then  # the first build that has the subcommands (an older build may lack them)
  for b in "$ROOT/build/dsv3" "$ROOT"/build-*/dsv3 "$(command -v dsv3 || true)"; do
    [[ "$b" == *san* || "$b" == *fuzz* ]] && continue  # sanitizer builds are slow
    if [[ -x "$b" ]] && [[ $("$b" --help 2>/dev/null | grep -cE "^  (train|plot) ") -eq 2 ]]; then
      DSV3=$b; break
    fi
  done
fi
[[ -x "${DSV3:-}" ]] || { echo "no dsv3 binary; build it or set DSV3" >&2; exit 1; }
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
PY=$(command -v python3)
mkdir -p "$WORK"

# The KJV data of scripts/kjv.sh (reused when present).
KJV_WORK=${KJV_WORK:-$ROOT/runs/kjv}
if [[ ! -s "$KJV_WORK/data/manifest.json" ]]; then
  DSV3=$DSV3 "$ROOT/scripts/kjv.sh" --work "$KJV_WORK" --data-only
  [[ -s "$KJV_WORK/data/manifest.json" ]] || { echo "KJV data missing: run scripts/kjv.sh first" >&2; exit 1; }
fi
DATA=$KJV_WORK/data

# run_variant NAME PYTHON: configs/kjv-tiny.json with `t` (its "training" object) edited by PYTHON, trained
# for STEPS steps into WORK/NAME (skipped when that run already finished with the same config).
run_variant() {
  local name=$1 edit=$2 cfg="$WORK/$1.json"
  "$PY" - "$ROOT/configs/kjv-tiny.json" "$cfg" "$STEPS" <<PYEOF
import json, sys
j = json.load(open(sys.argv[1]))
t = j["training"]
t["steps"] = int(sys.argv[3])
t["time_budget_minutes"] = 0
t["eval_every"] = 50
t["ckpt_every"] = 0
$edit
json.dump(j, open(sys.argv[2], "w"), indent=2)
PYEOF
  if grep -qs '"finished": true' "$WORK/$name/summary.json" && cmp -s "$cfg" "$WORK/$name/variant.json"; then
    echo "== $name: done already"
    return
  fi
  rm -rf "$WORK/$name"
  echo "== $name: $STEPS steps"
  "$DSV3" train --config "$cfg" --data "$DATA" --out "$WORK/$name" --no-progress
  cp "$cfg" "$WORK/$name/variant.json"
}

# summarise OUT_PREFIX RUN...: OUT_PREFIX.tsv and a Markdown table on stdout.
summarise() {
  local out=$1; shift
  "$PY" - "$out" "$WORK" "$@" <<'PYEOF'
import json, sys
out, work, runs = sys.argv[1], sys.argv[2], sys.argv[3:]
rows = []
for r in runs:
    train, val = [], []
    for line in open(f"{work}/{r}/metrics.jsonl"):
        j = json.loads(line)
        (train if j["type"] == "train" else val).append(j)
    summ = json.load(open(f"{work}/{r}/summary.json"))
    def vio(lines):
        v = [sum(j["maxvio"]) / len(j["maxvio"]) for j in lines if j.get("maxvio")]
        return sum(v) / len(v) if v else float("nan")
    q = max(1, len(train) // 4)
    last_layers = [sum(j["maxvio"][l] for j in train[-q:]) / q for l in range(len(train[-1]["maxvio"]))]
    rows.append(dict(run=r, steps=train[-1]["step"], val_loss=val[-1]["val_loss"], train_main_ce=sum(j["main_ce"] for j in train[-q:]) / q,
                     maxvio_all=vio(train), maxvio_last=vio(train[-q:]), maxvio_last_per_layer=last_layers,
                     tokens_per_s=summ["tokens_per_s"], seconds=summ["seconds"]))
cols = ["run", "steps", "val_loss", "train_main_ce", "maxvio_all", "maxvio_last", "tokens_per_s", "seconds"]
with open(out + ".tsv", "w") as f:
    f.write("\t".join(cols + ["maxvio_last_per_layer"]) + "\n")
    for r in rows:
        f.write("\t".join(str(r[c]) for c in cols) + "\t" + ",".join(f"{x:.4f}" for x in r["maxvio_last_per_layer"]) + "\n")
print("| run | steps | val loss (main head) | train main CE (last ¼) | MaxVio (all steps) | MaxVio (last ¼) | MaxVio per layer (last ¼) | tokens/s | wall s |")
print("|---|---|---|---|---|---|---|---|---|")
for r in rows:
    print(f"| {r['run']} | {r['steps']} | {r['val_loss']:.4f} | {r['train_main_ce']:.4f} | {r['maxvio_all']:.3f} | {r['maxvio_last']:.3f} | "
          + " / ".join(f"{x:.2f}" for x in r["maxvio_last_per_layer"]) + f" | {r['tokens_per_s']:.0f} | {r['seconds']:.0f} |")
print(f"(written to {out}.tsv)")
PYEOF
}
