"""Writes the language model of an Idefics2 checkpoint as a plain Mistral checkpoint folder (MistralForCausalLM:
config.json from `text_config`, the tokenizer files, safetensors shards with `model.text_model.*` renamed to
`model.*`), so that text-only engines can run the same weights: llama.cpp's `convert_hf_to_gguf.py` turns the folder
into a GGUF file for `llama-bench` (the peer figures of the README's benchmark section).

Usage:
  .venv/bin/python scripts/export_text_model.py IDEFICS2_DIR OUT_DIR

Tensors are copied one at a time in their stored dtype (shards of about 2 GB), so memory stays small.
"""
import json
import os
import shutil
import sys

from safetensors import safe_open
from safetensors.torch import save_file

PREFIX = "model.text_model."
SHARD_BYTES = 2 << 30


def main(source, out):
    if os.path.exists(out):
        sys.exit(f"{out} exists: refusing to overwrite it")
    with open(os.path.join(source, "config.json")) as f:
        config = json.load(f)
    if config.get("model_type") != "idefics2":
        sys.exit(f"{source}/config.json: model_type {config.get('model_type')!r} is not idefics2")
    text = dict(config["text_config"], architectures=["MistralForCausalLM"], model_type="mistral")
    text.setdefault("torch_dtype", config.get("dtype", "bfloat16"))
    rope = text.get("rope_parameters") or {}
    if "rope_theta" in rope:
        text.setdefault("rope_theta", rope["rope_theta"])
    os.makedirs(out)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(text, f, indent=2)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
                 "generation_config.json"):
        if os.path.exists(os.path.join(source, name)):
            shutil.copy(os.path.join(source, name), out)

    files = sorted(name for name in os.listdir(source) if name.endswith(".safetensors"))
    shard, shard_bytes, weight_map, shards = {}, 0, {}, []

    def flush():
        nonlocal shard, shard_bytes
        if shard:
            name = f"model-{len(shards) + 1:05d}.safetensors"
            save_file(shard, os.path.join(out, name), metadata={"format": "pt"})
            shards.append(name)
            weight_map.update({key: name for key in shard})
            print(f"wrote {name} ({shard_bytes / 1e9:.2f} GB)", file=sys.stderr)
        shard, shard_bytes = {}, 0

    for file in files:
        with safe_open(os.path.join(source, file), framework="pt") as reader:
            for key in reader.keys():
                if key.startswith(PREFIX):
                    name = "model." + key[len(PREFIX):]
                elif key == "lm_head.weight":
                    name = key
                else:
                    continue
                tensor = reader.get_tensor(key).contiguous()
                shard[name] = tensor
                shard_bytes += tensor.numel() * tensor.element_size()
                if shard_bytes >= SHARD_BYTES:
                    flush()
    flush()
    if not weight_map:
        sys.exit(f"{source}: no {PREFIX}* tensors")
    with open(os.path.join(out, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {}, "weight_map": weight_map}, f, indent=1)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
