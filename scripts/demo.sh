#!/usr/bin/env bash
# The CHIP demo on EfficientNet-Lite0 and real photos:
#   1. provisions ONNX Runtime, the model and the photos (scripts/setup.sh),
#   2. builds the `chip` command line (release),
#   3. fits the stem (first layer) and the conv head (last layer) on the 100 ai-benchmark photos,
#      solving only the classes the demo looks at; fits are cached in out/demo/fits keyed on
#      everything that goes into them, so a second run skips this step,
#   4. explains the photos with boxes and some ai-benchmark photos (CHIP, Refined CHIP, boxes),
#   5. evaluates localization on data/boxes.json and on the dev boxes of ai-benchmark 0-49,
#   6. writes out/demo/index.html.
#
# Variables: GATES (256, conv head), LAMBDA (relative λ, 0.05), SIGMA2 (relative σ², 0.5), SEED (0),
#            STEM_IMAGES (100) and STEM_GATES (256): the stem fit runs almost the whole network once
#            per photo and gate (25,600 runs, about 2.5 minutes on two idle cores); lower them for a
#            quicker look. EXTRA (12): ai-benchmark photos explained besides those with boxes.
#            THREADS (0): ONNX Runtime threads.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
GATES="${GATES:-256}"
LAMBDA="${LAMBDA:-0.05}"
SIGMA2="${SIGMA2:-0.5}"
SEED="${SEED:-0}"
STEM_IMAGES="${STEM_IMAGES:-100}"
STEM_GATES="${STEM_GATES:-256}"
EXTRA="${EXTRA:-12}"
THREADS="${THREADS:-0}"
PY="${PYTHON:-python3}"
OUT=out/demo
MODEL=data/models/efficientnet_lite0.onnx

log() { printf '[demo] %s\n' "$*" >&2; }
now() { date +%s; }

scripts/setup.sh
export CHIP_ORT_LIB="$ROOT/third_party/onnxruntime/lib/libonnxruntime.so"

log "building chip (release)"
cargo build --release --quiet --bin chip
CHIP="${CARGO_TARGET_DIR:-$ROOT/target}/release/chip"
[[ -x "$CHIP" ]] || { log "chip binary not found at $CHIP"; exit 1; }
chip() { "$CHIP" --threads "$THREADS" "$@"; }

mkdir -p "$OUT/fits" "$OUT/maps"

# Stem: the first activated layer; conv head: the deepest layer that still has a spatial extent.
read -r STEM HEAD < <(chip layers --model "$MODEL" --json | "$PY" -c '
import json, sys
ls = json.load(sys.stdin)
stem = next((l for l in ls if l["op_type"] in ("Clip", "Relu")), ls[0])
head = [l for l in ls if l["height"] > 1 and l["width"] > 1][-1]
print(stem["name"], head["name"])')
log "stem layer: $STEM; conv head: $HEAD"

# Photos to explain: every photo with boxes, the other sample photos, and the first EXTRA
# ai-benchmark photos.
PHOTOS=()
while IFS= read -r p; do PHOTOS+=("$p"); done < <("$PY" - "$EXTRA" <<'EOF'
import json, sys
extra = int(sys.argv[1])
idx = json.load(open("data/index.json"))
boxed = sorted({e["file"] for e in json.load(open("data/boxes.json"))})
others = [e["file"] for e in idx if e["source"] in ("skimage", "mpl")]
aib = ["aib/%d.jpg" % i for i in range(extra)]
for f in boxed + others + aib:
    print("data/images/" + f)
EOF
)

# Classes to solve: the top-3 classes of every explained photo (from data/index.json) and every
# ground-truth class (both box files).
CLASSES="$("$PY" - "${PHOTOS[@]}" <<'EOF'
import json, sys
want = {p[len("data/images/"):] for p in sys.argv[1:]}
idx = json.load(open("data/index.json"))
cls = set()
for e in idx:
    if e["file"] in want:
        cls.update(e["top5"][:3])
for path in ("data/boxes.json", "tests/data/aib_boxes_dev.json"):
    cls.update(e["class"] for e in json.load(open(path)) if e.get("class") is not None)
print(",".join(str(c) for c in sorted(cls)))
EOF
)"
log "solving $(tr ',' '\n' <<<"$CLASSES" | wc -l) classes"

