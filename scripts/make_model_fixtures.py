"""Builds seeded tiny random Idefics2 checkpoints and records transformers' reference outputs for the Swift tests.

For every model in MODELS this writes Tests/Fixtures/models/<name>/:
  config.json, generation_config.json, model.safetensors (or model-0000k-of-0000n.safetensors +
  model.safetensors.index.json), tokenizer files (scripts/make_tokenizer.py), preprocessor_config.json,
  processor_config.json, chat_template.json, reference.json, reference_logits.safetensors.

The checkpoint is written by `save_pretrained` (safetensors), then loaded back from disk with
`from_pretrained(dtype=torch.float32, attn_implementation="eager")`: the reference outputs of BF16/F16 checkpoints
are therefore computed in float32 from the rounded weights that are on disk.

Usage: .venv/bin/python scripts/make_model_fixtures.py [OUTPUT_ROOT]   (default Tests/Fixtures/models)
"""
import copy
import json
import math
import os
import shutil
import sys

import numpy as np
import torch
import transformers
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import GenerationConfig, Idefics2Config, Idefics2ForConditionalGeneration, PreTrainedTokenizerFast

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_tokenizer import write_tokenizer_files  # noqa: E402

SEED = 20240415
MAX_NEW_TOKENS = 24
VOCAB = 32003

# ---------------------------------------------------------------------------------------------------------------
# Model specs
# ---------------------------------------------------------------------------------------------------------------
MODELS = {
    "tiny-f32": dict(
        seed=SEED + 1,
        dtype=torch.float32,
        max_shard_size=None,
        text=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, head_dim=8, rope_theta=10000.0, rms_norm_eps=1e-5, sliding_window=None,
                  max_position_embeddings=32768),
        vision=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                    image_size=56, patch_size=14, layer_norm_eps=1e-6),
        perceiver=dict(hidden_size=32, rms_norm_eps=1e-6, resampler_n_latents=4, resampler_depth=2,
                       resampler_n_heads=4, resampler_head_dim=8, num_key_value_heads=2),
        image=dict(longest_edge=56, shortest_edge=28, do_image_splitting=False),
        generation=dict(eos_token_id=2),
        all_logits_case="short",
        plants=[(2, "chat", 6)],
    ),
    "tiny-bf16-swa": dict(
        seed=SEED + 2,
        dtype=torch.bfloat16,
        max_shard_size=None,
        text=dict(hidden_size=48, intermediate_size=96, num_hidden_layers=3, num_attention_heads=6,
                  num_key_value_heads=1, head_dim=8, rope_theta=1000000.0, rms_norm_eps=1e-6, sliding_window=8,
                  max_position_embeddings=32768),
        vision=dict(hidden_size=24, intermediate_size=48, num_hidden_layers=2, num_attention_heads=3,
                    image_size=70, patch_size=14, layer_norm_eps=1e-6),
        perceiver=dict(hidden_size=48, rms_norm_eps=1e-5, resampler_n_latents=8, resampler_depth=3,
                       resampler_n_heads=4, resampler_head_dim=12, num_key_value_heads=1),
        image=dict(longest_edge=70, shortest_edge=28, do_image_splitting=True),
        generation=dict(eos_token_id=[2, 32002], bad_words_ids=[[32000], [32001]]),
        all_logits_case="special",  # 12 positions: 4 beyond the window of 8
        plants=[(32002, "chat", 10), (2, "numbers", 4), (32000, "short", 3), (32001, "long", 7)],
    ),
    "tiny-f16-sharded": dict(
        seed=SEED + 3,
        dtype=torch.float16,
        max_shard_size="1MB",
        text=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=4, head_dim=8, rope_theta=10000.0, rms_norm_eps=1e-5, sliding_window=4096,
                  max_position_embeddings=32768),
        vision=dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                    image_size=56, patch_size=14, layer_norm_eps=1e-6),
        perceiver=dict(hidden_size=32, rms_norm_eps=1e-6, resampler_n_latents=4, resampler_depth=1,
                       resampler_n_heads=2, resampler_head_dim=16, num_key_value_heads=2),
        image=dict(longest_edge=56, shortest_edge=28, do_image_splitting=False),
        generation=dict(eos_token_id=2),
        all_logits_case="short",
        legacy_config=True,
        plants=[(2, "special", 12)],
    ),
}

