#!/usr/bin/env bash
# The Python package's tests (python/tests): the package against ONNX Runtime's Python API, the C ABI
# and the CLI, and chip.ray on a real two-node local Ray cluster. Rebuilds the wheel when its
# sources changed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bash scripts/setup_python.sh
# The C ABI (libchip.so) and the CLI are the tests' references. Built as a workspace, as
# scripts/test.sh builds it, so the features match and nothing is compiled again.
cargo build --release --workspace --lib --bins
export CHIP_ORT_LIB="${CHIP_ORT_LIB:-$root/third_party/onnxruntime/lib/libonnxruntime.so}"
# Not from python/: the installed package must be the one imported, not the source folder.
# Arguments, when given, replace the default test paths (e.g. python/tests/test_ray.py -x).
if (($# == 0)); then set -- python/tests; fi
"$root/third_party/venv/bin/python" -m pytest -q -p no:cacheprovider "$@"
