#!/usr/bin/env bash
# Times decoding + Idefics2 processing (splitting on) of a 4032x3024 JPEG: `idefics bench-image` (release) against
# Pillow + transformers' Idefics2ImageProcessorPil in .venv, best of 5 each. The JPEG (scikit-image's coffee,
# upscaled, Pillow quality 90, 4:2:0) is made in /tmp and not kept in the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
image="${1:-/tmp/idefics_bench_4032x3024.jpg}"
python="${PYTHON:-.venv/bin/python}"

[[ -f "$image" ]] || "$python" - "$image" <<'PY'
import sys
import skimage.data
from PIL import Image
Image.fromarray(skimage.data.coffee()).resize((4032, 3024), Image.Resampling.BICUBIC).save(sys.argv[1], quality=90)
PY

"$python" - "$image" <<'PY'
import sys, time
from PIL import Image
from transformers.image_utils import load_image
from transformers.models.idefics2.image_processing_pil_idefics2 import Idefics2ImageProcessorPil
processor = Idefics2ImageProcessorPil()
best = [float("inf")] * 3
for _ in range(5):
    start = time.perf_counter()
    image = load_image(sys.argv[1])  # decode, exif_transpose, convert("RGB")
    decoded = time.perf_counter()
    out = processor(images=[[image]], do_image_splitting=True)
    end = time.perf_counter()
    best = [min(b, t) for b, t in zip(best, (decoded - start, end - decoded, end - start))]
print("pillow+transformers pixel_values=%s decode=%.3fs process=%.3fs total=%.3fs (best of 5)"
      % (list(out["pixel_values"].shape), *best))
PY

swift build -c release --product idefics >&2
"$(swift build -c release --show-bin-path)/idefics" bench-image --image "$image" --runs 5
