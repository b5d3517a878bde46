#!/usr/bin/env python3
"""An independent float32 forward of the DeepSeek-V3 family in numpy, and the reference cases built with it.

Written from DeepSeek's own code, not from dsv3's C++ (tests/reference/README.md says what comes from where):
  * deepseek_v3 / kimi_k2 / deepseek_v32 (dense attention): inference/model.py of deepseek-ai/DeepSeek-V3 at
    commit 9b4e978 (precompute_freqs_cis, apply_rotary_emb, MLA in its naive form, Gate, MoE, Block,
    Transformer), with HF config keys mapped onto its ModelArgs as ../shared/testdata/README.md states for the
    official vectors (args.mscale = rope_scaling.mscale_all_dim; YaRN whenever rope_scaling.type is yarn).
  * deepseek_v2: DeepSeek-V2's modeling_deepseek.py (Hugging Face remote code): DeepseekV2YarnRotaryEmbedding
    (cos/sin x yarn_get_mscale(factor, mscale) / yarn_get_mscale(factor, mscale_all_dim)), the attention's
    softmax scale x yarn_get_mscale(factor, mscale_all_dim)^2, and MoEGate with topk_method greedy /
    group_limited_greedy, softmax scores, norm_topk_prob and routed_scaling_factor as it applies them.
  * MTP (num_nextn_predict_layers): the module ../shared/testdata/README.md defines.
Everything is float32 from the stored values (BF16 widened, FP8 E4M3 decoded with weight_scale_inv), as the
reference vectors in ../shared/testdata were computed.

Usage:
  deepseek_ref.py logits DIR OUT       every sequence of DIR/ids.txt -> OUT/logits_K.f32 (+ mtp_logits_K.f32)
  deepseek_ref.py make CASE OUT        a generated case: config.json, model.safetensors, ids.txt, logits, case.json
  deepseek_ref.py list                 the generated cases' names
"""
import json
import math
import os
import struct
import sys

import numpy as np

F32 = np.float32
# The compute dtype: float32 as DeepSeek's vectors were computed (`logits`); float64 for the generated cases
# (`make`), whose expected values then carry no float32 rounding of their own. The RoPE frequencies and
# position x frequency products stay float32 in both: model.py defines them so (rope_tables).
DT = np.float32

# ----------------------------------------------------------------------------------------------- safetensors


def _e4m3_table():
    t = np.zeros(256, dtype=np.float64)
    for b in range(256):
        s = -1.0 if b & 0x80 else 1.0
        e, m = (b >> 3) & 0xF, b & 0x7
        if e == 0xF and m == 0x7:
            t[b] = np.nan
        elif e == 0:
            t[b] = s * (m / 8.0) * 2.0**-6
        else:
            t[b] = s * (1.0 + m / 8.0) * 2.0 ** (e - 7)
    return t.astype(F32)


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    base = 8 + n
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        a, b = meta["data_offsets"]
        raw = data[base + a : base + b]
        shape = tuple(meta["shape"])
        dt = meta["dtype"]
        if dt == "F32":
            v = np.frombuffer(raw, dtype="<f4").astype(F32)
        elif dt == "BF16":
            v = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(F32)
        elif dt == "F16":
            v = np.frombuffer(raw, dtype="<f2").astype(F32)
        elif dt == "F8_E4M3":
            v = _e4m3_table()[np.frombuffer(raw, dtype=np.uint8)]
        else:
            raise ValueError(f"{path}: tensor {name}: dtype {dt} not supported")
        out[name] = v.reshape(shape)
    return out


def load_weights(d):
    w = {}
    for fn in sorted(os.listdir(d)):
        if fn.endswith(".safetensors"):
            w.update(read_safetensors(os.path.join(d, fn)))
    # FP8 blocks: W = E4M3 x weight_scale_inv per 128x128 block (weight_dequant), in float32.
    for name in [n for n in w if n.endswith(".weight_scale_inv")]:
        wn = name[: -len("_scale_inv")]
        s = w.pop(name)
        q = w[wn]
        rows = np.repeat(s, 128, axis=0)[: q.shape[0]]
        w[wn] = (q * np.repeat(rows, 128, axis=1)[:, : q.shape[1]]).astype(F32)
    return w


