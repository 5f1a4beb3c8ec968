#!/usr/bin/env bash
# Prepares the example model repository and backend folder:
#   model_repository/chip_lite0/1/  EfficientNet-Lite0 (data/models, from scripts/setup.sh) with its
#                                   sidecar and class names, and two layers fitted with the chip CLI
#   backends/chip/                  libtriton_chip.so with libonnxruntime.so beside it
# Fits are kept when present (FORCE=1 refits). Settings: IMAGES (photos to fit on, default 32),
# GATES (default 64), STEM_LAYER, HEAD_LAYER.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
version_dir="$here/model_repository/chip_lite0/1"
models="$root/data/models"
images="${IMAGES:-32}"
gates="${GATES:-64}"
stem_layer="${STEM_LAYER:-/_swish/Clip_output_0}"
head_layer="${HEAD_LAYER:-/_swish_1/Clip_output_0}"

if [[ ! -f "$models/efficientnet_lite0.onnx" || ! -f "$root/data/index.json" ]]; then
    echo "prepare.sh: data/models/efficientnet_lite0.onnx not found: run scripts/setup.sh first" >&2
    exit 1
fi

(cd "$root" && cargo build --release --bin chip -p chip && cargo build --release -p triton_chip)
chip="$target/release/chip"

mkdir -p "$version_dir"
cp "$models/efficientnet_lite0.onnx" "$models/efficientnet_lite0.json" "$models/imagenet_classes.txt" "$version_dir/"

# Fit on the first photos of data/images/aib, for every class the project's photos are predicted as,
# so that each of them gets a map.
list="$(mktemp)"
trap 'rm -f "$list"' EXIT
ls "$root"/data/images/aib/*.jpg | sort -V | head -n "$images" > "$list"
classes="$(python3 -c 'import json,sys; print(",".join(str(c) for c in sorted({e["top1"] for e in json.load(open(sys.argv[1]))})))' "$root/data/index.json")"

fit() {
    local layer="$1" out="$2"
    if [[ -f "$out" && "${FORCE:-0}" != 1 ]]; then
        echo "keeping $out"
        return
    fi
    "$chip" fit --model "$version_dir/efficientnet_lite0.onnx" --layer "$layer" --images "$list" \
        --gates "$gates" --classes "$classes" --out "$out"
}
fit "$stem_layer" "$version_dir/stem.chip"
fit "$head_layer" "$version_dir/head.chip"

mkdir -p "$here/backends/chip"
cp "$target/release/libtriton_chip.so" "$here/backends/chip/"
cp -P "$root"/third_party/onnxruntime/lib/libonnxruntime.so* "$here/backends/chip/"

echo "model repository: $here/model_repository"
echo "backend folder:   $here/backends"
echo "start: tritonserver --model-repository=$here/model_repository --backend-directory=$here/backends"
