#!/usr/bin/env python3
"""Turns a random `dsv3 init` checkpoint with an MTP module into one whose MTP module drafts well.

    python3 bench/make_draftable_model.py MODEL_DIR [--alpha 0.5]

Random weights make the MTP module a useless draft model (acceptance ~ 1/vocab), so speculative decoding
could only be measured at its worst. This edits the checkpoint in place (F32 or BF16 tensors; pure Python,
no dependencies), as tests/runtime/test_models.h does in memory:
  * every block's output projections (self_attn.o_proj, all down_proj) are scaled by alpha, so alpha = 0
    gives a bigram model (final hidden = norm(embed(t))) and larger alpha more context dependence;
  * the MTP module's eh_proj becomes [I | 0], so it reads the embedding of the token it is given and predicts
    what the main model will predict one position later: exact at alpha = 0, approximate above.
The architecture and the speed of every kernel are unchanged; only acceptance rates differ.
"""
import argparse
import json
import os
import struct
import sys
from array import array


def bf16_to_f32(raw):
    words = array("H")
    words.frombytes(raw)
    out = array("I", (w << 16 for w in words))
    return array("f", out.tobytes())


def f32_to_bf16(vals):
    bits = array("I")
    bits.frombytes(vals.tobytes())
    out = array("H")
    for b in bits:
        if (b & 0x7F800000) == 0x7F800000 and (b & 0x7FFFFF):  # NaN stays NaN
            out.append((b >> 16) | 0x40)
        else:  # round to nearest even
            out.append(((b + 0x7FFF + ((b >> 16) & 1)) >> 16) & 0xFFFF)
    return out.tobytes()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model_dir")
    ap.add_argument("--alpha", type=float, default=0.5)
    a = ap.parse_args()
    cfg = json.load(open(os.path.join(a.model_dir, "config.json")))
    n_layers, hidden = cfg["num_hidden_layers"], cfg["hidden_size"]
    if cfg.get("num_nextn_predict_layers", 0) < 1:
        sys.exit("the model has no MTP module (num_nextn_predict_layers = 0)")
    index = os.path.join(a.model_dir, "model.safetensors.index.json")
    files = sorted(set(json.load(open(index))["weight_map"].values())) if os.path.exists(index) else ["model.safetensors"]
    edited = 0
    for fname in files:
        path = os.path.join(a.model_dir, fname)
        with open(path, "r+b") as f:
            (hlen,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(hlen))
            base = 8 + hlen
            for name, t in header.items():
                if name == "__metadata__":
                    continue
                scale = name.endswith("o_proj.weight") or name.endswith("down_proj.weight")
                ident = name.endswith("eh_proj.weight")
                if not (scale or ident):
                    continue
                if t["dtype"] not in ("F32", "BF16"):
                    sys.exit(f"{name}: dtype {t['dtype']} not supported (use dsv3 init --dtype f32 or bf16)")
                b, e = t["data_offsets"]
                f.seek(base + b)
                raw = f.read(e - b)
                vals = bf16_to_f32(raw) if t["dtype"] == "BF16" else array("f", raw)
                if scale:
                    vals = array("f", (v * a.alpha for v in vals))
                else:
                    rows, cols = t["shape"]
                    assert rows == hidden and cols == 2 * hidden, name
                    vals = array("f", bytes(4 * rows * cols))
                    for r in range(rows):
                        vals[r * cols + r] = 1.0
                f.seek(base + b)
                f.write(f32_to_bf16(vals) if t["dtype"] == "BF16" else vals.tobytes())
                edited += 1
    print(f"edited {edited} tensors in {a.model_dir} (alpha {a.alpha})")


if __name__ == "__main__":
    main()
