"""Image references for the tiny Idefics2 checkpoints: vision tower, connector, image-text merge, generation.

Reads the checkpoints written by scripts/make_model_fixtures.py (Tests/Fixtures/models/<name>/, never modified here)
and writes Tests/Fixtures/vision/:

  images/<name>.png               small deterministic input images (crops / downscales of scikit-image photos and
                                  procedurally drawn ones), committed; the references are computed from these files
  <model>/reference.json          prompts, expanded prompts, input ids, image sizes, greedy / default generation,
                                  batch results, checks (format in scripts/README.md)
  <model>/tensors.safetensors     pixel values, masks, vision position ids, vision hidden states, connector outputs,
                                  logits
  position_ids.json               the vision position-id buckets transformers 5.23 computes, for every
                                  num_patches_per_side N in POSITION_TABLE_N and every nb in 1..N

Reference: transformers 5.23.0 (torch 2.13 CPU), float32, attn_implementation="eager"; images processed by
Idefics2ImageProcessorPil (the Pillow backend, not the torchvision default); prompts expanded the way the original
Idefics2Processor (transformers 4.40-4.44) does it; tokenized with PreTrainedTokenizerFast(tokenizer_file=...).

Usage: .venv/bin/python scripts/make_vision_fixtures.py [OUTPUT_ROOT] [MODEL_ROOT]
       (defaults Tests/Fixtures/vision and Tests/Fixtures/models). Deterministic; about 1 minute.
"""
import json
import os
import re
import sys

import numpy as np
import PIL
import skimage.data
import torch
import transformers
from PIL import Image, ImageDraw
from safetensors.torch import save_file
from transformers import GenerationConfig, Idefics2ForConditionalGeneration, PreTrainedTokenizerFast
from transformers.models.idefics2 import modeling_idefics2
from transformers.models.idefics2.configuration_idefics2 import Idefics2VisionConfig
from transformers.models.idefics2.image_processing_pil_idefics2 import (
    Idefics2ImageProcessorPil,
    get_resize_output_image_size,
)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_model_fixtures import MAX_NEW_TOKENS, MODELS, VOCAB, clean_generation_config, topk_list  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "..", "Tests", "Fixtures", "vision")
DEFAULT_MODELS = os.path.join(HERE, "..", "Tests", "Fixtures", "models")
PHOTOS = os.path.dirname(skimage.data.__file__)

FAKE = "<fake_token_around_image>"
IMAGE = "<image>"
IMAGE_TOKEN_ID = 32001
FAKE_TOKEN_ID = 32000
POSITION_TABLE_N = [4, 5, 27, 32, 70]  # + every N of the tiny configs (4, 5)
# All-position prefill logits ([L, 32003] F32, 128 KB a position) are stored for one case of one model only, to keep
# the fixtures near 6 MB: tiny-bf16-swa's text_then_image (13 positions; its sliding window of 8 crosses the image
# block).
ALL_LOGITS = {"tiny-bf16-swa": "text_then_image"}

# ---------------------------------------------------------------------------------------------------------------
# Input images (name -> (W, H) in the file name)
# ---------------------------------------------------------------------------------------------------------------


def _photo(name, box, size):
    im = Image.open(os.path.join(PHOTOS, name)).convert("RGB")
    return im.crop(box).resize(size, Image.LANCZOS)


