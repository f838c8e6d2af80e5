"""Published checkpoint files and config layouts, with the configs transformers 5.23 resolves from them.

Writes (no weights; CI reads all of it):
- `Tests/Fixtures/hub/<org>/<repo>/`: the JSON files of the published Idefics2 repositories (config, generation
  config, preprocessor / processor configs, tokenizer config, special tokens map, added tokens) written from the
  published facts below, plus the Idefics2 `tokenizer.json` (the demo model's compact copy: the real Mistral-7B-v0.1
  vocabulary and the three added tokens, as the hub's idefics2-8b ships it).
- `Tests/Fixtures/configs/layouts/<name>/config.json`: config layouts met in fine-tunes and other savers.
- `Tests/Fixtures/configs/resolved.json`: for every folder above, what `AutoConfig.from_pretrained` builds (every
  dataclass field of the composite config and of each sub-config) or the error it raises, and what swift-idefics must
  do with it (`load`, or `refuse` for configs transformers accepts that we do not run).
- `Tests/Fixtures/hub/prompts.json`: per published repository, the chat template transformers' processor finds, the
  model card's examples rendered and expanded the original (4.4x) way, and their token ids.

What is published fact and what is reconstruction: idefics2-8b's config.json and processor_config.json are the
published files verbatim (684 bytes; saved by 4.39.0.dev0). The other repositories' files follow the same saver and
the facts we know (base: vocab 32002, generation config ending on `</s>` only, no image splitting; AWQ: float16, the
`quantization_config` of AutoAWQ's GEMM 4-bit export with the vision tower and connector unquantized). The v1 configs
follow the idefics-9b / idefics-80b layouts (4.28.0.dev0 saves).

Usage: python scripts/make_config_fixtures.py
"""
import copy
import dataclasses
import json
import os
import shutil

from tokenizers import Tokenizer
from transformers import AutoConfig, AutoProcessor, PreTrainedTokenizerFast

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(REPO, "Tests", "Fixtures")
TOKENIZER_JSON = os.path.join(REPO, "Models", "idefics2-demo", "tokenizer.json")
FAKE, IMAGE, EOU = "<fake_token_around_image>", "<image>", "<end_of_utterance>"

# transformers 4.40's Idefics2Processor.default_chat_template: what a folder without a template used.
DEFAULT_IDEFICS2_TEMPLATE = (
    "{% for message in messages %}"
    "{{message['role'].capitalize()}}"
    "{% if message['content'][0]['type'] == 'image' %}"
    "{{':'}}"
    "{% else %}"
    "{{': '}}"
    "{% endif %}"
    "{% for line in message['content'] %}"
    "{% if line['type'] == 'text' %}"
    "{{line['text']}}"
    "{% elif line['type'] == 'image' %}"
    "{{ '<image>' }}"
    "{% endif %}"
    "{% endfor %}"
    "<end_of_utterance>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}"
    "{{ 'Assistant:' }}"
    "{% endif %}"
)

# ------------------------------------------------------------------------------------------- published files


def token(content):
    return {"content": content, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False}


def tokenizer_config(chat_template=None):
    decoder = {str(i): dict(token(t), special=True)
               for i, t in [(0, "<unk>"), (1, "<s>"), (2, "</s>"), (32000, FAKE), (32001, IMAGE), (32002, EOU)]}
    config = {
        "add_bos_token": True, "add_eos_token": False, "added_tokens_decoder": decoder,
        "additional_special_tokens": [FAKE, IMAGE, EOU], "bos_token": "<s>", "clean_up_tokenization_spaces": False,
        "eos_token": "</s>", "legacy": False, "model_max_length": 1000000000000000019884624838656,
        "pad_token": "<unk>", "processor_class": "Idefics2Processor", "sp_model_kwargs": {},
        "spaces_between_special_tokens": False, "tokenizer_class": "LlamaTokenizer", "unk_token": "<unk>",
        "use_default_system_prompt": True,
    }
    if chat_template:
        config["chat_template"] = chat_template
    return config


