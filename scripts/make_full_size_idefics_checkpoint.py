"""Writes a random BF16 Idefics v1 checkpoint with idefics-9b's shapes (for load / memory / speed benchmarks).

NumPy only. Reuses the shard writer of make_full_size_text_checkpoint.py (values N(0, 0.02^2) rounded to bf16 from a
seeded table; norm weights 1.0; deterministic for a given --seed). Shapes as HuggingFaceM4/idefics-9b's config.json
(Tests/Fixtures/configs/layouts/idefics-9b): LLaMA-7B decoder (32 layers, hidden 4096, intermediate 11008, 32 heads,
vocab 32000 + 2 decoupled rows), a gated cross-attention block before every 4th layer (8 blocks), CLIP ViT-H/14
(32 layers, 1280 wide, 16 heads, 224 px: 256 patches + the class token), perceiver (6 blocks, 16 x 96 heads,
64 latents). About 17.9 GB at full depth. `--layers 4 --vision-layers 4` makes the reduced-depth twin (one cross
block, about 2.9 GB). Tokenizer files are copied from Tests/Fixtures/tokenizer (no chat template).

Usage: python scripts/make_full_size_idefics_checkpoint.py [OUT_DIR] [--layers N] [--vision-layers N] [--shard-gb 5]
       [--workers K] [--seed S]     (default OUT_DIR /work/scratch/idefics-9b-random)
"""
import argparse
import json
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_full_size_text_checkpoint import REPO, write_weights  # noqa: E402

H, I, HEADS, VOCAB, EXTRA = 4096, 11008, 32, 32000, 2
INTERVAL = 4
VH, VI, VHEADS, IMAGE, PATCH = 1280, 5120, 16, 224, 14
P_DEPTH, P_HEADS, P_HEAD_DIM, P_LATENTS = 6, 16, 96, 64


