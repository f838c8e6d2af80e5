"""Independent float64 NumPy re-implementation of the Idefics2 text decoder (Mistral), checked against the
committed fixtures in Tests/Fixtures/models/*/ (reference.json + reference_logits.safetensors).

It reads only config.json (both the transformers 5 and the legacy 4.40 spelling), the safetensors weights and the
fixtures, so it verifies that the fixtures mean what scripts/README.md says (RoPE half-split layout, GQA head
mapping, sliding-window rule, RMSNorm eps, position ids of left-padded batches).

Usage: .venv/bin/python scripts/check_model_fixtures.py [MODELS_ROOT]
"""
import json
import os
import sys

import numpy as np
from safetensors import safe_open


def load_weights(d):
    index = os.path.join(d, "model.safetensors.index.json")
    files = sorted(set(json.load(open(index))["weight_map"].values())) if os.path.exists(index) else [
        "model.safetensors"]
    out = {}
    for fn in files:
        with safe_open(os.path.join(d, fn), framework="pt") as f:  # pt: numpy has no bfloat16
            for k in f.keys():
                out[k] = f.get_tensor(k).double().numpy()
    return out


def text_params(cfg):
    tc = cfg["text_config"]
    theta = tc["rope_parameters"]["rope_theta"] if "rope_parameters" in tc else tc.get("rope_theta", 10000.0)
    heads = tc["num_attention_heads"]
    return dict(
        layers=tc["num_hidden_layers"], heads=heads, kv=tc["num_key_value_heads"],
        head_dim=tc.get("head_dim") or tc["hidden_size"] // heads, eps=tc["rms_norm_eps"], theta=theta,
        window=tc.get("sliding_window", 4096),  # MistralConfig default when the key is absent
    )


def rms(x, w, eps):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w


def rope(x, pos, theta):
    # x [heads, L, d]; half-split (rotate_half) layout
    d = x.shape[-1]
    inv = 1.0 / theta ** (np.arange(0, d, 2) / d)
    ang = pos[:, None] * inv[None]
    cos, sin = np.cos(np.concatenate([ang, ang], -1)), np.sin(np.concatenate([ang, ang], -1))
    x1, x2 = x[..., : d // 2], x[..., d // 2:]
    return x * cos + np.concatenate([-x2, x1], -1) * sin


def forward(W, p, ids, mask=None, pos=None):
    """Full-sequence forward of one row. mask: 1 for real tokens (left padding), pos: position ids."""
    L = len(ids)
    mask = np.ones(L) if mask is None else np.asarray(mask, float)
    pos = np.arange(L, dtype=float) if pos is None else np.asarray(pos, float)
    pre = "model.text_model."
    h = W[pre + "embed_tokens.weight"][ids]
    H, KV, D = p["heads"], p["kv"], p["head_dim"]
    qi, ki = np.arange(L)[:, None], np.arange(L)[None]
    allowed = (ki <= qi) & (mask[None] > 0)
    if p["window"] is not None:
        allowed &= ki > qi - p["window"]  # indices, not position ids
    for i in range(p["layers"]):
        lp = f"{pre}layers.{i}."
        x = rms(h, W[lp + "input_layernorm.weight"], p["eps"])
        q = (x @ W[lp + "self_attn.q_proj.weight"].T).reshape(L, H, D).transpose(1, 0, 2)
        k = (x @ W[lp + "self_attn.k_proj.weight"].T).reshape(L, KV, D).transpose(1, 0, 2)
        v = (x @ W[lp + "self_attn.v_proj.weight"].T).reshape(L, KV, D).transpose(1, 0, 2)
        q, k = rope(q, pos, p["theta"]), rope(k, pos, p["theta"])
        k, v = np.repeat(k, H // KV, 0), np.repeat(v, H // KV, 0)  # q head h uses kv head h // (H / KV)
        s = q @ k.transpose(0, 2, 1) / np.sqrt(D)
        s = np.where(allowed[None], s, -np.inf)
        s = np.where(allowed.any(-1)[None, :, None], s, 0.0)  # fully masked (pad) rows: anything finite
        s = np.exp(s - s.max(-1, keepdims=True))
        a = (s / s.sum(-1, keepdims=True)) @ v
        h = h + a.transpose(1, 0, 2).reshape(L, H * D) @ W[lp + "self_attn.o_proj.weight"].T
        x = rms(h, W[lp + "post_attention_layernorm.weight"], p["eps"])
        g = x @ W[lp + "mlp.gate_proj.weight"].T
        u = x @ W[lp + "mlp.up_proj.weight"].T
        h = h + ((g / (1 + np.exp(-g))) * u) @ W[lp + "mlp.down_proj.weight"].T
    h = rms(h, W[pre + "norm.weight"], p["eps"])
    return h @ W["lm_head.weight"].T


def check(d):
    from safetensors.numpy import load_file
    cfg = json.load(open(os.path.join(d, "config.json")))
    ref = json.load(open(os.path.join(d, "reference.json")))
    logits = load_file(os.path.join(d, ref["logits_file"]))
    W = load_weights(d)
    p = text_params(cfg)
    worst = 0.0
    for c in ref["cases"]:
        full_seq = c["input_ids"] + c["greedy"]["tokens"]
        out = forward(W, p, full_seq[:-1])
        L = c["num_prompt_tokens"]
        worst = max(worst, np.abs(out[L - 1] - logits[c["logits_key"]]).max())
        if "all_logits_key" in c:
            worst = max(worst, np.abs(out[:L] - logits[c["all_logits_key"]]).max())
        for k, st in enumerate(c["greedy"]["steps"]):
            row = out[L - 1 + k]
            top = sorted(((row[i], i) for i, _ in st["top5"]), reverse=True)
            worst = max(worst, max(abs(row[i] - v) for i, v in st["top5"]))
            if st["margin"] > 1e-3:
                assert int(row.argmax()) == st["token"], (c["name"], k)
    b = ref["batch"]
    for r in range(len(b["input_ids"])):
        ids = b["input_ids"][r] + b["greedy_tokens"][r][:-1]
        T = len(b["input_ids"][r])
        mask = b["attention_mask"][r] + [1] * (len(ids) - T)
        pos = b["position_ids"][r] + list(range(b["position_ids"][r][-1] + 1, b["position_ids"][r][-1] + len(ids) - T + 1))
        out = forward(W, p, ids, mask, pos)
        worst = max(worst, np.abs(out[T - 1] - logits[b["logits_key"]][r]).max())
        for k, st in enumerate(b["steps"][r]):
            worst = max(worst, max(abs(out[T - 1 + k][i] - v) for i, v in st["top5"]))
    assert worst < 1e-3, worst
    print(f"{os.path.basename(d)}: numpy float64 decoder matches fixtures, max |diff| {worst:.2e} "
          f"(window={p['window']}, theta={p['theta']}, eps={p['eps']})")


if __name__ == "__main__":
    root = sys.argv[1] if len(sys.argv) > 1 else "Tests/Fixtures/models"
    for name in sorted(os.listdir(root)):
        if os.path.exists(os.path.join(root, name, "reference.json")):
            check(os.path.join(root, name))
