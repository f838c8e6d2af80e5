"""Builds Tests/Fixtures/models/tiny-awq: a seeded tiny Idefics2 checkpoint stored the way HuggingFaceM4/idefics2-8b-AWQ
is, and transformers' outputs on its dequantized weights as the reference.

Layout (as the published checkpoint): config.json with quantization_config {quant_method: awq, bits: 4,
group_size: 128, version: gemm, zero_point: true, modules_to_not_convert: [vision_model, connector]}; every linear
layer of the language model (q/k/v/o_proj, gate/up/down_proj) stored as `qweight` (int32 [in, out/8]), `qzeros`
(int32 [in/128, out/8]) and `scales` (fp16 [in/128, out]); vision tower, connector, embeddings, norms and the head
fp16. The quantization is AutoAWQ's zero-point rounding (awq/quantize/quantizer.py, pseudo_quantize_tensor, without
the activation-aware scale search, which needs calibration data): per group of 128 inputs s = (max - min) / 15,
z = clamp(-round(min / s), 0, 15), q = clamp(round(w / s) + z, 0, 15), s stored as fp16 (q taken with the fp16 s).
The packing (AutoAWQ's WQLinear_GEMM.from_linear order [0, 2, 4, 6, 1, 3, 5, 7]) is written here and checked by
unpacking it with AutoAWQ's own `dequantize_gemm` (awq/utils/packing_utils.py, loaded by path: the rest of the
package needs CUDA-era dependencies).

Reference: the same model in float32 with each quantized matrix replaced by its exact dequantized value
(q - z) * s in float32 (AutoAWQ's GEMM kernels round that product to fp16, a relative 2^-11 that our kernels do not
add), run by transformers (eager attention): prefill logits at every position and greedy generation for text
prompts and one image prompt, in reference.json + reference_logits.safetensors.

Usage: .venv/bin/pip install --no-deps autoawq==0.2.9
       .venv/bin/python scripts/make_awq_fixture.py [OUTPUT_DIR]   (default Tests/Fixtures/models/tiny-awq)
"""
import importlib.util
import json
import os
import shutil
import sys

import torch
import transformers
from PIL import Image
from safetensors.torch import load_file, save_file
from transformers import AutoProcessor, GenerationConfig, Idefics2ForConditionalGeneration

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_model_fixtures import (PROMPTS, SEED, build_config, greedy_reference, init_weights, topk_list,  # noqa: E402
                                 write_processor_files)
from make_tokenizer import write_tokenizer_files  # noqa: E402

GROUP = 128
AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7]
QUANTIZATION_CONFIG = {"bits": 4, "group_size": GROUP, "modules_to_not_convert": ["vision_model", "connector"],
                       "quant_method": "awq", "version": "gemm", "zero_point": True}
SPEC = dict(
    seed=SEED + 11,
    text=dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, head_dim=32, rope_theta=10000.0, rms_norm_eps=1e-5, sliding_window=None,
              max_position_embeddings=32768),
    vision=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                image_size=56, patch_size=14, layer_norm_eps=1e-6),
    perceiver=dict(hidden_size=128, rms_norm_eps=1e-6, resampler_n_latents=4, resampler_depth=1,
                   resampler_n_heads=2, resampler_head_dim=16, num_key_value_heads=1),
    image=dict(longest_edge=56, shortest_edge=28, do_image_splitting=False),
)
TEXT_CASES = ["short", "chat", "long"]
IMAGE_CASE = ("image", "User:<image>What is in this picture?<end_of_utterance>\nAssistant:", "coffee_70x70")
MAX_NEW_TOKENS = 16
ALL_LOGITS_CASE = "chat"
EMBEDDING_SCALE = 0.05