# Text-only prompts. All tokenized with PreTrainedTokenizerFast(tokenizer_file=...) and BOS.
PROMPTS = [
    ("short", "The capital of France is"),
    ("chat", "User: What is in a rainbow?<end_of_utterance>\nAssistant:"),
    ("unicode", "Ünïcödé: 東京タワー 🚀 naïve café ∑ x²"),
    ("long", "Once upon a time, in a small village at the edge of a great forest, there lived an old clockmaker "
             "who repaired every clock in the valley. One winter morning a stranger arrived carrying a broken "
             "pocket watch that had stopped at exactly seven minutes past midnight."),
    ("special", "<s>Hello</s> world<fake_token_around_image><end_of_utterance> again<unk>!"),
    ("numbers", "1, 2, 3, 4, 5,"),
]
BATCH_CASES = ["short", "chat"]


def build_config(spec) -> Idefics2Config:
    t = dict(spec["text"])
    rope_theta = t.pop("rope_theta")
    text_config = dict(
        model_type="mistral", vocab_size=VOCAB, hidden_act="silu", pad_token_id=0, bos_token_id=1, eos_token_id=2,
        tie_word_embeddings=False, rope_parameters={"rope_type": "default", "rope_theta": rope_theta},
        initializer_range=0.02, attention_dropout=0.0, **t,
    )
    vision_config = dict(num_channels=3, hidden_act="gelu_pytorch_tanh", attention_dropout=0.0, **spec["vision"])
    perceiver_config = dict(hidden_act="silu", attention_dropout=0.0, **spec["perceiver"])
    config = Idefics2Config(
        text_config=text_config, vision_config=vision_config, perceiver_config=perceiver_config,
        image_token_id=32001, tie_word_embeddings=False, use_cache=True,
    )
    # Guard against the silent hidden-size/eps override in Idefics2Config.__post_init__.
    assert config.perceiver_config.hidden_size == config.text_config.hidden_size
    assert config.perceiver_config.rms_norm_eps == spec["perceiver"]["rms_norm_eps"]
    assert config.text_config.sliding_window == spec["text"]["sliding_window"]
    return config


@torch.no_grad()
def init_weights(model, seed):
    """Re-initialises every parameter with a seeded generator, with enough spread to avoid near-tie logits."""
    g = torch.Generator().manual_seed(seed)
    text_hidden = model.config.text_config.hidden_size

    def randn(shape):
        return torch.randn(shape, generator=g, dtype=torch.float32)

    for name, p in model.named_parameters():
        shape = p.shape
        if name.endswith(".bias"):
            v = 0.05 * randn(shape)
        elif "norm" in name and p.ndim == 1:  # LayerNorm / RMSNorm weights
            v = 1.0 + 0.1 * randn(shape)
        elif name.endswith("perceiver_resampler.latents"):
            v = randn(shape)
        elif name.endswith("embed_tokens.weight"):
            v = randn(shape)
        elif name == "lm_head.weight":
            v = randn(shape) * (3.5 / math.sqrt(text_hidden))
        elif name.endswith("position_embedding.weight"):
            v = 0.5 * randn(shape)
        elif p.ndim >= 2:  # linear / conv weights: fan_in scaling
            fan_in = int(np.prod(shape[1:]))
            v = randn(shape) * (1.0 / math.sqrt(fan_in))
        else:
            raise ValueError(f"unexpected parameter {name} {tuple(shape)}")
        p.copy_(v)


