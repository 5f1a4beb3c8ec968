#!/usr/bin/env bash
# The Python package: pinned maturin, pytest and ray into third_party/venv (made by setup.sh), then
# the `chip` wheel built from python/ (abi3, Python >= 3.9) and installed there. Idempotent: the
# pins and the wheel are stamped (on the pins, and on a hash of the sources that go into the
# wheel), so a second run only checks the stamps.
#
#   FORCE=1   rebuild and reinstall regardless of the stamps
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/third_party/venv"
VPY="$VENV/bin/python"
FORCE="${FORCE:-0}"
# ray's own dependencies are resolved by pip (numpy and the rest of the scientific stack come from
# Debian through the venv's system site packages).
PINS=(maturin==1.16.0 pytest==9.2.0 ray==2.60.0)

log() { printf '[setup_python] %s\n' "$*" >&2; }
die() { printf '[setup_python] ERROR: %s\n' "$*" >&2; exit 1; }
stamp_ok() { [[ "$FORCE" != 1 && -f "$1" && "$(cat "$1")" == "$2" ]]; }
stamp_write() { printf '%s' "$2" > "$1.tmp" && mv -f "$1.tmp" "$1"; }

[[ -x "$VPY" ]] || die "$VPY not found: run scripts/setup.sh first"

PINS_KEY="pins ${PINS[*]}"
if stamp_ok "$VENV/.stamp-python-pins" "$PINS_KEY"; then
    log "maturin, pytest, ray: up to date"
else
    log "installing ${PINS[*]}"
    "$VPY" -m pip install --disable-pip-version-check --quiet "${PINS[@]}" >&2 || die "pip install ${PINS[*]} failed"
    stamp_write "$VENV/.stamp-python-pins" "$PINS_KEY"
fi

cd "$ROOT"
SRC_KEY="wheel $(find python/src python/chip python/Cargo.toml python/pyproject.toml src build.rs Cargo.toml Cargo.lock \
    -type f ! -path '*__pycache__*' -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)"
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)"
if stamp_ok "$VENV/.stamp-python-wheel" "$SRC_KEY" && "$VPY" -c "import chip, sys; sys.exit(chip.__version__ != '$VERSION')" 2>/dev/null; then
    log "chip $VERSION wheel: up to date"
else
    log "building the chip wheel (maturin, release)"
    rm -rf target/wheels
    "$VPY" -m maturin build --release --quiet --manifest-path python/Cargo.toml --interpreter "$VPY" \
        --out target/wheels >&2 || die "maturin build failed"
    wheel="$(ls target/wheels/chip-"$VERSION"-*.whl 2>/dev/null | head -n1)"
    [[ -n "$wheel" ]] || die "maturin produced no chip-$VERSION wheel in target/wheels"
    "$VPY" -m pip install --disable-pip-version-check --quiet --force-reinstall --no-deps "$wheel" >&2 \
        || die "pip install $wheel failed"
    got="$(cd /tmp && "$VPY" -c 'import chip; print(chip.__version__)')" || die "import chip failed after install"
    [[ "$got" == "$VERSION" ]] || die "chip.__version__ is $got, the crate's version is $VERSION"
    stamp_write "$VENV/.stamp-python-wheel" "$SRC_KEY"
    log "installed $(basename "$wheel")"
fi
