#!/usr/bin/env bash
# CI: aopcore as a pip user gets it. Build the sdist and, from it, the wheel; install the wheel into a fresh
# virtualenv outside the checkout (nothing of the checkout on the path) and run the pip user's commands there:
# list the examples, write the quickstart and testbed configs, install the offline models, validate both,
# run a small testbed. Exit 0 only if all of it works.
#
# The lines run through `user` are README.md's "From pip" section, word for word (tests/e2e/test_pip_user.py
# compares them), except that CI installs the wheel it just built where the README says "aopcore[all]".
#
#   bash scripts/ci-wheel.sh   # 14 min measured on 2 cores shared by six sessions (load 13): build 94 s, pip install
#                               # 512 s, the commands 56 s, cleanup about 3 min; less on an idle machine
#
# PYTHON chooses the base interpreter (default python3); KEEP=1 keeps the work folder for a look afterwards.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python3}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/aopcore-ci-wheel.XXXXXX")
case "$WORK" in "$ROOT"/*) echo "ci-wheel: the work folder must lie outside the checkout" >&2; exit 1 ;; esac
cleanup() { if [ "${KEEP:-0}" = 1 ]; then echo "ci-wheel: kept $WORK"; else rm -rf "$WORK"; fi; }
trap cleanup EXIT
START=$(date +%s)
step() { echo "ci-wheel [$(( $(date +%s) - START ))s]: $*"; }
user() { echo "+ $*"; "$@"; }   # a command of README.md's "From pip" section

step "build the sdist, then the wheel from the sdist (python -m build)"
"$PYTHON" -m venv "$WORK/build-env"
"$WORK/build-env/bin/python" -m pip install -q build
"$WORK/build-env/bin/python" -m build --outdir "$WORK/dist" "$ROOT" >"$WORK/build.log" 2>&1 || { tail -40 "$WORK/build.log"; exit 1; }
SDIST=$(ls "$WORK"/dist/aopcore-*.tar.gz)
WHEEL=$(ls "$WORK"/dist/aopcore-*-py3-none-any.whl)
step "built $(basename "$SDIST") and $(basename "$WHEEL")"

step "fresh virtualenv outside the checkout"
"$PYTHON" -m venv "$WORK/venv"
# shellcheck disable=SC1091
source "$WORK/venv/bin/activate"
unset PYTHONPATH
mkdir -p "$WORK/project"
cd "$WORK/project"
pip() { command pip --disable-pip-version-check -q "$@"; }

user pip install torch==2.13.0
user pip install "$WHEEL[all]"
where=$(python -c 'import aopcore; print(aopcore.__file__)')
case "$where" in "$ROOT"/*) echo "ci-wheel: aopcore imports from the checkout ($where)" >&2; exit 1 ;; esac
case "$where" in "$WORK/venv/"*) ;; *) echo "ci-wheel: aopcore imports from $where, not the fresh virtualenv" >&2; exit 1 ;; esac
step "aopcore imports from $where"

# the user's machine: its own aopcore cache, no hub (every model and data set here is offline), one torch thread
export AOPCORE_CACHE="$WORK/aopcore-cache" HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1
user aopcore --version
user aopcore examples
user aopcore examples write quickstart .
user aopcore examples write testbed .
# before the offline models are installed, validate names the command that installs them
if aopcore validate quickstart.toml >"$WORK/before.txt" 2>&1; then
  echo "ci-wheel: validate passed before the offline models were installed" >&2; exit 1
fi
grep -q "aopcore models install" "$WORK/before.txt" || { cat "$WORK/before.txt"; echo "ci-wheel: validate does not name 'aopcore models install'" >&2; exit 1; }
user aopcore models install
user aopcore validate quickstart.toml
user aopcore validate testbed.toml
step "a small testbed run"
user aopcore run testbed.toml --set experiment.seed=0 --set experiment.iterations=1 --set experiment.records_per_iteration=16 --set experiment.passes=1
user aopcore env
test -f runs/testbed/tables/winrates.json || { echo "ci-wheel: the testbed run wrote no win-rate table" >&2; exit 1; }
step "OK: sdist, wheel, fresh install and the pip user's commands ($(( $(date +%s) - START )) s)"
