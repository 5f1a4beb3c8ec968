#!/usr/bin/env bash
# Sets up third_party/triton-venv: a Python environment with a real tritonserver binary (shipped in
# the nvidia-pytriton wheel), tritonclient, numpy, pytest and pillow. Idempotent: a finished setup
# is detected by a stamp file and left as it is.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/third_party/triton-venv"
stamp="$venv/.chip-triton-ready"
want="nvidia-pytriton==0.7.0 tritonclient[http,grpc] numpy pytest pillow"

if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    echo "triton venv ready: $venv"
    exit 0
fi

python="${PYTHON:-python3}"
mkdir -p "$root/third_party"
if [[ ! -x "$venv/bin/python" ]]; then
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
# shellcheck disable=SC2086
"$venv/bin/python" -m pip install --quiet $want

server="$("$venv/bin/python" - <<'PY'
import pathlib, pytriton
print(pathlib.Path(pytriton.__file__).parent / "tritonserver" / "bin" / "tritonserver")
PY
)"
if [[ ! -x "$server" ]]; then
    echo "setup_triton: tritonserver binary not found at $server" >&2
    exit 1
fi
echo "$want" > "$stamp"
echo "triton venv ready: $venv (tritonserver: $server)"