def _drawn_tall():
    w, h = 31, 200
    y, x = np.mgrid[0:h, 0:w]
    a = np.zeros((h, w, 3), np.uint8)
    a[..., 0] = (y * 255) // (h - 1)
    a[..., 1] = (x * 255) // (w - 1)
    a[..., 2] = np.where(((y // 10) + (x // 8)) % 2 == 0, 230, 25)
    im = Image.fromarray(a, "RGB")
    d = ImageDraw.Draw(im)
    d.ellipse((3, 120, 27, 150), fill=(250, 250, 20))
    d.line((0, 0, 30, 60), fill=(0, 0, 0), width=2)
    d.rectangle((5, 170, 25, 190), outline=(255, 255, 255))
    return im


def _drawn_rgba():
    w, h = 45, 33
    y, x = np.mgrid[0:h, 0:w]
    a = np.zeros((h, w, 4), np.uint8)
    a[..., 0] = 200
    a[..., 1] = (x * 255) // (w - 1)
    a[..., 2] = (y * 255) // (h - 1)
    a[..., 3] = (x * 255) // (w - 1)  # transparent on the left, opaque on the right
    a[:, :6, 3] = 0
    im = Image.fromarray(a, "RGBA")
    ImageDraw.Draw(im).ellipse((20, 5, 40, 28), fill=(10, 40, 160, 255))
    return im


IMAGE_SPECS = {
    # name: (maker, description)
    "chelsea_40x60": (lambda: _photo("chelsea.png", (140, 10, 340, 300), (40, 60)),
                      "scikit-image chelsea.png, crop (140,10,340,300), LANCZOS to 40x60 (portrait)"),
    "astronaut_97x53": (lambda: _photo("astronaut.png", (0, 100, 512, 380), (97, 53)),
                        "scikit-image astronaut.png, crop (0,100,512,380), LANCZOS to 97x53 (landscape, odd sizes)"),
    "coffee_70x70": (lambda: _photo("coffee.png", (100, 0, 500, 400), (70, 70)),
                     "scikit-image coffee.png, crop (100,0,500,400), LANCZOS to 70x70 (square)"),
    "chelsea_150x90": (lambda: _photo("chelsea.png", (0, 15, 451, 285), (150, 90)),
                       "scikit-image chelsea.png, crop (0,15,451,285), LANCZOS to 150x90"),
    "drawn_31x200": (_drawn_tall, "procedural: RGB gradients, checker, ellipse, line, rectangle (31x200, very tall)"),
    "astronaut_20x24": (lambda: _photo("astronaut.png", (170, 20, 330, 212), (20, 24)),
                        "scikit-image astronaut.png, crop (170,20,330,212), LANCZOS to 20x24 (below shortest_edge)"),
    "drawn_rgba_45x33": (_drawn_rgba, "procedural RGBA with an alpha ramp and a fully transparent left band "
                                      "(the processor composites it onto white)"),
}


def write_images(out_root):
    d = os.path.join(out_root, "images")
    os.makedirs(d, exist_ok=True)
    info = {}
    for name, (maker, desc) in IMAGE_SPECS.items():
        im = maker()
        path = os.path.join(d, name + ".png")
        im.save(path, format="PNG", optimize=False)
        info[name] = {"file": f"images/{name}.png", "width": im.size[0], "height": im.size[1], "mode": im.mode,
                      "description": desc}
    return info


def load_image(out_root, name):
    im = Image.open(os.path.join(out_root, "images", name + ".png"))
    im.load()
    return im


# ---------------------------------------------------------------------------------------------------------------
# Prompt expansion: the ORIGINAL Idefics2Processor (transformers 4.40 - 4.44.2, processing_idefics2.py __call__):
#
#     fake_image_token = self.fake_image_token.content
#     image_token = self.image_token.content
#     image_str = f"{fake_image_token}{image_token * image_seq_len}{fake_image_token}"
#     if self.image_processor.do_image_splitting:
#         # A single image token is split into 4 patches + 1 original image
#         image_str = image_str * 5
#     prompt_strings = []
#     for sample in text:
#         n_images_in_text.append(sample.count(image_token))
#         sample = sample.replace(image_token, image_str)
#         # Remove any double fake tokens if images are adjacent
#         sample = sample.replace(f"{fake_image_token}{fake_image_token}", f"{fake_image_token}")
#         prompt_strings.append(sample)
# ---------------------------------------------------------------------------------------------------------------


def expand_prompt_original(sample, image_seq_len, do_image_splitting):
    image_str = f"{FAKE}{IMAGE * image_seq_len}{FAKE}"
    if do_image_splitting:
        image_str = image_str * 5
    n_images = sample.count(IMAGE)
    sample = sample.replace(IMAGE, image_str)
    sample = sample.replace(f"{FAKE}{FAKE}", f"{FAKE}")
    return n_images, sample


def expand_prompt_transformers5(sample, image_seq_len, do_image_splitting):
    """transformers 5.23's Idefics2Processor (NOT the reference): adds a space after a closing fake token."""
    image_str = f"{FAKE}{IMAGE * image_seq_len}{FAKE}"
    if do_image_splitting:
        image_str = image_str * 5
    closing_fake_pattern = re.compile(rf"{re.escape(FAKE)}(?=[^\s<])")
    sample = sample.replace(IMAGE, image_str)
    sample = sample.replace(f"{FAKE}{FAKE}", f"{FAKE}")
    return closing_fake_pattern.sub(f"{FAKE} ", sample)


# ---------------------------------------------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------------------------------------------
CHAT_MESSAGES = [
    {"role": "user", "content": [{"type": "image"},
                                 {"type": "text", "text": "Qu'est-ce que c'est ? 🐱 猫 naïve — «ça»"}]},
    {"role": "assistant", "content": [{"type": "text", "text": "Un chat, je crois 😺."}]},
    {"role": "user", "content": [{"type": "text", "text": "Et celle-ci ∑ 東京 🚀?"}, {"type": "image"}]},
]

CASES = [
    # name, prompt (None: chat template), images, do_image_splitting
    ("one_image", "<image>What is in this image?", ["chelsea_40x60"], False),
    ("text_then_image", "Describe:<image>", ["coffee_70x70"], False),
    ("two_images", "Compare<image>with<image>. Which one is taller?", ["astronaut_97x53", "drawn_31x200"], False),
    ("adjacent_images", "<image><image>Same or different?", ["coffee_70x70", "chelsea_40x60"], False),
    ("image_first_base", "<image>In this image, we see", ["chelsea_150x90"], False),
    ("chat_unicode", None, ["astronaut_20x24", "drawn_rgba_45x33"], False),
    ("split_one_image", "<image>What is in this image?", ["astronaut_97x53"], True),
]
BATCH_ROWS = ["one_image", "two_images"]


def render_chat(tok, template):
    text = tok.apply_chat_template(CHAT_MESSAGES, chat_template=template, tokenize=False, add_generation_prompt=True)
    # The same text by hand (the idefics2-8b template): a guard against apply_chat_template changes.
    manual = ""
    for m in CHAT_MESSAGES:
        manual += m["role"].capitalize() + (":" if m["content"][0]["type"] == "image" else ": ")
        for part in m["content"]:
            manual += part["text"] if part["type"] == "text" else "<image>"
        manual += "<end_of_utterance>\n"
    manual += "Assistant:"
    assert text == manual, (text, manual)
    return text


# ---------------------------------------------------------------------------------------------------------------
# Vision position ids (transformers 5.23, Idefics2VisionEmbeddings.forward)
# ---------------------------------------------------------------------------------------------------------------


def torch_boundaries(N):
    return torch.arange(1 / N, 1.0, 1 / N)


def buckets_523(N, nbs):
    """The 1-D bucket index of patch i for a side with nb valid patches: the float32 ops of 5.23, one axis."""
    boundaries = torch_boundaries(N)
    nb = torch.tensor(nbs)                                   # int64, like patch_attention_mask.sum()
    step = 1.0 / nb                                          # float32
    idx = torch.arange(max(nbs), dtype=torch.float32)
    coords = idx[None, :] * step[:, None]
    coords = torch.clamp(coords, max=(1.0 - 1e-6))
    b = torch.bucketize(coords, boundaries, right=True)
    return [b[k, :n].tolist() for k, n in enumerate(nbs)]


def buckets_444(N, nb):
    """transformers 4.44 (for comparison only): arange(0, 1 - 1e-6, 1/nb)."""
    boundaries = torch_boundaries(N)
    coords = torch.arange(0, 1 - 1e-6, 1 / torch.tensor(nb))
    return torch.bucketize(coords, boundaries, right=True).tolist()


def boundaries_emulated(N):
    """torch 2.13's CPU arange kernel for float32, re-derived: length ceil((1 - 1/N) / (1/N)) (double); start and step
    in double; elements [0, 16*floor(n/16)) come from 8-lane vectors, lane j of the vector starting at c being
    float32(double(float32(s + s*c)) + j*s); the tail is float32(s + s*k)."""
    s = 1.0 / N
    n = len(torch_boundaries(N))
    vec_end = (n // 16) * 16
    out = []
    for k in range(n):
        if k < vec_end:
            c = (k // 8) * 8
            base = np.float32(s + s * c)
            out.append(np.float32(float(base) + (k - c) * s))
        else:
            out.append(np.float32(s + s * k))
    return np.array(out, dtype=np.float32)


@torch.no_grad()
def module_position_ids(N, pairs):
    """Runs the real Idefics2VisionEmbeddings (patch_size 1, so an image of nb_h x nb_w pixels has nb_h x nb_w
    patches; N = image_size) on a padded batch and captures the position ids it feeds to position_embedding."""
    cfg = Idefics2VisionConfig(hidden_size=2, intermediate_size=2, num_attention_heads=1, num_hidden_layers=1,
                               image_size=N, patch_size=1, num_channels=3)
    emb = modeling_idefics2.Idefics2VisionEmbeddings(cfg)
    cap = {}
    h = emb.position_embedding.register_forward_hook(lambda m, a, o: cap.__setitem__("ids", a[0].clone()))
    Hm = max(p[0] for p in pairs)
    Wm = max(p[1] for p in pairs)
    mask = torch.zeros(len(pairs), Hm, Wm, dtype=torch.bool)
    for k, (a, b) in enumerate(pairs):
        mask[k, :a, :b] = True
    emb(pixel_values=torch.zeros(len(pairs), 3, Hm, Wm), patch_attention_mask=mask)
    h.remove()
    ids = cap["ids"].view(len(pairs), Hm, Wm)
    return [ids[k, :a, :b] for k, (a, b) in enumerate(pairs)]


def make_position_table(out_root, extra_n):
    Ns = sorted(set(POSITION_TABLE_N) | set(extra_n))
    tables, boundaries, diffs_444, diffs_exact, checked = {}, {}, {}, {}, {}
    for N in Ns:
        b = torch_boundaries(N)
        assert np.array_equal(b.numpy(), boundaries_emulated(N)), N
        boundaries[str(N)] = {"count": len(b), "float32": [float(x) for x in b.tolist()],
                              "bits_hex": [f"{int(x):08x}" for x in b.numpy().view(np.uint32)]}
        nbs = list(range(1, N + 1))
        one_d = buckets_523(N, nbs)
        tables[str(N)] = {str(nb): one_d[nb - 1] for nb in nbs}
        # Full 2-D check with the real module for EVERY (nb_h, nb_w) in 1..N x 1..N: id = row * N + col.
        n_pairs = 0
        for nb_h in nbs:
            pairs = [(nb_h, nb_w) for nb_w in nbs]
            for (a, c), ids in zip(pairs, module_position_ids(N, pairs)):
                rows = torch.tensor(one_d[a - 1])
                cols = torch.tensor(one_d[c - 1])
                assert torch.equal(ids, rows[:, None] * N + cols[None, :]), (N, a, c)
                n_pairs += 1
        checked[str(N)] = n_pairs
        # Where the 4.44 formula or exact float32(k/N) boundaries would give other buckets.
        d444 = {str(nb): {"transformers_4_44": buckets_444(N, nb), "transformers_5_23": one_d[nb - 1]}
                for nb in nbs if buckets_444(N, nb) != one_d[nb - 1]}
        diffs_444[str(N)] = d444
        exact = torch.tensor([np.float32((k + 1) / N) for k in range(len(b))])
        dex = []
        for nb in nbs:
            coords = torch.clamp(torch.arange(nb, dtype=torch.float32) * (1.0 / torch.tensor(nb)), max=1.0 - 1e-6)
            alt = torch.bucketize(coords, exact, right=True).tolist()
            if alt != one_d[nb - 1]:
                dex.append(nb)
        diffs_exact[str(N)] = dex
    doc = {
        "format_version": 1,
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "source": "transformers 5.23 modeling_idefics2.py Idefics2VisionEmbeddings.forward",
        "computation": [
            "boundaries = torch.arange(1 / N, 1.0, 1 / N)            # float32; see boundaries below",
            "nb_patches_h = patch_attention_mask[:, :, 0].sum(dim=1)  # int64",
            "step_h = 1.0 / nb_patches_h                              # float32",
            "h_indices = torch.arange(max_patches_h, dtype=torch.float32)",
            "fractional_coords_h = h_indices[None, :] * step_h[:, None]   # float32 product",
            "fractional_coords_h = torch.clamp(fractional_coords_h, max=(1.0 - 1e-6))",
            "bucket_coords_h = torch.bucketize(fractional_coords_h, boundaries, right=True)",
            "(same for w)",
            "pos_ids = bucket_coords_h[:, :, None] * N + bucket_coords_w[:, None, :]   # row-major",
            "position_ids = where(patch_attention_mask, pos_ids, 0)",
        ],
        "bucketize_right_true": "bucket = number of boundaries <= coord",
        "id_rule": "id(i, j) = buckets[N][nb_h][i] * N + buckets[N][nb_w][j]",
        "decomposition_verified": {
            "how": "the real Idefics2VisionEmbeddings module (patch_size 1, image_size N) run on padded batches; "
                   "captured position_embedding inputs equal row*N+col from the 1-D table for every pair",
            "pairs_checked_per_N": checked,
        },
        "boundaries": boundaries,
        "boundaries_note": "torch's CPU float32 arange: length ceil((1-1/N)/(1/N)) in double (27 for N=27: the last "
                           "boundary is 1.0); values are NOT always float32(k/N): elements below 16*floor(n/16) "
                           "come from 8-lane vectors (lane j of the vector at c: float32(float32(s+s*c) + j*s) in "
                           "double), the rest float32(s + s*k). Use these values, or the buckets.",
        "nb_where_exact_float32_boundaries_would_differ": diffs_exact,
        "differs_from_transformers_4_44": diffs_444,
        "buckets": tables,
    }
    with open(os.path.join(out_root, "position_ids.json"), "w") as f:
        json.dump(doc, f, indent=None, separators=(",", ":"), ensure_ascii=False)
        f.write("\n")
    return doc


# ---------------------------------------------------------------------------------------------------------------
# Model references
# ---------------------------------------------------------------------------------------------------------------


class Capture:
    """Forward hooks on the vision tower, its position embedding, the modality projection and the connector."""

    def __init__(self, model):
        m = model.model
        self.calls = []
        self.enabled = True
        self.handles = [
            m.vision_model.register_forward_hook(self._vision, with_kwargs=True),
            m.vision_model.embeddings.position_embedding.register_forward_hook(self._pos),
            m.connector.modality_projection.register_forward_hook(self._proj),
            m.connector.register_forward_hook(self._conn, with_kwargs=True),
        ]

    def _vision(self, mod, args, kwargs, out):
        if not self.enabled:
            return
        self.calls.append({"pixel_values": kwargs["pixel_values"].clone(),
                           "patch_attention_mask": kwargs["patch_attention_mask"].clone(),
                           "last_hidden_state": out.last_hidden_state.clone()})

    def _pos(self, mod, args, out):
        if not self.enabled:
            return
        self.pending_pos = args[0].clone()

    def _proj(self, mod, args, out):
        if not self.enabled:
            return
        self.pending_proj = out.clone()

    def _conn(self, mod, args, kwargs, out):
        if not self.enabled:
            return
        c = self.calls[-1]
        c["position_ids"] = self.pending_pos
        c["projected"] = self.pending_proj
        c["connector_mask"] = kwargs["attention_mask"].clone()
        c["image_hidden_states"] = out.clone()

    def remove(self):
        for h in self.handles:
            h.remove()


def process_images(ip, images_per_row, split):
    out = ip(images=images_per_row, do_image_splitting=split, return_tensors="pt")
    return out["pixel_values"], out["pixel_attention_mask"]


def real_sizes(pixel_attention_mask):
    sizes = []
    for b in range(pixel_attention_mask.shape[0]):
        for k in range(pixel_attention_mask.shape[1]):
            m = pixel_attention_mask[b, k]
            h, w = int(m[:, 0].sum()), int(m[0].sum())
            if h == 0:
                continue
            assert int(m.sum()) == h * w and bool(m[:h, :w].all()), "mask must be a top-left rectangle"
            sizes.append([h, w])
    return sizes


def expected_sizes(ip, pil_images, split):
    """Independent size rule from the processor module (split first, on the original; each part resized)."""
    size = ip.size
    out = []
    for im in pil_images:
        W, H = im.size
        parts = [(H, W)]
        if split:
            mh, mw = H // 2, W // 2
            parts = [(mh, mw), (mh, W - mw), (H - mh, mw), (H - mh, W - mw), (H, W)]
        for (h, w) in parts:
            out.append(list(get_resize_output_image_size(np.zeros((3, h, w)), size)))
    return out


@torch.no_grad()
def greedy(model, ids, attention_mask, pixel_values, pixel_attention_mask):
    saved = model.generation_config
    model.generation_config = clean_generation_config()
    try:
        out = model.generate(input_ids=ids, attention_mask=attention_mask, pixel_values=pixel_values,
                             pixel_attention_mask=pixel_attention_mask, do_sample=False,
                             max_new_tokens=MAX_NEW_TOKENS, output_logits=True, output_scores=True,
                             return_dict_in_generate=True)
    finally:
        model.generation_config = saved
    tokens = out.sequences[:, ids.shape[1]:]
    assert tokens.shape[1] == MAX_NEW_TOKENS
    logits = torch.stack(out.logits, 0)
    assert torch.equal(logits, torch.stack(out.scores, 0))
    return tokens, logits


def steps_of(step_logits, tokens):
    steps = []
    for k in range(MAX_NEW_TOKENS):
        top = topk_list(step_logits[k])
        steps.append({"token": int(tokens[k]), "margin": top[0][1] - top[1][1], "top5": top})
    return steps


@torch.no_grad()
def run_model_reference(name, spec, model_dir, out_root, images_info):
    model = Idefics2ForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32,
                                                             attn_implementation="eager")
    model.eval()
    assert model.dtype == torch.float32
    assert model.model.vision_model.config._attn_implementation == "eager"
    tok = PreTrainedTokenizerFast(tokenizer_file=os.path.join(model_dir, "tokenizer.json"))
    ip = Idefics2ImageProcessorPil.from_pretrained(model_dir)
    assert type(ip) is Idefics2ImageProcessorPil
    with open(os.path.join(model_dir, "processor_config.json")) as f:
        image_seq_len = json.load(f)["image_seq_len"]
    with open(os.path.join(model_dir, "chat_template.json")) as f:
        chat_template = json.load(f)["chat_template"]
    gen_cfg = GenerationConfig.from_pretrained(model_dir)
    eos = gen_cfg.eos_token_id
    eos_set = set([eos] if isinstance(eos, int) else list(eos or []))

    vcfg = model.config.vision_config
    pcfg = model.config.perceiver_config
    N = vcfg.image_size // vcfg.patch_size
    P = vcfg.patch_size
    assert image_seq_len == pcfg.resampler_n_latents
    pr = model.model.connector.perceiver_resampler
    eps_used = sorted({pr.norm.variance_epsilon} | {
        n.variance_epsilon for layer in pr.layers
        for n in (layer.input_latents_norm, layer.input_context_norm, layer.post_attention_layernorm)})
    assert len(eps_used) == 1

    cap = Capture(model)
    tensors = {}
    cases = []
    single = {}
    min_margin = float("inf")
    for case_name, prompt, image_names, split in CASES:
        pil = [load_image(out_root, n) for n in image_names]
        rendered = None
        if prompt is None:
            prompt = rendered = render_chat(tok, chat_template)
        n_img, expanded = expand_prompt_original(prompt, image_seq_len, split)
        assert n_img == len(pil)
        ids_list = tok(expanded)["input_ids"]
        assert ids_list[0] == 1
        per_image_tokens = image_seq_len * (5 if split else 1)
        assert ids_list.count(IMAGE_TOKEN_ID) == n_img * per_image_tokens
        t5_expanded = expand_prompt_transformers5(prompt, image_seq_len, split)
        t5_ids = tok(t5_expanded)["input_ids"]

        pixel_values, pixel_attention_mask = process_images(ip, [pil], split)
        n_sub = pixel_values.shape[1]
        assert n_sub == n_img * (5 if split else 1)
        sizes = real_sizes(pixel_attention_mask)
        assert sizes == expected_sizes(ip, pil, split), (sizes, expected_sizes(ip, pil, split))

        ids = torch.tensor([ids_list])
        am = torch.ones_like(ids)
        cap.calls.clear()
        out = model(input_ids=ids, attention_mask=am, pixel_values=pixel_values,
                    pixel_attention_mask=pixel_attention_mask, use_cache=False)
        assert len(cap.calls) == 1, "one batched vision call for all real images"
        call = cap.calls[0]
        logits = out.logits[0].float()
        pam = call["patch_attention_mask"]           # [n_real, Hp, Wp] bool
        n_real = pam.shape[0]
        assert n_real == n_sub
        assert torch.equal(call["pixel_values"], pixel_values[0])
        ihs = call["image_hidden_states"]            # [n_real, n_latents, H]
        assert ihs.shape == (n_sub, pcfg.resampler_n_latents, model.config.text_config.hidden_size)
        # Connector mask = patch mask flattened (the perceiver appends ones for the latents itself).
        assert torch.equal(call["connector_mask"], pam.view(n_real, -1))

        key = case_name
        tensors[f"{key}.pixel_values"] = pixel_values.float()
        tensors[f"{key}.pixel_attention_mask"] = pixel_attention_mask.to(torch.uint8)
        tensors[f"{key}.patch_attention_mask"] = pam.to(torch.uint8)
        tensors[f"{key}.image_hidden_states"] = ihs.float()
        tensors[f"{key}.logits"] = logits[-1].clone()
        if case_name == ALL_LOGITS.get(name):
            tensors[f"{key}.all_logits"] = logits.clone()

        images_out = []
        max_diff_standalone_vision = 0.0
        max_diff_standalone_connector = 0.0
        for i in range(n_real):
            h, w = sizes[i]
            nb_h, nb_w = int(pam[i][:, 0].sum()), int(pam[i][0].sum())
            # 5.23: a patch is valid only if all its pixels are real.
            assert (nb_h, nb_w) == (h // P, w // P), (h, w, nb_h, nb_w)
            assert int(pam[i].sum()) == nb_h * nb_w and bool(pam[i][:nb_h, :nb_w].all())
            valid = pam[i].reshape(-1)
            pos = call["position_ids"][i][valid]
            table = buckets_523(N, [nb_h, nb_w])
            expect = (torch.tensor(table[0])[:, None] * N + torch.tensor(table[1])[None, :]).reshape(-1)
            assert torch.equal(pos, expect), (case_name, i)
            hid = call["last_hidden_state"][i][valid]
            proj = call["projected"][i][valid]
            tensors[f"{key}.image{i}.position_ids"] = pos.to(torch.int64).contiguous()
            tensors[f"{key}.image{i}.vision_hidden"] = hid.float().contiguous()
            tensors[f"{key}.image{i}.projected"] = proj.float().contiguous()
            # The same image encoded alone at its own real size (no padding, no masks).
            cap.enabled = False
            alone = model.model.vision_model(pixel_values=pixel_values[0, i:i + 1, :, :h, :w]).last_hidden_state[0]
            assert alone.shape[0] == nb_h * nb_w
            max_diff_standalone_vision = max(max_diff_standalone_vision, (alone - hid).abs().max().item())
            conn_alone = model.model.connector(alone[None], attention_mask=torch.ones(1, alone.shape[0],
                                                                                      dtype=torch.bool))[0]
            max_diff_standalone_connector = max(max_diff_standalone_connector,
                                                (conn_alone - ihs[i]).abs().max().item())
            cap.enabled = True
            images_out.append({
                "index": i,
                "source": image_names[i // 5] if split else image_names[i],
                "split_part": (["top_left", "top_right", "bottom_left", "bottom_right", "whole"][i % 5]
                               if split else None),
                "height": h, "width": w,
                "nb_patches_h": nb_h, "nb_patches_w": nb_w, "num_patches": nb_h * nb_w,
                "position_ids_key": f"{key}.image{i}.position_ids",
                "vision_hidden_key": f"{key}.image{i}.vision_hidden",
                "projected_key": f"{key}.image{i}.projected",
            })
        assert max_diff_standalone_vision < 1e-4 and max_diff_standalone_connector < 1e-4

        # Merge check: embeddings of the prompt with image rows replaced, fed as inputs_embeds.
        flat = ihs.reshape(-1, ihs.shape[-1])
        emb = model.get_input_embeddings()(ids).clone()
        emb[ids == IMAGE_TOKEN_ID] = flat
        via_embeds = model(inputs_embeds=emb, attention_mask=am, use_cache=False).logits[0]
        merge_diff = (via_embeds - logits).abs().max().item()
        assert merge_diff < 1e-5, merge_diff

        tokens, step_logits = greedy(model, ids, am, pixel_values, pixel_attention_mask)
        tokens = tokens[0].tolist()
        step_logits = step_logits[:, 0]
        d0 = (step_logits[0] - logits[-1]).abs().max().item()
        assert d0 < 1e-4, d0
        # KV-cache decode vs full recompute (prompt image rows merged; generated tokens embedded as text even if one
        # of them is <image>: generate() passes pixel_values only at prefill).
        seq = torch.cat([ids, torch.tensor([tokens])], 1)[:, :-1]
        emb_full = model.get_input_embeddings()(seq).clone()
        mask_img = torch.zeros_like(seq, dtype=torch.bool)
        mask_img[:, :ids.shape[1]] = ids == IMAGE_TOKEN_ID
        emb_full[mask_img] = flat
        full = model(inputs_embeds=emb_full, use_cache=False).logits[0, ids.shape[1] - 1:]
        cache_vs_full = (full - step_logits).abs().max().item()
        assert step_logits.argmax(-1).tolist() == tokens
        steps = steps_of(step_logits, tokens)
        min_margin = min(min_margin, min(s["margin"] for s in steps))

        dflt = model.generate(input_ids=ids, attention_mask=am, pixel_values=pixel_values,
                              pixel_attention_mask=pixel_attention_mask, max_new_tokens=MAX_NEW_TOKENS)
        dflt = dflt[0, ids.shape[1]:].tolist()

        case = {
            "name": case_name,
            "prompt": prompt,
            "chat_messages": CHAT_MESSAGES if rendered is not None else None,
            "rendered_chat": rendered,
            "images": image_names,
            "do_image_splitting": split,
            "expanded_prompt": expanded,
            "input_ids": ids_list,
            "num_prompt_tokens": len(ids_list),
            "num_image_tokens": ids_list.count(IMAGE_TOKEN_ID),
            "num_fake_tokens": ids_list.count(FAKE_TOKEN_ID),
            "image_token_positions_first_last": [ids_list.index(IMAGE_TOKEN_ID),
                                                 len(ids_list) - 1 - ids_list[::-1].index(IMAGE_TOKEN_ID)],
            "transformers5_processor_would_differ": t5_ids != ids_list,
            "pixel_values_key": f"{key}.pixel_values",
            "pixel_values_shape": list(pixel_values.shape),
            "pixel_attention_mask_key": f"{key}.pixel_attention_mask",
            "patch_attention_mask_key": f"{key}.patch_attention_mask",
            "patch_grid": list(pam.shape[1:]),
            "num_real_images": n_real,
            "image_sizes": sizes,
            "images_detail": images_out,
            "image_hidden_states_key": f"{key}.image_hidden_states",
            "logits_key": f"{key}.logits",
            "greedy": {"tokens": tokens, "text": tok.decode(tokens),
                       "first_eos_index": next((k for k, t in enumerate(tokens) if t in eos_set), None),
                       "steps": steps},
            "default_generation": {"tokens": dflt, "stopped_by_eos": len(dflt) > 0 and dflt[-1] in eos_set},
            "checks": {
                "max_abs_diff_vision_alone_vs_batched": max_diff_standalone_vision,
                "max_abs_diff_connector_alone_vs_batched": max_diff_standalone_connector,
                "max_abs_diff_inputs_embeds_merge_vs_pixel_values": merge_diff,
                "max_abs_diff_cache_vs_full_recompute": cache_vs_full,
            },
        }
        if case_name == ALL_LOGITS.get(name):
            case["all_logits_key"] = f"{key}.all_logits"
        cases.append(case)
        single[case_name] = dict(case=case, pil=pil, logits=logits[-1].clone(), ihs=ihs.clone(),
                                 pixel_values=pixel_values, pixel_attention_mask=pixel_attention_mask)

    # Left-padded batch of two prompts with different numbers / sizes of images.
    rows = [single[c]["case"]["input_ids"] for c in BATCH_ROWS]
    T = max(len(r) for r in rows)
    input_ids = torch.tensor([[0] * (T - len(r)) + r for r in rows])
    attention_mask = torch.tensor([[0] * (T - len(r)) + [1] * len(r) for r in rows])
    position_ids = (attention_mask.cumsum(-1) - 1).masked_fill(attention_mask == 0, 0)
    pv, pam_px = process_images(ip, [single[c]["pil"] for c in BATCH_ROWS], False)
    # The batch pixel values are the single ones zero-padded (extra images all zero, mask 0).
    for b, c in enumerate(BATCH_ROWS):
        s_pv, s_m = single[c]["pixel_values"][0], single[c]["pixel_attention_mask"][0]
        n, _, h, w = s_pv.shape
        assert torch.equal(pv[b, :n, :, :h, :w], s_pv) and not pv[b, :n, :, h:, :].any() and \
            not pv[b, :n, :, :, w:].any() and not pv[b, n:].any()
        assert torch.equal(pam_px[b, :n, :h, :w], s_m) and not pam_px[b, n:].any()
    cap.calls.clear()
    prefill = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                    pixel_values=pv, pixel_attention_mask=pam_px, use_cache=False).logits[:, -1].float()
    batch_ihs = cap.calls[0]["image_hidden_states"]
    single_ihs = torch.cat([single[c]["ihs"] for c in BATCH_ROWS], 0)
    btokens, blogits = greedy(model, input_ids, attention_mask, pv, pam_px)
    assert (prefill - blogits[0]).abs().max().item() < 1e-4
    tensors["batch.pixel_attention_mask"] = pam_px.to(torch.uint8)
    batch = {
        "rows": BATCH_ROWS,
        "padding_side": "left",
        "pad_token_id": 0,
        "input_ids": input_ids.tolist(),
        "attention_mask": attention_mask.tolist(),
        "position_ids": position_ids.tolist(),
        "position_ids_rule": "cumsum(attention_mask) - 1, padded positions 0 (as generate() computes them); "
                             "decode steps continue from the last position + 1",
        "pixel_values_shape": list(pv.shape),
        "pixel_values_note": "not stored: equal to the rows' single-case pixel_values zero-padded to this shape "
                             "(padding images all zero; asserted)",
        "pixel_attention_mask_key": "batch.pixel_attention_mask",
        "num_real_images_per_row": [len(single[c]["pil"]) for c in BATCH_ROWS],
        "logits_keys_per_row": [f"{c}.logits" for c in BATCH_ROWS],
        "logits_note": "batch prefill logits are not stored: each row's reference is its single case's logits "
                       "(max_abs_diff_prefill_logits_vs_single gives transformers' own batch-vs-single difference)",
        "greedy_tokens": btokens.tolist(),
        "steps": [steps_of(blogits[:, b], btokens[b].tolist()) for b in range(len(BATCH_ROWS))],
        "matches_single": [btokens[b].tolist() == single[c]["case"]["greedy"]["tokens"]
                           for b, c in enumerate(BATCH_ROWS)],
        "max_abs_diff_prefill_logits_vs_single": [(prefill[b] - single[c]["logits"]).abs().max().item()
                                                  for b, c in enumerate(BATCH_ROWS)],
        "max_abs_diff_image_hidden_states_vs_single": (batch_ihs - single_ihs).abs().max().item(),
    }
    assert all(batch["matches_single"]), batch["matches_single"]
    cap.remove()

    tensors = {k: v.contiguous() for k, v in tensors.items()}
    for k, v in tensors.items():
        assert v.dtype in (torch.float32, torch.uint8, torch.int64), (k, v.dtype)
    out_dir = os.path.join(out_root, name)
    os.makedirs(out_dir, exist_ok=True)
    save_file(tensors, os.path.join(out_dir, "tensors.safetensors"), metadata={"format": "pt"})

    ref = {
        "format_version": 1,
        "model": name,
        "checkpoint_dir": f"Tests/Fixtures/models/{name}",
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "pillow_version": PIL.__version__,
        "seed": spec["seed"],
        "seed_note": "the checkpoint's weight seed (make_model_fixtures.py); this script draws no random numbers",
        "reference_dtype": "float32",
        "attn_implementation": "eager",
        "image_processor_class": f"{type(ip).__module__}.{type(ip).__name__}",
        "image_processor_size": {"longest_edge": ip.size.longest_edge, "shortest_edge": ip.size.shortest_edge},
        "image_processor_config_do_image_splitting": bool(ip.do_image_splitting),
        "prompt_expansion": "original Idefics2Processor (transformers 4.40-4.44.2): <image> -> <fake> + "
                            "image_seq_len x <image> + <fake> (x5 when splitting), then <fake><fake> -> <fake>; "
                            "no space inserted after images",
        "tokenizer": "PreTrainedTokenizerFast(tokenizer_file=tokenizer.json), add_special_tokens=True (BOS)",
        "image_seq_len": image_seq_len,
        "image_token_id": IMAGE_TOKEN_ID,
        "fake_token_id": FAKE_TOKEN_ID,
        "vision": {"image_size": vcfg.image_size, "patch_size": P, "num_patches_per_side": N,
                   "hidden_size": vcfg.hidden_size, "layer_norm_eps": vcfg.layer_norm_eps},
        "perceiver": {"n_latents": pcfg.resampler_n_latents, "depth": pcfg.resampler_depth,
                      "rms_norm_eps_config": pcfg.rms_norm_eps, "rms_norm_eps_used": eps_used[0],
                      "text_rms_norm_eps": model.config.text_config.rms_norm_eps},
        "max_new_tokens": MAX_NEW_TOKENS,
        "greedy_settings": "do_sample=False, eos_token_id=None, bad_words_ids=None (generation config swapped): "
                           "exactly max_new_tokens argmax steps; raw lm_head logits; attention_mask of ones passed",
        "eos_token_ids": sorted(eos_set),
        "generation_config": gen_cfg.to_diff_dict(),
        "vocab_size": VOCAB,
        "tensors_file": "tensors.safetensors",
        "min_margin": min_margin,
        "cases": cases,
        "batch": batch,
    }
    with open(os.path.join(out_dir, "reference.json"), "w") as f:
        json.dump(ref, f, indent=1, ensure_ascii=False)
        f.write("\n")
    return ref, N


def main():
    out_root = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_OUT
    model_root = sys.argv[2] if len(sys.argv) > 2 else DEFAULT_MODELS
    torch.set_num_threads(2)
    torch.manual_seed(0)
    os.makedirs(out_root, exist_ok=True)
    images_info = write_images(out_root)
    with open(os.path.join(out_root, "images", "images.json"), "w") as f:
        json.dump(images_info, f, indent=1)
        f.write("\n")
    Ns = []
    for name, spec in MODELS.items():
        ref, N = run_model_reference(name, spec, os.path.join(model_root, name), out_root, images_info)
        Ns.append(N)
        size = os.path.getsize(os.path.join(out_root, name, "tensors.safetensors"))
        print(f"{name}: tensors {size / 1e6:.2f} MB, min margin {ref['min_margin']:.4f}, "
              f"perceiver eps {ref['perceiver']['rms_norm_eps_used']}")
        for c in ref["cases"]:
            ch = c["checks"]
            print(f"  {c['name']:16s} L={c['num_prompt_tokens']:3d} imgs={c['num_real_images']} "
                  f"sizes={c['image_sizes']} margin={min(s['margin'] for s in c['greedy']['steps']):.4f} "
                  f"vis_alone={ch['max_abs_diff_vision_alone_vs_batched']:.1e} "
                  f"cache={ch['max_abs_diff_cache_vs_full_recompute']:.1e} t5differs="
                  f"{c['transformers5_processor_would_differ']} dflt={len(c['default_generation']['tokens'])}")
        b = ref["batch"]
        print(f"  batch matches_single={b['matches_single']} prefill diff={b['max_abs_diff_prefill_logits_vs_single']}"
              f" ihs diff={b['max_abs_diff_image_hidden_states_vs_single']:.1e}")
    doc = make_position_table(out_root, Ns)
    print("position table N:", sorted(doc["buckets"], key=int), "exact-boundary diffs:",
          {k: v for k, v in doc["nb_where_exact_float32_boundaries_would_differ"].items() if v},
          "4.44 diffs:", {k: sorted(v, key=int) for k, v in doc["differs_from_transformers_4_44"].items() if v})
    total = 0
    for dp, _, fs in os.walk(out_root):
        total += sum(os.path.getsize(os.path.join(dp, f)) for f in fs)
    print(f"total {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
