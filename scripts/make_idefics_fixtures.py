"""Builds seeded tiny random Idefics (v1, `IdeficsForVisionText2Text`) checkpoints and records transformers'
reference outputs for the Swift tests.

For every model in MODELS this writes Tests/Fixtures/models/<name>/:
  config.json, generation_config.json, model.safetensors (save_pretrained), tokenizer files without a chat template
  (scripts/make_tokenizer.py: the real Mistral-7B-v0.1 vocabulary, a LLaMA tokenizer like idefics-9b's, plus
  <fake_token_around_image> 32000, <image> 32001, <end_of_utterance> 32002), preprocessor_config.json
  (IdeficsImageProcessor: bicubic resize to image_size x image_size, OpenAI-CLIP mean/std), reference.json and
  reference_tensors.safetensors.

The two configs between them cover: with and without the perceiver, cross_layer_interval 1 and 2, qk_layer_norms
on and off (perceiver's too), alpha_type float and vector, quick_gelu and gelu, F32 and BF16 weights on disk.
The alphas are drawn at random after construction (zero alphas would switch the cross-attention off; the config
keeps alpha_initializer "zeros" because transformers 5.23 cannot build a float alpha with "normal").

The checkpoint is loaded back with `from_pretrained(dtype=torch.float32, attn_implementation="eager")`, so the
reference of the BF16 checkpoint is float32 arithmetic on the rounded weights that are on disk. Inputs are built by
transformers' `IdeficsProcessor` (Pillow path) from item lists: strings and {"image": FILE} (files in
Tests/Fixtures/vision/images). Each case records input ids, attention mask, image attention mask, pixel values,
the vision tower's last hidden states (and the perceiver's output), the last prompt position's logits, logits of
every prompt position for PROBE_IDS, and greedy generation (MAX_NEW_TOKENS plain argmax steps, with each step's
top-5). The padded batch is checked here to give each row its single-run tokens.

Usage: .venv/bin/python scripts/make_idefics_fixtures.py [OUTPUT_ROOT]   (default Tests/Fixtures/models)
"""
import json
import math
import os
import shutil
import sys

import numpy as np
import torch
import transformers
from PIL import Image
from safetensors.torch import save_file
from transformers import (GenerationConfig, IdeficsConfig, IdeficsForVisionText2Text, IdeficsImageProcessorPil,
                          IdeficsProcessor, PreTrainedTokenizerFast)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_tokenizer import write_tokenizer_files  # noqa: E402

SEED = 20261202
MAX_NEW_TOKENS = 8
VOCAB, ADDITIONAL = 32000, 3
IMAGES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "Fixtures", "vision", "images")
PROBE_IDS = list(range(0, 32003, 509)) + [2, 32000, 32001, 32002]

MODELS = {
    "tiny-idefics-perceiver": dict(
        seed=SEED + 1, dtype=torch.float32,
        text=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                  cross_layer_interval=1, qk_layer_norms=True, alpha_type="float", rms_norm_eps=1e-6,
                  use_resampler=True),
        vision=dict(embed_dim=24, image_size=42, intermediate_size=48, patch_size=14, num_hidden_layers=2,
                    num_attention_heads=2, hidden_act="quick_gelu", layer_norm_eps=1e-5),
        perceiver=dict(use_resampler=True, resampler_n_latents=4, resampler_depth=2, resampler_n_heads=2,
                       resampler_head_dim=8, qk_layer_norms_perceiver=True),
    ),
    "tiny-idefics-plain": dict(
        seed=SEED + 2, dtype=torch.bfloat16,
        text=dict(hidden_size=48, intermediate_size=96, num_hidden_layers=4, num_attention_heads=6,
                  cross_layer_interval=2, qk_layer_norms=False, alpha_type="vector", rms_norm_eps=1e-5,
                  use_resampler=False, rope_parameters={"rope_type": "default", "rope_theta": 500000.0}),
        vision=dict(embed_dim=32, image_size=28, intermediate_size=64, patch_size=14, num_hidden_layers=2,
                    num_attention_heads=4, hidden_act="gelu", layer_norm_eps=1e-5),
        perceiver=dict(use_resampler=False),
    ),
}

A, B, C, D = ({"image": f} for f in ["chelsea_150x90.png", "coffee_70x70.png", "drawn_rgba_45x33.png",
                                      "astronaut_97x53.png"])
