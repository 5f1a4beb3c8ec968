#!/usr/bin/env bash
# Tests of the Triton backend: builds libchip and libtriton_chip.so, sets up the Triton venv
# (scripts/setup_triton.sh), then runs the Rust tests of the backend crate (with the ABI check
# against the real libtritonserver.so) and the pytest suite in tests/triton against a real
# tritonserver on 127.0.0.1.
#
#   CHIP_CARGO_PROFILE   cargo profile of libchip and the backend (default release, as the other suites)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
target="${CARGO_TARGET_DIR:-$root/target}"
profile=${CHIP_CARGO_PROFILE:-release}
case "$profile" in dev) profile_dir=debug ;; *) profile_dir=$profile ;; esac

bash scripts/setup_triton.sh
cargo build --profile "$profile" -p chip -p triton_chip
cargo build --profile "$profile" -p triton_chip --example test_fits
CHIP_REQUIRE_TRITON=1 cargo test --profile "$profile" -p triton_chip
CHIP_TARGET_DIR="$target" CHIP_PROFILE="$profile_dir" third_party/triton-venv/bin/python -m pytest -q tests/triton "$@"
