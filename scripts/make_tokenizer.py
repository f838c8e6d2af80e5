"""Builds Idefics2's tokenizer files from the real Mistral-7B-v0.1 sentencepiece model.

mistral-common ships `data/tokenizer.model.v1` (Mistral-7B-v0.1's vocabulary). We convert it to the legacy
`tokenizer.json` layout that HuggingFaceM4/idefics2-8b uses (normalizer Prepend+Replace, no pre-tokenizer, BPE with
byte fallback, BOS template) and add Idefics2's three added tokens (32000-32002).

Usage: python scripts/make_tokenizer.py OUTPUT_DIR
"""
import json
import os
import sys

import mistral_common
from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, processors
from transformers.convert_slow_tokenizer import SentencePieceExtractor

IDEFICS2_ADDED = ["<fake_token_around_image>", "<image>", "<end_of_utterance>"]

CHAT_TEMPLATE = (
    "{% for message in messages %}{{message['role'].capitalize()}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)


def sentencepiece_model_path() -> str:
    return os.path.join(os.path.dirname(mistral_common.__file__), "data", "tokenizer.model.v1")


def build_tokenizer() -> Tokenizer:
    extracted = SentencePieceExtractor(sentencepiece_model_path()).extract(models.BPE)
    vocab, merges = extracted["vocab"], extracted["merges"]
    assert len(vocab) == 32000, len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in ["<unk>", "<s>", "</s>"]])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)]
    )
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in IDEFICS2_ADDED])
    for i, t in enumerate(IDEFICS2_ADDED):
        assert tok.token_to_id(t) == 32000 + i
    return tok


def write_tokenizer_files(out_dir: str, compact: bool = False) -> None:
    """compact=True writes tokenizer.json without indentation and with merges spelled "a b" (the legacy spelling,
    as in the hub's idefics2-8b tokenizer.json; both `tokenizers` and swift-idefics read it): 1.1 MB, not 3.5 MB."""
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "tokenizer.json")
    build_tokenizer().save(path)
    if compact:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        merges = data["model"]["merges"]
        assert all(" " not in a and " " not in b for a, b in merges)
        data["model"]["merges"] = [f"{a} {b}" for a, b in merges]
        with open(path, "w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False, separators=(",", ":"))
    added = {
        str(i): {"content": t, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False,
                 "special": True}
        for i, t in enumerate(["<unk>", "<s>", "</s>"])
    }
    for i, t in enumerate(IDEFICS2_ADDED):
        added[str(32000 + i)] = {"content": t, "lstrip": False, "normalized": False, "rstrip": False,
                                 "single_word": False, "special": True}
    config = {
        "add_bos_token": True, "add_eos_token": False, "added_tokens_decoder": added,
        "additional_special_tokens": IDEFICS2_ADDED, "bos_token": "<s>", "eos_token": "</s>",
        "clean_up_tokenization_spaces": False, "legacy": True, "model_max_length": 1000000000000000019884624838656,
        "pad_token": "<unk>", "padding_side": "left", "tokenizer_class": "LlamaTokenizer", "unk_token": "<unk>",
        "use_default_system_prompt": False, "do_image_splitting": False,
    }
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
        json.dump(config, f, indent=2, ensure_ascii=False)
    special = {"additional_special_tokens": IDEFICS2_ADDED, "bos_token": "<s>", "eos_token": "</s>",
               "pad_token": "<unk>", "unk_token": "<unk>"}
    with open(os.path.join(out_dir, "special_tokens_map.json"), "w") as f:
        json.dump(special, f, indent=2)
    with open(os.path.join(out_dir, "chat_template.json"), "w") as f:
        json.dump({"chat_template": CHAT_TEMPLATE}, f, indent=2)


if __name__ == "__main__":
    write_tokenizer_files(sys.argv[1] if len(sys.argv) > 1 else "Tests/Fixtures/tokenizer")
