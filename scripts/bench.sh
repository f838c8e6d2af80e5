#!/usr/bin/env bash
# Benchmarks swift-idefics and prints a Markdown table for the README.
#   scripts/bench.sh MODEL_DIR [IMAGE]
# MODEL_DIR: e.g. a checkpoint made by `scripts/make_full_size_text_checkpoint.py --full-vision` (idefics2-8b shapes,
# random BF16 weights). IMAGE: optional, adds an image-prompt row. Each row is the best of 2 runs; peak RSS comes
# from /usr/bin/time. Run on a quiet machine: other processes change every number.
set -euo pipefail
model=${1:?usage: scripts/bench.sh MODEL_DIR [IMAGE]}
image=${2:-}
cd "$(dirname "$0")/.."
swift build -c release --product idefics >/dev/null
bin=.build/release/idefics
cpu=$(grep -m1 "model name" /proc/cpuinfo | cut -d: -f2 | xargs)
echo "Machine: $(nproc) CPUs ($cpu), $(free -g | awk '/Mem:/ {print $2}') GiB"
echo
echo "| workload | weights | threads | image encode | prefill | decode | peak RSS |"
echo "|---|---|---|---|---|---|---|"
row() {
    local label=$1; shift
    local log
    log=$(mktemp)
    /usr/bin/time -v "$bin" bench --model "$model" --runs 2 "$@" >"$log" 2>&1
    local line rss
    line=$(grep "^model=" "$log")
    rss=$(awk '/Maximum resident/ {printf "%.1f GB", $6 / 1048576}' "$log")
    field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$line"; }
    echo "| $label | $(field weights) | $(field threads) | $(field image_encode) | $(field prefill) tok/s | $(field decode) tok/s | $rss |"
    rm -f "$log"
}
row "text: 128-token prompt, 32 new tokens" --prompt-tokens 128 --new-tokens 32
if [ -n "$image" ]; then
    row "one image + 16 tokens, 8 new tokens" --image "$image" --prompt-tokens 16 --new-tokens 8
fi
