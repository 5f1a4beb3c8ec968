#!/usr/bin/env bash
# The objective study behind the defaults (README.md, "Choosing the objective"), on development data
# only: fits use ai-benchmark photos 0-24 (and mosaics and views made from them), scores use photos
# 25-49 with the dev boxes of tests/data/aib_boxes_dev.json, 48 mosaics of photos 25-49 and
# deletion/insertion on the same photos. Photos 50-99 are never read.
#
#   scripts/study.sh [head|refined|all]     (default all; about 25 min on two idle cores)
#
# Fits and scores are cached in out/study/ (delete a file to redo it). Each table prints the mean with
# its 95% bootstrap interval and the paired difference to CAM.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
WHAT="${1:-all}"
PY="${PYTHON:-python3}"
S=out/study
M=data/models/efficientnet_lite0.onnx
HEAD=/_swish_1/Clip_output_0

scripts/setup.sh
export CHIP_ORT_LIB="$ROOT/third_party/onnxruntime/lib/libonnxruntime.so"
cargo build --release --quiet --bin chip
C="${CARGO_TARGET_DIR:-$ROOT/target}/release/chip"
mkdir -p "$S"

# Entries are relative to the list file.
for i in $(seq 0 24); do echo "../../data/images/aib/$i.jpg"; done > "$S/fit_photos.txt"
for i in $(seq 25 49); do echo "../../data/images/aib/$i.jpg"; done > "$S/score_photos.txt"
"$PY" - "$S" <<'EOF'
import json, sys
gt = json.load(open("tests/data/aib_boxes_dev.json"))
json.dump([e for e in gt if 25 <= int(e["file"].split(".")[0]) <= 49], open(sys.argv[1] + "/score_boxes.json", "w"))
EOF
[[ -f "$S/score_mosaics/mosaics.json" ]] || "$C" mosaic --model "$M" --images "$S/score_photos.txt" --count 48 --seed 0 --out "$S/score_mosaics"
# Classes to solve: the score photos' top-1 (the mosaics' classes) and the boxes' classes.
CLASSES="$("$PY" - "$S" <<'EOF'
import json, sys
s = sys.argv[1]
c = {x for m in json.load(open(s + "/score_mosaics/mosaics.json")) for x in m["classes"]}
c |= {e["class"] for e in json.load(open(s + "/score_boxes.json")) if e["class"] is not None}
print(",".join(map(str, sorted(c))))
EOF
)"

# fit NAME LAYER ARGS...: one cached fit on the fit photos.
fit() {
    local name="$1" layer="$2"; shift 2
    [[ -f "$S/$name.chip" ]] || "$C" fit --model "$M" --layer "$layer" --images "$S/fit_photos.txt" \
        --out "$S/$name.chip" --classes "$CLASSES" "$@"
}

# score TABLE NAME=FIT[,FIT]...: one cached chip eval, then its table.
score() {
    local table="$1"; shift
    local args=()
    for m in "$@"; do args+=(--method "$m"); done
    [[ -f "$S/$table.json" ]] || "$C" eval --model "$M" "${args[@]}" --baselines --gt "$S/score_boxes.json" \
        --images data/images/aib --mosaics "$S/score_mosaics/mosaics.json" --save-json "$S/$table.json" > "$S/$table.txt"
    printf '\n== %s ==\n' "$table"
    cat "$S/$table.txt"
}

if [[ "$WHAT" == head || "$WHAT" == all ]]; then
    fit paper "$HEAD" --objective paper --mosaics 0 --lambda-rel 0.05
    fit prob "$HEAD" --target probability
    fit logit "$HEAD" --target logit
    fit default "$HEAD"
    fit no_intercept "$HEAD" --intercept false
    fit nonneg "$HEAD" --nonneg true
    fit no_mosaics "$HEAD" --mosaics 0
    fit mosaics4 "$HEAD" --mosaics 4
    fit lambda01 "$HEAD" --lambda-rel 0.01
    fit lambda003 "$HEAD" --lambda-rel 0.003
    fit sigma1 "$HEAD" --sigma2-rel 1.0
    fit gates512 "$HEAD" --gates 512
    fit augment4 "$HEAD" --augment 4
    score head paper="$S/paper.chip" prob="$S/prob.chip" logit="$S/logit.chip" default="$S/default.chip" \
        no_intercept="$S/no_intercept.chip" nonneg="$S/nonneg.chip" no_mosaics="$S/no_mosaics.chip" \
        mosaics4="$S/mosaics4.chip" lambda01="$S/lambda01.chip" lambda003="$S/lambda003.chip" \
        sigma1="$S/sigma1.chip" gates512="$S/gates512.chip" augment4="$S/augment4.chip"
fi
if [[ "$WHAT" == refined || "$WHAT" == all ]]; then
    fit default "$HEAD"
    fit stem /_swish/Clip_output_0 --gates 128
    fit block4 /_blocks.4/Add_output_0 --gates 128
    fit block10 /_blocks.10/Add_output_0 --gates 128
    score refined head="$S/default.chip" refined_stem="$S/stem.chip,$S/default.chip" \
        refined_block4="$S/block4.chip,$S/default.chip" refined_block10="$S/block10.chip,$S/default.chip"
fi
