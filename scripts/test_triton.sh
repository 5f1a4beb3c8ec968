#!/usr/bin/env bash
# Tests of the Triton backend: builds libchip and libtriton_chip.so, sets up the Triton venv
# (scripts/setup_triton.sh), then runs the Rust tests of the backend crate (with the ABI check
# against the real libtritonserver.so) and the pytest suite in tests/triton against a real
# tritonserver on 127.0.0.1.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
target="${CARGO_TARGET_DIR:-$root/target}"

bash scripts/setup_triton.sh
cargo build -p chip -p triton_chip
cargo build -p triton_chip --example test_fits
CHIP_REQUIRE_TRITON=1 cargo test -p triton_chip
CHIP_TARGET_DIR="$target" third_party/triton-venv/bin/python -m pytest -q tests/triton "$@"
