#!/usr/bin/env bash
# The CHIP demo on EfficientNet-Lite0 and real photos:
#   1. provisions ONNX Runtime, the model and the photos (scripts/setup.sh),
#   2. builds the `chip` command line (release),
#   3. fits the conv head (last layer) on the 100 ai-benchmark photos with the default objective and
#      with the CHIP paper's, and a shallow layer (28×28, for Refined CHIP) on the first 50, solving
#      only the classes the demo looks at; fits are cached in out/demo/fits keyed on everything that
#      goes into them, so a second run skips this step,
#   4. explains the photos with boxes and some ai-benchmark photos (CHIP, Refined CHIP, boxes),
#   5. scores CHIP (default and paper), Refined CHIP and the baselines (CAM, centre prior, constant
#      map) with `chip eval` on the development data: dev boxes and 48 mosaics of ai-benchmark 0-49,
#      and localization on data/boxes.json,
#   6. writes out/demo/index.html.
#
# Variables: GATES (256, conv head), SIGMA2 (relative σ², 0.5), SEED (0), LAMBDA (relative λ; the
#            library's default when unset), SHALLOW_IMAGES (50) and SHALLOW_GATES (128): the shallow
#            fit runs most of the network once per row and gate; lower them for a quicker look.
#            EXTRA (12): ai-benchmark photos explained besides those with boxes. THREADS (0): ONNX
#            Runtime threads.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
GATES="${GATES:-256}"
LAMBDA="${LAMBDA:-}"
SIGMA2="${SIGMA2:-0.5}"
SEED="${SEED:-0}"
SHALLOW_IMAGES="${SHALLOW_IMAGES:-50}"
SHALLOW_GATES="${SHALLOW_GATES:-128}"
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

# Conv head: the deepest layer that still has a spatial extent. Shallow layer for Refined CHIP: the
# last block output (Add) at four times the head's resolution (the study in README.md).
read -r SHALLOW HEAD < <(chip layers --model "$MODEL" --json | "$PY" -c '
import json, sys
ls = json.load(sys.stdin)
head = [l for l in ls if l["height"] > 1 and l["width"] > 1][-1]
at4 = [l for l in ls if l["height"] == 4 * head["height"]]
shallow = ([l for l in at4 if l["op_type"] == "Add"] or at4 or ls[:1])[-1]
print(shallow["name"], head["name"])')
log "shallow layer: $SHALLOW; conv head: $HEAD"

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
    # Mosaic tiles of the dev photos are explained for their top-1 class.
    if e["source"] == "aib" and int(e["file"].split("/")[-1].split(".")[0]) < 50:
        cls.update(e["top5"][:1])
for path in ("data/boxes.json", "tests/data/aib_boxes_dev.json"):
    cls.update(e["class"] for e in json.load(open(path)) if e.get("class") is not None)
print(",".join(str(c) for c in sorted(cls)))
EOF
)"
log "solving $(tr ',' '\n' <<<"$CLASSES" | wc -l) classes"