@torch.no_grad()
def plant_token(model, tok, token_id, case_name, step, margin=1.0):
    """Rewrites lm_head row `token_id` so that greedy decoding of `case_name` picks it at `step` with the given
    margin (so eos stopping and bad-words filtering are exercised by the fixtures). The row is the final hidden
    state at that step, scaled: an ordinary-sized row, not an outlier."""
    ids = tok(dict(PROMPTS)[case_name])["input_ids"]
    captured = {}
    hook = model.lm_head.register_forward_hook(lambda m, inp, out: captured.__setitem__("h", inp[0]))
    try:
        seq = list(ids)
        for _ in range(step):
            logits = model(input_ids=torch.tensor([seq]), use_cache=False).logits[0, -1]
            seq.append(int(logits.argmax()))
        model(input_ids=torch.tensor([seq]), use_cache=False)
    finally:
        hook.remove()
    h = captured["h"][0, -1].float()
    W = model.lm_head.weight
    logits = W @ h
    logits[token_id] = -float("inf")
    target = logits.max().item() + margin
    W[token_id] = h * (target / h.dot(h))


def write_processor_files(out_dir, spec):
    img = spec["image"]
    pre = {
        "do_convert_rgb": True,
        "do_image_splitting": img["do_image_splitting"],
        "do_normalize": True,
        "do_pad": True,
        "do_rescale": True,
        "do_resize": True,
        "image_mean": [0.5, 0.5, 0.5],
        "image_processor_type": "Idefics2ImageProcessor",
        "image_std": [0.5, 0.5, 0.5],
        "processor_class": "Idefics2Processor",
        "resample": 2,
        "rescale_factor": 0.00392156862745098,
        "size": {"longest_edge": img["longest_edge"], "shortest_edge": img["shortest_edge"]},
    }
    with open(os.path.join(out_dir, "preprocessor_config.json"), "w") as f:
        json.dump(pre, f, indent=2)
        f.write("\n")
    proc = {"image_seq_len": spec["perceiver"]["resampler_n_latents"], "processor_class": "Idefics2Processor"}
    with open(os.path.join(out_dir, "processor_config.json"), "w") as f:
        json.dump(proc, f, indent=2)
        f.write("\n")


