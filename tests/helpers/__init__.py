"""Shared test helpers, importable as ``helpers`` from every test folder and from the scripts tests start.

Paths that tests build configs from, and the one way tests run the real CLI. ``tests/conftest.py`` puts
``tests/`` (for this package) and ``tests/toy/`` (plugin modules named in configs) on ``sys.path``;
a subprocess gets the same through ``SYS_PATHS`` (as ``PYTHONPATH`` or ``sys.path[:0]``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
ROOT = TESTS.parent
TOY = TESTS / "toy"  # toy_components / fault_components (bare plugin module names in configs) and toy.toml
SYS_PATHS = [str(TESTS), str(TOY)]  # what a subprocess needs to import helpers and the toy plugins

AOPCORE = [sys.executable, "-m", "aopcore.cli"]


def run_cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """Run ``aopcore`` in a subprocess with this interpreter; ``env`` adds to (not replaces) the environment."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([*AOPCORE, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)