def to_bf16_bits(x):
    """float32 -> bf16 bit patterns, round to nearest even."""
    u = np.ascontiguousarray(x, dtype=F32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return u.astype(np.uint16)


def write_safetensors(path, tensors):
    """tensors: {name: (dtype 'F32'|'BF16', float32 array)}; names sorted, offsets contiguous."""
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name in sorted(tensors):
        dt, a = tensors[name]
        raw = to_bf16_bits(a).tobytes() if dt == "BF16" else np.ascontiguousarray(a, dtype="<f4").tobytes()
        header[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


# ------------------------------------------------------------------------------------------------- the model


class Config:
    def __init__(self, j):
        self.j = j
        self.model_type = j["model_type"]
        self.v2 = self.model_type == "deepseek_v2"  # HF DeepSeek-V2 rules; every other type: model.py's
        g = lambda k, d=None: j.get(k, d) if j.get(k, d) is not None else d
        self.vocab, self.dim = j["vocab_size"], j["hidden_size"]
        self.inter, self.moe_inter = j["intermediate_size"], g("moe_intermediate_size", 0)
        self.n_layers, self.n_mtp = j["num_hidden_layers"], g("num_nextn_predict_layers", 0)
        self.n_heads = j["num_attention_heads"]
        self.n_routed, self.n_shared = g("n_routed_experts", 0), g("n_shared_experts", 0)
        self.topk = g("num_experts_per_tok", 0)
        self.n_group, self.topk_group = g("n_group", 1), g("topk_group", 1)
        self.route_scale = float(g("routed_scaling_factor", 1.0))
        self.score_func = g("scoring_func", "softmax" if self.v2 else "sigmoid")
        self.topk_method = g("topk_method", "greedy" if self.v2 else "noaux_tc")
        self.norm_topk_prob = bool(g("norm_topk_prob", not self.v2))
        self.first_dense, self.moe_freq = g("first_k_dense_replace", 0), g("moe_layer_freq", 1)
        self.q_lora = g("q_lora_rank", 0)
        self.kv_lora = j["kv_lora_rank"]
        self.dn, self.dr, self.dv = j["qk_nope_head_dim"], j["qk_rope_head_dim"], j["v_head_dim"]
        self.theta = float(g("rope_theta", 10000.0))
        self.eps = float(g("rms_norm_eps", 1e-6))
        rs = j.get("rope_scaling")
        self.yarn = rs if rs and rs.get("type", rs.get("rope_type")) == "yarn" else None
        if not self.v2 and self.n_routed and self.norm_topk_prob != (self.score_func == "sigmoid"):
            # model.py's Gate normalises exactly when scores are sigmoid; it has no norm_topk_prob.
            raise ValueError("model.py cannot express norm_topk_prob = %s with %s scores" %
                             (self.norm_topk_prob, self.score_func))

    def is_moe(self, layer):
        return self.n_routed > 0 and layer >= self.first_dense and layer % self.moe_freq == 0


def yarn_get_mscale(scale, mscale):  # DeepSeek-V2 modeling_deepseek.py
    return 1.0 if scale <= 1 else 0.1 * mscale * math.log(scale) + 1.0


def rope_tables(c, n):
    """cos, sin [n, dr/2] float32 (interleaved pairs: pair i is (x[2i], x[2i+1]))."""
    dim, base = c.dr, c.theta
    # float64 then rounded: the correctly rounded float32 of base ** (2i/dim), which torch's float32 pow gives.
    freqs = (1.0 / (base ** (np.arange(0, dim, 2, dtype=np.float64) / dim))).astype(F32)
    amp = 1.0
    if c.yarn:
        y = c.yarn
        factor, orig = float(y["factor"]), y.get("original_max_position_embeddings", 4096)
        bf, bs = y.get("beta_fast", 32), y.get("beta_slow", 1)

        def corr_dim(rot):
            return dim * math.log(orig / (rot * 2 * math.pi)) / (2 * math.log(base))

        low, high = max(math.floor(corr_dim(bf)), 0), min(math.ceil(corr_dim(bs)), dim - 1)
        if low == high:
            high += 0.001
        ramp = np.clip((np.arange(dim // 2, dtype=F32) - F32(low)) / F32(high - low), F32(0), F32(1)).astype(F32)
        if c.v2:  # DeepseekV2YarnRotaryEmbedding._set_cos_sin_cache
            freq_extra = freqs
            freq_inter = (F32(1.0) / (F32(factor) * (base ** (np.arange(0, dim, 2, dtype=np.float64) / dim)).astype(F32)))
            mask = F32(1) - ramp
            freqs = (freq_inter * (F32(1) - mask) + freq_extra * mask).astype(F32)
            amp = yarn_get_mscale(factor, y.get("mscale", 1)) / yarn_get_mscale(factor, y.get("mscale_all_dim", 0))
        else:  # precompute_freqs_cis
            smooth = F32(1) - ramp
            freqs = (freqs / F32(factor) * (F32(1) - smooth) + freqs * smooth).astype(F32)
    ang = np.outer(np.arange(n, dtype=F32), freqs).astype(F32)
    cos, sin = np.cos(ang.astype(DT)).astype(DT), np.sin(ang.astype(DT)).astype(DT)
    return (cos * DT(amp)).astype(DT), (sin * DT(amp)).astype(DT)


def softmax_scale(c):
    s = (c.dn + c.dr) ** -0.5
    if c.yarn:
        factor = float(c.yarn["factor"])
        if c.v2:  # DeepseekV2Attention.__init__
            all_dim = c.yarn.get("mscale_all_dim", 0)
            if all_dim:
                m = yarn_get_mscale(factor, all_dim)
                s = s * m * m
        else:  # MLA.__init__: mscale = 0.1 * args.mscale * ln(rope_factor) + 1, args.mscale = mscale_all_dim
            m = 0.1 * c.yarn.get("mscale_all_dim", 0.0) * math.log(factor) + 1.0
            s = s * m * m
    return s


def rope(x, cos, sin):
    """x [..., T, (H,) dr] with cos/sin [T, dr/2] broadcast over heads by the caller's shapes."""
    a, b = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = a * cos - b * sin
    out[..., 1::2] = a * sin + b * cos
    return out


def rmsnorm(x, w, eps):
    x = x.astype(DT)
    r = DT(1) / np.sqrt((x * x).mean(axis=-1, keepdims=True, dtype=DT) + DT(eps))
    return (x * r * w).astype(DT)


def lin(x, w):
    return (x @ w.T).astype(DT)


def silu(x):
    return (x / (DT(1) + np.exp(-x))).astype(DT)


def softmax(x, axis=-1):
    m = x.max(axis=axis, keepdims=True)
    e = np.exp(x - m)
    return (e / e.sum(axis=axis, keepdims=True, dtype=DT)).astype(DT)


class Model:
    def __init__(self, d):
        self.c = Config(json.load(open(os.path.join(d, "config.json"))))
        self.w = {k: v.astype(DT) for k, v in load_weights(d).items()}

    def mlp(self, p, x):
        w = self.w
        return lin(silu(lin(x, w[p + "gate_proj.weight"])) * lin(x, w[p + "up_proj.weight"]), w[p + "down_proj.weight"])

    def attn(self, p, x, cache, pos0, cos, sin):
        """x [T, dim] of positions pos0..; cache: (latent, k_pe) of the earlier positions or None."""
        c, w = self.c, self.w
        T, H = x.shape[0], c.n_heads
        if c.q_lora:
            q = lin(rmsnorm(lin(x, w[p + "q_a_proj.weight"]), w[p + "q_a_layernorm.weight"], c.eps), w[p + "q_b_proj.weight"])
        else:
            q = lin(x, w[p + "q_proj.weight"])
        q = q.reshape(T, H, c.dn + c.dr)
        cs, sn = cos[pos0 : pos0 + T, None, :], sin[pos0 : pos0 + T, None, :]
        q_pe = rope(q[..., c.dn :], cs, sn)
        kv = lin(x, w[p + "kv_a_proj_with_mqa.weight"])
        lat = rmsnorm(kv[:, : c.kv_lora], w[p + "kv_a_layernorm.weight"], c.eps)
        k_pe = rope(kv[:, c.kv_lora :], cos[pos0 : pos0 + T], sin[pos0 : pos0 + T])
        if cache is not None:
            lat, k_pe = np.concatenate([cache[0], lat]), np.concatenate([cache[1], k_pe])
        S = lat.shape[0]
        kvb = lin(lat, w[p + "kv_b_proj.weight"]).reshape(S, H, c.dn + c.dv)
        k = np.concatenate([kvb[..., : c.dn], np.broadcast_to(k_pe[:, None, :], (S, H, c.dr))], axis=-1)
        qf = np.concatenate([q[..., : c.dn], q_pe], axis=-1)
        sc = (np.matmul(qf.transpose(1, 0, 2), k.transpose(1, 2, 0)) * DT(softmax_scale(c))).astype(DT)  # [H, T, S]
        qpos = np.arange(pos0, pos0 + T)[:, None]
        sc = np.where(np.arange(S)[None, :] > qpos, DT(-np.inf), sc)
        pr = softmax(sc)
        o = np.matmul(pr, kvb[..., c.dn :].transpose(1, 0, 2)).transpose(1, 0, 2).reshape(T, H * c.dv)
        return lin(o, w[p + "o_proj.weight"]), (lat, k_pe)

    def gate(self, p, x):
        """-> indices [T, k], weights [T, k], margin [T] (selection and group margins, the smaller)."""
        c, w = self.c, self.w
        T, E = x.shape[0], c.n_routed
        logits = lin(x, w[p + "weight"])
        s = softmax(logits) if c.score_func == "softmax" else (DT(1) / (DT(1) + np.exp(-logits))).astype(DT)
        bias = w.get(p + "e_score_correction_bias")
        sel = (s + bias).astype(DT) if bias is not None else s.copy()
        margin = np.full(T, np.inf)
        grouped = c.n_group > 1 and (c.topk_method == "group_limited_greedy" if c.v2 else True)
        if c.v2 and c.topk_method not in ("greedy", "group_limited_greedy"):
            raise ValueError(f"DeepSeek-V2's MoEGate has no topk_method {c.topk_method}")
        if grouped:
            G = c.n_group
            gs = sel.reshape(T, G, E // G)
            # model.py: amax without a bias, sum of the top-2 with one; V2's group_limited_greedy: the max.
            gsc = np.sort(gs, axis=-1)[..., -2:].sum(-1) if bias is not None else gs.max(-1)
            order = np.argsort(-gsc, axis=-1, kind="stable")
            srt = np.take_along_axis(gsc, order, -1)
            margin = np.minimum(margin, srt[:, c.topk_group - 1] - srt[:, c.topk_group])
            keep = np.zeros((T, G), bool)
            np.put_along_axis(keep, order[:, : c.topk_group], True, -1)
            # model.py masks to -inf; V2 masks to 0.0 (the same choice: softmax scores are > 0).
            sel = np.where(np.repeat(keep, E // G, axis=1), sel, DT(0.0) if c.v2 else DT(-np.inf))
        order = np.argsort(-sel, axis=-1, kind="stable")
        srt = np.take_along_axis(sel, order, -1)
        if c.topk < E:
            margin = np.minimum(margin, srt[:, c.topk - 1] - srt[:, c.topk])
        idx = order[:, : c.topk]
        wts = np.take_along_axis(s, idx, -1)
        if c.v2:  # MoEGate.forward
            if c.topk > 1 and c.norm_topk_prob:
                wts = wts / (wts.sum(-1, keepdims=True, dtype=DT) + DT(1e-20))
            else:
                wts = wts * DT(c.route_scale)
        else:  # Gate.forward
            if c.score_func == "sigmoid":
                wts = wts / wts.sum(-1, keepdims=True, dtype=DT)
            wts = wts * DT(c.route_scale)
        return idx, wts.astype(DT), margin

    def moe(self, p, x):
        c = self.c
        idx, wts, margin = self.gate(p + "gate.", x)
        y = np.zeros_like(x)
        for e in np.unique(idx):  # MoE.forward: the experts with tokens, in index order
            rows, slot = np.nonzero(idx == e)
            y[rows] += self.mlp(f"{p}experts.{e}.", x[rows]) * wts[rows, slot, None]
        if c.n_shared:
            y = y + self.mlp(p + "shared_experts.", x)
        return y.astype(DT), margin

    def block(self, L, h, cache, pos0, cos, sin):
        c, w, p = self.c, self.w, f"model.layers.{L}."
        a, new_cache = self.attn(p + "self_attn.", rmsnorm(h, w[p + "input_layernorm.weight"], c.eps), cache, pos0, cos, sin)
        h = (h + a).astype(DT)
        x = rmsnorm(h, w[p + "post_attention_layernorm.weight"], c.eps)
        margin = None
        if c.is_moe(L):
            f, margin = self.moe(p + "mlp.", x)
        else:
            f = self.mlp(p + "mlp.", x)
        return (h + f).astype(DT), new_cache, margin

    def forward(self, ids, caches=None, pos0=0):
        """ids [T] at positions pos0.. -> logits [T, V], final hidden (after model.norm) [T, D], new caches,
        routing margins [T] (min over MoE layers)."""
        c, w = self.c, self.w
        n = pos0 + len(ids)
        cos, sin = rope_tables(c, n)
        h = w["model.embed_tokens.weight"][np.asarray(ids)]
        new, margin = [], np.full(len(ids), np.inf)
        for L in range(c.n_layers):
            h, nc, m = self.block(L, h, caches[L] if caches else None, pos0, cos, sin)
            new.append(nc)
            if m is not None:
                margin = np.minimum(margin, m)
        hn = rmsnorm(h, w["model.norm.weight"], c.eps)
        return lin(hn, w["lm_head.weight"]), hn, new, margin

    def mtp_forward(self, ids, hn):
        """MTP logits [T-1, V] (../shared/testdata/README.md, MTP section), module 0."""
        c, w = self.c, self.w
        L = c.n_layers
        p = f"model.layers.{L}."
        e = rmsnorm(w["model.embed_tokens.weight"][np.asarray(ids[1:])], w[p + "enorm.weight"], c.eps)
        x = lin(np.concatenate([e, rmsnorm(hn[:-1], w[p + "hnorm.weight"], c.eps)], axis=-1), w[p + "eh_proj.weight"])
        cos, sin = rope_tables(c, len(ids))
        h, _, m = self.block(L, x, None, 0, cos, sin)
        return lin(rmsnorm(h, w[p + "shared_head.norm.weight"], c.eps), w["lm_head.weight"]), m


def read_ids(path):
    return [[int(t) for t in line.split()] for line in open(path) if line.strip()]


def cmd_logits(d, out):
    m = Model(d)
    os.makedirs(out, exist_ok=True)
    for k, ids in enumerate(read_ids(os.path.join(d, "ids.txt"))):
        logits, hn, _, _ = m.forward(ids)
        logits.astype("<f4").tofile(os.path.join(out, f"logits_{k}.f32"))
        if m.c.n_mtp:
            m.mtp_forward(ids, hn)[0].astype("<f4").tofile(os.path.join(out, f"mtp_logits_{k}.f32"))


# --------------------------------------------------------------------------------------------- generated cases

BASE = {
    "vocab_size": 256, "hidden_size": 64, "intermediate_size": 128, "moe_intermediate_size": 32,
    "num_hidden_layers": 3, "num_nextn_predict_layers": 0, "num_attention_heads": 4, "num_key_value_heads": 4,
    "n_shared_experts": 1, "n_routed_experts": 16, "num_experts_per_tok": 4, "n_group": 4, "topk_group": 2,
    "routed_scaling_factor": 2.5, "scoring_func": "sigmoid", "topk_method": "noaux_tc", "norm_topk_prob": True,
    "first_k_dense_replace": 1, "moe_layer_freq": 1, "q_lora_rank": 32, "kv_lora_rank": 32,
    "qk_nope_head_dim": 16, "qk_rope_head_dim": 16, "v_head_dim": 16, "rope_theta": 10000.0,
    "rope_scaling": {"type": "yarn", "factor": 40, "original_max_position_embeddings": 4096, "beta_fast": 32,
                     "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 1.0},
    "rms_norm_eps": 1e-06, "max_position_embeddings": 163840, "tie_word_embeddings": False, "bos_token_id": 0,
    "eos_token_id": 1, "hidden_act": "silu", "initializer_range": 0.02, "model_type": "deepseek_v3",
    "architectures": ["DeepseekV3ForCausalLM"], "torch_dtype": "bfloat16",
}

V2 = {"model_type": "deepseek_v2", "architectures": ["DeepseekV2ForCausalLM"], "scoring_func": "softmax",
      "norm_topk_prob": False, "n_shared_experts": 2}

# name: (what it exercises, config overrides, sequence lengths, seed)
CASES = {
    "kimi_k2_tiny": (
        "Kimi-K2 style: model_type kimi_k2, rope_theta 50000, YaRN factor 32 with beta_fast = beta_slow = 1, "
        "n_group 1 / topk_group 1 with e_score_correction_bias, top-8 of 32, routed_scaling_factor 2.827",
        {"model_type": "kimi_k2", "rope_theta": 50000.0, "n_routed_experts": 32, "num_experts_per_tok": 8,
         "n_group": 1, "topk_group": 1, "routed_scaling_factor": 2.827,
         "rope_scaling": {"type": "yarn", "factor": 32.0, "original_max_position_embeddings": 4096,
                          "beta_fast": 1.0, "beta_slow": 1.0, "mscale": 1.0, "mscale_all_dim": 1.0}},
        [160, 41], 11),
    "v3_yarn_mscale": (
        "deepseek_v3, YaRN factor 40 with mscale 1.0 != mscale_all_dim 0.5: model.py's rule (softmax scale x "
        "(0.1 mscale_all_dim ln factor + 1)^2, cos/sin unscaled); 4 groups / top-2 with bias",
        {"rope_scaling": {"type": "yarn", "factor": 40, "original_max_position_embeddings": 4096,
                          "beta_fast": 32, "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 0.5}},
        [160, 23], 12),
    "v2_yarn_mscale": (
        "deepseek_v2 (V2-Lite style: plain q_proj, greedy softmax top-4 of 16, no bias), YaRN factor 40 with "
        "mscale 0.707 != mscale_all_dim 1.0: V2's rule (cos/sin x m(mscale)/m(mscale_all_dim), softmax scale x "
        "m(mscale_all_dim)^2)",
        dict(V2, q_lora_rank=None, topk_method="greedy", n_group=1, topk_group=1, routed_scaling_factor=1.0,
             max_position_embeddings=163840,
             rope_scaling={"type": "yarn", "factor": 40, "original_max_position_embeddings": 4096, "beta_fast": 32,
                           "beta_slow": 1, "mscale": 0.707, "mscale_all_dim": 1.0}),
        [160, 30], 13),
    "v2_group_limited": (
        "deepseek_v2 (V2 236B style): topk_method group_limited_greedy, 8 groups / top-3 (group score = max "
        "softmax score), top-6 of 32, no bias, routed_scaling_factor 16, q-LoRA, YaRN 0.707 / 0.707",
        dict(V2, n_routed_experts=32, num_experts_per_tok=6, n_group=8, topk_group=3, routed_scaling_factor=16.0,
             topk_method="group_limited_greedy",
             rope_scaling={"type": "yarn", "factor": 40, "original_max_position_embeddings": 4096, "beta_fast": 32,
                           "beta_slow": 1, "mscale": 0.707, "mscale_all_dim": 0.707}),
        [160, 52], 14),
}

MARGIN = 2e-4  # the routing margin every case guarantees (as ../shared/testdata)


def random_weights(c, rng):
    """HF names as DeepSeek publishes them; BF16 matrices and norms, F32 e_score_correction_bias."""
    t = {}

    def mat(name, n, k, gain=1.0):
        t[name] = ("BF16", (rng.standard_normal((n, k)) * gain / math.sqrt(k)).astype(F32))

    def norm(name, n):
        t[name] = ("BF16", (1.0 + 0.1 * rng.standard_normal(n)).astype(F32))

    def mlp(p, inter):
        mat(p + "gate_proj.weight", inter, c.dim)
        mat(p + "up_proj.weight", inter, c.dim)
        mat(p + "down_proj.weight", c.dim, inter)

    t["model.embed_tokens.weight"] = ("BF16", rng.standard_normal((c.vocab, c.dim)).astype(F32))
    H, qk = c.n_heads, c.dn + c.dr
    for L in range(c.n_layers):
        p = f"model.layers.{L}."
        norm(p + "input_layernorm.weight", c.dim)
        norm(p + "post_attention_layernorm.weight", c.dim)
        a = p + "self_attn."
        if c.q_lora:
            mat(a + "q_a_proj.weight", c.q_lora, c.dim)
            norm(a + "q_a_layernorm.weight", c.q_lora)
            mat(a + "q_b_proj.weight", H * qk, c.q_lora, 1.5)
        else:
            mat(a + "q_proj.weight", H * qk, c.dim, 1.5)
        mat(a + "kv_a_proj_with_mqa.weight", c.kv_lora + c.dr, c.dim, 1.5)
        norm(a + "kv_a_layernorm.weight", c.kv_lora)
        mat(a + "kv_b_proj.weight", H * (c.dn + c.dv), c.kv_lora, 1.5)
        mat(a + "o_proj.weight", c.dim, H * c.dv)
        if c.is_moe(L):
            m = p + "mlp."
            mat(m + "gate.weight", c.n_routed, c.dim, 2.0)
            if c.topk_method == "noaux_tc":
                t[m + "gate.e_score_correction_bias"] = ("F32", (0.05 * rng.standard_normal(c.n_routed)).astype(F32))
            for e in range(c.n_routed):
                mlp(f"{m}experts.{e}.", c.moe_inter)
            if c.n_shared:
                mlp(m + "shared_experts.", c.n_shared * c.moe_inter)
        else:
            mlp(p + "mlp.", c.inter)
    norm("model.norm.weight", c.dim)
    mat("lm_head.weight", c.vocab, c.dim)
    return t


def pick_ids(m, n, rng):
    """Token ids such that every MoE layer's routing at every position clears the margin (with headroom: the
    final full-sequence pass, rounded differently, must still clear MARGIN). Drawn at random, then the first
    position that fails is redrawn and the sequence re-run from there (earlier positions cannot change)."""
    ids = [int(t) for t in rng.integers(2, m.c.vocab, size=n)]
    start, caches = 0, None
    for _ in range(50 * n):
        _, _, full, margin = m.forward(ids[start:], caches, start)
        bad = np.nonzero(margin < 1.5 * MARGIN)[0]
        if bad.size == 0:
            return ids
        start = start + int(bad[0])
        caches = [(lat[:start], pe[:start]) for lat, pe in full] if start > 0 else None
        for _ in range(200):  # redraw this position alone until it passes, then re-run the rest
            ids[start] = int(rng.integers(2, m.c.vocab))
            if m.forward(ids[start : start + 1], caches, start)[3][0] >= 1.5 * MARGIN:
                break
    raise RuntimeError(f"no token ids clear the routing margin {1.5 * MARGIN}")


def cmd_make(name, out):
    global DT
    DT = np.float64
    what, over, lens, seed = CASES[name]
    cfg = json.loads(json.dumps(BASE))
    cfg.update(json.loads(json.dumps(over)))
    rng = np.random.default_rng(seed)
    c = Config(cfg)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    write_safetensors(os.path.join(out, "model.safetensors"), random_weights(c, rng))
    m = Model(out)
    seqs = [pick_ids(m, n, rng) for n in lens]
    with open(os.path.join(out, "ids.txt"), "w") as f:
        f.write("".join(" ".join(map(str, s)) + "\n" for s in seqs))
    worst = np.inf
    for k, ids in enumerate(seqs):
        logits, _, _, margin = m.forward(ids)
        worst = min(worst, float(margin.min()))
        logits.astype("<f4").tofile(os.path.join(out, f"logits_{k}.f32"))
    if worst < MARGIN:
        raise RuntimeError(f"{name}: routing margin {worst} < {MARGIN} on the full pass")
    with open(os.path.join(out, "case.json"), "w") as f:
        json.dump({"case": name, "what": what, "seed": seed, "lens": lens, "routing_margin": worst,
                   "softmax_scale": softmax_scale(c), "generator": "tests/reference/deepseek_ref.py"}, f, indent=1)


def main(argv):
    if len(argv) == 2 and argv[1] == "list":
        print("\n".join(CASES))
    elif len(argv) == 4 and argv[1] == "logits":
        cmd_logits(argv[2], argv[3])
    elif len(argv) == 4 and argv[1] == "make" and argv[2] in CASES:
        cmd_make(argv[2], argv[3])
    else:
        sys.stderr.write(__doc__ + "\ncases: " + ", ".join(CASES) + "\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