SPECIAL_TOKENS_MAP = {
    "additional_special_tokens": [token(FAKE), token(IMAGE), token(EOU)],
    "bos_token": token("<s>"), "eos_token": token("</s>"), "pad_token": token("<unk>"), "unk_token": token("<unk>"),
}
ADDED_TOKENS = {EOU: 32002, FAKE: 32000, IMAGE: 32001}


def idefics2_config(vocab_size=32003, dtype="float32", version="4.39.0.dev0", extra=None):
    config = {
        "architectures": ["Idefics2ForConditionalGeneration"], "image_token_id": 32001, "model_type": "idefics2",
        "perceiver_config": {"model_type": "idefics2"},
        "text_config": {"max_position_embeddings": 32768, "model_type": "mistral", "pad_token_id": 0,
                        "rms_norm_eps": 1e-05, "vocab_size": vocab_size},
        "tie_word_embeddings": False, "torch_dtype": dtype, "transformers_version": version, "use_cache": True,
        "vision_config": {"hidden_size": 1152, "image_size": 980, "intermediate_size": 4304, "model_type": "idefics2",
                          "num_attention_heads": 16, "num_hidden_layers": 27, "patch_size": 14},
    }
    config.update(extra or {})
    return config


def preprocessor_config(splitting):
    return {
        "do_convert_rgb": True, "do_image_splitting": splitting, "do_normalize": True, "do_pad": True,
        "do_rescale": True, "do_resize": True, "image_mean": [0.5, 0.5, 0.5],
        "image_processor_type": "Idefics2ImageProcessor", "image_std": [0.5, 0.5, 0.5],
        "processor_class": "Idefics2Processor", "resample": 2, "rescale_factor": 0.00392156862745098,
        "size": {"longest_edge": 980, "shortest_edge": 378},
    }


def generation_config(eos, version="4.39.0.dev0"):
    return {"_from_model_config": True, "bad_words_ids": [[32000], [32001]], "bos_token_id": 1, "eos_token_id": eos,
            "pad_token_id": 0, "transformers_version": version}


AWQ = {"quantization_config": {"bits": 4, "group_size": 128, "modules_to_not_convert": ["vision_model", "connector"],
                               "quant_method": "awq", "version": "gemm", "zero_point": True}}

PUBLISHED = {
    "HuggingFaceM4/idefics2-8b-base": dict(
        config=idefics2_config(vocab_size=32002), generation=generation_config(2), splitting=False),
    "HuggingFaceM4/idefics2-8b": dict(
        config=idefics2_config(), generation=generation_config([2, 32002]), splitting=True),
    "HuggingFaceM4/idefics2-8b-chatty": dict(
        config=idefics2_config(version="4.40.0.dev0"), generation=generation_config([2, 32002], "4.40.0.dev0"),
        splitting=True, tokenizer_template=DEFAULT_IDEFICS2_TEMPLATE),
    "HuggingFaceM4/idefics2-8b-AWQ": dict(
        config=idefics2_config(dtype="float16", version="4.40.0.dev0", extra=AWQ),
        generation=generation_config([2, 32002], "4.40.0.dev0"), splitting=True),
}

