# Sourced by scripts/test_go.sh and scripts/test_java.sh (which set `suite` and the tools they need
# beyond cmake, pkg-config and cc): libchip installed with CMake into the prefix scripts/test_c.sh
# makes (reused when newer than the sources, else built here), the C example built against it and the
# chip command line tool, the two references the binding tests compare with.
#
#   CHIP_CARGO_PROFILE   cargo profile of libchip and the chip tool (default release)
#   CHIP_TEST_C_DIR      scripts/test_c.sh's work folder (default build/test_c); the prefix is its prefix/
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
profile=${CHIP_CARGO_PROFILE:-release}
prefix=${CHIP_TEST_C_DIR:-$root/build/test_c}/prefix
own=$root/build/bind
target=${CARGO_TARGET_DIR:-$root/target}
case "$profile" in dev) profile_dir=debug ;; *) profile_dir=$profile ;; esac

need() { # need COMMAND DEBIAN-PACKAGE
    command -v "$1" >/dev/null 2>&1 && return
    echo "$suite: installing $2 for $1"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq "$2" >/dev/null
}
need cmake cmake
need pkg-config pkg-config
need cc gcc

if [ ! -f data/models/efficientnet_lite0.onnx ] || [ ! -e third_party/onnxruntime/lib/libonnxruntime.so ]; then
    bash scripts/setup.sh
fi

# libchip: reuse an install newer than every source, else configure, build and install.
stale=1
if [ -f "$prefix/lib/libchip.so" ] && [ -f "$prefix/lib/pkgconfig/chip.pc" ] && [ -f "$prefix/include/chip.h" ]; then
    if [ -z "$(find src include Cargo.toml Cargo.lock build.rs CMakeLists.txt cmake -newer "$prefix/lib/libchip.so" -print -quit)" ]; then
        stale=0
    fi
fi
if [ "$stale" = 1 ]; then
    echo "$suite: building and installing libchip ($profile) into $prefix"
    cmake -S . -B "$own/cmake" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCHIP_CARGO_PROFILE="$profile" \
        -DCHIP_CARGO_TARGET_DIR="$target" -DCHIP_BUILD_TESTS=OFF -DCMAKE_INSTALL_PREFIX="$prefix" >/dev/null
    cmake --build "$own/cmake"
    rm -rf "$prefix"
    cmake --install "$own/cmake" >/dev/null
    touch "$prefix/lib/libchip.so"
else
    echo "$suite: reusing libchip in $prefix"
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
