#!/usr/bin/env bash
# Every test: provisioning, the Rust suite (unit, integration, ABI, a bounded run of every fuzz
# target, the kill -9 test), the C/C++ suite under ctest
# (plain, valgrind, AddressSanitizer), the Go and Java bindings, the Triton backend on a real server,
# and the Python package with its Ray fits on a two-node local cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

# Every stage's wall time, printed as a table at the end (also when a stage fails).
stages=()
times=()
started=$SECONDS
stage_start=$SECONDS
current=""
step() {
    if [ -n "$current" ]; then
        stages+=("$current")
        times+=($((SECONDS - stage_start)))
    fi
    current="$*"
    stage_start=$SECONDS
    printf '\n==== %s ====\n' "$*"
}
report() {
    local rc=$?
    if [ -n "$current" ]; then
        stages+=("$current$([ "$rc" = 0 ] || echo ' (failed)')")
        times+=($((SECONDS - stage_start)))
    fi
    printf '\n%-32s %8s\n' "stage" "time"
    local i
    for i in "${!stages[@]}"; do
        printf '%-32s %5dm%02ds\n' "${stages[$i]}" $((times[i] / 60)) $((times[i] % 60))
    done
    printf '%-32s %5dm%02ds\n' "total" $(((SECONDS - started) / 60)) $(((SECONDS - started) % 60))
}
trap report EXIT

step "provisioning"
bash scripts/setup.sh

# The tests that need the downloaded model and photos fail here instead of skipping.
export CHIP_REQUIRE_SETUP=1

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
current=""