# A fine-tune's layout (like TIGER-Lab/Mantis-8B-Idefics2): every field spelled out by a 4.4x save, the generation
# noise of PretrainedConfig in every sub-config, and the chat template inside processor_config.json.
NOISE = {
    "_name_or_path": "", "add_cross_attention": False, "architectures": None, "bad_words_ids": None,
    "begin_suppress_tokens": None, "bos_token_id": None, "chunk_size_feed_forward": 0, "cross_attention_hidden_size": None,
    "decoder_start_token_id": None, "diversity_penalty": 0.0, "do_sample": False, "early_stopping": False,
    "encoder_no_repeat_ngram_size": 0, "eos_token_id": None, "exponential_decay_length_penalty": None,
    "finetuning_task": None, "forced_bos_token_id": None, "forced_eos_token_id": None,
    "id2label": {"0": "LABEL_0", "1": "LABEL_1"}, "is_decoder": False, "is_encoder_decoder": False,
    "label2id": {"LABEL_0": 0, "LABEL_1": 1}, "length_penalty": 1.0, "max_length": 20, "min_length": 0,
    "no_repeat_ngram_size": 0, "num_beam_groups": 1, "num_beams": 1, "num_return_sequences": 1, "output_attentions": False,
    "output_hidden_states": False, "output_scores": False, "pad_token_id": None, "prefix": None, "problem_type": None,
    "pruned_heads": {}, "remove_invalid_values": False, "repetition_penalty": 1.0, "return_dict": True,
    "return_dict_in_generate": False, "sep_token_id": None, "suppress_tokens": None, "task_specific_params": None,
    "temperature": 1.0, "tf_legacy_loss": False, "tie_encoder_decoder": False, "tie_word_embeddings": True,
    "tokenizer_class": None, "top_k": 50, "top_p": 1.0, "torch_dtype": None, "torchscript": False,
    "typical_p": 1.0, "use_bfloat16": False,
}
FULL_TEXT = {
    "attention_dropout": 0.0, "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.02,
    "intermediate_size": 14336, "max_position_embeddings": 32768, "model_type": "mistral", "num_attention_heads": 32,
    "num_hidden_layers": 32, "num_key_value_heads": 8, "rms_norm_eps": 1e-05, "rope_theta": 10000.0,
    "sliding_window": 4096, "use_cache": True, "vocab_size": 32003,
}
FULL_PERCEIVER = {
    "attention_dropout": 0.0, "hidden_act": "silu", "hidden_size": 4096, "model_type": "idefics2",
    "num_key_value_heads": 4, "resampler_depth": 3, "resampler_head_dim": 96, "resampler_n_heads": 16,
    "resampler_n_latents": 64, "rms_norm_eps": 1e-06,
}
FULL_VISION = {
    "attention_dropout": 0.0, "hidden_act": "gelu_pytorch_tanh", "hidden_size": 1152, "image_size": 980,
    "initializer_range": 0.02, "intermediate_size": 4304, "layer_norm_eps": 1e-06, "model_type": "idefics2",
    "num_attention_heads": 16, "num_channels": 3, "num_hidden_layers": 27, "patch_size": 14,
}


def noisy(section):
    merged = dict(NOISE)
    merged.update(section)
    return merged


FINE_TUNE_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{{ 'System: ' + messages[0]['content'][0]['text'] + '<end_of_utterance>\n' }}"
    "{% set messages = messages[1:] %}{% endif %}"
    "{% for message in messages %}{{ message['role'].capitalize() + ':' }}{% for line in message['content'] %}"
    "{% if line['type'] == 'text' %}{{ ' ' + line['text'] }}{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}"
    "{% endfor %}<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)
FINE_TUNE = {
    "config": {
        "_name_or_path": "HuggingFaceM4/idefics2-8b", "architectures": ["Idefics2ForConditionalGeneration"],
        "image_token_id": 32001, "model_type": "idefics2", "perceiver_config": noisy(FULL_PERCEIVER),
        "text_config": noisy(dict(FULL_TEXT, pad_token_id=0, tie_word_embeddings=False)),
        "tie_word_embeddings": False, "torch_dtype": "bfloat16", "transformers_version": "4.40.0",
        "use_cache": True, "vision_config": noisy(FULL_VISION),
    },
    "processor": {"chat_template": FINE_TUNE_TEMPLATE, "image_seq_len": 64, "processor_class": "Idefics2Processor"},
}

# ------------------------------------------------------------------------------------------- config layouts


def sparse(**changes):
    """idefics2-8b's published config with top-level keys replaced (None removes the key)."""
    config = idefics2_config()
    for key, value in changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    return config


