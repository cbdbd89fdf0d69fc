from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
ROOT = TESTS.parent
sys.path.insert(0, str(TESTS))  # toy_components, as a plugin module named in configs

AOPCORE = [sys.executable, "-m", "aopcore.cli"]


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([*AOPCORE, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def toy_config(tmp_path: Path):
    """Write a toy config into tmp_path; keyword overrides replace whole lines by key."""

    def make(text: str | None = None, **replace: str) -> Path:
        body = (TESTS / "toy.toml").read_text() if text is None else text
        body = body.replace('plugin_paths = ["."]', f'plugin_paths = ["{TESTS}"]')
        for key, value in replace.items():
            lines = body.splitlines()
            lines = [f"{key} = {value}" if ln.split("=")[0].strip() == key else ln for ln in lines]
            body = "\n".join(lines) + "\n"
        path = tmp_path / "config.toml"
        path.write_text(body)
        return path

    return make
