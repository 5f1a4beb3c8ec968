#!/usr/bin/env bash
# The C/C++ suite: builds libchip with CMake and runs ctest (plain, under valgrind memcheck, and with
# AddressSanitizer), installs it, and builds and runs the C and C++ examples against the installed
# prefix (find_package and pkg-config) and the source tree (add_subdirectory); their outputs must agree.
#
#   CHIP_CARGO_PROFILE   cargo profile for libchip (default release)
#   CHIP_TEST_C_DIR      work folder (default build/test_c)
#   CHIP_SKIP_VALGRIND=1 / CHIP_SKIP_ASAN=1   skip those stages
#   JOBS                 parallel build jobs (default 2)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
profile=${CHIP_CARGO_PROFILE:-release}
work=${CHIP_TEST_C_DIR:-$root/build/test_c}
jobs=${JOBS:-2}
mkdir -p "$work"

step() { printf '\n---- %s ----\n' "$*"; }
fail() { echo "test_c: $*" >&2; exit 1; }

model=$root/data/models/efficientnet_lite0.onnx
layer=/_blocks.10/Add_output_0
img=$root/data/images/skimage
[ -f "$model" ] || fail "$model missing: run scripts/setup.sh first"

configure() { # <build dir> [cmake args...]
    local dir=$1
    shift
    cmake -S "$root" -B "$dir" -DCHIP_CARGO_PROFILE="$profile" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
    cmake --build "$dir" -j "$jobs"
}

step "build and ctest"
configure "$work/plain"
(cd "$work/plain" && ctest --output-on-failure)

step "install"
rm -rf "$work/prefix"
cmake --install "$work/plain" --prefix "$work/prefix" >/dev/null
for f in lib/libchip.so lib/libonnxruntime.so include/chip.h include/chip.hpp \
         lib/cmake/chip/chipConfig.cmake lib/cmake/chip/chipConfigVersion.cmake lib/pkgconfig/chip.pc; do
    [ -e "$work/prefix/$f" ] || fail "not installed: $f"
done
readelf -d "$work/prefix/lib/libchip.so" | grep -q 'R.*PATH.*\$ORIGIN' || fail "installed libchip.so lacks the \$ORIGIN run path"
nm -D --defined-only "$work/prefix/lib/libchip.so" | awk '{print $3}' | grep -v '^chip_' && fail "symbols other than chip_* exported"

step "examples: find_package, add_subdirectory, pkg-config"
cmake -S examples/c -B "$work/ex_c" -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null && cmake --build "$work/ex_c" -j "$jobs"
cmake -S examples/cpp -B "$work/ex_cpp" -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null && cmake --build "$work/ex_cpp" -j "$jobs"
cmake -S examples/cpp -B "$work/ex_cpp_sub" -DCHIP_SOURCE_DIR="$root" -DCHIP_CARGO_PROFILE="$profile" >/dev/null
cmake --build "$work/ex_cpp_sub" -j "$jobs"
pc_flags=$(PKG_CONFIG_PATH="$work/prefix/lib/pkgconfig" pkg-config --cflags --libs chip)
# shellcheck disable=SC2086
cc -std=c99 -Wall -Wextra -Werror examples/c/main.c $pc_flags -Wl,-rpath,"$work/prefix/lib" -o "$work/ex_c_pkgconfig"

run_example() { # <name> <binary>
    local name=$1 bin=$2
    # From another folder, so nothing is found relative to the working directory.
    (cd "$work" && "$bin" "$model" "$layer" "$work/$name.chip" "$img/chelsea.png" \
        "$img/chelsea.png" "$img/coffee.png" "$img/astronaut.png" "$img/rocket.jpg") > "$work/$name.out"
    cat "$work/$name.out"
}
run_example c "$work/ex_c/chip_example_c"
run_example cpp "$work/ex_cpp/chip_example_cpp"
run_example cpp_sub "$work/ex_cpp_sub/chip_example_cpp"
run_example c_pkgconfig "$work/ex_c_pkgconfig"
for other in cpp cpp_sub c_pkgconfig; do
    diff "$work/c.out" "$work/$other.out" || fail "the $other example prints other results than the C example"
done
grep -q '^box: [0-9]' "$work/c.out" || fail "the example found no box"
# The installed example loads the ONNX Runtime installed beside libchip.
ort_loaded=$(cd "$work" && LD_DEBUG=files "$work/ex_c/chip_example_c" "$model" "$layer" "$work/ort.chip" \
    "$img/coffee.png" "$img/coffee.png" 2>&1 >/dev/null | grep -o 'file=[^ ]*libonnxruntime\.so[^ ]*' | head -1 || true)
echo "ONNX Runtime opened: ${ort_loaded#file=}"
case "$ort_loaded" in
    "file=$work/prefix/lib/"*) ;;
    *) fail "the installed example did not load ONNX Runtime from $work/prefix/lib" ;;
esac

if [ "${CHIP_SKIP_VALGRIND:-0}" != 1 ]; then
    step "valgrind memcheck"
    if ! command -v valgrind >/dev/null; then
        if command -v apt-get >/dev/null; then apt-get install -y -qq valgrind >/dev/null; fi
    fi
    command -v valgrind >/dev/null || fail "valgrind is not installed"
    vg="valgrind;--leak-check=full;--errors-for-leak-kinds=definite,indirect;--error-exitcode=1"
    vg="$vg;--suppressions=$root/tests/c/valgrind.supp;--num-callers=30"
    configure "$work/valgrind" -DCHIP_TEST_SMALL=ON "-DCHIP_TEST_LAUNCHER=$vg"
    (cd "$work/valgrind" && ctest --output-on-failure)
fi

if [ "${CHIP_SKIP_ASAN:-0}" != 1 ]; then
    step "AddressSanitizer"
    asan="-fsanitize=address -fno-omit-frame-pointer"
    configure "$work/asan" -DCMAKE_C_FLAGS="$asan" -DCMAKE_CXX_FLAGS="$asan" -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=address
    (cd "$work/asan" && ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
        LSAN_OPTIONS=suppressions=$root/tests/c/lsan.supp ctest --output-on-failure)
fi

step "C/C++ suite passed"