# Entries are relative to the list file.
ls data/images/aib/*.jpg | sort -V | sed 's|^|../../|' > "$OUT/fit_images.txt"
head -n "$SHALLOW_IMAGES" "$OUT/fit_images.txt" > "$OUT/shallow_images.txt"

# fit NAME LAYER LIST GATES [ARGS]: fits once per parameter set (key: model, chip, layer, photos,
# parameters).
fit() {
    local name="$1" layer="$2" list="$3" gates="$4"; shift 4
    local extra=("$@")
    [[ -n "$LAMBDA" ]] && extra+=(--lambda-rel "$LAMBDA")
    local key
    key="$( { sha256sum "$MODEL" "$CHIP" | cut -d' ' -f1; printf '%s\n' "$layer" "$gates" "$SIGMA2" "$SEED" "$CLASSES" "${extra[@]}"; cat "$list"; } | sha256sum | cut -c1-16)"
    local file="$OUT/fits/$name-$key.chip"
    if [[ -f "$file" ]]; then
        log "$name: cached fit $file"
    else
        log "$name: fitting $layer on $(wc -l < "$list") photos x $gates gates ${extra[*]}"
        local t0; t0=$(now)
        chip fit --model "$MODEL" --layer "$layer" --images "$list" --out "$file" \
            --gates "$gates" --sigma2-rel "$SIGMA2" --seed "$SEED" --classes "$CLASSES" "${extra[@]}"
        log "$name: fitted in $(( $(now) - t0 ))s"
    fi
    printf '%s' "$file"
}
HEAD_FIT="$(fit head "$HEAD" "$OUT/fit_images.txt" "$GATES")"
# The CHIP paper's configuration: probability target, no intercept, the photos alone, λ 0.05·λ_max.
PAPER_FIT="$(fit head-paper "$HEAD" "$OUT/fit_images.txt" "$GATES" --objective paper --mosaics 0 --lambda-rel 0.05)"
SHALLOW_FIT="$(fit shallow "$SHALLOW" "$OUT/shallow_images.txt" "$SHALLOW_GATES")"

log "explaining ${#PHOTOS[@]} photos"
t0=$(now)
chip explain --model "$MODEL" --fit "$SHALLOW_FIT" --fit "$HEAD_FIT" --refined --top-k 1 --json \
    --out "$OUT/maps" "${PHOTOS[@]}" > "$OUT/explain.jsonl"
log "explained in $(( $(now) - t0 ))s"

log "localization on data/boxes.json"
chip eval-loc --model "$MODEL" --fit "$SHALLOW_FIT" --fit "$HEAD_FIT" --refined \
    --gt data/boxes.json --images data/images --json > "$OUT/eval_boxes.json"
chip eval-loc --model "$MODEL" --fit "$SHALLOW_FIT" --fit "$HEAD_FIT" --refined \
    --gt data/boxes.json --images data/images | tee "$OUT/eval_boxes.txt"

log "quality on the development data (ai-benchmark 0-49: dev boxes, 48 mosaics, deletion/insertion)"
ls data/images/aib/*.jpg | sort -V | head -n 50 | sed 's|^|../../|' > "$OUT/dev_images.txt"
[[ -f "$OUT/mosaics/mosaics.json" ]] || chip mosaic --model "$MODEL" --images "$OUT/dev_images.txt" --count 48 --seed 0 --out "$OUT/mosaics"
t0=$(now)
chip eval --model "$MODEL" --method "CHIP=$HEAD_FIT" --method "CHIP paper=$PAPER_FIT" \
    --method "Refined CHIP=$SHALLOW_FIT,$HEAD_FIT" --baselines \
    --gt tests/data/aib_boxes_dev.json --images data/images/aib --mosaics "$OUT/mosaics/mosaics.json" \
    --save-json "$OUT/quality_dev.json" | tee "$OUT/quality_dev.txt"
log "scored in $(( $(now) - t0 ))s"

NOTE="EfficientNet-Lite0; conv head fitted on $(wc -l < "$OUT/fit_images.txt") photos (and 2 mosaics per photo) x $GATES gates, $SHALLOW on $(wc -l < "$OUT/shallow_images.txt") photos x $SHALLOW_GATES gates; default objective (log-probability target, intercept), σ² $SIGMA2·K, seed $SEED. Refined CHIP is the product of the shallow and the conv-head map: finer than the 7×7 head."
PAGE="$("$PY" scripts/demo_page.py --explain "$OUT/explain.jsonl" --out "$OUT" --images-root data/images \
    --gt "=data/boxes.json" --gt "aib/=tests/data/aib_boxes_dev.json" \
    --quality "Quality on the development data (ai-benchmark 0-49), CHIP against CAM=$OUT/quality_dev.json" \
    --eval "=Localization on data/boxes.json=$OUT/eval_boxes.json" \
    --title "CHIP on EfficientNet-Lite0" --note "$NOTE")"
log "page: $ROOT/$PAGE"
