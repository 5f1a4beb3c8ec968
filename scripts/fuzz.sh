#!/usr/bin/env bash
# Fuzzes one target for a number of minutes: scripts/fuzz.sh TARGET MINUTES [--seed N]
# Targets: fitfile, stats, image, onnx, model, capi (see tests/fuzz_support). Prints inputs/s and the
# total; exits non-zero on a crash, a hang or a leak, with the input saved under out/fuzz/TARGET/.
# A failing input becomes a regression test: copy it to tests/data/fuzz/regressions/TARGET-<what>.bin.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
if [[ $# -lt 2 ]]; then
    echo "usage: scripts/fuzz.sh TARGET MINUTES [--seed N]" >&2
    exit 1
fi
target=$1 minutes=$2
shift 2
seconds=$(awk -v m="$minutes" 'BEGIN { printf "%d", m * 60 }')
cargo build --release --example fuzz
exec "${CARGO_TARGET_DIR:-$root/target}/release/examples/fuzz" "$target" "$seconds" --out "$root/out/fuzz" "$@"
