#!/usr/bin/env bash
# Download the wheels the offline GPU machine lacks into .gpu-wheels/ (run here, where PyPI is reachable).
# That machine (docs/gpu.md) has torch, transformers, accelerate, numpy, pandas, pyarrow, pluggy, tqdm, jinja2,
# matplotlib, scikit-learn and sentence-transformers, but not pydantic, trl or datasets. Each wheel comes without
# its dependencies (--no-deps), so every missing one is named here; the total must stay under 64 MiB, the most
# that travels with the working tree.
#
#   bash scripts/gpu-wheels.sh            # then: bash scripts/gpu-check.sh on the GPU machine
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${GPU_WHEELS:-.gpu-wheels}
PYTHON=${PYTHON:-.venv/bin/python}
PYVER=${GPU_PYTHON_VERSION:-3.12}   # the GPU machine's python3 (3.12.3, checked 2026-11)
LIMIT_MIB=64
WHEELS=(
  pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.7.0 "typing-inspection>=0.4.4,<0.5"  # aopcore's core
  "typing-extensions>=4.16"                                                                      # pydantic 2.14 needs it new
  trl==1.12.0                                                   # the last TRL with PPOTrainer (trl.experimental.ppo)
  datasets==4.7.0 dill==0.4.0 multiprocess==0.70.18             # trl 1.12 needs datasets>=4.7 (pyarrow>=21 is there)
)
rm -rf "$DEST" && mkdir -p "$DEST"
"$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any \
  -d "$DEST" "${WHEELS[@]}"
total=$(du -cb "$DEST"/*.whl | tail -1 | cut -f1)
echo "$(ls "$DEST"/*.whl | wc -l) wheels, $((total / 1024)) KiB in $DEST"
if (( total >= LIMIT_MIB * 1024 * 1024 )); then
  echo "wheels total $((total / 1048576)) MiB: over the ${LIMIT_MIB} MiB that can travel" >&2
  exit 1
fi
