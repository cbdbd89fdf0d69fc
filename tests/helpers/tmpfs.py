"""A small tmpfs where mounting is allowed (root): a real full disk for the tests of what a full disk does."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def mounted_tmpfs(folder: Path, size: str, *, why_skip: str) -> Iterator[Callable[[str], None]]:
    """Mount a tmpfs of ``size`` on ``folder`` (created); yields ``remount(options)``; skips with ``why_skip`` where
    mounting is refused; unmounts afterwards."""
    folder.mkdir()
    if subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True
    ).returncode:
        pytest.skip(why_skip)

    def remount(options: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{options}", str(folder)], check=True)

    try:
        yield remount
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)
