#!/bin/bash
# Text-only decode of the same language-model weights in swift-idefics (`idefics bench`) and llama.cpp
# (`llama-bench`), at BF16, Q8_0 and Q4_0, the two engines alternating, 2 rounds; one line per run.
#
# Usage: scripts/bench_llama_cpp.sh IDEFICS2_DIR LLAMA_CPP_DIR WORK_DIR [threads]
#   IDEFICS2_DIR   a BF16 Idefics2 checkpoint (scripts/make_full_size_text_checkpoint.py --full-vision for 8B shapes)
#   LLAMA_CPP_DIR  a llama.cpp source tree built with cmake (build/bin/llama-bench, build/bin/llama-quantize); no
#                  release binaries reach this machine, but PyPI's llama-cpp-python source archive carries one in
#                  vendor/llama.cpp:
#                    pip download llama-cpp-python --no-deps --no-binary llama-cpp-python && tar xzf llama_cpp_python-*.tar.gz
#                    cmake -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF \
#                      -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF && ninja -C build llama-bench llama-quantize
#   WORK_DIR       where the GGUF files and swift-idefics' q8/q4 folders are written (about 40 GB for 8B shapes)
# Needs .venv (scripts/requirements.txt) and a release build (.build/release/idefics).
set -euo pipefail
[ $# -ge 3 ] || { sed -n 2,14p "$0"; exit 2; }
MODEL=$1 LLAMA=$2 WORK=$3 THREADS=${4:-$(nproc)}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
IDEFICS=$ROOT/.build/release/idefics
BIN=$LLAMA/build/bin
mkdir -p "$WORK"

if [ ! -f "$WORK/text-bf16.gguf" ]; then
    "$ROOT/.venv/bin/python" "$ROOT/scripts/export_text_model.py" "$MODEL" "$WORK/text-hf"
    PYTHONPATH=$LLAMA/gguf-py "$ROOT/.venv/bin/python" "$LLAMA/convert_hf_to_gguf.py" "$WORK/text-hf" \
        --outtype bf16 --outfile "$WORK/text-bf16.gguf" > "$WORK/convert.log" 2>&1
    rm -rf "$WORK/text-hf"
fi
for type in Q8_0 Q4_0; do
    gguf=$WORK/text-$(echo $type | tr A-Z a-z).gguf
    [ -f "$gguf" ] || "$BIN/llama-quantize" "$WORK/text-bf16.gguf" "$gguf" $type "$THREADS" > "$gguf.log" 2>&1
done
for type in q8 q4; do
    [ -d "$WORK/idefics-$type" ] || "$IDEFICS" quantize --model "$MODEL" --output "$WORK/idefics-$type" --type $type
done

for round in 1 2; do
    for format in bf16 q8 q4; do
        case $format in
            bf16) folder=$MODEL gguf=$WORK/text-bf16.gguf ;;
            q8) folder=$WORK/idefics-q8 gguf=$WORK/text-q8_0.gguf ;;
            q4) folder=$WORK/idefics-q4 gguf=$WORK/text-q4_0.gguf ;;
        esac
        echo "== round $round, $format, load average $(cut -d' ' -f1-3 /proc/loadavg)"
        /usr/bin/time -f 'swift-idefics peak RSS %M KB' "$IDEFICS" bench --model "$folder" --threads "$THREADS" \
            --prompt-tokens 8 --new-tokens 32 --runs 2 2>&1 | grep 'model=\|machine:\|GB/s of\|peak RSS'
        /usr/bin/time -f 'llama.cpp peak RSS %M KB' "$BIN/llama-bench" -m "$gguf" -t "$THREADS" -p 0 -n 32 -r 3 2>&1 |
            grep 'tg32\|peak RSS'
    done
done
