"""Writes a random BF16 Idefics2 checkpoint with the full idefics2-8b TEXT shapes (for load / memory / speed tests).

NumPy only (no torch, no transformers). Streams tensor by tensor into ~5 GB safetensors shards with
model.safetensors.index.json, plus config.json (tiny vision tower, perceiver at the text width so the checkpoint is a
loadable Idefics2ForConditionalGeneration), generation_config.json, preprocessor/processor configs and the tokenizer
files (copied from Tests/Fixtures/tokenizer).

Text: 32 layers, hidden 4096, intermediate 14336, 32 heads / 8 KV heads (head_dim 128), vocab 32003, rope_theta 1e4,
rms_norm_eps 1e-5, sliding_window 4096, untied lm_head. About 15 GB at 32 layers.

Values: norm weights are 1.0; every other tensor is N(0, std^2) (std 0.02) rounded to bf16 (round to nearest even).
For speed the values are drawn by indexing a seeded table of 65536 such bf16 normals with random 16-bit indices,
so each tensor is an i.i.d. sample from (a 65536-point empirical) N(0, 0.02^2). Deterministic for a given --seed.

Usage:
  python scripts/make_full_size_text_checkpoint.py [OUT_DIR] [--layers N] [--shard-gb 5] [--workers K] [--seed S]
         [--full-vision [--vision-layers N]]
  (default OUT_DIR /work/scratch/idefics2-8b-text-random, --layers 32)
"""
import argparse
import json
import os
import shutil
import struct
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TEXT = dict(vocab_size=32003, hidden_size=4096, intermediate_size=14336, num_attention_heads=32,
            num_key_value_heads=8, head_dim=128, rope_theta=10000.0, rms_norm_eps=1e-5, sliding_window=4096,
            max_position_embeddings=32768)
VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=56,
              patch_size=14, layer_norm_eps=1e-6)
PERCEIVER = dict(resampler_n_latents=64, resampler_depth=1, resampler_n_heads=4, resampler_head_dim=32,
                 num_key_value_heads=2, rms_norm_eps=1e-6)
STD = 0.02
CHUNK = 1 << 25  # elements per generated chunk (64 MB of bf16)


