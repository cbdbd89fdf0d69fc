#!/usr/bin/env bash
# veRL in its own virtualenv, ./.venv-verl (idempotent), for the veRL adapters (plugins/aopcore_integrations/verl.py,
# verl_v1.py) and their tests (tests/integrations/test_verl_adapter.py, tests/integrations/test_verl_v1.py).
#
# Why a separate environment: verl 0.9.1 requires transformers >=5.5.3,<5.11 (the main environment has
# 5.24), tensordict <=0.10 and ray. The extra packages below sit in verl's `verl-core` extra and the plain
# install lacks them, though `verl.trainer.ppo.ray_trainer` imports them; TransferQueue (in that extra too) is imported
# by the V1 trainer (`verl.trainer.ppo.v1`, the default), which aopcore_integrations.verl_v1 plugs into.
# aopcore goes in without its dependencies (they would move transformers): the adapter needs only the
# core (pluggy, pydantic, tqdm, numpy) and the family's package.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
VERL_SPEC=${VERL_SPEC:-verl==0.9.1}
start=$(date +%s)
if [ ! -x .venv-verl/bin/python ]; then
  "$PYTHON" -m venv .venv-verl
fi
PIP=(.venv-verl/bin/python -m pip --disable-pip-version-check -q)
"${PIP[@]}" install --upgrade pip setuptools wheel
# shellcheck disable=SC2086
"${PIP[@]}" install $TORCH_SPEC $VERL_SPEC cachetools uvicorn fastapi pyzmq msgspec "TransferQueue>=0.1.10"
"${PIP[@]}" install --no-deps -e .
"${PIP[@]}" install pluggy pydantic tqdm
.venv-verl/bin/python -c "import verl, transformers, torch, aopcore; from verl import DataProto; from verl.utils.dataset.rl_dataset import RLHFDataset; from verl.trainer.ppo.v1.replay_buffer import ReplayBuffer; print('verl', verl.__version__, '| transformers', transformers.__version__, '| torch', torch.__version__)"
echo "veRL is set up in .venv-verl ($(( $(date +%s) - start )) s)"
