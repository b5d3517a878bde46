#!/usr/bin/env python3
"""Skew a checkpoint's MoE routing, for measuring expert-load imbalance (docs/scale-out-inference.md).

Rewrites, in place, every model.layers.L.mlp.gate.e_score_correction_bias of a safetensors checkpoint
(noaux_tc routing: experts are *selected* on score + bias, gates still come from the unbiased score):

    bias[e] = alpha * exp(-rank_L(e) / tau)

where rank_L is a random permutation of the experts per layer (seeded): a few experts per layer become
"hot", as in a trained model whose balancing has not caught up, and they land on arbitrary EP ranks.
Only the bias tensors' bytes are overwritten (F32 / BF16 as stored); nothing else in the files changes.

    scripts/skew_expert_bias.py MODEL_DIR [--alpha 0.5] [--tau 3] [--seed 1]
"""
import argparse
import glob
import json
import os
import struct
import sys

import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_dir")
    ap.add_argument("--alpha", type=float, default=0.5, help="bias of the hottest expert")
    ap.add_argument("--tau", type=float, default=3.0, help="decay of the bias over the expert ranking")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    files = sorted(glob.glob(os.path.join(a.model_dir, "*.safetensors")))
    if not files:
        sys.exit(f"{a.model_dir}: no .safetensors files")
    changed = 0
    for path in files:
        with open(path, "r+b") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            header = json.loads(f.read(n))
            base = 8 + n
            for name in sorted(header):
                if not name.endswith("mlp.gate.e_score_correction_bias"):
                    continue
                t = header[name]
                (E,) = t["shape"]
                rank = rng.permutation(E)
                bias = (a.alpha * np.exp(-rank / a.tau)).astype(np.float32)
                if t["dtype"] == "F32":
                    data = bias.tobytes()
                elif t["dtype"] == "BF16":  # round to nearest even
                    u = bias.view(np.uint32).astype(np.uint64)
                    data = (((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)).tobytes()
                else:
                    sys.exit(f"{path}: {name} has dtype {t['dtype']} (expected F32 or BF16)")
                begin, end = t["data_offsets"]
                assert end - begin == len(data), name
                f.seek(base + begin)
                f.write(data)
                changed += 1
    if changed == 0:
        sys.exit(f"{a.model_dir}: no e_score_correction_bias tensors (the model must use noaux_tc routing)")
    print(f"skewed {changed} router bias tensors (alpha {a.alpha}, tau {a.tau}, seed {a.seed})")


if __name__ == "__main__":
    main()
