#!/usr/bin/env bash
# The GPU check on an offline single-GPU machine (docs/gpu.md): install the carried wheels and aopcore without
# network, run benchmarks/gpu_suite.py (under 6 minutes on an H100), and leave one JSON of figures.
#
#   bash scripts/gpu-wheels.sh                  # first, where PyPI is reachable: fills .gpu-wheels/
#   bash scripts/gpu-check.sh [SUITE OPTIONS]   # on the GPU machine; JSON: $OUT/gpu_suite.json when OUT is set,
#                                               # else benchmarks/results/gpu_suite.json (or --out FILE)
# Environment: PYTHON (default python3), GPU_WHEELS (default .gpu-wheels), GPU_SITE (where they install),
# AOPCORE_VLLM_PYTHON (a Python with vLLM, if the machine has one: the suite's `vllm` section then measures it; else it skips).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
WHEELS=${GPU_WHEELS:-.gpu-wheels}
SITE=${GPU_SITE:-/tmp/aopcore-gpu-site}
if ! ls "$WHEELS"/*.whl >/dev/null 2>&1; then
  echo "gpu-check: no wheels in $WHEELS: run scripts/gpu-wheels.sh where PyPI is reachable and bring the folder along" >&2
  exit 2
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
rm -rf "$SITE"
"$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE/wheels" "$WHEELS"/*.whl || exit 2
# aopcore itself, with its entry points (the plugin families register through them). Building it needs the machine's
# setuptools; where that fails (or AOPCORE_IN_PLACE=1), the source tree is used in place with the same entry points.
if [[ "${AOPCORE_IN_PLACE:-0}" != 1 ]] && "$PY" -m pip install -q --no-index --no-deps --no-build-isolation --no-cache-dir \
     --target "$SITE/aopcore" .; then
  AOP_PATH="$SITE/aopcore"
else
  echo "gpu-check: using the source tree in place" >&2
  AOP_PATH="$SITE/aopcore:$PWD:$PWD/plugins"
  "$PY" - "$SITE/aopcore" <<'PYEOF' || exit 2
import sys, tomllib
from pathlib import Path
project = tomllib.loads(Path("pyproject.toml").read_text())["project"]
info = Path(sys.argv[1]) / f"aopcore-{project['version']}.dist-info"
info.mkdir(parents=True, exist_ok=True)
(info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: aopcore\nVersion: {project['version']}\n")
groups = {"console_scripts": project.get("scripts", {}), **project.get("entry-points", {})}
(info / "entry_points.txt").write_text("".join(f"[{g}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) + "\n"
                                               for g, eps in groups.items()))
PYEOF
fi
export PYTHONPATH="$AOP_PATH:$SITE/wheels${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false \
       HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRL_EXPERIMENTAL_SILENCE=1
# the suite keeps to its own deadline and writes its JSON after every section; this is the backstop
timeout -k 10 340 "$PY" benchmarks/gpu_suite.py "$@"
