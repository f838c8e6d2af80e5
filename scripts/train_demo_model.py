"""Trains the embedded demo model Models/idefics2-demo: a small Idefics2 that answers questions about the procedural
images of scripts/demo_data.py (shapes, colours, counts, positions, short words / numbers, one-sentence
descriptions).

Committed run: this script with its defaults (5500 steps, lr 1e-3 cosine, 64 latents, 2 questions per image, 2 torch
  threads), 3943 s (66 min) on this project's 2-vCPU Xeon. Monitoring set (192 items): 46% at step 1000, 54% at
  2000, 76% at 3000, 87% at 4000, 93% at 5000, 94% at 5500. Held-out set (scripts/eval_demo_model.py, 300 items, 50
  per type): 95.7% -- shape 100, colour 100, position 98, description 96, OCR 92, count 88.
What the runs taught (B=32 images; sessions 1-2 ran 1 torch thread per run, two runs at a time):
  * Session 1, runs 1-8 (16 latents, no dense supervision): answer-prior plateau, 18-30%; the connector output
    collapses to an image-independent vector with transformers' default init (all latents = 1, std 0.02).
  * Dense per-patch labels on the vision tower output (colour, shape, character, its index in the text, object
    centre; the label maps come from demo_data): the tower learns colour within ~250 steps (linear probe 98% per
    patch at step 500; shape 47%, characters 15%). Val (192 items) 36% at step 1000, then flat.
  * + each Perceiver latent predicts the labels of its patch block: no effect on its own -- a linear probe finds no
    per-patch information in the latents (0% on labelled patches): they stay mixtures of the whole image, so
    "what colour is the square?" is at chance with two objects while one-object colour is 95%.
  * + supervising the first Perceiver layer's attention (latent j -> patch j, 64 latents = 8x8 patches): latents
    become a map of the image by step 250 (probe: colour 93% per patch), but the decoder's lookups still improve
    slowly (40% at step 750).
  * Token embeddings at std 0.02 vs unit-scale image tokens (std 1 now): no visible change at step 500.
  * Two questions per image (one vision pass, several answers; `questions_per_image`): the decoder sees twice the
    answers per step for +40% step time.
  * 3000 steps on one thread (59 min, the previous committed model): 70.7% held out; comparing two objects'
    positions ("left or right of the blue square?") stayed at chance (46%), OCR 26%. Continuing that run for 3000
    more steps on 2 threads (0.67 s/step) reached 87% (position 63%).
  * Position questions now ask where one object is in the image (one lookup instead of two): 66% at step 500, 97%
    by step 3000. Two threads alone on the machine: 0.72 s/step.

Model: Idefics2ForConditionalGeneration (transformers 5.23), trained from scratch in float32 on CPU.
  vision  SigLIP-style, image 112 (8x8 patches of 14), see CONFIG
  connector  SwiGLU projection + Perceiver resampler (64 latents, one per patch)
  text    Mistral-style decoder, untied lm_head, vocab 32003 (real Mistral-7B-v0.1 tokenizer + Idefics2's 3 tokens)
Only the vocabulary rows the task uses are trained ("live" rows: every token of every prompt and answer the generator
can produce, plus <end_of_utterance>); all other rows of embed_tokens and lm_head are exactly zero (they cost file
size but compress to nothing in git). The training loss is the full-vocabulary cross-entropy (the 31.7k zero rows
have logit 0 and enter the softmax as a constant), computed only on the answer tokens and the closing
<end_of_utterance>.

Prompt (exactly what `idefics generate --chat` builds; chat template, one user turn, image first, generation prompt):
    "User:<image>How many red circles are there?<end_of_utterance>\nAssistant:"
  expanded like transformers 4.4x's Idefics2Processor: "<image>" -> "<fake_token_around_image>" + 64 x "<image>" +
  "<fake_token_around_image>" (doubled fakes collapsed; no space added after the block), tokenized with
  PreTrainedTokenizerFast(tokenizer_file=tokenizer.json) with BOS. Training target: " 3<end_of_utterance>" (the answer
  with the leading space that follows "Assistant:"). The model therefore generates [28705 "▁", 28770 "3", 32002];
  decoded and stripped that is "3".
Images: Idefics2ImageProcessorPil settings (resize so the longest edge is <= 112 and both edges >= 56, Pillow
  BILINEAR, rescale 1/255, normalize mean/std 0.5, no splitting), reimplemented here and checked equal to the class.

Usage: .venv/bin/python scripts/train_demo_model.py [--steps N] [--out Models/idefics2-demo]
"""
import argparse
import json
import math
import os
import random
import shutil
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from transformers.modeling_outputs import BaseModelOutputWithPooling
from transformers import GenerationConfig, Idefics2Config, Idefics2ForConditionalGeneration, PreTrainedTokenizerFast

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import demo_data  # noqa: E402
from make_model_fixtures import build_config as build_fixture_config, write_processor_files  # noqa: E402
from make_tokenizer import write_tokenizer_files  # noqa: E402