def text(**changes):
    section = dict(idefics2_config()["text_config"])
    section.update(changes)
    return section


V1_VISION = {"embed_dim": 1280, "image_size": 224, "intermediate_size": 5120, "num_attention_heads": 16,
             "num_hidden_layers": 32, "patch_size": 14, "vision_model_name": "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"}
V1_PERCEIVER = {"resampler_depth": 6, "resampler_head_dim": 96, "resampler_n_heads": 16, "resampler_n_latents": 64}


def idefics_v1(hidden, intermediate, layers, heads, eps, qk_norms):
    return {
        "additional_vocab_size": 2, "alpha_initializer": "zeros", "alpha_type": "float", "alphas_initializer_range": 0.0,
        "architectures": ["IdeficsForVisionText2Text"], "bos_token_id": 1, "cross_layer_interval": 4, "dropout": 0.0,
        "eos_token_id": 2, "freeze_lm_head": False, "freeze_text_layers": False, "freeze_text_module_exceptions": [],
        "freeze_vision_layers": False, "freeze_vision_module_exceptions": [], "hidden_act": "silu",
        "hidden_size": hidden, "initializer_range": 0.02, "intermediate_size": intermediate,
        "max_position_embeddings": 2048, "max_sequence_length": 2048, "model_type": "idefics",
        "num_attention_heads": heads, "num_hidden_layers": layers, "pad_token_id": 0, "qk_layer_norms": qk_norms,
        "rms_norm_eps": eps, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
        "transformers_version": "4.28.0.dev0", "use_cache": True, "use_resampler": True, "vocab_size": 32000,
        "word_embed_proj_dim": hidden, "vision_config": V1_VISION, "perceiver_config": V1_PERCEIVER,
    }


# name -> (config.json, what swift-idefics must do: "load" | "refuse")
LAYOUTS = {
    # Idefics2, other savers
    "idefics2-transformers-5.23": (None, "load"),  # filled from the tiny-bf16-swa fixture (a 5.23 save_pretrained)
    "idefics2-text-config-absent": (sparse(text_config=None), "load"),
    "idefics2-subconfigs-absent": (sparse(vision_config=None, perceiver_config=None), "load"),
    "idefics2-subconfigs-null": (dict(sparse(), vision_config=None, perceiver_config=None, text_config=None), "load"),
    "idefics2-text-model-type-absent": (
        sparse(text_config={k: v for k, v in text().items() if k != "model_type"}), "load"),
    "idefics2-text-nulls": (sparse(text_config=text(sliding_window=None, head_dim=None)), "load"),
    "idefics2-text-kv-heads-null": (sparse(text_config=text(num_key_value_heads=None)), "refuse"),
    "idefics2-text-rms-eps-absent": (sparse(text_config={k: v for k, v in text().items() if k != "rms_norm_eps"}), "load"),
    "idefics2-rope-parameters": (
        sparse(text_config=text(rope_parameters={"rope_type": "default", "rope_theta": 1000000.0})), "load"),
    "idefics2-rope-theta-legacy": (sparse(text_config=text(rope_theta=500000.0)), "load"),
    "idefics2-narrow-text": (  # perceiver hidden differs from the text's: transformers takes the text width and eps
        sparse(text_config=text(hidden_size=2048, num_attention_heads=16, rms_norm_eps=1e-05),
               perceiver_config={"model_type": "idefics2", "rms_norm_eps": 1e-06}), "load"),
    "idefics2-llama-text": (sparse(text_config={"model_type": "llama", "vocab_size": 32003, "pad_token_id": 0,
                                                 "rms_norm_eps": 1e-05, "num_key_value_heads": 8}), "load"),
    "idefics2-image-token-id": (sparse(image_token_id=32000), "load"),
    "idefics2-rope-linear": (
        sparse(text_config=text(rope_parameters={"rope_type": "linear", "rope_theta": 10000.0, "factor": 2.0})),
        "refuse"),
    "idefics2-gelu-text": (sparse(text_config=text(hidden_act="gelu")), "refuse"),
    "idefics2-llama-attention-bias": (sparse(text_config={"model_type": "llama", "attention_bias": True}), "refuse"),
    "idefics2-text-hidden-null": (sparse(text_config=text(hidden_size=None)), "refuse"),
    "idefics2-text-model-type-unknown": (sparse(text_config=text(model_type="not-a-model")), "refuse"),
    # plain decoders
    "mistral-sparse": ({"model_type": "mistral", "architectures": ["MistralForCausalLM"], "vocab_size": 32000}, "load"),
    "llama-sparse": ({"model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": 32000,
                      "max_position_embeddings": 4096}, "load"),
    # Idefics v1 (config only: the model is not implemented yet)
    "idefics-9b": (idefics_v1(4096, 11008, 32, 32, 1e-06, False), "load"),
    "idefics-80b": (idefics_v1(8192, 22016, 80, 64, 1e-05, True), "load"),
    "idefics-sparse": ({"model_type": "idefics", "architectures": ["IdeficsForVisionText2Text"]}, "load"),
    # not a model at all
    "unknown-model-type": ({"model_type": "not-a-model"}, "refuse"),
}

