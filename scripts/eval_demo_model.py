"""Exact-match evaluation of the demo model (Models/idefics2-demo) with transformers, the reference for `idefics eval`.

Rules (the Swift `idefics eval` must apply the same):
  prompt   the checkpoint's chat template, one user turn with content [image, text], add_generation_prompt=True:
           "User:<image>QUESTION<end_of_utterance>\\nAssistant:"; "<image>" expanded like transformers 4.4x's
           Idefics2Processor ("<fake_token_around_image>" + image_seq_len x "<image>" + "<fake_token_around_image>",
           no splitting, no space added); tokenized with tokenizer.json (PreTrainedTokenizerFast), BOS added.
  image    Idefics2ImageProcessorPil with the checkpoint's preprocessor_config.json (one image, batch of one).
  decode   greedy, max_new_tokens 20, the checkpoint's generation_config (stops at 2 or 32002, bad words 32000 and
           32001 masked); the model is loaded from the F16 file in float32 (eager attention).
  compare  prediction = tokenizer.decode(generated ids without the stopping eos, skip_special_tokens=True).strip();
           correct iff prediction == answer (case-sensitive).

Usage:
  .venv/bin/python scripts/eval_demo_model.py --make-set 300      # writes Models/idefics2-demo-eval/images/ + eval.jsonl
  .venv/bin/python scripts/eval_demo_model.py                     # writes Models/idefics2-demo-eval/eval_pytorch.json
  .venv/bin/python scripts/eval_demo_model.py --make-examples Examples
The set lives beside the checkpoint, not in it, so the checkpoint folder stays under 25 MB.
"""
import argparse
import json
import os
import sys
import time

import torch
import transformers
from PIL import Image
from transformers import Idefics2ForConditionalGeneration, PreTrainedTokenizerFast
from transformers.models.idefics2.image_processing_pil_idefics2 import Idefics2ImageProcessorPil

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import demo_data  # noqa: E402
from train_demo_model import chat_prompt, expand_image_tokens  # noqa: E402

MAX_NEW_TOKENS = 20


def make_set(set_dir, n):
    """n held-out items, types in rotation, seeds EVAL_SEED_BASE + i (training uses seeds below EVAL_SEED_BASE)."""
    img_dir = os.path.join(set_dir, "images")
    os.makedirs(img_dir, exist_ok=True)
    rows = []
    for i in range(n):
        seed = demo_data.EVAL_SEED_BASE + i
        it = demo_data.make_item(seed, qtype=demo_data.TYPES[i % len(demo_data.TYPES)])
        path = os.path.join(img_dir, f"{i:04d}.png")
        it["image"].save(path, optimize=True)
        rows.append(dict(image=os.path.relpath(path, ROOT), question=it["question"], answer=it["answer"],
                         type=it["type"], seed=seed))
    with open(os.path.join(set_dir, "eval.jsonl"), "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    print(f"wrote {n} items to {set_dir}/eval.jsonl")


class DemoModel:
    def __init__(self, model_dir):
        self.model = Idefics2ForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32,
                                                                      attn_implementation="eager").eval()
        self.tok = PreTrainedTokenizerFast(tokenizer_file=os.path.join(model_dir, "tokenizer.json"))
        with open(os.path.join(model_dir, "chat_template.json")) as f:
            self.template = json.load(f)["chat_template"]
        with open(os.path.join(model_dir, "preprocessor_config.json")) as f:
            pre = json.load(f)
        self.proc = Idefics2ImageProcessorPil(**{k: v for k, v in pre.items()
                                                 if k not in ("image_processor_type", "processor_class")})
        with open(os.path.join(model_dir, "processor_config.json")) as f:
            self.image_seq_len = json.load(f)["image_seq_len"]
        self.eos = set(self.model.generation_config.eos_token_id)

    def prompt(self, question):
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
        text = self.tok.apply_chat_template(messages, chat_template=self.template, add_generation_prompt=True,
                                            tokenize=False)
        assert text == chat_prompt(question), text
        return text

    @torch.no_grad()
    def answer(self, image, question):
        text = expand_image_tokens(self.prompt(question), self.image_seq_len)
        input_ids = torch.tensor([self.tok(text)["input_ids"]])
        px = self.proc(images=[[image]], return_tensors="pt")
        out = self.model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                                  pixel_values=px["pixel_values"], pixel_attention_mask=px["pixel_attention_mask"],
                                  max_new_tokens=MAX_NEW_TOKENS, do_sample=False, output_logits=True,
                                  return_dict_in_generate=True)
        gen = out.sequences[0, input_ids.shape[1]:].tolist()
        margins = []
        for lg in out.logits:
            top = torch.topk(lg[0].float(), 2).values
            margins.append(float(top[0] - top[1]))
        stopped = bool(gen) and gen[-1] in self.eos
        body = gen[:-1] if stopped else gen
        pred = self.tok.decode(body, skip_special_tokens=True).strip()
        return dict(tokens=gen, text=self.tok.decode(gen), prediction=pred, stopped_by_eos=stopped,
                    min_margin=min(margins), num_prompt_tokens=input_ids.shape[1])


