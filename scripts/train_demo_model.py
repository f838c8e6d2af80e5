"""Trains the embedded demo model Models/idefics2-demo: a small Idefics2 that answers questions about the procedural
images of scripts/demo_data.py (shapes, colours, counts, relative positions, short words / numbers, one-sentence
descriptions).

STATUS: WORK IN PROGRESS -- no run has reached the >= 90% target yet; no checkpoint is committed.
  Pipeline (data, prompt, tokens, image processing, live-vocabulary loss, checkpoint writing, eval) is verified end
  to end; the open problem is getting the decoder to use the image within the CPU budget. Runs so far (B=32,
  2-core shared machine, wall time 0.5-1.5 s/step with 1 thread, 2-10x slower with 2 threads when other jobs run:
  OpenMP spin-waits, hence threads=1):
    1. HF default init (all Perceiver latents = 1, std 0.02), lr 1.5e-3: answer-prior plateau (val 19% at step 500)
       -- image-token states identical across images (std over images 2e-4 of 1).
    2. + random latents, per-item loss mean: same plateau.
    3. + fan-in init (below), lr 1e-3: connector varies with the image at init (0.25) but collapses again (0.002)
       by step 500.
    4./5. + auxiliary attribute loss on the Perceiver output (trainable, then frozen random head): connector
       variation 0.07 at step 250, decoder logits still image-independent (std over images 0.03), val 18% at 500.
    6. + trainable auxiliary head on the decoder's answer position: same at 250.
    7. + curriculum (250 steps shape/colour with 2.5x larger shapes, ramp to 800): not learnt in the warm phase.
    8. warm phase 500 steps: loss stays at the colour/shape prior (0.82 per item) through step 450.
  Isolated check (colour only, big shapes, B=16, lr 1e-3, 20-step warmup): the loss leaves the prior only after
  ~100 steps (80 of them spent lifting the live logits above the 31.7k zero rows) and then hovers at 0.5-0.65
  (answer-token loss ~1.1 nats) through step 400; lr 3e-3 stays at the prior. A linear probe on the mean-pooled
  vision tower output (colour of one big shape, B=16, lr 1e-3) is still at 0.4-1.2 nats after 100 steps, noisy:
  the from-scratch SigLIP tower itself learns slowly, so the vision side, not only the decoder, is the bottleneck.
  Next things to try: a much longer warm phase on easy items, a lower lr for the decoder, fewer/larger patches
  (e.g. image 84 -> 36 patches), or initialising the live lm_head rows so their logits start above 0.

Model: Idefics2ForConditionalGeneration (transformers 5.23), trained from scratch in float32 on CPU.
  vision  SigLIP-style, image 112 (8x8 patches of 14), see CONFIG
  connector  SwiGLU projection + Perceiver resampler (16 latents)
  text    Mistral-style decoder, untied lm_head, vocab 32003 (real Mistral-7B-v0.1 tokenizer + Idefics2's 3 tokens)
Only the vocabulary rows the task uses are trained ("live" rows: every token of every prompt and answer the generator
can produce, plus <end_of_utterance>); all other rows of embed_tokens and lm_head are exactly zero (they cost file
size but compress to nothing in git). The training loss is the full-vocabulary cross-entropy (the 31.7k zero rows
have logit 0 and enter the softmax as a constant), computed only on the answer tokens and the closing
<end_of_utterance>.

Prompt (exactly what `idefics generate --chat` builds; chat template, one user turn, image first, generation prompt):
    "User:<image>How many red circles are there?<end_of_utterance>\nAssistant:"
  expanded like transformers 4.4x's Idefics2Processor: "<image>" -> "<fake_token_around_image>" + 16 x "<image>" +
  "<fake_token_around_image>" (doubled fakes collapsed; no space added after the block), tokenized with
  PreTrainedTokenizerFast(tokenizer_file=tokenizer.json) with BOS. Training target: " 3<end_of_utterance>" (the answer
  with the leading space that follows "Assistant:"). The model therefore generates [28705 "▁", 28770 "3", 32002];
  decoded and stripped that is "3".
Images: Idefics2ImageProcessorPil settings (resize so the longest edge is <= 112 and both edges >= 56, Pillow
  BILINEAR, rescale 1/255, normalize mean/std 0.5, no splitting), reimplemented here and checked equal to the class.

Usage: nice -n 15 .venv/bin/python scripts/train_demo_model.py [--steps N] [--out Models/idefics2-demo]
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
from transformers import GenerationConfig, Idefics2Config, Idefics2ForConditionalGeneration, PreTrainedTokenizerFast

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import demo_data  # noqa: E402
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
    perceiver=dict(hidden_size=128, rms_norm_eps=1e-6, resampler_n_latents=16, resampler_depth=2,
                   resampler_n_heads=4, resampler_head_dim=32, num_key_value_heads=2),
    image=dict(longest_edge=112, shortest_edge=56, do_image_splitting=False),
)

RECIPE = dict(
    seed=1234,
    steps=1800,
    batch_size=32,
    lr=1e-3,
    min_lr_ratio=0.05,
    warmup=150,
    weight_decay=0.01,
    betas=(0.9, 0.98),
    grad_clip=1.0,
    threads=1,
    aux_weight=1.0,
    curriculum_warm=500,
    curriculum_ramp=1000,
    eval_every=250,
    eval_items=192,
)

PREPROCESSOR = {
    "do_convert_rgb": True,
    "do_image_splitting": False,
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
    "size": {"longest_edge": CONFIG["image"]["longest_edge"], "shortest_edge": CONFIG["image"]["shortest_edge"]},
}


# ---------------------------------------------------------------------------------------------------------------
# Config, prompt, tokens, images
# ---------------------------------------------------------------------------------------------------------------
def build_config() -> Idefics2Config:
    t = dict(CONFIG["text"])
    rope_theta = t.pop("rope_theta")
    text_config = dict(
        model_type="mistral", vocab_size=VOCAB, hidden_act="silu", pad_token_id=0, bos_token_id=1, eos_token_id=2,
        tie_word_embeddings=False, rope_parameters={"rope_type": "default", "rope_theta": rope_theta},
        initializer_range=0.02, attention_dropout=0.0, **t,
    )
    vision_config = dict(num_channels=3, hidden_act="gelu_pytorch_tanh", attention_dropout=0.0,
                         initializer_range=0.02, **CONFIG["vision"])
    perceiver_config = dict(hidden_act="silu", attention_dropout=0.0, **CONFIG["perceiver"])
    config = Idefics2Config(text_config=text_config, vision_config=vision_config, perceiver_config=perceiver_config,
                            image_token_id=32001, tie_word_embeddings=False, use_cache=True)
    assert config.perceiver_config.hidden_size == config.text_config.hidden_size
    assert config.perceiver_config.rms_norm_eps == CONFIG["perceiver"]["rms_norm_eps"]
    return config


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
    x = (np.asarray(img).astype(np.float64) * PREPROCESSOR["rescale_factor"]).astype(np.float32)
    x = (x - np.float32(0.5)) / np.float32(0.5)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def live_token_ids(tokens: Tokens):
    """(input_live, output_live): every token id the generator's prompts and answers can contain."""
    S, C, P = demo_data.SHAPES, demo_data.COLOR_NAMES, demo_data.PLURAL
    qs = {"What shape is this?", "What color is the shape?", "How many shapes are there?",
          "Describe the image in one sentence.", "What does the text say?", "What is written in the image?",
          "What does it say?"}
    combos = [(c, s) for c in C for s in S]
    for c, s in combos:
        qs |= {f"How many {c} {P[s]} are there?", f"How many {P[s]} are there?", f"How many {c} shapes are there?",
               f"What shape is the {c} one?", f"What color is the {s}?"}
        for c2, s2 in combos:
            qs |= {f"Is the {c} {s} left or right of the {c2} {s2}?", f"Is the {c} {s} above or below the {c2} {s2}?"}
    for sd in range(5000):  # the generator's own questions must all be in the enumerated set
        assert demo_data.make_item(sd)["question"] in qs
    answers = set(S) | set(C) | {str(i) for i in range(100)} | {"left", "right", "above", "below"}
    answers |= set(demo_data.WORDS)
    objs = [f"{demo_data._a(c)} {c} {s}" for c, s in combos]
    cap = lambda t: t[0].upper() + t[1:] + "."
    for o1 in objs:
        answers.add(cap(o1))
        for o2 in objs:
            answers.add(cap(f"{o1} and {o2}"))
            for o3 in objs:
                answers.add(cap(f"{o1}, {o2} and {o3}"))
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
    vocabulary rows std 0.02, norms 1, biases 0."""
    g = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        if name.endswith(".bias"):
            p.zero_()
        elif p.ndim == 1:  # LayerNorm / RMSNorm weights
            p.fill_(1.0)
        elif name.endswith("perceiver_resampler.latents"):
            p.copy_(0.1 * torch.randn(p.shape, generator=g))
        elif name.endswith("embed_tokens.weight") or name == "lm_head.weight":
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
def collate(items, tokens: Tokens):
    """items: dicts with image (PIL), question, answer. Right-padded input_ids; answer positions as labels."""
    pix = [preprocess(it["image"]) for it in items]
    H = max(p.shape[1] for p in pix)
    W = max(p.shape[2] for p in pix)
    B = len(items)
    pixel_values = torch.zeros(B, 1, 3, H, W)
    pixel_mask = torch.zeros(B, 1, H, W, dtype=torch.long)
    for i, p in enumerate(pix):
        pixel_values[i, 0, :, :p.shape[1], :p.shape[2]] = torch.from_numpy(p)
        pixel_mask[i, 0, :p.shape[1], :p.shape[2]] = 1
    enc = [tokens.encode(it["question"], it["answer"]) for it in items]
    T = max(len(ids) for ids, _ in enc)
    input_ids = torch.zeros(B, T, dtype=torch.long)
    attention_mask = torch.zeros(B, T, dtype=torch.long)
    labels = torch.full((B, T), -100, dtype=torch.long)
    for i, (ids, n) in enumerate(enc):
        input_ids[i, :len(ids)] = torch.tensor(ids)
        attention_mask[i, :len(ids)] = 1
        labels[i, n:len(ids)] = torch.tensor(ids[n:])
    return dict(input_ids=input_ids, attention_mask=attention_mask, pixel_values=pixel_values,
                pixel_attention_mask=pixel_mask), labels


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


def answer_logits(model, batch, labels, out_live, live_head=None, return_image_states=False):
    """Logits over the live output rows at every position that predicts a label (the other rows are zero: logit
    0). Returns (live_logits [N, L], target ids [N], row_index [N])."""
    out = model.model(**batch, use_cache=False)
    h = out.last_hidden_state  # [B, T, H]
    tgt = labels[:, 1:]
    sel = tgt != -100
    hs = h[:, :-1][sel]
    W = model.lm_head.weight[out_live] if live_head is None else live_head
    logits = hs @ W.t()
    if return_image_states:
        first = sel.float().argmax(1)  # the position that predicts the first answer token, per row
        h_first = h[torch.arange(h.shape[0]), first]
        return logits, tgt[sel], sel.nonzero()[:, 0], out.image_hidden_states, h_first
    return logits, tgt[sel], sel.nonzero()[:, 0]


# Auxiliary training-only head (discarded after training): from the 16 Perceiver outputs of an image it predicts
# the number (0-7) of each of the 24 colour x shape kinds, their mean centre, and the characters of OCR text. It gives
# the vision tower and connector a dense signal from the first step (the head is a frozen random projection, see
# main()); without it the decoder first learns the answer
# priors and the connector collapses to an image-independent output (observed: image-token states identical across
# images after 500 steps), from which training recovers only slowly.
KINDS = [(c, s) for c in demo_data.COLOR_NAMES for s in demo_data.SHAPES]
CHARS = sorted(demo_data.FONT) + [" "]
N_SLOTS = 5


def aux_targets(items):
    B = len(items)
    counts = torch.zeros(B, len(KINDS), dtype=torch.long)
    pos = torch.zeros(B, len(KINDS), 2)
    chars = torch.full((B, N_SLOTS), len(CHARS) - 1, dtype=torch.long)
    for i, it in enumerate(items):
        for c, s, x, y in it["objects"]:
            k = KINDS.index((c, s))
            counts[i, k] += 1
            pos[i, k] += torch.tensor([x, y])
        for j, ch in enumerate(it["text"][:N_SLOTS]):
            chars[i, j] = CHARS.index(ch)
    pos = pos / counts.clamp(min=1).unsqueeze(-1)
    return counts.clamp(max=7), pos, chars


def aux_loss(head, image_states, targets):
    counts, pos, chars = targets
    B = counts.shape[0]
    y = head(image_states.reshape(B, -1))
    nk = len(KINDS)
    lc = y[:, :nk * 8].reshape(B * nk, 8)
    lp = y[:, nk * 8:nk * 10].reshape(B, nk, 2)
    lch = y[:, nk * 10:].reshape(B * N_SLOTS, len(CHARS))
    present = (counts > 0).unsqueeze(-1).float()
    loss_pos = ((lp - pos) ** 2 * present).sum() / present.sum().clamp(min=1) * 2
    return F.cross_entropy(lc, counts.reshape(-1)) + F.cross_entropy(lch, chars.reshape(-1)) + loss_pos


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
    for f in ("model.safetensors", "model.safetensors.index.json"):
        if os.path.exists(os.path.join(out_dir, f)):
            os.remove(os.path.join(out_dir, f))
    write_tokenizer_files(out_dir)
    with open(os.path.join(out_dir, "preprocessor_config.json"), "w") as f:
        json.dump(PREPROCESSOR, f, indent=2)
        f.write("\n")
    with open(os.path.join(out_dir, "processor_config.json"), "w") as f:
        json.dump({"image_seq_len": CONFIG["perceiver"]["resampler_n_latents"], "processor_class": "Idefics2Processor"},
                  f, indent=2)
        f.write("\n")
    m = Idefics2ForConditionalGeneration(model.config)
    m.load_state_dict(model.state_dict())
    m = m.to(dtype)
    m.generation_config = GenerationConfig(bos_token_id=1, pad_token_id=0, eos_token_id=[2, EOU_ID],
                                           bad_words_ids=[[32000], [32001]])
    m.save_pretrained(out_dir)


# ---------------------------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------------------------
def curriculum_item(seed, step):
    """Steps < WARM: only shape/colour questions with shapes 2.5x larger; then the shape size boost decays linearly
    to 1 (all question types) by step RAMP; after RAMP the items are the plain generator's."""
    warm, ramp = RECIPE["curriculum_warm"], RECIPE["curriculum_ramp"]
    if step < warm:
        return demo_data.make_item(seed, qtype=("shape", "color")[seed % 2], boost=2.5)
    if step < ramp:
        return demo_data.make_item(seed, boost=2.5 - 1.5 * (step - warm) / (ramp - warm))
    return demo_data.make_item(seed)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=RECIPE["steps"])
    ap.add_argument("--batch-size", type=int, default=RECIPE["batch_size"])
    ap.add_argument("--lr", type=float, default=RECIPE["lr"])
    ap.add_argument("--out", default="Models/idefics2-demo")
    ap.add_argument("--eval-every", type=int, default=RECIPE["eval_every"])
    ap.add_argument("--ckpt", default="/tmp/idefics2-demo-train.pt", help="float32 state for resuming/inspection")
    args = ap.parse_args()

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

    d_lat = CONFIG["perceiver"]["resampler_n_latents"] * CONFIG["text"]["hidden_size"]
    head = torch.nn.Linear(d_lat, len(KINDS) * 10 + N_SLOTS * len(CHARS))
    with torch.no_grad():
        head.weight.normal_(0, 1 / math.sqrt(d_lat), generator=torch.Generator().manual_seed(RECIPE["seed"] + 1))
        head.bias.zero_()
    # The head is a FROZEN random projection: a trainable head reads the targets out of a tiny image-dependent
    # component (observed: 2% of the Perceiver output, the rest constant) and the decoder still ignores the image;
    # a fixed head forces the Perceiver output itself to vary strongly with the image.
    head.requires_grad_(False)
    # Second auxiliary head (trainable) on the decoder's last prompt position (the one that predicts the answer):
    # the decoder must route the image content to where the answer is produced.
    hid = CONFIG["text"]["hidden_size"]
    head2 = torch.nn.Linear(hid, len(KINDS) * 10 + N_SLOTS * len(CHARS))
    with torch.no_grad():
        head2.weight.normal_(0, 1 / math.sqrt(hid), generator=torch.Generator().manual_seed(RECIPE["seed"] + 2))
        head2.bias.zero_()
    decay, no_decay = [live_head, head2.weight], [head2.bias]
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
        items = [curriculum_item(seed + i, step) for i in range(args.batch_size)]
        seed += args.batch_size
        batch, labels = collate(items, tokens)
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        logits, tgt, rows, img_states, h_first = answer_logits(model, batch, labels, out_live_t, live_head, True)
        loss_lm = full_vocab_ce(logits, lut[tgt], n_dead, rows, len(items))
        targets = aux_targets(items)
        loss_aux = aux_loss(head, img_states, targets) + aux_loss(head2, h_first.unsqueeze(1), targets)
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