CASES = [
    dict(name="text_only", items=["The quick brown fox jumps over"]),
    dict(name="one_image", items=["User:", A, "Describe this image.\nAssistant:"]),
    dict(name="two_images_text_between", items=["User:", A, " and then ", B, "What differs?\nAssistant:"]),
    dict(name="consecutive_images", items=[B, C, "Both pictures show"]),
    dict(name="dialogue", items=["User:", D, "What is this?<end_of_utterance>", "\nAssistant: An astronaut."
                                 "<end_of_utterance>", "\nUser:", A, "And this?<end_of_utterance>", "\nAssistant:"]),
    dict(name="end_of_utterance", items=["User: hello", "Assistant: hi there", "User:", C, "describe it",
                                         "Assistant:"], add_end_of_utterance_token=True),
    dict(name="eos_inside", items=["Caption:", A, "a cat.</s>Then unrelated text", B, "and a cup", "</s>after"]),
]
BATCH = ["one_image", "text_only", "consecutive_images"]


@torch.no_grad()
def init_weights(model, seed):
    """Re-initialises every parameter with a seeded generator, with enough spread to avoid near-tie logits."""
    g = torch.Generator().manual_seed(seed)
    hidden = model.config.hidden_size

    def randn(shape):
        return torch.randn(shape, generator=g, dtype=torch.float32)

    for name, p in model.named_parameters():
        shape = p.shape
        if name.endswith(".bias"):
            v = 0.05 * randn(shape)
        elif ("norm" in name or ".ln." in name) and p.ndim == 1:
            v = 1.0 + 0.1 * randn(shape)
        elif "alpha" in name:
            v = 0.8 * randn(shape)  # tanh(alpha) well away from 0
        elif name.endswith("latents") or name.endswith("class_embedding") or "embed_tokens" in name:
            v = randn(shape)
        elif name.startswith("lm_head"):
            v = randn(shape) * (3.5 / math.sqrt(hidden))
        elif name.endswith("position_embedding.weight"):
            v = 0.5 * randn(shape)
        elif p.ndim >= 2:
            v = randn(shape) * (1.0 / math.sqrt(int(np.prod(shape[1:]))))
        else:
            raise ValueError(f"unexpected parameter {name} {tuple(shape)}")
        p.copy_(v)


def build_config(spec):
    t = dict(spec["text"])
    config = IdeficsConfig(vocab_size=VOCAB, additional_vocab_size=ADDITIONAL, alpha_initializer="zeros", max_position_embeddings=512, tie_word_embeddings=False,
                           freeze_text_layers=False, freeze_vision_layers=False, vision_config=spec["vision"],
                           perceiver_config=spec["perceiver"], pad_token_id=0, bos_token_id=1, eos_token_id=2, **t)
    assert config.use_resampler == spec["perceiver"]["use_resampler"]
    return config


def image(item):
    return Image.open(os.path.join(IMAGES, item["image"]))


def processor_inputs(items):
    return [image(x) if isinstance(x, dict) else x for x in items]


def tensor_list(t):
    return t.tolist()


@torch.no_grad()
def run_case(model, processor, case, tensors):
    name = case["name"]
    kwargs = {"add_end_of_utterance_token": case.get("add_end_of_utterance_token", False)}
    inputs = processor(text=[processor_inputs(case["items"])], return_tensors="pt", **kwargs)
    ids = inputs["input_ids"]
    has_images = any(isinstance(x, dict) for x in case["items"])
    out = model(**inputs)
    logits = out.logits[0]
    tensors[f"{name}.last_logits"] = logits[-1]
    tensors[f"{name}.probe_logits"] = logits[:, PROBE_IDS]
    if has_images:
        count = sum(isinstance(x, dict) for x in case["items"])
        pixels = inputs["pixel_values"][0, :count]
        tensors[f"{name}.pixel_values"] = pixels
        vision = model.model.vision_model(pixel_values=pixels).last_hidden_state
        tensors[f"{name}.vision_states"] = vision
        if model.config.use_resampler:
            tensors[f"{name}.perceiver_states"] = model.model.perceiver_resampler(vision)
    gen = model.generate(**inputs, do_sample=False, max_new_tokens=MAX_NEW_TOKENS, output_logits=True,
                         return_dict_in_generate=True)
    tokens = gen.sequences[0, ids.shape[1]:].tolist()
    assert len(tokens) == MAX_NEW_TOKENS
    steps = []
    for step in gen.logits:
        top = torch.topk(step[0], 5)
        steps.append({"top_ids": top.indices.tolist(), "top_logits": top.values.tolist(),
                      "margin": (top.values[0] - top.values[1]).item()})
    assert torch.equal(gen.logits[0][0], logits[-1]) or (gen.logits[0][0] - logits[-1]).abs().max() < 1e-4
    return {
        "name": name,
        "items": case["items"],
        "add_end_of_utterance_token": kwargs["add_end_of_utterance_token"],
        "input_ids": tensor_list(ids[0]),
        "attention_mask": tensor_list(inputs["attention_mask"][0]),
        "image_attention_mask": tensor_list(inputs["image_attention_mask"][0].to(torch.int64)),
        "prompt": processor.tokenizer.decode(ids[0]),
        "greedy_tokens": tokens,
        "steps": steps,
    }


