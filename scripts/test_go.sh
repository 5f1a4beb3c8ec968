#!/usr/bin/env bash
# The Go binding (bindings/go) and the Go example (examples/go): go vet and go test against the
# installed libchip, compared with the C example and the chip tool (see scripts/bindings_common.sh).
set -euo pipefail
suite=test_go
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
    export PATH=/usr/local/go/bin:$PATH
fi
# shellcheck source=scripts/bindings_common.sh
source "$(dirname "$0")/bindings_common.sh"
need go golang-go

export LD_LIBRARY_PATH="$prefix/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export CHIP_CLI="$target/$profile_dir/chip"
export CHIP_C_EXAMPLE="$own/chip_example_c"
export CHIP_REQUIRE_REFERENCE=1
export CGO_ENABLED=1
for dir in bindings/go examples/go; do
    (cd "$dir" && go vet ./... && go test -count=1 ./...)
done