VOCAB = 32003
FAKE, IMAGE, EOU = "<fake_token_around_image>", "<image>", "<end_of_utterance>"
EOU_ID = 32002

CONFIG = dict(
    text=dict(hidden_size=128, intermediate_size=512, num_hidden_layers=4, num_attention_heads=4,
              num_key_value_heads=2, head_dim=32, rope_theta=10000.0, rms_norm_eps=1e-5, sliding_window=4096,
              max_position_embeddings=32768),
    vision=dict(hidden_size=192, intermediate_size=768, num_hidden_layers=4, num_attention_heads=6,
                image_size=112, patch_size=14, layer_norm_eps=1e-6),
    perceiver=dict(hidden_size=128, rms_norm_eps=1e-6, resampler_n_latents=64, resampler_depth=2,
                   resampler_n_heads=4, resampler_head_dim=32, num_key_value_heads=2),
    image=dict(longest_edge=112, shortest_edge=56, do_image_splitting=False),
)

RECIPE = dict(
    seed=1234,
    steps=5500,
    batch_size=32,
    lr=1e-3,
    min_lr_ratio=0.05,
    warmup=150,
    weight_decay=0.01,
    betas=(0.9, 0.98),
    grad_clip=1.0,
    threads=2,
    questions_per_image=2,
    aux_weight=1.0,
    eval_every=250,
    eval_items=192,
)

RESCALE = 0.00392156862745098  # the processor's rescale_factor (1/255 as transformers writes it)


# ---------------------------------------------------------------------------------------------------------------
# Config, prompt, tokens, images
# ---------------------------------------------------------------------------------------------------------------
def build_config() -> Idefics2Config:
    return build_fixture_config(CONFIG)


def chat_prompt(question: str) -> str:
    """The idefics2 chat template for one user turn [image, text] with add_generation_prompt=True."""
    return f"User:{IMAGE}{question}{EOU}\nAssistant:"


def expand_image_tokens(prompt: str, n_latents: int) -> str:
    """transformers 4.4x Idefics2Processor expansion (no image splitting)."""
    block = FAKE + IMAGE * n_latents + FAKE
    out = prompt.replace(IMAGE, block)
    return out.replace(FAKE + FAKE, FAKE)


class Tokens:
    def __init__(self, tokenizer_file: str, n_latents: int):
        self.tok = PreTrainedTokenizerFast(tokenizer_file=tokenizer_file)
        self.n_latents = n_latents
        self.cache = {}

    def prompt_ids(self, question: str) -> list:
        return self.tok(expand_image_tokens(chat_prompt(question), self.n_latents))["input_ids"]

    def encode(self, question: str, answer: str):
        """(input_ids, n_prompt): input_ids = prompt ids + answer ids (+ <end_of_utterance>)."""
        key = (question, answer)
        if key not in self.cache:
            p = self.prompt_ids(question)
            full = self.tok(expand_image_tokens(chat_prompt(question), self.n_latents) + " " + answer + EOU)[
                "input_ids"]
            assert full[:len(p)] == p, (question, answer)
            assert full[-1] == EOU_ID
            self.cache[key] = (full, len(p))
        return self.cache[key]


def resize_size(h, w, longest, shortest):
    aspect = w / h
    if w >= h and w > longest:
        w = longest
        h = int(w / aspect)
    elif h > w and h > longest:
        h = longest
        w = int(h * aspect)
    return max(h, shortest), max(w, shortest)