@torch.no_grad()
def run_batch(model, processor, cases, singles):
    by_name = {c["name"]: c for c in cases}
    prompts = [processor_inputs(by_name[n]["items"]) for n in BATCH]
    inputs = processor(text=prompts, return_tensors="pt", add_end_of_utterance_token=False)
    gen = model.generate(**inputs, do_sample=False, max_new_tokens=MAX_NEW_TOKENS, return_dict_in_generate=True,
                         output_logits=True)
    length = inputs["input_ids"].shape[1]
    rows = []
    for b, n in enumerate(BATCH):
        tokens = gen.sequences[b, length:].tolist()
        assert tokens == singles[n]["greedy_tokens"], (n, tokens, singles[n]["greedy_tokens"])
        rows.append({"name": n, "input_ids": tensor_list(inputs["input_ids"][b]),
                     "attention_mask": tensor_list(inputs["attention_mask"][b]),
                     "image_attention_mask": tensor_list(inputs["image_attention_mask"][b].to(torch.int64)),
                     "greedy_tokens": tokens})
    return {"cases": BATCH, "padding_side": processor.tokenizer.padding_side, "rows": rows,
            "pixel_values_shape": list(inputs["pixel_values"].shape)}


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "Tests/Fixtures/models"
    torch.set_num_threads(2)
    for name, spec in MODELS.items():
        out_dir = os.path.join(root, name)
        if os.path.isdir(out_dir):
            shutil.rmtree(out_dir)
        os.makedirs(out_dir)
        config = build_config(spec)
        torch.manual_seed(spec["seed"])
        model = IdeficsForVisionText2Text(config).eval()
        init_weights(model, spec["seed"])
        model = model.to(spec["dtype"])
        model.generation_config = GenerationConfig(bos_token_id=1, pad_token_id=0, eos_token_id=[2, 32002],
                                                   bad_words_ids=[[32001], [32000]])
        model.save_pretrained(out_dir)
        write_tokenizer_files(out_dir)
        os.remove(os.path.join(out_dir, "chat_template.json"))  # Idefics2's template; v1 folders ship none
        size = spec["vision"]["image_size"]
        IdeficsImageProcessorPil(image_size=size).save_pretrained(out_dir)
        tok = PreTrainedTokenizerFast.from_pretrained(out_dir)
        processor = IdeficsProcessor(image_processor=IdeficsImageProcessorPil.from_pretrained(out_dir),
                                     tokenizer=tok)
        model = IdeficsForVisionText2Text.from_pretrained(out_dir, dtype=torch.float32,
                                                          attn_implementation="eager").eval()
        # generate() must run plain argmax: no eos, no bad words (the checkpoint's own config has both).
        model.generation_config = GenerationConfig(bos_token_id=1, pad_token_id=0, eos_token_id=None)
        tensors = {}
        cases = [run_case(model, processor, c, tensors) for c in CASES]
        singles = {c["name"]: c for c in cases}
        batch = run_batch(model, processor, CASES, singles)
        save_file({k: v.to(torch.float32).contiguous() for k, v in tensors.items()},
                  os.path.join(out_dir, "reference_tensors.safetensors"), metadata={"format": "pt"})
        ref = {
            "format_version": 1, "model": name, "transformers_version": transformers.__version__,
            "torch_version": torch.__version__, "seed": spec["seed"],
            "dtype_on_disk": str(spec["dtype"]).replace("torch.", ""), "reference_dtype": "float32",
            "attn_implementation": "eager", "max_new_tokens": MAX_NEW_TOKENS,
            "greedy_settings": "do_sample=False, eos_token_id=None, bad_words_ids=None: plain argmax steps",
            "default_add_end_of_utterance_token": processor.tokenizer_was_trained_with_end_of_utterance_token,
            "probe_ids": PROBE_IDS, "images_folder": "Tests/Fixtures/vision/images",
            "tensors_file": "reference_tensors.safetensors", "cases": cases, "batch": batch,
        }
        with open(os.path.join(out_dir, "reference.json"), "w") as f:
            json.dump(ref, f, indent=1, ensure_ascii=False)
            f.write("\n")
        total = sum(os.path.getsize(os.path.join(out_dir, f)) for f in os.listdir(out_dir))
        print(f"{name}: {total / 1e6:.1f} MB, files {sorted(os.listdir(out_dir))}")
        for c in cases:
            print(f"  {c['name']:24s} L={len(c['input_ids']):3d} tokens={c['greedy_tokens']} "
                  f"min margin={min(s['margin'] for s in c['steps']):.3f}")


if __name__ == "__main__":
    main()
