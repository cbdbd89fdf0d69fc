"""Packaging hook: the repository's ``examples/*.toml`` and ``examples/*.py`` ship inside the wheel.

``examples/`` stays the one source of truth (the README runs ``aopcore run examples/quickstart.toml`` from a
checkout); ``build_py`` copies every matching file into ``aopcore/_examples/`` of the build, so a new example
is packaged without editing anything here. ``aopcore examples`` lists and writes them (aopcore/devtools/examples.py);
an editable install reads the checkout's ``examples/`` directly. Everything else lives in pyproject.toml.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

EXAMPLE_PATTERNS = ("*.toml", "*.py")


def example_files(root: Path) -> list[Path]:
    """The files under ``root/examples`` that ship with the package (top level only; folders are separate packages)."""
    return sorted(
        p
        for pattern in EXAMPLE_PATTERNS
        for p in (root / "examples").glob(pattern)
        if p.is_file() and not p.name.startswith(".")
    )  # hidden files are someone's scratch


class BuildPyWithExamples(build_py):
    def run(self) -> None:
        super().run()
        if (
            self.editable_mode
        ):  # an editable install reads the checkout's examples/ (aopcore.devtools.examples.examples_dir)
            return
        target = Path(self.build_lib) / "aopcore" / "_examples"
        target.mkdir(parents=True, exist_ok=True)
        for src in example_files(Path(__file__).resolve().parent):
            shutil.copyfile(src, target / src.name)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        extra = [
            str(Path(self.build_lib) / "aopcore" / "_examples" / p.name)
            for p in example_files(Path(__file__).resolve().parent)
        ]
        return super().get_outputs(include_bytecode) + ([] if self.editable_mode else extra)


setup(cmdclass={"build_py": BuildPyWithExamples})