# Entries are relative to the list file.
ls data/images/aib/*.jpg | sort -V | sed 's|^|../../|' > "$OUT/fit_images.txt"
head -n "$STEM_IMAGES" "$OUT/fit_images.txt" > "$OUT/stem_images.txt"

# fit NAME LAYER LIST GATES: fits once per parameter set (key: model, layer, photos, parameters).
fit() {
    local name="$1" layer="$2" list="$3" gates="$4"
    local key
    key="$( { sha256sum "$MODEL" | cut -d' ' -f1; printf '%s\n' "$layer" "$gates" "$LAMBDA" "$SIGMA2" "$SEED" "$CLASSES"; cat "$list"; } | sha256sum | cut -c1-16)"
    local file="$OUT/fits/$name-$key.chip"
    if [[ -f "$file" ]]; then
        log "$name: cached fit $file"
    else
        log "$name: fitting $layer on $(wc -l < "$list") photos x $gates gates"
        local t0; t0=$(now)
        chip fit --model "$MODEL" --layer "$layer" --images "$list" --out "$file" \
            --gates "$gates" --lambda "$LAMBDA" --sigma2 "$SIGMA2" --seed "$SEED" --classes "$CLASSES"
        log "$name: fitted in $(( $(now) - t0 ))s"
    fi
    printf '%s' "$file"
}
HEAD_FIT="$(fit head "$HEAD" "$OUT/fit_images.txt" "$GATES")"
STEM_FIT="$(fit stem "$STEM" "$OUT/stem_images.txt" "$STEM_GATES")"

log "explaining ${#PHOTOS[@]} photos"
t0=$(now)
chip explain --model "$MODEL" --fit "$STEM_FIT" --fit "$HEAD_FIT" --refined --top 1 --json \
    --out "$OUT/maps" "${PHOTOS[@]}" > "$OUT/explain.jsonl"
log "explained in $(( $(now) - t0 ))s"

log "localization on data/boxes.json"
chip eval-loc --model "$MODEL" --fit "$STEM_FIT" --fit "$HEAD_FIT" --refined \
    --gt data/boxes.json --images data/images --json > "$OUT/eval_boxes.json"
chip eval-loc --model "$MODEL" --fit "$STEM_FIT" --fit "$HEAD_FIT" --refined \
    --gt data/boxes.json --images data/images | tee "$OUT/eval_boxes.txt"
log "localization on the dev boxes (ai-benchmark 0-49)"
chip eval-loc --model "$MODEL" --fit "$STEM_FIT" --fit "$HEAD_FIT" --refined \
    --gt tests/data/aib_boxes_dev.json --images data/images/aib --json > "$OUT/eval_dev.json"
"$PY" - "$OUT/eval_dev.json" <<'EOF'
import json, sys
ev = json.load(open(sys.argv[1]))
print("%-36s %6s %9s %8s %8s %8s %8s" % ("map", "images", "threshold", "GT-known", "top-1", "mean IoU", "pointing"))
for name, r in ev["reports"].items():
    print("%-36s %6d %9.2f %8.3f %8.3f %8.3f %8.3f" % (name, r["images"], r["best_threshold"], r["gt_known_accuracy"],
          r["top1_accuracy"], r["mean_iou"], r["pointing_game"]))
EOF

NOTE="EfficientNet-Lite0; conv head fitted on $(wc -l < "$OUT/fit_images.txt") photos x $GATES gates, stem on $(wc -l < "$OUT/stem_images.txt") photos x $STEM_GATES gates; λ $LAMBDA·λ_max, σ² $SIGMA2·K, seed $SEED."
PAGE="$("$PY" scripts/demo_page.py --explain "$OUT/explain.jsonl" --out "$OUT" --images-root data/images \
    --gt "=data/boxes.json" --gt "aib/=tests/data/aib_boxes_dev.json" \
    --eval "=Localization on data/boxes.json=$OUT/eval_boxes.json" \
    --eval "aib/=Localization on the dev boxes (ai-benchmark 0-49)=$OUT/eval_dev.json" \
    --title "CHIP on EfficientNet-Lite0" --note "$NOTE")"
log "page: $ROOT/$PAGE"