def preprocess(img: Image.Image) -> np.ndarray:
    """Exact reimplementation of Idefics2ImageProcessorPil for one RGB image without splitting: CHW float32."""
    img = img.convert("RGB")
    w, h = img.size
    nh, nw = resize_size(h, w, CONFIG["image"]["longest_edge"], CONFIG["image"]["shortest_edge"])
    if (nh, nw) != (h, w):
        img = img.resize((nw, nh), Image.BILINEAR)
    x = (np.asarray(img).astype(np.float64) * RESCALE).astype(np.float32)
    x = (x - np.float32(0.5)) / np.float32(0.5)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def live_token_ids(tokens: Tokens):
    """(input_live, output_live): every token id the generator's prompts and answers can contain."""
    S, C, P = demo_data.SHAPES, demo_data.COLOR_NAMES, demo_data.PLURAL
    qs = {"What shape is this?", "What color is the shape?", "How many shapes are there?",
          "Describe the image in one sentence.", *demo_data.OCR_QUESTIONS}
    combos = [(c, s) for c in C for s in S]
    for c, s in combos:
        qs |= {f"How many {c} {P[s]} are there?", f"How many {P[s]} are there?", f"How many {c} shapes are there?",
               f"What shape is the {c} one?", f"What color is the {s}?"}
        qs |= {demo_data.position_question(c, s, horizontal, True)[0] for horizontal in (True, False)}
    for sd in range(5000):  # the generator's own questions must all be in the enumerated set
        assert demo_data.make_item(sd)["question"] in qs
    answers = set(S) | set(C) | {str(i) for i in range(100)} | {"left", "right", "top", "bottom"}
    answers |= set(demo_data.WORDS)
    for o1 in combos:
        answers.add(demo_data.description_answer([o1]))
        answers |= {demo_data.description_answer([o1, o2]) for o2 in combos}
    for sd in range(5000):
        assert demo_data.make_item(sd)["answer"] in answers
    out_ids, in_ids = {EOU_ID}, set()
    q0 = "What shape is this?"
    for a in sorted(answers):
        full, n = tokens.encode(q0, a)
        out_ids.update(full[n:])
    tokens.cache.clear()
    for q in sorted(qs):
        in_ids.update(tokens.prompt_ids(q))
    in_ids |= out_ids | {0}  # 0 = <unk>, the padding id of training batches (right padding)
    return sorted(in_ids), sorted(out_ids)


@torch.no_grad()
def init_weights(model, seed):
    """Seeded fan-in initialisation. transformers' default (normal 0.02 everywhere, all Perceiver latents = 1)
    leaves the Perceiver output almost independent of the image (the constant latents dominate the residual and
    0.02-std projections shrink the image signal ~100x), and training then takes thousands of steps to start
    looking at the image. Here: linear/conv weights N(0, 1/fan_in) (output projections of residual branches x0.5),
    vision position embedding std 0.2, latents std 0.1 (distinct queries after the RMSNorm, small residual base),
    token embeddings std 1 (with std 0.02 the question's words are a whisper next to the unit-scale image tokens and
    residual branches, and the decoder takes a thousand steps to scale them up), lm_head rows std 0.02, norms 1,
    biases 0."""
    g = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        if name.endswith(".bias"):
            p.zero_()
        elif p.ndim == 1:  # LayerNorm / RMSNorm weights
            p.fill_(1.0)
        elif name.endswith("perceiver_resampler.latents"):
            p.copy_(0.1 * torch.randn(p.shape, generator=g))
        elif name.endswith("embed_tokens.weight"):  # unit scale, like the image tokens (the Perceiver's RMSNorm output)
            p.copy_(torch.randn(p.shape, generator=g))
        elif name == "lm_head.weight":
            p.copy_(0.02 * torch.randn(p.shape, generator=g))
        elif name.endswith("position_embedding.weight"):
            p.copy_(0.2 * torch.randn(p.shape, generator=g))
        else:
            fan_in = int(np.prod(p.shape[1:]))
            out_proj = any(k in name for k in ("o_proj", "out_proj", "down_proj", "fc2"))
            p.copy_(torch.randn(p.shape, generator=g) * ((0.5 if out_proj else 1.0) / math.sqrt(fan_in)))


