#!/usr/bin/env bash
# Builds the libFuzzer targets in Fuzz/ (fuzzer + address sanitizers, release) and runs one or all of them.
# Usage: scripts/fuzz.sh [png|jpeg|pnm|bmp|process|config|template|all] [seconds per target]   (default: all, 600)
# Corpora grow in Fuzz/corpus/<target>, seeded from Tests/Fixtures/images/inputs and Fuzz/seeds/<target>;
# crashes, hangs and OOMs are written to Fuzz/artifacts/<target>/. Extra arguments after the seconds go to libFuzzer.
set -euo pipefail
cd "$(dirname "$0")/.."
which="${1:-all}"
seconds="${2:-600}"
shift $(( $# < 2 ? $# : 2 ))

inputs=Tests/Fixtures/images/inputs
declare -A products=([png]=FuzzPNG [jpeg]=FuzzJPEG [pnm]=FuzzPNM [bmp]=FuzzBMP [process]=FuzzProcess
                   [config]=FuzzConfig [template]=FuzzTemplate)
declare -A seeds=([png]='*.png' [jpeg]='*.jpg' [pnm]='*.p[gp]m' [bmp]='*.bmp' [process]='*' [config]='' [template]='')

if [[ "$which" == all ]]; then targets=(png jpeg pnm bmp process config template); else targets=("$which"); fi
for target in "${targets[@]}"; do
    [[ -n "${products[$target]:-}" ]] || { echo "unknown target '$target'" >&2; exit 2; }
done

# `--sanitize=fuzzer` makes SwiftPM link libFuzzer's main instead of the target's; the -Xswiftc flag then
# replaces it (swiftc keeps only the last -sanitize=) with fuzzer+address in one flag: `--sanitize=address`
# as a second flag would silently drop the coverage instrumentation.
flags=(-c release --sanitize=fuzzer -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library)
# Only the fuzz products: the root package's `idefics` executable would not link against libFuzzer's main.
for target in "${targets[@]}"; do (cd Fuzz && swift build "${flags[@]}" --product "${products[$target]}"); done
bin="$(cd Fuzz && swift build "${flags[@]}" --show-bin-path)"

failed=()
for target in "${targets[@]}"; do
    corpus=Fuzz/corpus/$target artifacts=Fuzz/artifacts/$target
    mkdir -p "$corpus" "$artifacts"
    # Seeds are copied (not passed as a second directory) so the corpus stays one self-contained folder.
    [[ -n "${seeds[$target]}" ]] && find "$inputs" -maxdepth 1 -type f -name "${seeds[$target]}" -exec cp -n {} "$corpus/" \;
    # Fuzz/seeds/<target> holds inputs in a harness's own format (PNG: raw scanlines wrapped with valid checksums).
    [[ -d Fuzz/seeds/$target ]] && cp -n Fuzz/seeds/$target/* "$corpus/"
    echo "== $target: ${seconds}s, corpus $(ls "$corpus" | wc -l) files"
    "$bin/${products[$target]}" "$corpus" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
        -artifact_prefix="$artifacts/" -print_final_stats=1 "$@" || failed+=("$target")
    echo "== $target: corpus now $(ls "$corpus" | wc -l) files"
done
# A crash in one target should not stop the others; report them all at the end.
if (( ${#failed[@]} )); then echo "FAILED: ${failed[*]} (see Fuzz/artifacts/)" >&2; exit 1; fi
