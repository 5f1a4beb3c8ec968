#!/usr/bin/env bash
# The Java binding (bindings/java, mvn install) and the Java example (examples/java, mvn test), with
# JNA and JUnit 5 from Maven Central, against the installed libchip, compared with the C example and
# the chip tool (see scripts/bindings_common.sh).
set -euo pipefail
suite=test_java
# shellcheck source=scripts/bindings_common.sh
source "$(dirname "$0")/bindings_common.sh"
need javac default-jdk-headless
need mvn maven
if ! javac -version 2>&1 | awk '{split($2, v, "."); exit !(v[1] >= 17)}'; then
    echo "test_java: JDK 17 or newer is needed, found: $(javac -version 2>&1)" >&2
    exit 1
fi

# install puts the binding (and its test helpers) into the local Maven repository for the example.
for dir_goal in bindings/java:install examples/java:test; do
    rm -rf "${dir_goal%%:*}/target/surefire-reports"
    (cd "${dir_goal%%:*}" && mvn -q -B -Dstyle.color=never "${dir_goal##*:}" -Dchip.lib.dir="$prefix/lib" \
        -Dchip.cli="$target/$profile_dir/chip" -Dchip.c.example="$own/chip_example_c" -Dchip.require.reference=true)
done
# Maven is quiet on success (but for stray colour resets): say what ran, on a line of its own.
echo
awk -F'[:,]' '/^Tests run:/ { run += $2; fail += $4 + $6; skip += $8 } END { printf "java: %d passed, %d failed, %d skipped\n", run - fail - skip, fail, skip }' \
    bindings/java/target/surefire-reports/*.txt examples/java/target/surefire-reports/*.txt