# ---------------------------------------------------------------------------------------------------------------
# Batches and loss
# ---------------------------------------------------------------------------------------------------------------
def collate(items, tokens: Tokens, with_patch_targets=False, texts=None):
    """items: dicts with image (PIL), question, answer. Right-padded input_ids; answer positions as labels; with
    with_patch_targets, also patch_targets() of the batch. texts: [(image index, question, answer)] to ask instead of
    each item's own question (several per image; answer_logits() then runs the vision side once per image)."""
    pix = [preprocess(it["image"]) for it in items]
    H = max(p.shape[1] for p in pix)
    W = max(p.shape[2] for p in pix)
    B = len(items)
    pixel_values = torch.zeros(B, 1, 3, H, W)
    pixel_mask = torch.zeros(B, 1, H, W, dtype=torch.long)
    for i, p in enumerate(pix):
        pixel_values[i, 0, :, :p.shape[1], :p.shape[2]] = torch.from_numpy(p)
        pixel_mask[i, 0, :p.shape[1], :p.shape[2]] = 1
    enc = [tokens.encode(q, a) for _, q, a in texts] if texts else [tokens.encode(it["question"], it["answer"])
                                                                     for it in items]
    T = max(len(ids) for ids, _ in enc)
    input_ids = torch.zeros(len(enc), T, dtype=torch.long)
    attention_mask = torch.zeros(len(enc), T, dtype=torch.long)
    labels = torch.full((len(enc), T), -100, dtype=torch.long)
    for i, (ids, n) in enumerate(enc):
        input_ids[i, :len(ids)] = torch.tensor(ids)
        attention_mask[i, :len(ids)] = 1
        labels[i, n:len(ids)] = torch.tensor(ids[n:])
    batch = dict(input_ids=input_ids, attention_mask=attention_mask, pixel_values=pixel_values,
                 pixel_attention_mask=pixel_mask)
    if texts:
        batch["image_index"] = torch.tensor([i for i, _, _ in texts])
    if with_patch_targets:
        ps = CONFIG["vision"]["patch_size"]
        return batch, labels, patch_targets(items, [x.shape[1:] for x in pix]) + ((H // ps, W // ps),)
    return batch, labels


class LiveEmbedding(torch.nn.Module):
    """embed_tokens restricted to the live rows during training (the other rows stay exactly zero)."""

    def __init__(self, full_weight, live_ids):
        super().__init__()
        lut = torch.full((full_weight.shape[0],), -1, dtype=torch.long)
        lut[live_ids] = torch.arange(len(live_ids))
        self.register_buffer("lut", lut, persistent=False)
        self.register_buffer("live_ids", live_ids.clone(), persistent=False)
        self.weight = torch.nn.Parameter(full_weight[live_ids].clone())

    def forward(self, ids):
        idx = self.lut[ids]
        assert bool((idx >= 0).all()), "token outside the live vocabulary"
        return F.embedding(idx, self.weight)


def answer_logits(model, batch, labels, out_live, live_head=None):
    """Logits over the live output rows at every position that predicts a label (the other rows are zero: logit
    0). Returns (live_logits [N, L], target ids [N], row_index [N])."""
    batch = dict(batch)
    index = batch.pop("image_index", None)
    if index is None:
        h = model.model(**batch, use_cache=False).last_hidden_state  # [B, T, H]
    else:  # several questions per image: the vision tower and connector run once per image
        feats = model.model.get_image_features(batch.pop("pixel_values"), batch.pop("pixel_attention_mask"))
        feats = torch.stack(feats.pooler_output)[index].flatten(0, 1)
        h = model.model(**batch, mm_encoder_outputs={"image": BaseModelOutputWithPooling(pooler_output=feats)},
                        use_cache=False).last_hidden_state
    tgt = labels[:, 1:]
    sel = tgt != -100
    W = model.lm_head.weight[out_live] if live_head is None else live_head
    return h[:, :-1][sel] @ W.t(), tgt[sel], sel.nonzero()[:, 0]


# Auxiliary training-only head (discarded after training): a linear layer on every patch of the vision tower's output
# predicts what covers that patch (colour and shape of an object, or a character of the text and its place in the
# text, or background) and whether an object's or character's centre lies in it. Without such a dense signal the from-scratch tower learns
# very slowly from the answer tokens alone and the decoder settles on the answer priors first (runs 1-8 above).
CHARS = sorted(demo_data.FONT)
MAX_TEXT = max(max(len(w) for w in demo_data.WORDS), 2)
# Fields: colour, shape, character, character's index in the text (classes, 0 = none), centre flag (binary, last).
AUX_SIZES = (1 + len(demo_data.COLOR_NAMES), 1 + len(demo_data.SHAPES), 1 + len(CHARS), 1 + MAX_TEXT, 1)
NF = len(AUX_SIZES)
MIN_COVER = 0.1  # a patch is labelled with the object covering the most of it, if that covers >= 10% of the patch


def patch_targets(items, pix_shapes):
    """Per patch of the full image_size grid (G x G patches, the image at the top left as the processor pads it):
    the NF fields of AUX_SIZES [B, NF, G, G]; and the mask of real patches [B, G, G].
    Label maps are resized like the images (nearest neighbour)."""
    p = CONFIG["vision"]["patch_size"]
    G = CONFIG["vision"]["image_size"] // p
    B = len(items)
    tgt = np.zeros((B, NF, G, G), dtype=np.int64)
    mask = np.zeros((B, G, G), dtype=bool)
    for i, (it, (h, w)) in enumerate(zip(items, pix_shapes)):
        mask[i, :h // p, :w // p] = True
        lab = np.asarray(it["labels"].resize((w, h), Image.NEAREST))
        lab = np.pad(lab, ((0, G * p - h), (0, G * p - w)))
        n = int(lab.max())
        if n == 0:
            continue
        onehot = (lab[None] == np.arange(1, n + 1)[:, None, None]).reshape(n, G, p, G, p).sum((2, 4))
        best = onehot.argmax(0)
        covered = onehot.max(0) >= MIN_COVER * p * p
        if it["text"]:
            cls = [(0, 0, 1 + CHARS.index(ch), 1 + k) for k, ch in enumerate(it["text"])]
        else:
            cls = [(1 + demo_data.COLOR_NAMES.index(c), 1 + demo_data.SHAPES.index(s), 0, 0)
                   for c, s, _, _ in it["objects"]]
        for j in range(NF - 1):
            tgt[i, j] = np.where(covered, np.array([c[j] for c in cls])[best], 0)
        ys, xs = np.nonzero(lab)
        for k in range(n):  # centre of each object / character: the mean of its pixels
            sel = lab[ys, xs] == k + 1
            if sel.any():
                tgt[i, NF - 1, int(ys[sel].mean()) // p, int(xs[sel].mean()) // p] = 1
    return torch.from_numpy(tgt), torch.from_numpy(mask)


def aux_loss(logits, targets):
    """Sum of the per-patch losses; logits [N, sum(AUX_SIZES)], targets [N, NF]."""
    parts = torch.split(logits, AUX_SIZES, dim=1)
    loss = sum(F.cross_entropy(parts[j], targets[:, j]) for j in range(NF - 1))
    return loss + F.binary_cross_entropy_with_logits(parts[-1][:, 0], targets[:, -1].float())


def patch_loss(head, vision_states, targets):
    """Every real patch of the vision tower's output predicts its own labels."""
    tgt, mask, (gh, gw) = targets  # the batch's padded grid is gh x gw patches
    B = vision_states.shape[0]
    t = tgt[:, :, :gh, :gw].reshape(B, NF, -1).permute(0, 2, 1)
    m = mask[:, :gh, :gw].reshape(B, -1)
    return aux_loss(head(vision_states)[m], t[m])


def latent_loss(head, latents, targets):
    """Perceiver latent j (row-major over a square grid of latents laid over the G x G patches) predicts the labels of
    its block of patches (one patch with 64 latents, 2 x 2 with 16): this makes the latents a map of the image, so an
    object's colour and shape stay bound together (latents that each mix several objects cannot answer "what colour
    is the square?")."""
    tgt = targets[0]
    B, L, _ = latents.shape
    G = tgt.shape[-1]
    n = math.isqrt(L)
    k = G // n  # block side in patches
    assert n * n == L and n * k == G, "the latents must tile the patch grid"
    t = tgt.reshape(B, NF, n, k, n, k).permute(0, 2, 4, 3, 5, 1).reshape(B * L * k * k, NF)
    y = head(latents)
    # ... and its own place in the grid (column, row in [0, 1]), so the decoder can compare positions by content.
    grid = torch.stack(torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")[::-1], -1).reshape(L, 2) / (n - 1)
    return aux_loss(y[..., 2:].reshape(B * L * k * k, -1), t) + 4 * F.mse_loss(y[..., :2], grid.expand(B, L, 2))


def attention_loss(weights, targets):
    """In the first Perceiver layer every head of latent j should attend to patch j of the latent grid (cross-entropy
    of its attention over [patches, latents] with patch j as the target; latents over padding are left free). Learnt
    from the other losses alone, the latents stay mixtures of the whole image for thousands of steps; supervised,
    they become a map of the patches within a few hundred, and the decoder can find objects by what they are."""
    _, mask, (gh, gw) = targets
    B, heads, L, _ = weights.shape
    G = mask.shape[-1]
    n = math.isqrt(L)
    assert n == G, "attention supervision needs one latent per patch"
    r, c = torch.arange(L) // n, torch.arange(L) % n
    key = r * gw + c  # the patch under latent j in this batch's padded gh x gw grid
    valid = (r < gh) & (c < gw)
    ok = mask.reshape(B, L) & valid  # [B, L]
    w = weights.permute(0, 2, 1, 3)[:, valid]  # [B, L', heads, keys]
    picked = w.gather(-1, key[valid].view(1, -1, 1, 1).expand(B, -1, heads, 1)).squeeze(-1)  # [B, L', heads]
    return -(picked.clamp(min=1e-6).log().mean(-1)[ok[:, valid]]).mean()


def make_lookup(out_live):
    lut = torch.full((VOCAB,), -1, dtype=torch.long)
    lut[out_live] = torch.arange(len(out_live))
    return lut


def full_vocab_ce(logits, targets_live, n_dead, rows=None, n_rows=None):
    """Full-vocabulary cross-entropy: the n_dead zero rows add n_dead * exp(0) to the partition function.
    With rows (item index of each target): mean over each item's tokens, then over items."""
    z = torch.cat([logits, torch.full((logits.shape[0], 1), math.log(n_dead))], dim=1)
    if rows is None:
        return F.cross_entropy(z, targets_live)
    tok = F.cross_entropy(z, targets_live, reduction="none")
    per_item = torch.zeros(n_rows).index_add_(0, rows, tok) / torch.bincount(rows, minlength=n_rows).clamp(min=1)
    return per_item.mean()


@torch.no_grad()
def teacher_forced_exact(model, items, tokens, out_live, lut, live_head=None, bs=64):
    """Per-item: all answer tokens (+ EOU) are the argmax of the full vocabulary (dead rows' logit is 0)."""
    ok = []
    for i in range(0, len(items), bs):
        chunk = items[i:i + bs]
        batch, labels = collate(chunk, tokens)
        logits, tgt, rows = answer_logits(model, batch, labels, out_live, live_head)
        pred_live = logits.argmax(-1)
        right = (pred_live == lut[tgt]) & (logits.max(-1).values > 0)
        for b in range(len(chunk)):
            ok.append(bool(right[rows == b].all()))
    return ok


# ---------------------------------------------------------------------------------------------------------------
# Saving
# ---------------------------------------------------------------------------------------------------------------
def write_checkpoint(model, out_dir, dtype=torch.float16):
    os.makedirs(out_dir, exist_ok=True)
    for f in os.listdir(out_dir):
        if f.startswith("model") and ".safetensors" in f:
            os.remove(os.path.join(out_dir, f))
    write_tokenizer_files(out_dir, compact=True)  # keeps the folder under 25 MB
    write_processor_files(out_dir, CONFIG)
    m = Idefics2ForConditionalGeneration(model.config)
    m.load_state_dict(model.state_dict())
    m = m.to(dtype)
    m.generation_config = GenerationConfig(bos_token_id=1, pad_token_id=0, eos_token_id=[2, EOU_ID],
                                           bad_words_ids=[[32000], [32001]])
    m.save_pretrained(out_dir, max_shard_size="16MB")  # shards under 20 MB: friendlier to git hosts


# ---------------------------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------------------------
def questions_for(index, item, n):
    """The item's own question, then n - 1 more about the same image (seeded by the item): a question type drawn with
    the generator's type weights among those the scene can answer, then a question of that type."""
    out = [(index, item["question"], item["answer"])]
    pool = demo_data.scene_questions(item)
    types = sorted({t for _, _, t in pool}, key=demo_data.TYPES.index)
    rng = random.Random(item["seed"] + 7_777_777)
    for _ in range(n - 1):
        t = rng.choices(types, [demo_data.TYPE_WEIGHTS[demo_data.TYPES.index(t)] for t in types])[0]
        q, a, _ = rng.choice([x for x in pool if x[2] == t])
        out.append((index, q, a))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=RECIPE["steps"])
    ap.add_argument("--batch-size", type=int, default=RECIPE["batch_size"])
    ap.add_argument("--lr", type=float, default=RECIPE["lr"])
    ap.add_argument("--out", default="Models/idefics2-demo")
    ap.add_argument("--eval-every", type=int, default=RECIPE["eval_every"])
    ap.add_argument("--latents", type=int, default=CONFIG["perceiver"]["resampler_n_latents"])
    ap.add_argument("--questions-per-image", type=int, default=RECIPE["questions_per_image"])
    ap.add_argument("--ckpt", default="/tmp/idefics2-demo-train.pt", help="float32 state for resuming/inspection")
    args = ap.parse_args()
    CONFIG["perceiver"]["resampler_n_latents"] = args.latents

    torch.set_num_threads(RECIPE["threads"])
    torch.manual_seed(RECIPE["seed"])
    random.seed(RECIPE["seed"])
    np.random.seed(RECIPE["seed"])

    tok_dir = "/tmp/idefics2-demo-tokenizer"
    write_tokenizer_files(tok_dir)
    tokens = Tokens(os.path.join(tok_dir, "tokenizer.json"), CONFIG["perceiver"]["resampler_n_latents"])
    in_live, out_live = live_token_ids(tokens)
    out_live_t = torch.tensor(out_live)
    lut = make_lookup(out_live_t)
    n_dead = VOCAB - len(out_live)
    print(f"live tokens: input {len(in_live)}, output {len(out_live)}", flush=True)

    config = build_config()
    model = Idefics2ForConditionalGeneration(config)
    init_weights(model, RECIPE["seed"])
    print("attention:", model.config._attn_implementation, model.model.vision_model.config._attn_implementation,
          model.model.text_model.config._attn_implementation, flush=True)
    n_params = sum(p.numel() for p in model.parameters())
    n_vocab = 2 * VOCAB * CONFIG["text"]["hidden_size"]
    print(f"params {n_params / 1e6:.2f}M (non-vocab {(n_params - n_vocab) / 1e6:.2f}M)", flush=True)
    # Train only the live vocabulary rows (initialised from transformers' own init of the full matrices).
    full_embed = model.model.text_model.get_input_embeddings()
    live_embed = LiveEmbedding(full_embed.weight.data, torch.tensor(in_live))
    model.model.text_model.set_input_embeddings(live_embed)
    live_head = torch.nn.Parameter(model.lm_head.weight.data[out_live_t].clone())
    model.lm_head.weight.requires_grad_(False)

    head = torch.nn.Linear(CONFIG["vision"]["hidden_size"], sum(AUX_SIZES))
    block = CONFIG["vision"]["image_size"] // CONFIG["vision"]["patch_size"] // math.isqrt(args.latents)
    latent_head = torch.nn.Linear(CONFIG["text"]["hidden_size"], 2 + block * block * sum(AUX_SIZES))
    aux_out = {}
    model.model.vision_model.register_forward_hook(
        lambda module, args, output: aux_out.__setitem__("vision", output.last_hidden_state))
    model.model.connector.register_forward_hook(lambda module, args, output: aux_out.__setitem__("latents", output))
    # The first Perceiver layer's attention weights (eager attention returns them; same maths as sdpa).
    perceiver = model.model.connector.perceiver_resampler
    perceiver.config._attn_implementation = "eager"
    perceiver.layers[0].self_attn.register_forward_hook(
        lambda module, args, output: aux_out.__setitem__("attention", output[1]))
    decay, no_decay = [live_head, head.weight, latent_head.weight], [head.bias, latent_head.bias]
    for n, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "norm" in n or "latents" in n or "embed" in n else decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": RECIPE["weight_decay"]},
                             {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=RECIPE["betas"])

    def lr_at(step):
        if step < RECIPE["warmup"]:
            return args.lr * (step + 1) / RECIPE["warmup"]
        t = (step - RECIPE["warmup"]) / max(1, args.steps - RECIPE["warmup"])
        return args.lr * (RECIPE["min_lr_ratio"] + (1 - RECIPE["min_lr_ratio"]) * 0.5 * (1 + math.cos(math.pi * t)))

    # Monitoring set: the first eval seeds (the eval set proper is made by eval_demo_model.py from the same base).
    val_items = [demo_data.make_item(demo_data.EVAL_SEED_BASE + 500_000 + i) for i in range(RECIPE["eval_items"])]

    t0 = time.time()
    seed = 0
    ema = None
    model.train()
    for step in range(args.steps):
        items = [demo_data.make_item(seed + i) for i in range(args.batch_size)]
        seed += args.batch_size
        texts = [t for i, it in enumerate(items) for t in questions_for(i, it, args.questions_per_image)]
        batch, labels, targets = collate(items, tokens, with_patch_targets=True, texts=texts)
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        logits, tgt, rows = answer_logits(model, batch, labels, out_live_t, live_head)
        loss_lm = full_vocab_ce(logits, lut[tgt], n_dead, rows, len(texts))
        loss_aux = (patch_loss(head, aux_out["vision"], targets) + latent_loss(latent_head, aux_out["latents"], targets)
                    + attention_loss(aux_out["attention"], targets))
        loss = loss_lm + RECIPE["aux_weight"] * loss_aux
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(decay + no_decay, RECIPE["grad_clip"])
        opt.step()
        ema = loss_lm.item() if ema is None else 0.98 * ema + 0.02 * loss_lm.item()
        if step % 25 == 0:
            print(f"step {step} loss {loss_lm.item():.4f} ema {ema:.4f} aux {loss_aux.item():.3f} lr {lr_at(step):.2e} "
                  f"elapsed {time.time() - t0:.0f}s", flush=True)
        if (step + 1) % args.eval_every == 0 or step + 1 == args.steps:
            model.eval()
            ok = teacher_forced_exact(model, val_items, tokens, out_live_t, lut, live_head)
            model.train()
            by = {}
            for it, o in zip(val_items, ok):
                by.setdefault(it["type"], []).append(o)
            per = " ".join(f"{k} {100 * sum(v) / len(v):.0f}" for k, v in sorted(by.items()))
            print(f"== step {step + 1} val exact {100 * sum(ok) / len(ok):.1f}% ({per}) "
                  f"elapsed {time.time() - t0:.0f}s", flush=True)
            torch.save({"model": model.state_dict(), "live_head": live_head.data}, args.ckpt)
    train_s = time.time() - t0
    print(f"training time {train_s:.0f}s", flush=True)
    model.eval()
    with torch.no_grad():  # scatter the live rows back into full matrices; every other row is exactly zero
        full_embed.weight.zero_()
        full_embed.weight[live_embed.live_ids] = live_embed.weight
        model.model.text_model.set_input_embeddings(full_embed)
        model.lm_head.weight.zero_()
        model.lm_head.weight[out_live_t] = live_head
    write_checkpoint(model, args.out)
    with open(os.path.join(args.out, "training_log.json"), "w") as f:
        json.dump({"recipe": RECIPE, "steps": args.steps, "batch_size": args.batch_size, "lr": args.lr,
                   "train_seconds": round(train_s), "torch_threads": RECIPE["threads"]}, f, indent=1)
    print("saved", args.out, flush=True)


if __name__ == "__main__":
    main()