# ------------------------------------------------------------------------------------------- resolution


def fields(config):
    out = {}
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if dataclasses.is_dataclass(value):
            continue
        if field.name in ("dtype",):
            value = None if value is None else str(value).replace("torch.", "")
        if isinstance(value, tuple):
            value = list(value)
        out[field.name] = value
    return out


def resolve(folder):
    try:
        config = AutoConfig.from_pretrained(folder)
    except Exception as error:  # recorded: swift-idefics must refuse it too
        return {"error": f"{type(error).__name__}: {error}"[:400]}
    resolved = {"class": type(config).__name__, "config": fields(config)}
    for key in ("text_config", "vision_config", "perceiver_config"):
        sub = getattr(config, key, None)
        if sub is not None and dataclasses.is_dataclass(sub):
            resolved[key] = dict(fields(sub), **{"class": type(sub).__name__})
    return resolved


def write_json(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")


def write_published(root):
    folders = {}
    for repo, spec in PUBLISHED.items():
        folder = os.path.join(root, repo)
        write_json(os.path.join(folder, "config.json"), spec["config"])
        write_json(os.path.join(folder, "generation_config.json"), spec["generation"])
        write_json(os.path.join(folder, "preprocessor_config.json"), preprocessor_config(spec["splitting"]))
        write_json(os.path.join(folder, "processor_config.json"),
                   {"image_seq_len": 64, "processor_class": "Idefics2Processor"})
        write_json(os.path.join(folder, "tokenizer_config.json"), tokenizer_config(spec.get("tokenizer_template")))
        write_json(os.path.join(folder, "special_tokens_map.json"), SPECIAL_TOKENS_MAP)
        write_json(os.path.join(folder, "added_tokens.json"), ADDED_TOKENS)
        shutil.copyfile(TOKENIZER_JSON, os.path.join(folder, "tokenizer.json"))
        folders[repo] = folder
    folder = os.path.join(root, "TIGER-Lab", "Mantis-8B-Idefics2")
    write_json(os.path.join(folder, "config.json"), FINE_TUNE["config"])
    write_json(os.path.join(folder, "generation_config.json"), generation_config([2, 32002], "4.40.0"))
    write_json(os.path.join(folder, "preprocessor_config.json"), preprocessor_config(False))
    write_json(os.path.join(folder, "processor_config.json"), FINE_TUNE["processor"])
    write_json(os.path.join(folder, "tokenizer_config.json"), tokenizer_config())
    write_json(os.path.join(folder, "special_tokens_map.json"), SPECIAL_TOKENS_MAP)
    shutil.copyfile(TOKENIZER_JSON, os.path.join(folder, "tokenizer.json"))
    folders["TIGER-Lab/Mantis-8B-Idefics2"] = folder
    return folders


def expand(prompt, splitting):
    """The original (4.4x) Idefics2Processor prompt expansion, our reference."""
    block = f"{FAKE}{IMAGE * 64}{FAKE}"
    if splitting:
        block = block * 5
    return prompt.replace(IMAGE, block).replace(f"{FAKE}{FAKE}", FAKE)


CARD_CHAT = [
    {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What do we see in this image?"}]},
    {"role": "assistant", "content": [{"type": "text", "text": "In this image, we can see the city of New York, and "
                                                              "more specifically the Statue of Liberty."}]},
    {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "And how about this image?"}]},
]
CARD_SYSTEM_CHAT = [{"role": "system", "content": [{"type": "text", "text": "You are a helpful assistant."}]}] + CARD_CHAT
CARD_BASE_PROMPTS = [
    "<image>In this image, we can see the city of New York, and more specifically the Statue of Liberty.<image>In this image,",
    "In which city is that bridge located?<image>",
]