def autoawq_dequantize_gemm():
    spec = importlib.util.find_spec("awq")
    assert spec is not None, "install AutoAWQ first: .venv/bin/pip install --no-deps autoawq==0.2.9"
    path = os.path.join(os.path.dirname(spec.origin), "utils", "packing_utils.py")
    module_spec = importlib.util.spec_from_file_location("awq_packing_utils", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.dequantize_gemm


def quantize(w):
    """w float32 [out, in] -> q, z (int [out, in], [out, in/G]), s (fp16 [out, in/G])."""
    out, inputs = w.shape
    g = w.reshape(out, inputs // GROUP, GROUP)
    lo, hi = g.amin(-1), g.amax(-1)
    s = ((hi - lo).clamp(min=1e-5) / 15).half()
    sf = s.float()
    z = (-torch.round(lo / sf)).clamp(0, 15)
    q = (torch.round(g / sf[..., None]) + z[..., None]).clamp(0, 15)
    return q.reshape(out, inputs).to(torch.int32), z.to(torch.int32), s


def pack(columns_major):
    """int [rows, cols] (rows = in or in/G, cols = out) -> int32 [rows, cols/8] in AWQ's GEMM order."""
    rows, cols = columns_major.shape
    packed = torch.zeros(rows, cols // 8, dtype=torch.int64)
    for c in range(cols // 8):
        for i in range(8):
            packed[:, c] |= columns_major[:, 8 * c + AWQ_ORDER[i]].to(torch.int64) << (4 * i)
    return packed.to(torch.uint32).view(torch.int32) if hasattr(torch, "uint32") else packed.to(torch.int32)


def is_quantized(name):
    return ".text_model.layers." in name and name.endswith("_proj.weight")


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else "Tests/Fixtures/models/tiny-awq"
    torch.set_num_threads(2)
    if os.path.isdir(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(out_dir)
    write_tokenizer_files(out_dir)
    write_processor_files(out_dir, SPEC)
    config = build_config(SPEC)
    # A tied head halves the fixture (the vocabulary is the tokenizer's 32003 rows); AWQ leaves the head float anyway.
    config.tie_word_embeddings = config.text_config.tie_word_embeddings = True
    torch.manual_seed(SPEC["seed"])
    model = Idefics2ForConditionalGeneration(config).eval()
    init_weights(model, SPEC["seed"])
    with torch.no_grad():  # small embeddings: a tied head would otherwise echo the last token's own row
        model.model.text_model.embed_tokens.weight.mul_(EMBEDDING_SCALE)
    model = model.to(torch.float16)
    model.generation_config = GenerationConfig(bos_token_id=1, pad_token_id=0, eos_token_id=2)
    model.save_pretrained(out_dir)

    dequantize_gemm = autoawq_dequantize_gemm()
    weights = load_file(os.path.join(out_dir, "model.safetensors"))
    packed, dequantized = {}, {}
    for name, w in weights.items():
        if not is_quantized(name):
            packed[name] = w
            continue
        q, z, s = quantize(w.float())
        layer = name.removesuffix(".weight")
        packed[layer + ".qweight"] = pack(q.t().contiguous())
        packed[layer + ".qzeros"] = pack(z.t().contiguous())
        packed[layer + ".scales"] = s.t().contiguous()
        zf = z.float().repeat_interleave(GROUP, dim=1)
        exact = (q.float() - zf) * s.float().repeat_interleave(GROUP, dim=1)
        # AutoAWQ's unpacking gives back the same weights ([in, out], products rounded to fp16).
        theirs = dequantize_gemm(packed[layer + ".qweight"], packed[layer + ".qzeros"], packed[layer + ".scales"], 4, GROUP)
        assert torch.equal(theirs, exact.t().half()), name
        dequantized[name] = exact
    assert len(dequantized) == 2 * 7, sorted(dequantized)
    assert "lm_head.weight" not in weights
    save_file(packed, os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(out_dir, "config.json")) as f:
        cfg = json.load(f)
    cfg["quantization_config"] = QUANTIZATION_CONFIG
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")

    # The reference model: fp16 weights in float32, the quantized matrices replaced by their exact values.
    reference = Idefics2ForConditionalGeneration(config).eval()
    state = {k: v.float() for k, v in weights.items()}
    state.update(dequantized)
    state["lm_head.weight"] = state["model.text_model.embed_tokens.weight"]
    reference.load_state_dict(state, strict=True)
    assert reference.lm_head.weight.data_ptr() == reference.model.text_model.embed_tokens.weight.data_ptr()
    reference.config._attn_implementation = "eager"
    for sub in (reference.config.text_config, reference.config.vision_config, reference.config.perceiver_config):
        sub._attn_implementation = "eager"
    processor = AutoProcessor.from_pretrained(out_dir)
    tok = processor.tokenizer

    logits_out, cases = {}, []
    with torch.no_grad():
        inputs = [(c, dict(PROMPTS)[c], None) for c in TEXT_CASES] + [IMAGE_CASE]
        for name, prompt, image in inputs:
            if image:
                picture = Image.open(os.path.join(os.path.dirname(out_dir), "..", "vision", "images", image + ".png"))
                batch = processor(text=prompt, images=[[picture.convert("RGB")]], return_tensors="pt")
                extra = dict(pixel_values=batch["pixel_values"], pixel_attention_mask=batch["pixel_attention_mask"])
            else:
                batch = tok(prompt, return_tensors="pt")
                extra = {}
            ids = batch["input_ids"]
            prefill = reference(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False, **extra).logits[0]
            # Every position of one case (the others' last): 128 KB of float32 per position.
            key = f"{name}.all_logits" if name == ALL_LOGITS_CASE else f"{name}.logits"
            logits_out[key] = (prefill if name == ALL_LOGITS_CASE else prefill[-1:]).float().clone()
            saved = reference.generation_config
            reference.generation_config = GenerationConfig(do_sample=False, max_new_tokens=MAX_NEW_TOKENS, bos_token_id=1,
                                                           pad_token_id=0, eos_token_id=None)
            out = reference.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                     max_new_tokens=MAX_NEW_TOKENS, output_logits=True, return_dict_in_generate=True,
                                     **extra)
            reference.generation_config = saved
            tokens = out.sequences[0, ids.shape[1]:].tolist()
            steps = [{"token": t, "top5": topk_list(l[0])} for t, l in zip(tokens, out.logits)]
            for s in steps:
                s["margin"] = s["top5"][0][1] - s["top5"][1][1]
            cases.append({"name": name, "prompt": prompt, "images": [image] if image else [], "input_ids": ids[0].tolist(),
                          "logits_key": key, "greedy": {"tokens": tokens, "steps": steps}})
    save_file(logits_out, os.path.join(out_dir, "reference_logits.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(out_dir, "reference.json"), "w") as f:
        json.dump({"format_version": 1, "model": "tiny-awq", "transformers_version": transformers.__version__,
                   "torch_version": torch.__version__, "seed": SPEC["seed"], "quantization_config": QUANTIZATION_CONFIG,
                   "quantized_tensors": sorted(n.removesuffix(".weight") for n in dequantized),
                   "reference": "float32 model with the quantized matrices' exact values (q - z) * s, eager attention",
                   "max_new_tokens": MAX_NEW_TOKENS, "cases": cases}, f, indent=1)
        f.write("\n")
    size = sum(os.path.getsize(os.path.join(out_dir, f)) for f in os.listdir(out_dir))
    print(f"tiny-awq: {len(packed)} tensors ({len(dequantized)} layers packed), {size / 1e6:.1f} MB")
    for c in cases:
        print(f"  {c['name']:6s} L={len(c['input_ids']):3d} tokens={c['greedy']['tokens']} "
              f"min margin={min(s['margin'] for s in c['greedy']['steps']):.3f}")


if __name__ == "__main__":
    main()