def tensor_specs(layers):
    """(name, shape, kind) in file order; kind 'ones' (norm weights) or 'normal'. Names as transformers 5.23 saves
    Idefics2ForConditionalGeneration."""
    H, I, V = TEXT["hidden_size"], TEXT["intermediate_size"], TEXT["vocab_size"]
    nh, nkv, hd = TEXT["num_attention_heads"], TEXT["num_key_value_heads"], TEXT["head_dim"]
    specs = [("model.text_model.embed_tokens.weight", (V, H), "normal")]
    for i in range(layers):
        p = f"model.text_model.layers.{i}."
        specs += [
            (p + "input_layernorm.weight", (H,), "ones"),
            (p + "self_attn.q_proj.weight", (nh * hd, H), "normal"),
            (p + "self_attn.k_proj.weight", (nkv * hd, H), "normal"),
            (p + "self_attn.v_proj.weight", (nkv * hd, H), "normal"),
            (p + "self_attn.o_proj.weight", (H, nh * hd), "normal"),
            (p + "post_attention_layernorm.weight", (H,), "ones"),
            (p + "mlp.gate_proj.weight", (I, H), "normal"),
            (p + "mlp.up_proj.weight", (I, H), "normal"),
            (p + "mlp.down_proj.weight", (H, I), "normal"),
        ]
    specs += [("model.text_model.norm.weight", (H,), "ones"), ("lm_head.weight", (V, H), "normal")]

    vh, vi, ps = VISION["hidden_size"], VISION["intermediate_size"], VISION["patch_size"]
    npos = (VISION["image_size"] // ps) ** 2
    specs += [
        ("model.vision_model.embeddings.patch_embedding.weight", (vh, 3, ps, ps), "normal"),
        ("model.vision_model.embeddings.patch_embedding.bias", (vh,), "normal"),
        ("model.vision_model.embeddings.position_embedding.weight", (npos, vh), "normal"),
    ]
    for i in range(VISION["num_hidden_layers"]):
        p = f"model.vision_model.encoder.layers.{i}."
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            specs += [(p + f"self_attn.{proj}.weight", (vh, vh), "normal"), (p + f"self_attn.{proj}.bias", (vh,), "normal")]
        specs += [
            (p + "layer_norm1.weight", (vh,), "ones"), (p + "layer_norm1.bias", (vh,), "normal"),
            (p + "mlp.fc1.weight", (vi, vh), "normal"), (p + "mlp.fc1.bias", (vi,), "normal"),
            (p + "mlp.fc2.weight", (vh, vi), "normal"), (p + "mlp.fc2.bias", (vh,), "normal"),
            (p + "layer_norm2.weight", (vh,), "ones"), (p + "layer_norm2.bias", (vh,), "normal"),
        ]
    specs += [("model.vision_model.post_layernorm.weight", (vh,), "ones"),
              ("model.vision_model.post_layernorm.bias", (vh,), "normal")]

    c = "model.connector."
    specs += [
        (c + "modality_projection.gate_proj.weight", (I, vh), "normal"),
        (c + "modality_projection.up_proj.weight", (I, vh), "normal"),
        (c + "modality_projection.down_proj.weight", (H, I), "normal"),
        (c + "perceiver_resampler.latents", (PERCEIVER["resampler_n_latents"], H), "normal"),
    ]
    pnh, pkv, phd = PERCEIVER["resampler_n_heads"], PERCEIVER["num_key_value_heads"], PERCEIVER["resampler_head_dim"]
    for i in range(PERCEIVER["resampler_depth"]):
        p = c + f"perceiver_resampler.layers.{i}."
        specs += [
            (p + "input_latents_norm.weight", (H,), "ones"),
            (p + "input_context_norm.weight", (H,), "ones"),
            (p + "self_attn.q_proj.weight", (pnh * phd, H), "normal"),
            (p + "self_attn.k_proj.weight", (pkv * phd, H), "normal"),
            (p + "self_attn.v_proj.weight", (pkv * phd, H), "normal"),
            (p + "self_attn.o_proj.weight", (H, pnh * phd), "normal"),
            (p + "post_attention_layernorm.weight", (H,), "ones"),
            (p + "mlp.gate_proj.weight", (4 * H, H), "normal"),
            (p + "mlp.up_proj.weight", (4 * H, H), "normal"),
            (p + "mlp.down_proj.weight", (H, 4 * H), "normal"),
        ]
    specs += [(c + "perceiver_resampler.norm.weight", (H,), "ones")]
    return specs


def f32_to_bf16_bits(x):
    """Round-to-nearest-even float32 -> bfloat16 bit patterns (uint16). Inputs are finite."""
    b = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    return ((b + np.uint32(0x7FFF) + ((b >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)).astype(np.uint16)


def normal_table(seed):
    rng = np.random.default_rng([seed, 0xB16])
    return f32_to_bf16_bits(rng.standard_normal(65536, dtype=np.float32) * np.float32(STD))


def plan_shards(specs, shard_bytes):
    shards, cur, cur_size = [], [], 0
    for spec in specs:
        n = int(np.prod(spec[1])) * 2
        if cur and cur_size + n > shard_bytes:
            shards.append(cur)
            cur, cur_size = [], 0
        cur.append(spec)
        cur_size += n
    if cur:
        shards.append(cur)
    return shards


def safetensors_header(entries):
    header, offset = {}, 0
    for name, shape, _ in entries:
        n = int(np.prod(shape)) * 2
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    header["__metadata__"] = {"format": "pt"}
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # align the data section to 8 bytes, as the safetensors writer does
    return struct.pack("<Q", len(raw)) + raw


def write_shard(args):
    path, entries, seed, index_of = args
    table = normal_table(seed)
    one = np.uint16(0x3F80)  # bf16 1.0
    with open(path, "wb") as f:
        f.write(safetensors_header(entries))
        for name, shape, kind in entries:
            n = int(np.prod(shape))
            if kind == "ones":
                f.write(np.full(n, one, dtype=np.uint16).tobytes())
                continue
            rng = np.random.default_rng([seed, index_of[name]])
            for start in range(0, n, CHUNK):
                m = min(CHUNK, n - start)
                idx = np.frombuffer(rng.bytes(2 * m), dtype=np.uint16)
                f.write(table[idx].tobytes())
    return path


def write_weights(out, specs, shard_gb, workers, seed):
    """Writes `specs` as BF16 safetensors shards of at most `shard_gb` (with an index when there are several), after
    dropping stale shards of an earlier run."""
    os.makedirs(out, exist_ok=True)
    for fn in os.listdir(out):
        if fn.startswith("model") and (fn.endswith(".safetensors") or fn.endswith(".index.json")):
            os.remove(os.path.join(out, fn))
    index_of = {name: i + 1 for i, (name, _, _) in enumerate(specs)}
    shards = plan_shards(specs, int(shard_gb * 1e9))
    n = len(shards)
    names = [f"model-{i + 1:05d}-of-{n:05d}.safetensors" for i in range(n)] if n > 1 else ["model.safetensors"]
    jobs = [(os.path.join(out, fn), entries, seed, index_of) for fn, entries in zip(names, shards)]
    total = sum(int(np.prod(s)) * 2 for _, s, _ in specs)
    print(f"{len(specs)} tensors, {total / 1e9:.2f} GB in {n} shard(s), {workers} worker(s)", flush=True)
    with ProcessPoolExecutor(max_workers=max(1, min(workers, n))) as ex:
        for path in ex.map(write_shard, jobs):
            print("wrote", path, f"{os.path.getsize(path) / 1e9:.2f} GB", flush=True)
    if n > 1:
        weight_map = {name: fn for fn, entries in zip(names, shards) for name, _, _ in entries}
        index = {"metadata": {"total_parameters": total // 2, "total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
        with open(os.path.join(out, "model.safetensors.index.json"), "w") as f:
            json.dump(index, f, indent=2)
            f.write("\n")


def write_configs(out, layers):
    H = TEXT["hidden_size"]
    config = {
        "architectures": ["Idefics2ForConditionalGeneration"],
        "dtype": "bfloat16",
        "image_token_id": 32001,
        "model_type": "idefics2",
        "perceiver_config": {
            "attention_dropout": 0.0, "hidden_act": "silu", "hidden_size": H, "initializer_range": 0.02,
            "model_type": "idefics2_perceiver", **PERCEIVER,
        },
        "text_config": {
            "attention_dropout": 0.0, "bos_token_id": 1, "eos_token_id": 2, "head_dim": TEXT["head_dim"],
            "hidden_act": "silu", "hidden_size": H, "initializer_range": 0.02,
            "intermediate_size": TEXT["intermediate_size"],
            "max_position_embeddings": TEXT["max_position_embeddings"], "model_type": "mistral",
            "num_attention_heads": TEXT["num_attention_heads"], "num_hidden_layers": layers,
            "num_key_value_heads": TEXT["num_key_value_heads"], "pad_token_id": 0,
            "rms_norm_eps": TEXT["rms_norm_eps"],
            "rope_parameters": {"rope_theta": TEXT["rope_theta"], "rope_type": "default"},
            "sliding_window": TEXT["sliding_window"], "tie_word_embeddings": False, "use_cache": True,
            "vocab_size": TEXT["vocab_size"],
        },
        "tie_word_embeddings": False,
        "transformers_version": "5.23.0",
        "use_cache": True,
        "vision_config": {
            "attention_dropout": 0.0, "hidden_act": "gelu_pytorch_tanh", "initializer_range": 0.02,
            "model_type": "idefics2_vision", "num_channels": 3, **VISION,
        },
    }
    gen = {"bad_words_ids": [[32000], [32001]], "bos_token_id": 1, "eos_token_id": [2, 32002], "pad_token_id": 0,
           "transformers_version": "5.23.0"}
    pre = {"do_convert_rgb": True, "do_image_splitting": False, "do_normalize": True, "do_pad": True,
           "do_rescale": True, "do_resize": True, "image_mean": [0.5, 0.5, 0.5],
           "image_processor_type": "Idefics2ImageProcessor", "image_std": [0.5, 0.5, 0.5],
           "processor_class": "Idefics2Processor", "resample": 2, "rescale_factor": 0.00392156862745098,
           "size": {"longest_edge": VISION["image_size"], "shortest_edge": 378 if VISION["image_size"] >= 378 else 28}}
    proc = {"image_seq_len": PERCEIVER["resampler_n_latents"], "processor_class": "Idefics2Processor"}
    for fn, obj in [("config.json", config), ("generation_config.json", gen), ("preprocessor_config.json", pre),
                    ("processor_config.json", proc)]:
        with open(os.path.join(out, fn), "w") as f:
            json.dump(obj, f, indent=2)
            f.write("\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", nargs="?", default="/work/scratch/idefics2-8b-text-random")
    ap.add_argument("--layers", type=int, default=32)
    ap.add_argument("--shard-gb", type=float, default=5.0, help="max shard size in GB (1e9 bytes)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--tokenizer-dir", default=os.path.join(REPO, "Tests", "Fixtures", "tokenizer"))
    ap.add_argument("--full-vision", action="store_true",
                    help="idefics2-8b's vision tower (SigLIP-so400m: 27 layers, 1152 wide, 980 px) and perceiver "
                         "(3 layers, 16x96 heads, 64 latents) instead of tiny ones: about 16 GB, for image benchmarks")
    ap.add_argument("--vision-layers", type=int, default=None,
                    help="with --full-vision: vision layers (default 27); 4 with --layers 4 makes the reduced-depth twin")
    args = ap.parse_args()
    if args.full_vision:
        VISION.update(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16,
                      image_size=980, patch_size=14)
        PERCEIVER.update(resampler_n_latents=64, resampler_depth=3, resampler_n_heads=16, resampler_head_dim=96,
                         num_key_value_heads=4)
        if args.vision_layers:
            VISION["num_hidden_layers"] = args.vision_layers

    t0 = time.time()
    write_weights(args.out, tensor_specs(args.layers), args.shard_gb, args.workers, args.seed)
    write_configs(args.out, args.layers)
    for fn in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.json"):
        shutil.copyfile(os.path.join(args.tokenizer_dir, fn), os.path.join(args.out, fn))
    print(f"done in {time.time() - t0:.1f} s -> {args.out}")


if __name__ == "__main__":
    sys.exit(main())
