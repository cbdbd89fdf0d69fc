"""Fixtures only; shared helper functions live in ``tests/helpers`` (import ``helpers``)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

_TESTS = Path(__file__).resolve().parent
for _path in (_TESTS / "toy", _TESTS):  # ends as [tests, tests/toy, ...]: helpers, then the toy plugin modules
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from helpers import TOY  # noqa: E402


@pytest.fixture
def toy_config(tmp_path: Path):
    """Write a toy config into tmp_path; keyword overrides replace whole lines by key."""

    def make(text: str | None = None, **replace: str) -> Path:
        body = (TOY / "toy.toml").read_text() if text is None else text
        body = body.replace('plugin_paths = ["."]', f'plugin_paths = ["{TOY}"]')
        for key, value in replace.items():
            lines = body.splitlines()
            lines = [f"{key} = {value}" if ln.split("=")[0].strip() == key else ln for ln in lines]
            body = "\n".join(lines) + "\n"
        path = tmp_path / "config.toml"
        path.write_text(body)
        return path

    return make