def prompt_references(folders):
    out = {}
    for repo, folder in folders.items():
        processor = AutoProcessor.from_pretrained(folder)
        tokenizer = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
        fast = PreTrainedTokenizerFast(tokenizer_file=os.path.join(folder, "tokenizer.json"))
        splitting = processor.image_processor.do_image_splitting
        # Our lookup: the processor's template (jinja / json / processor_config.json), else the tokenizer's, else
        # 4.40's default. transformers 5.23's processor itself ignores a template in tokenizer_config.json.
        template = processor.chat_template
        origin, used = ("processor", template) if template is not None else \
            ("tokenizer", processor.tokenizer.chat_template) if processor.tokenizer.chat_template else \
            ("default", DEFAULT_IDEFICS2_TEMPLATE)
        cases = [{"prompt": p, "chat": False} for p in CARD_BASE_PROMPTS]
        for messages in (CARD_CHAT, CARD_SYSTEM_CHAT) if "Mantis" in repo else (CARD_CHAT,):
            rendered = fast.apply_chat_template(messages, chat_template=used, add_generation_prompt=True, tokenize=False)
            cases.append({"messages": messages, "chat": True, "prompt": rendered})
        for case in cases:
            case["expanded_ids"] = tokenizer.encode(expand(case["prompt"], splitting)).ids
        out[repo] = {"processor_chat_template": template, "template_origin": origin, "chat_template_used": used,
                     "do_image_splitting": splitting, "image_seq_len": processor.image_seq_len, "cases": cases}
    return out


def main():
    hub = os.path.join(FIXTURES, "hub")
    folders = write_published(hub)
    layouts_root = os.path.join(FIXTURES, "configs", "layouts")
    shutil.rmtree(layouts_root, ignore_errors=True)
    cases = []
    for repo, folder in folders.items():
        expect = "load"
        cases.append(dict(name=repo, folder=os.path.relpath(folder, FIXTURES), expect=expect, **resolve(folder)))
    for name, (config, expect) in LAYOUTS.items():
        if config is None:
            with open(os.path.join(FIXTURES, "models", "tiny-bf16-swa", "config.json"), encoding="utf-8") as f:
                config = json.load(f)
        folder = os.path.join(layouts_root, name)
        write_json(os.path.join(folder, "config.json"), copy.deepcopy(config))
        resolved = resolve(folder)
        cases.append(dict(name=name, folder=os.path.relpath(folder, FIXTURES), expect=expect, **resolved))
        print(f"{name:36s} {expect:8s} {resolved.get('class', resolved.get('error'))}")
    write_json(os.path.join(FIXTURES, "configs", "resolved.json"), {"transformers": "5.23.0", "cases": cases})
    write_json(os.path.join(hub, "prompts.json"), prompt_references(folders))


if __name__ == "__main__":
    main()