EXAMPLES = [
    # file, type, predicate on the item (seeds from EXAMPLE_SEED_BASE, the first item that satisfies it)
    ("shapes-1.png", "count", lambda it: it["question"] == "How many red circles are there?" and it["answer"] == "3"
     and it["image"].size == (112, 112)),
    ("shapes-2.png", "position", lambda it: it["image"].size == (112, 112) and "left or the right" in it["question"]),
    ("shapes-3.png", "description", lambda it: it["image"].size == (112, 112) and it["answer"].count(" a") == 2),
    ("shapes-4.png", "color", lambda it: it["image"].size == (224, 224) and it["question"] != "What color is the shape?"),
    ("text-1.png", "ocr", lambda it: it["image"].size == (112, 112) and it["answer"].isalpha()),
    ("text-2.png", "ocr", lambda it: it["image"].size == (224, 224) and it["answer"].isdigit()
     and len(it["answer"]) == 2),
]
EXAMPLE_SEED_BASE = 2_000_000_000


def make_examples(model_dir, out_dir):
    """Example images for the README: the first generated item (seeds from EXAMPLE_SEED_BASE, never used in training
    or eval) that matches each row of EXAMPLES and that the model answers correctly."""
    m = DemoModel(model_dir)
    os.makedirs(out_dir, exist_ok=True)
    rows = []
    seed = EXAMPLE_SEED_BASE
    for name, qtype, pred in EXAMPLES:
        skipped = 0
        while True:
            seed += 1
            it = demo_data.make_item(seed, qtype=qtype)
            if not pred(it):
                continue
            res = m.answer(it["image"], it["question"])
            if res["prediction"] == it["answer"]:
                break
            skipped += 1
        it["image"].save(os.path.join(out_dir, name), optimize=True)
        rows.append((name, it, res, skipped))
        print(name, it["question"], it["answer"], res["tokens"], f"(skipped {skipped} the model got wrong)")
    with open(os.path.join(out_dir, "README.md"), "w") as f:
        f.write("# Example images for the demo model\n\n"
                "Procedural images from `scripts/demo_data.py` (seeds never used for training or evaluation) with the "
                "questions the demo model `Models/idefics2-demo` answers. Try:\n\n"
                "```sh\nswift run -c release idefics generate --chat --image Examples/shapes-1.png "
                "--prompt \"How many red circles are there?\"\n```\n\n"
                "| image | size | question | answer | greedy tokens (PyTorch) |\n|---|---|---|---|---|\n")
        for name, it, res, skipped in rows:
            w, h = it["image"].size
            f.write(f"| `{name}` | {w}x{h} | {it['question']} | {it['answer']} | `{res['tokens']}` |\n")
        f.write("\nThe 224x224 images are resized to 112x112 by the image processor (Pillow bilinear), like any "
                "larger image. Each image is the first generated item of its kind (from seed "
                f"{EXAMPLE_SEED_BASE + 1} up) that the model answers correctly; "
                f"{sum(r[3] for r in rows)} matching items were skipped because the model answered them wrongly.\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--make-examples", default=None, help="output folder, e.g. Examples")
    ap.add_argument("--model", default=os.path.join(ROOT, "Models/idefics2-demo"))
    ap.add_argument("--set-dir", default=os.path.join(ROOT, "Models/idefics2-demo-eval"))
    ap.add_argument("--data", default=None, help="default: SET_DIR/eval.jsonl")
    ap.add_argument("--out", default=None, help="default: SET_DIR/eval_pytorch.json")
    ap.add_argument("--make-set", type=int, default=0)
    ap.add_argument("--limit", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.make_set:
        make_set(args.set_dir, args.make_set)
        return
    if args.make_examples:
        make_examples(args.model, args.make_examples)
        return
    data = args.data or os.path.join(args.set_dir, "eval.jsonl")
    out_path = args.out or os.path.join(args.set_dir, "eval_pytorch.json")
    with open(data) as f:
        rows = [json.loads(line) for line in f]
    if args.limit:
        rows = rows[:args.limit]
    m = DemoModel(args.model)
    items, per = [], {}
    t0 = time.time()
    for i, r in enumerate(rows):
        img = Image.open(os.path.join(ROOT, r["image"]))
        res = m.answer(img, r["question"])
        ok = res["prediction"] == r["answer"]
        per.setdefault(r["type"], [0, 0])
        per[r["type"]][0] += ok
        per[r["type"]][1] += 1
        items.append(dict(index=i, image=r["image"], question=r["question"], answer=r["answer"], type=r["type"],
                          correct=ok, **res))
        if not ok:
            print(f"  wrong #{i} [{r['type']}] {r['question']!r}: expected {r['answer']!r}, got {res['prediction']!r}")
    n_ok = sum(it["correct"] for it in items)
    result = {
        "format_version": 1,
        "model": os.path.relpath(os.path.abspath(args.model), ROOT),
        "data": os.path.relpath(os.path.abspath(data), ROOT),
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "weights_dtype": json.load(open(os.path.join(args.model, "config.json"))).get("dtype"),
        "compute_dtype": "float32",
        "attn_implementation": "eager",
        "max_new_tokens": MAX_NEW_TOKENS,
        "prompt": "chat template, one user turn [image, text], add_generation_prompt=True: "
                  "'User:<image>QUESTION<end_of_utterance>\\nAssistant:'; <image> -> <fake_token_around_image> + "
                  "image_seq_len x <image> + <fake_token_around_image> (transformers 4.4x Idefics2Processor); "
                  "tokenizer.json with BOS",
        "decoding": "greedy with the checkpoint's generation_config (eos [2, 32002], bad_words_ids [[32000],[32001]])",
        "normalization": "prediction = decode(generated ids without the stopping eos, skip_special_tokens=True)"
                         ".strip(); exact, case-sensitive comparison with answer",
        "total": len(items),
        "correct": n_ok,
        "accuracy": n_ok / len(items),
        "per_type": {k: {"correct": v[0], "total": v[1], "accuracy": v[0] / v[1]} for k, v in sorted(per.items())},
        "min_margin": min(it["min_margin"] for it in items),
        "items": items,
    }
    with open(out_path, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    print(f"accuracy {100 * result['accuracy']:.1f}% ({n_ok}/{len(items)}) in {time.time() - t0:.0f}s; "
          + ", ".join(f"{k} {100 * v['accuracy']:.1f}%" for k, v in result["per_type"].items()))
    print("wrote", out_path)


if __name__ == "__main__":
    main()
