"""Side-by-side benchmark: swift-idefics, transformers (CPU, the pinned reference env) and mistral.rs (PyPI
`mistralrs`, its prebuilt CPU wheel) on the same Idefics2 or Idefics v1 checkpoint, image and prompt, one engine
after another in one run (mistral.rs has no Idefics v1 architecture: it is skipped for v1 checkpoints). Prints one markdown table: time to first token, image encoding (where the engine reports it), prefill and
decode tokens/s, peak RSS. Each peer runs in its own process under a memory cap (`prlimit --as`), so a peer that
runs out of memory is reported as such instead of taking the machine down.

Usage:
  .venv/bin/python scripts/bench_peers.py MODEL_DIR IMAGE [--split] [--new-tokens 8] [--mem-gb 22]
      [--engines swift,transformers,mistralrs] [--swift .build/release/idefics] [--quantize q8|q4]
      [--matmul-precision f32|bf16] [--mistralrs-dtype auto|bf16]

--quantize quantizes the language model as it loads, to the same block formats in both engines that can: llama.cpp's
Q8_0 / Q4_0 (swift-idefics `--quantize`, mistral.rs `in_situ_quant`); transformers has no CPU path for them and is
skipped.

--matmul-precision is swift-idefics' (bf16: weights in BF16, F32 and F16 ones rounded as they load, and activations
rounded to bf16 before each product, as torch runs the bf16 model here; AMX tiles where the CPU has them); the default
is its f32.

The prompt is the chat turn "What do we see in this image?" after the image (generation greedy, eos ignored where
the engine allows). TTFT counts from the request to the first generated token, model load excluded.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

PROMPT = "What do we see in this image?"


def run_swift(args):
    cmd = [args.swift, "bench", "--model", args.model, "--image", args.image, "--prompt-tokens", "8",
           "--new-tokens", str(args.new_tokens), "--no-machine-limits"] + (["--image-splitting"] if args.split else []) + \
          (["--quantize", args.quantize] if args.quantize else []) + \
          (["--matmul-precision", args.matmul_precision] if args.matmul_precision else [])
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    fields = dict(item.split("=", 1) for item in out.split() if "=" in item)
    image = float(fields["image_encode"].rstrip("s"))
    prompt = int(fields["prompt"])
    prefill = float(fields["prefill"])
    return {"ttft": image + prompt / prefill, "image": image, "prompt": prompt, "prefill": prefill,
            "decode": float(fields["decode"])}


def is_idefics_v1(model):
    with open(os.path.join(model, "config.json")) as f:
        return json.load(f).get("model_type") == "idefics"


def run_transformers(args):
    import torch
    from PIL import Image
    from transformers import (AutoProcessor, Idefics2ForConditionalGeneration, IdeficsForVisionText2Text,
                              IdeficsImageProcessorPil, IdeficsProcessor, PreTrainedTokenizerFast)

    torch.set_num_threads(os.cpu_count())
    image = Image.open(args.image).convert("RGB")
    if is_idefics_v1(args.model):
        processor = IdeficsProcessor(image_processor=IdeficsImageProcessorPil.from_pretrained(args.model),
                                     tokenizer=PreTrainedTokenizerFast.from_pretrained(args.model))
        model = IdeficsForVisionText2Text.from_pretrained(args.model, dtype=torch.bfloat16).eval()
        inputs = processor(text=[["User:", image, PROMPT, "\nAssistant:"]], return_tensors="pt")  # idefics-9b embeds no <end_of_utterance>
        inputs["pixel_values"] = inputs["pixel_values"].to(torch.bfloat16)
    else:
        processor = AutoProcessor.from_pretrained(args.model, do_image_splitting=args.split)
        model = Idefics2ForConditionalGeneration.from_pretrained(args.model, dtype=torch.bfloat16).eval()
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": PROMPT}]}]
        text = processor.apply_chat_template(messages, add_generation_prompt=True)
        inputs = processor(text=text, images=[image], return_tensors="pt")
    prompt = inputs["input_ids"].shape[1]
    from transformers import StoppingCriteria

    class Stamps(StoppingCriteria):  # called once per generated token: the time each token was ready
        def __init__(self):
            self.times = []

        def __call__(self, input_ids, scores, **kwargs):
            self.times.append(time.perf_counter())
            return torch.zeros(input_ids.shape[0], dtype=torch.bool)

    with torch.inference_mode():
        stamps = Stamps()
        start = time.perf_counter()
        out = model.generate(**inputs, max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, do_sample=False,
                             eos_token_id=None, bad_words_ids=None, stopping_criteria=[stamps])
    ttft = stamps.times[0] - start
    print(f"transformers: time to first token {ttft:.1f} s", file=sys.stderr, flush=True)
    new = out.shape[1] - prompt
    return {"ttft": ttft, "image": None, "prompt": prompt, "prefill": None,
            "decode": (len(stamps.times) - 1) / (stamps.times[-1] - stamps.times[0]) if new > 1 else None}


def run_mistralrs(args):
    import base64
    from mistralrs import ChatCompletionRequest, ModelDType, MultimodalArchitecture, Runner, Which

    runner = Runner(which=Which.MultimodalPlain(model_id=args.model, arch=MultimodalArchitecture.Idefics2,
                                                dtype={"auto": ModelDType.Auto, "bf16": ModelDType.BF16}[args.mistralrs_dtype]),
                    in_situ_quant={"q8": "Q8_0", "q4": "Q4_0"}.get(args.quantize))
    with open(args.image, "rb") as f:
        url = "data:image/jpeg;base64," + base64.b64encode(f.read()).decode()

    def ask(tokens):
        request = ChatCompletionRequest(
            model="idefics2", max_tokens=tokens, temperature=0.0, ignore_eos=True,
            messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                                   {"type": "text", "text": PROMPT}]}])
        start = time.perf_counter()
        response = runner.send_chat_completion_request(request)
        return time.perf_counter() - start, response.usage

    ttft, usage = ask(1)
    print(f"mistralrs: time to first token {ttft:.1f} s", file=sys.stderr, flush=True)
    _, usage = ask(args.new_tokens)  # its own timings: the second request may reuse the first one's prefix cache
    return {"ttft": ttft, "image": None, "prompt": usage.prompt_tokens, "prefill": None,
            "decode": usage.avg_compl_tok_per_sec}


ENGINES = {"swift": run_swift, "transformers": run_transformers, "mistralrs": run_mistralrs}


def child(args):
    result = ENGINES[args.child](args)
    result["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    if args.child == "swift":
        result["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1e6
    print("RESULT " + json.dumps(result))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("image")
    ap.add_argument("--split", action="store_true")
    ap.add_argument("--new-tokens", type=int, default=8)
    ap.add_argument("--mem-gb", type=float, default=22)
    ap.add_argument("--timeout-min", type=float, default=30, help="per engine; a peer still running is stopped")
    ap.add_argument("--engines", default="swift,transformers,mistralrs")
    ap.add_argument("--swift", default=".build/release/idefics")
    ap.add_argument("--quantize", choices=["q8", "q4"])
    ap.add_argument("--matmul-precision", choices=["f32", "bf16"])
    ap.add_argument("--mistralrs-dtype", choices=["auto", "bf16"], default="auto",
                    help="mistral.rs' load dtype (auto: float32 on a CPU, which for the full model needs ~34 GB "
                         "before in-situ quantization; bf16 fits it)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)
    rows = []
    for engine in args.engines.split(","):
        if engine == "mistralrs" and is_idefics_v1(args.model):
            rows.append((engine, None, "not run: mistral.rs has no Idefics v1 (IdeficsForVisionText2Text) architecture"))
            continue
        if engine == "transformers" and args.quantize:
            rows.append((engine, None, f"not run: no CPU path for {args.quantize} block weights"))
            continue
        cmd = ["prlimit", f"--as={int(args.mem_gb * 2**30)}", sys.executable, __file__, args.model, args.image,
               "--new-tokens", str(args.new_tokens), "--swift", args.swift, "--child", engine] + \
              (["--split"] if args.split else []) + (["--quantize", args.quantize] if args.quantize else []) + \
              (["--matmul-precision", args.matmul_precision] if args.matmul_precision else []) + \
              ["--mistralrs-dtype", args.mistralrs_dtype]
        started = time.time()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout_min * 60)
            stdout, stderr, status = proc.stdout, proc.stderr, f"exit {proc.returncode}"
        except subprocess.TimeoutExpired as expired:
            stdout, status = "", "stopped at the time limit"
            stderr = expired.stderr.decode() if isinstance(expired.stderr, bytes) else (expired.stderr or "")
        line = next((l for l in stdout.splitlines() if l.startswith("RESULT ")), None)
        if line is None:
            said = [l for l in stderr.strip().splitlines() if "time to first token" in l] or \
                stderr.strip().splitlines()[-1:] or ["no output"]
            rows.append((engine, None, f"did not finish in {time.time() - started:.0f} s ({status}; {said[-1][:160]})"))
        else:
            rows.append((engine, json.loads(line[7:]), None))
        print(engine, "done", file=sys.stderr)

    def fmt(value, spec):
        return "–" if value is None else format(value, spec)

    print(f"\nmodel {os.path.basename(args.model.rstrip('/'))}, image {os.path.basename(args.image)}"
          f"{' split' if args.split else ''}, {args.new_tokens} new tokens"
          f"{', ' + args.quantize if args.quantize else ''}"
          f"{', swift-idefics --matmul-precision ' + args.matmul_precision if args.matmul_precision else ''}"
          f"{', mistral.rs dtype ' + args.mistralrs_dtype if args.mistralrs_dtype != 'auto' else ''}\n")
    print("| engine | time to first token | image encode | prompt tokens | prefill | decode | peak RSS |")
    print("|---|---|---|---|---|---|---|")
    for engine, r, failure in rows:
        if failure:
            print(f"| {engine} | {failure} | | | | | |")
        else:
            print(f"| {engine} | {fmt(r['ttft'], '.1f')} s | {fmt(r['image'], '.1f')} s | {r['prompt']} | "
                  f"{fmt(r['prefill'], '.1f')} tok/s | {fmt(r['decode'], '.2f')} tok/s | {r['peak_rss_gb']:.1f} GB |")


if __name__ == "__main__":
    main()
