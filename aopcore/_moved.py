"""Old module paths of the core keep working for a release after the core was split into sub-packages (issue 29).

``import aopcore.experiment``, ``from aopcore import experiment``, the attribute ``aopcore.experiment`` and
``mock.patch("aopcore.experiment.x")`` all give the module that now lives at ``aopcore.engine.experiment``: the same
object, so patching it patches the real one. The first import of an old path warns (DeprecationWarning) with its
new one. Importing this module installs the finder (``aopcore/__init__.py`` does, first thing).

The table is written by ``scripts/dev/move_core.py``, which moves the files and rewrites every import in the tree;
:func:`modernise` reads old names in what a run directory stored (a fingerprint's class names) as the new ones.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import re
import sys
import warnings
from types import FrameType, ModuleType
from typing import Any

# BEGIN MOVED (written by scripts/dev/move_core.py: old module -> new module)
MOVED: dict[str, str] = {
    "aopcore.aggregate": "aopcore.analysis.aggregate",
    "aopcore.aggregate_compute": "aopcore.analysis.aggregate_compute",
    "aopcore.aggregate_report": "aopcore.analysis.aggregate_report",
    "aopcore.apidoc": "aopcore.devtools.apidoc",
    "aopcore.build": "aopcore.engine.build",
    "aopcore.builtin_data": "aopcore.data.builtin",
    "aopcore.collaborators": "aopcore.engine.collaborators",
    "aopcore.config": "aopcore.engine.config",
    "aopcore.contexts": "aopcore.engine.contexts",
    "aopcore.datasources": "aopcore.data.sources",
    "aopcore.docgen": "aopcore.devtools.docgen",
    "aopcore.envreport": "aopcore.devtools.envreport",
    "aopcore.examples": "aopcore.devtools.examples",
    "aopcore.experiment": "aopcore.engine.experiment",
    "aopcore.experiment_base": "aopcore.engine.experiment_base",
    "aopcore.fingerprint": "aopcore.storage.fingerprint",
    "aopcore.integrity": "aopcore.storage.integrity",
    "aopcore.judging": "aopcore.engine.judging",
    "aopcore.llmcache": "aopcore.storage.llmcache",
    "aopcore.multiseed": "aopcore.engine.multiseed",
    "aopcore.prompt_audit": "aopcore.engine.prompt_audit",
    "aopcore.ranks": "aopcore.engine.ranks",
    "aopcore.report": "aopcore.analysis.report",
    "aopcore.rows": "aopcore.data.rows",
    "aopcore.run_prepare": "aopcore.engine.run_prepare",
    "aopcore.rundir": "aopcore.storage.rundir",
    "aopcore.runlock": "aopcore.storage.runlock",
    "aopcore.scaffold": "aopcore.devtools.scaffold",
    "aopcore.session": "aopcore.engine.session",
    "aopcore.session_build": "aopcore.engine.session_build",
    "aopcore.session_eval": "aopcore.engine.session_eval",
    "aopcore.session_state": "aopcore.engine.session_state",
    "aopcore.settings": "aopcore.engine.settings",
    "aopcore.stage_work": "aopcore.engine.stage_work",
    "aopcore.stagegraph": "aopcore.engine.stagegraph",
    "aopcore.stagerun": "aopcore.engine.stagerun",
    "aopcore.stats": "aopcore.analysis.stats",
    "aopcore.store": "aopcore.storage.store",
    "aopcore.tables": "aopcore.analysis.tables",
    "aopcore.training": "aopcore.engine.training",
    "aopcore.twins": "aopcore.engine.twins",
    "aopcore.validation": "aopcore.engine.validation",
    "aopcore.verdicts": "aopcore.analysis.verdicts",
}
# END MOVED

_DOTTED = re.compile(r"(?<![\w.])aopcore\.([A-Za-z_]\w*)(?!\w)")


def _importer_stacklevel() -> int:
    """The stack level of the code that imported an old path, past the import machinery and this module."""
    frame: FrameType | None = sys._getframe(1)
    level = 1
    while frame is not None:
        name = frame.f_code.co_filename
        if not (name == __file__ or name.startswith("<frozen importlib") or name.endswith("importlib/__init__.py")):
            return level
        frame, level = frame.f_back, level + 1
    return 2


def _warn(old: str, new: str) -> None:
    warnings.warn(
        f"{old} moved to {new}; the old path works until the next release (import {new})",
        DeprecationWarning,
        stacklevel=_importer_stacklevel(),
    )


class _AliasLoader(importlib.abc.Loader):
    """Loads an old path as the module at its new one: no second copy, no code run twice."""

    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: Any) -> ModuleType:
        return importlib.import_module(self.target)

    def exec_module(self, module: ModuleType) -> None:
        """The new module ran already (create_module imported it)."""


class _AliasFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        new = MOVED.get(fullname)
        if new is None:
            return None
        _warn(fullname, new)
        return importlib.util.spec_from_loader(fullname, _AliasLoader(new))


def install() -> None:
    """Put the finder on ``sys.meta_path`` once (idempotent)."""
    if not any(isinstance(f, _AliasFinder) for f in sys.meta_path):
        sys.meta_path.append(_AliasFinder())


def package_getattr(name: str) -> ModuleType:
    """``aopcore.<old module>`` as an attribute (PEP 562 ``__getattr__`` of the package)."""
    if f"aopcore.{name}" in MOVED:
        return importlib.import_module(f"aopcore.{name}")
    raise AttributeError(f"module 'aopcore' has no attribute {name!r}")


def modern_name(text: str) -> str:
    """``aopcore.<old>.X`` written anywhere in ``text`` as ``aopcore.<new>.X`` (names stored before the move)."""
    return _DOTTED.sub(lambda m: MOVED.get(f"aopcore.{m.group(1)}", m.group(0)), text)


def modernise(data: Any) -> Any:
    """Every string of a JSON-like value through :func:`modern_name` (a stored fingerprint, before it is compared)."""
    if isinstance(data, str):
        return modern_name(data)
    if isinstance(data, dict):
        return {modern_name(k): modernise(v) for k, v in data.items()}
    if isinstance(data, list):
        return [modernise(v) for v in data]
    return data


install()