def tensor_specs(layers, vision_layers):
    """(name, shape, kind) as transformers 5.23 names IdeficsForVisionText2Text's parameters."""
    specs = [("model.embed_tokens.weight", (VOCAB, H), "normal"),
             ("model.embed_tokens.additional_embedding.weight", (EXTRA, H), "normal")]
    mlp = lambda p: [(p + "mlp.gate_proj.weight", (I, H), "normal"), (p + "mlp.up_proj.weight", (I, H), "normal"),
                     (p + "mlp.down_proj.weight", (H, I), "normal")]
    for i in range(layers):
        p = f"model.layers.{i}."
        specs += [(p + "input_layernorm.weight", (H,), "ones"), (p + "post_attention_layernorm.weight", (H,), "ones")]
        specs += [(p + f"self_attn.{n}_proj.weight", (H, H), "normal") for n in "qkvo"] + mlp(p)
    for i in range(layers // INTERVAL):
        p = f"model.gated_cross_attn_layers.{i}."
        specs += [(p + "input_layernorm.weight", (H,), "ones"), (p + "post_attention_layernorm.weight", (H,), "ones"),
                  (p + "alpha_cross_attn", (1,), "normal"), (p + "alpha_dense", (1,), "normal"),
                  (p + "cross_attn.q_proj.weight", (H, H), "normal"), (p + "cross_attn.k_proj.weight", (H, VH), "normal"),
                  (p + "cross_attn.v_proj.weight", (H, VH), "normal"), (p + "cross_attn.o_proj.weight", (H, H), "normal")]
        specs += mlp(p)
    specs += [("model.norm.weight", (H,), "ones"), ("lm_head.weight", (VOCAB, H), "normal"),
              ("lm_head.additional_fc.weight", (EXTRA, H), "normal")]
    v = "model.vision_model."
    specs += [(v + "embeddings.class_embedding", (VH,), "normal"),
              (v + "embeddings.patch_embedding.weight", (VH, 3, PATCH, PATCH), "normal"),
              (v + "embeddings.position_embedding.weight", ((IMAGE // PATCH) ** 2 + 1, VH), "normal"),
              (v + "pre_layrnorm.weight", (VH,), "ones"), (v + "pre_layrnorm.bias", (VH,), "normal")]
    for i in range(vision_layers):
        p = f"{v}encoder.layers.{i}."
        for n in ("q_proj", "k_proj", "v_proj", "out_proj"):
            specs += [(p + f"self_attn.{n}.weight", (VH, VH), "normal"), (p + f"self_attn.{n}.bias", (VH,), "normal")]
        specs += [(p + "layer_norm1.weight", (VH,), "ones"), (p + "layer_norm1.bias", (VH,), "normal"),
                  (p + "mlp.fc1.weight", (VI, VH), "normal"), (p + "mlp.fc1.bias", (VI,), "normal"),
                  (p + "mlp.fc2.weight", (VH, VI), "normal"), (p + "mlp.fc2.bias", (VH,), "normal"),
                  (p + "layer_norm2.weight", (VH,), "ones"), (p + "layer_norm2.bias", (VH,), "normal")]
    specs += [(v + "post_layernorm.weight", (VH,), "ones"), (v + "post_layernorm.bias", (VH,), "normal")]
    r, inner = "model.perceiver_resampler.", P_HEADS * P_HEAD_DIM
    specs += [(r + "latents", (P_LATENTS, VH), "normal")]
    for i in range(P_DEPTH):
        a, m = f"{r}blocks.{i}.0.", f"{r}blocks.{i}.1."
        for norm in ("context_layer_norm", "latents_layer_norm"):
            specs += [(a + norm + ".weight", (VH,), "ones"), (a + norm + ".bias", (VH,), "normal")]
        specs += [(a + f"{n}_proj.weight", (inner, VH), "normal") for n in "qkv"]
        specs += [(a + "output_proj.weight", (VH, inner), "normal"),
                  (m + "ln.weight", (VH,), "ones"), (m + "ln.bias", (VH,), "normal"),
                  (m + "fc.weight", (4 * VH, VH), "normal"), (m + "c_proj.weight", (VH, 4 * VH), "normal")]
    specs += [(r + "layer_norm.weight", (VH,), "ones"), (r + "layer_norm.bias", (VH,), "normal")]
    return specs


def write_configs(out, layers, vision_layers):
    with open(os.path.join(REPO, "Tests", "Fixtures", "configs", "layouts", "idefics-9b", "config.json")) as f:
        config = json.load(f)
    config["num_hidden_layers"] = layers
    config["vision_config"]["num_hidden_layers"] = vision_layers
    gen = {"bad_words_ids": [[32000], [32001]], "bos_token_id": 1, "eos_token_id": [2, 32002], "pad_token_id": 0}
    pre = {"image_mean": [0.48145466, 0.4578275, 0.40821073], "image_processor_type": "IdeficsImageProcessor",
           "image_size": IMAGE, "image_std": [0.26862954, 0.26130258, 0.27577711]}
    for fn, obj in [("config.json", config), ("generation_config.json", gen), ("preprocessor_config.json", pre)]:
        with open(os.path.join(out, fn), "w") as f:
            json.dump(obj, f, indent=2)
            f.write("\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", nargs="?", default="/work/scratch/idefics-9b-random")
    ap.add_argument("--layers", type=int, default=32)
    ap.add_argument("--vision-layers", type=int, default=32)
    ap.add_argument("--shard-gb", type=float, default=5.0)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args()
    assert args.layers % INTERVAL == 0 and args.layers >= INTERVAL, "--layers must be a multiple of 4"
    t0 = time.time()
    write_weights(args.out, tensor_specs(args.layers, args.vision_layers), args.shard_gb, args.workers, args.seed)
    write_configs(args.out, args.layers, args.vision_layers)
    for fn in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copyfile(os.path.join(REPO, "Tests", "Fixtures", "tokenizer", fn), os.path.join(args.out, fn))
    print(f"done in {time.time() - t0:.1f} s -> {args.out}")


if __name__ == "__main__":
    sys.exit(main())
