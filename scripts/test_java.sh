#!/usr/bin/env bash
# The Java binding (examples/java): libchip installed with CMake into the prefix scripts/test_c.sh
# makes (reused when newer than the sources, else built here), the C example built against it and
# the chip command line tool (the two references the tests compare with), then mvn test (JNA and
# JUnit 5 from Maven Central).
#
#   CHIP_CARGO_PROFILE   cargo profile of libchip and the chip tool (default release)
#   CHIP_TEST_C_DIR      scripts/test_c.sh's work folder (default build/test_c); the prefix is its prefix/
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
profile=${CHIP_CARGO_PROFILE:-release}
prefix=${CHIP_TEST_C_DIR:-$root/build/test_c}/prefix
own=$root/build/bind
target=${CARGO_TARGET_DIR:-$root/target}
case "$profile" in dev) profile_dir=debug ;; *) profile_dir=$profile ;; esac

need() { # need COMMAND DEBIAN-PACKAGE
    command -v "$1" >/dev/null 2>&1 && return
    echo "test_java: installing $2 for $1"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq "$2" >/dev/null
}
need cmake cmake
need pkg-config pkg-config
need cc gcc
need javac default-jdk-headless
need mvn maven
if ! javac -version 2>&1 | awk '{split($2, v, "."); exit !(v[1] >= 17)}'; then
    echo "test_java: JDK 17 or newer is needed, found: $(javac -version 2>&1)" >&2
    exit 1
fi

if [ ! -f data/models/efficientnet_lite0.onnx ] || [ ! -e third_party/onnxruntime/lib/libonnxruntime.so ]; then
    bash scripts/setup.sh
fi

# libchip: reuse an install newer than every source, else configure, build and install.
stale=1
if [ -f "$prefix/lib/libchip.so" ] && [ -f "$prefix/include/chip.h" ]; then
    if [ -z "$(find src include Cargo.toml Cargo.lock build.rs CMakeLists.txt cmake -newer "$prefix/lib/libchip.so" -print -quit)" ]; then
        stale=0
    fi
fi
if [ "$stale" = 1 ]; then
    echo "test_java: building and installing libchip ($profile) into $prefix"
    cmake -S . -B "$own/cmake" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCHIP_CARGO_PROFILE="$profile" \
        -DCHIP_CARGO_TARGET_DIR="$target" -DCHIP_BUILD_TESTS=OFF -DCMAKE_INSTALL_PREFIX="$prefix" >/dev/null
    cmake --build "$own/cmake"
    rm -rf "$prefix"
    cmake --install "$own/cmake" >/dev/null
    touch "$prefix/lib/libchip.so"
else
    echo "test_java: reusing libchip in $prefix"
fi

# chip.pc names the prefix it was configured with, not the one `cmake --install --prefix` put it in:
# let pkg-config take the prefix from where chip.pc lies.
export PKG_CONFIG="pkg-config --define-prefix"
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"

# The references: the C example and the chip tool of the same profile.
mkdir -p "$own"
# shellcheck disable=SC2046,SC2086
cc -std=c99 -Wall -Wextra -Werror examples/c/main.c $($PKG_CONFIG --cflags --libs chip) \
    -Wl,-rpath,"$prefix/lib" -o "$own/chip_example_c"
cargo build --profile "$profile" --bin chip --target-dir "$target"
# The tool finds ONNX Runtime beside itself or in the checkout it was built from; point it (and
# libchip) at the one installed beside libchip.
export CHIP_ORT_LIB="$prefix/lib/libonnxruntime.so"

cd examples/java
rm -rf target/surefire-reports
mvn -q -B -Dstyle.color=never test -Dchip.lib.dir="$prefix/lib" -Dchip.cli="$target/$profile_dir/chip" \
    -Dchip.c.example="$own/chip_example_c" -Dchip.require.reference=true
# Maven is quiet on success (but for stray colour resets): say what ran, on a line of its own.
echo
awk -F'[:,]' '/^Tests run:/ { run += $2; fail += $4 + $6; skip += $8 } END { printf "java: %d passed, %d failed, %d skipped\n", run - fail - skip, fail, skip }' \
    target/surefire-reports/*.txt