def save_checkpoint(name, spec, out_dir):
    if os.path.isdir(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(out_dir)
    write_tokenizer_files(out_dir)
    write_processor_files(out_dir, spec)
    tok = PreTrainedTokenizerFast(tokenizer_file=os.path.join(out_dir, "tokenizer.json"))

    config = build_config(spec)
    torch.manual_seed(spec["seed"])
    model = Idefics2ForConditionalGeneration(config)
    model.eval()
    init_weights(model, spec["seed"])
    model = model.to(spec["dtype"]).to(torch.float32)  # plant on the rounded weights
    for token_id, case_name, step in spec.get("plants", []):
        plant_token(model, tok, token_id, case_name, step)
    model = model.to(spec["dtype"])
    model.generation_config = GenerationConfig(bos_token_id=1, pad_token_id=0, **spec["generation"])
    kwargs = {}
    if spec["max_shard_size"]:
        kwargs["max_shard_size"] = spec["max_shard_size"]
    model.save_pretrained(out_dir, **kwargs)
    if spec.get("legacy_config"):
        rewrite_config_legacy(out_dir)
    return model, tok


def rewrite_config_legacy(out_dir):
    """Rewrites config.json the way the hub's idefics2-8b config.json (written by transformers 4.40) spells it:
    `torch_dtype` instead of `dtype`, `rope_theta` instead of `rope_parameters`, no `head_dim` (derived)."""
    path = os.path.join(out_dir, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    before = Idefics2Config.from_pretrained(out_dir)
    cfg["torch_dtype"] = cfg.pop("dtype")
    tc = cfg["text_config"]
    rope = tc.pop("rope_parameters")
    assert rope["rope_type"] == "default"
    tc["rope_theta"] = rope["rope_theta"]
    assert tc["head_dim"] == tc["hidden_size"] // tc["num_attention_heads"]
    tc.pop("head_dim")
    cfg["transformers_version"] = "4.40.0.dev0"
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")
    after = Idefics2Config.from_pretrained(out_dir)
    for sub in ("text_config", "vision_config", "perceiver_config"):
        a, b = getattr(before, sub).to_dict(), getattr(after, sub).to_dict()
        assert a == b, (sub, {k: (a.get(k), b.get(k)) for k in set(a) | set(b) if a.get(k) != b.get(k)})


def weight_files(out_dir):
    index = os.path.join(out_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            return sorted(set(json.load(f)["weight_map"].values()))
    return ["model.safetensors"]


def read_weights(out_dir):
    tensors, dtypes = {}, {}
    for fn in weight_files(out_dir):
        with safe_open(os.path.join(out_dir, fn), framework="pt") as f:
            for k in f.keys():
                tensors[k] = f.get_tensor(k)
                dtypes[k] = str(tensors[k].dtype)
    return tensors, dtypes


def topk_list(logits, k=5):
    vals, ids = torch.topk(logits, k)
    return [[int(i), float(v)] for i, v in zip(ids.tolist(), vals.tolist())]


def clean_generation_config():
    # No eos, no bad words, no processors: plain argmax for exactly MAX_NEW_TOKENS steps.
    return GenerationConfig(do_sample=False, max_new_tokens=MAX_NEW_TOKENS, min_new_tokens=0, bos_token_id=1,
                            pad_token_id=0, eos_token_id=None, bad_words_ids=None)


@torch.no_grad()
def greedy_reference(model, ids, attention_mask=None):
    """Runs model.generate with all eos / bad words disabled; returns tokens and raw step logits [steps, B, V]."""
    if attention_mask is None:
        # Explicit mask: without it generate() infers one from pad_token_id and masks out prompt tokens equal to
        # 0 (<unk>, the pad token), e.g. in the "special" prompt.
        attention_mask = torch.ones_like(ids)
    saved = model.generation_config
    model.generation_config = clean_generation_config()
    try:
        out = model.generate(input_ids=ids, attention_mask=attention_mask, do_sample=False,
                             max_new_tokens=MAX_NEW_TOKENS, output_logits=True, output_scores=True,
                             return_dict_in_generate=True)
    finally:
        model.generation_config = saved
    tokens = out.sequences[:, ids.shape[1]:]
    assert tokens.shape[1] == MAX_NEW_TOKENS, tokens.shape
    logits = torch.stack(out.logits, 0)
    scores = torch.stack(out.scores, 0)
    assert torch.equal(logits, scores), "greedy reference must not apply any logits processor"
    return tokens, logits


@torch.no_grad()
def default_generation(model, ids):
    """generate() with the checkpoint's own generation_config (eos stops, bad words applied)."""
    out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=MAX_NEW_TOKENS,
                         return_dict_in_generate=True)
    tokens = out.sequences[0, ids.shape[1]:].tolist()
    return tokens


@torch.no_grad()
def make_reference(name, spec, out_dir, tok):
    model = Idefics2ForConditionalGeneration.from_pretrained(out_dir, dtype=torch.float32,
                                                             attn_implementation="eager")
    model.eval()
    assert model.dtype == torch.float32
    tcfg = model.config.text_config
    assert tcfg._attn_implementation == "eager", tcfg._attn_implementation
    assert model.model.text_model.config._attn_implementation == "eager"
    gen_cfg = GenerationConfig.from_pretrained(out_dir)
    eos = gen_cfg.eos_token_id
    eos_set = set([eos] if isinstance(eos, int) else list(eos or []))

    logits_out = {}
    cases = []
    notes = {}
    min_margin = float("inf")
    for case_name, prompt in PROMPTS:
        ids_list = tok(prompt)["input_ids"]
        assert ids_list[0] == 1
        ids = torch.tensor([ids_list], dtype=torch.long)
        L = ids.shape[1]
        prefill = model(input_ids=ids, use_cache=False).logits[0].float()  # [L, V]
        logits_out[f"{case_name}.logits"] = prefill[-1].clone()
        if case_name == spec["all_logits_case"]:
            logits_out[f"{case_name}.all_logits"] = prefill.clone()

        tokens, step_logits = greedy_reference(model, ids)
        tokens = tokens[0].tolist()
        step_logits = step_logits[:, 0, :]
        # Step 0 of generate must be the prefill's last position.
        d0 = (step_logits[0] - prefill[-1]).abs().max().item()
        assert d0 < 1e-4, d0
        # Cross-check the KV-cache path against full recomputation without cache at every step.
        seq = torch.cat([ids, torch.tensor([tokens])], 1)
        full = model(input_ids=seq[:, :-1], use_cache=False).logits[0, L - 1:].float()
        cache_vs_full = (full - step_logits).abs().max().item()
        assert torch.equal(full.argmax(-1), step_logits.argmax(-1))
        assert step_logits.argmax(-1).tolist() == tokens
        steps = []
        for k in range(MAX_NEW_TOKENS):
            top = topk_list(step_logits[k])
            margin = top[0][1] - top[1][1]
            min_margin = min(min_margin, margin)
            steps.append({"token": tokens[k], "margin": margin, "top5": top})
        first_eos = next((k for k, t in enumerate(tokens) if t in eos_set), None)
        dflt = default_generation(model, ids)
        case = {
            "name": case_name,
            "prompt": prompt,
            "input_ids": ids_list,
            "num_prompt_tokens": L,
            "logits_key": f"{case_name}.logits",
            "greedy": {
                "tokens": tokens,
                "text": tok.decode(tokens),
                "first_eos_index": first_eos,
                "steps": steps,
            },
            "default_generation": {
                "tokens": dflt,
                "stopped_by_eos": len(dflt) > 0 and dflt[-1] in eos_set,
            },
            "max_abs_diff_cache_vs_full_recompute": cache_vs_full,
        }
        if case_name == spec["all_logits_case"]:
            case["all_logits_key"] = f"{case_name}.all_logits"
        cases.append(case)

    # Sliding-window check: the window must change the logits of the long prompt.
    if tcfg.sliding_window is not None and tcfg.sliding_window < 64:
        ids = torch.tensor([tok(dict(PROMPTS)["long"])["input_ids"]])
        with_window = model(input_ids=ids, use_cache=False).logits[0]
        m2 = copy.deepcopy(model)
        m2.config.text_config.sliding_window = None
        m2.model.text_model.config.sliding_window = None
        for layer in m2.model.text_model.layers:
            layer.self_attn.config.sliding_window = None
        without = m2(input_ids=ids, use_cache=False).logits[0]
        W = tcfg.sliding_window
        diff_in = (with_window[:W] - without[:W]).abs().max().item()
        diff_out = (with_window[W:] - without[W:]).abs().max().item()
        assert diff_in < 1e-5 and diff_out > 1e-2, (diff_in, diff_out)
        notes["sliding_window_check"] = {
            "case": "long",
            "max_abs_diff_positions_lt_window": diff_in,
            "max_abs_diff_positions_ge_window": diff_out,
            "rule": "query at index q attends keys at indices k with q - sliding_window < k <= q",
        }
        del m2

    # Left-padded batch.
    rows = [tok(dict(PROMPTS)[c])["input_ids"] for c in BATCH_CASES]
    T = max(len(r) for r in rows)
    input_ids = torch.tensor([[0] * (T - len(r)) + r for r in rows])
    attention_mask = torch.tensor([[0] * (T - len(r)) + [1] * len(r) for r in rows])
    position_ids = (attention_mask.cumsum(-1) - 1).masked_fill(attention_mask == 0, 0)
    btokens, blogits = greedy_reference(model, input_ids, attention_mask)
    prefill = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                    use_cache=False).logits[:, -1].float()
    assert (prefill - blogits[0]).abs().max().item() < 1e-4
    logits_out["batch.logits"] = prefill.clone()
    single = {c["name"]: c for c in cases}
    batch_steps = []
    for b in range(len(rows)):
        batch_steps.append([{"token": int(btokens[b, k]),
                             "margin": float(torch.topk(blogits[k, b], 2).values.diff().neg().item()),
                             "top5": topk_list(blogits[k, b])} for k in range(MAX_NEW_TOKENS)])
    batch = {
        "cases": BATCH_CASES,
        "padding_side": "left",
        "pad_token_id": 0,
        "input_ids": input_ids.tolist(),
        "attention_mask": attention_mask.tolist(),
        "position_ids": position_ids.tolist(),
        "position_ids_rule": "cumsum(attention_mask) - 1, padded positions set to 0; decode steps continue "
                             "from the last position + 1",
        "logits_key": "batch.logits",
        "greedy_tokens": btokens.tolist(),
        "steps": batch_steps,
        "matches_single": [btokens[b].tolist() == single[c]["greedy"]["tokens"] for b, c in enumerate(BATCH_CASES)],
        "max_abs_diff_prefill_logits_vs_single": [
            (prefill[b] - logits_out[f"{c}.logits"]).abs().max().item() for b, c in enumerate(BATCH_CASES)],
    }

    save_file({k: v.to(torch.float32).contiguous() for k, v in logits_out.items()},
              os.path.join(out_dir, "reference_logits.safetensors"), metadata={"format": "pt"})

    tensors, dtypes = read_weights(out_dir)
    ref = {
        "format_version": 1,
        "model": name,
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "seed": spec["seed"],
        "dtype_on_disk": str(spec["dtype"]).replace("torch.", ""),
        "reference_dtype": "float32",
        "attn_implementation": "eager",
        "tokenizer": "PreTrainedTokenizerFast(tokenizer_file=tokenizer.json), add_special_tokens=True (BOS)",
        "max_new_tokens": MAX_NEW_TOKENS,
        "greedy_settings": "do_sample=False, eos_token_id=None, bad_words_ids=None: no logits processors, "
                           "exactly max_new_tokens argmax steps; step logits are the raw lm_head outputs",
        "eos_token_ids": sorted(eos_set),
        "generation_config": gen_cfg.to_diff_dict(),
        "vocab_size": VOCAB,
        "logits_file": "reference_logits.safetensors",
        "min_margin": min_margin,
        "num_weights": len(tensors),
        "weight_files": weight_files(out_dir),
        "planted_tokens": [{"token": t, "case": c, "step": k} for t, c, k in spec.get("plants", [])],
        "cases": cases,
        "batch": batch,
        "checks": notes,
    }
    with open(os.path.join(out_dir, "reference.json"), "w") as f:
        json.dump(ref, f, indent=1, ensure_ascii=False)
        f.write("\n")
    return ref, tensors, dtypes


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "Tests/Fixtures/models"
    only = sys.argv[2:]  # optional model names
    torch.set_num_threads(2)
    for name, spec in MODELS.items():
        if only and name not in only:
            continue
        out_dir = os.path.join(root, name)
        model, tok = save_checkpoint(name, spec, out_dir)
        ref, tensors, dtypes = make_reference(name, spec, out_dir, tok)
        # The weights on disk are the in-memory weights (rounded to the storage dtype), under HF's names.
        sd = model.state_dict()
        assert set(sd) == set(tensors), set(sd) ^ set(tensors)
        for k, v in sd.items():
            assert tensors[k].dtype == spec["dtype"], (k, tensors[k].dtype)
            assert torch.equal(tensors[k], v), k
        assert not torch.equal(tensors["lm_head.weight"], tensors["model.text_model.embed_tokens.weight"])
        by_name = {c["name"]: c for c in ref["cases"]}
        for token_id, case_name, step in spec.get("plants", []):
            st = by_name[case_name]["greedy"]["steps"][step]
            assert st["token"] == token_id, (name, token_id, case_name, step, st)
        size = sum(os.path.getsize(os.path.join(out_dir, f)) for f in os.listdir(out_dir))
        print(f"{name}: {len(tensors)} tensors, {size / 1e6:.1f} MB, min margin {ref['min_margin']:.4f}, "
              f"files {ref['weight_files']}")
        for c in ref["cases"]:
            print(f"  {c['name']:8s} L={c['num_prompt_tokens']:3d} first_eos={c['greedy']['first_eos_index']} "
                  f"min_margin={min(s['margin'] for s in c['greedy']['steps']):.4f} "
                  f"cache_vs_full={c['max_abs_diff_cache_vs_full_recompute']:.2e} "
                  f"default_len={len(c['default_generation']['tokens'])}")
        b = ref["batch"]
        print(f"  batch matches_single={b['matches_single']} prefill diff={b['max_abs_diff_prefill_logits_vs_single']}")
        if ref["checks"]:
            print("  checks:", ref["checks"])


if __name__ == "__main__":
    main()
