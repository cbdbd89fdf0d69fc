"""Option types the framework understands, and the context a plugin's preflight check receives.

A plugin declares a path-valued option as :data:`InputPath` (or a data set as :data:`DataSpec`);
the core validates every options model with a context that carries the config file's folder, so a
relative value is resolved against the config file and a missing file is reported at validate time,
for every plugin, with no per-plugin code. ``preflight(self, ctx)`` on an options model receives a
:class:`PreflightContext` (budget, categories, arms, seeds) so cross-checks run before anything loads.
"""

from __future__ import annotations

import inspect
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel
from pydantic_core import PydanticCustomError, core_schema

SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]+):(.*)$", re.S)  # two letters at least: "C:\data" stays a path


def split_scheme(spec: str) -> tuple[str | None, str]:
    """``("builtin", "heldout")`` for ``builtin:heldout``; ``(None, spec)`` for a path."""
    m = SCHEME.match(spec)
    return (m.group(1), m.group(2)) if m else (None, spec)


def validation_context(
    base_dir: Path, data_schemes: set[str] | None = None, *, check_paths: bool = True
) -> dict[str, Any]:
    """What the core passes to ``Model.model_validate(..., context=...)`` so path options resolve and are checked."""
    return {
        "aopcore_base_dir": Path(base_dir).resolve(),
        "aopcore_data_schemes": data_schemes,
        "aopcore_check_paths": check_paths,
    }


def resolve_path(value: str, base_dir: Path | None) -> Path:
    path = Path(os.path.expanduser(value))
    return path if path.is_absolute() or base_dir is None else base_dir / path


def _after_validator(marker: Any, source: Any, handler: Any) -> core_schema.CoreSchema:
    """Run ``marker._check(value, ctx)`` after the str validation, but only under the core's validation context
    (library use leaves values as given) and not for the marker's ``keep`` values."""

    def validate(value: str, info: core_schema.ValidationInfo) -> str:
        ctx = info.context or {}
        if "aopcore_base_dir" not in ctx or value in marker.keep:
            return value
        return marker._check(value, ctx)

    return core_schema.with_info_after_validator_function(validate, handler(source))


@dataclass(frozen=True)
class PathOption:
    """Marks a ``str`` option as an input path: ``Annotated[str, PathOption("file")]``.

    With the core's validation context the value comes back absolute (relative values are relative
    to the config file) and must exist; without one (library use) it is left as given. ``keep`` lists
    values with a meaning of their own (e.g. ``"builtin"``) that are not paths.
    """

    kind: Literal["file", "folder", "any", "output"] = "any"
    keep: tuple[str, ...] = ()

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> core_schema.CoreSchema:
        return _after_validator(self, source, handler)

    def _check(self, value: str, ctx: dict[str, Any]) -> str:
        check = ctx.get("aopcore_check_paths", True) and self.kind != "output"
        return check_path(value, ctx["aopcore_base_dir"], self.kind, check)


def check_path(value: str, base_dir: Path, kind: str = "any", check: bool = True) -> str:
    path = resolve_path(value, base_dir)
    if check:
        ok = path.is_file() if kind == "file" else path.is_dir() if kind == "folder" else path.exists()
        if not ok:
            what = {"file": "file", "folder": "folder"}.get(kind, "path")
            hint = (
                " (relative paths are relative to the config file)"
                if not Path(os.path.expanduser(value)).is_absolute()
                else ""
            )
            raise PydanticCustomError(
                "aopcore_input", "{what} not found: {path}{hint}", {"what": what, "path": str(path), "hint": hint}
            )
    return str(path.resolve()) if path.exists() else str(path)


@dataclass(frozen=True)
class DataSpecOption:
    """Marks a ``str`` option as a data set: ``scheme:arg`` (``builtin:NAME``, ``hf:ID``, a registered scheme) or a path.

    ``keep`` lists values with a meaning of their own (e.g. ``"builtin"``) that are neither.
    """

    keep: tuple[str, ...] = ()

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> core_schema.CoreSchema:
        return _after_validator(self, source, handler)

    def _check(self, value: str, ctx: dict[str, Any]) -> str:
        scheme, _ = split_scheme(value)
        if scheme is None:
            return check_path(value, ctx["aopcore_base_dir"], "any", ctx.get("aopcore_check_paths", True))
        schemes = ctx.get("aopcore_data_schemes")
        if schemes is not None and scheme not in schemes:
            raise PydanticCustomError(
                "aopcore_input",
                "unknown data source '{scheme}' (installed: {known}); a path needs no scheme",
                {"scheme": scheme, "known": ", ".join(sorted(schemes)) or "none"},
            )
        return value


InputPath = Annotated[str, PathOption("any")]
"""A file or folder the option reads; relative to the config file; checked at validate time."""
InputFile = Annotated[str, PathOption("file")]
InputFolder = Annotated[str, PathOption("folder")]
OutputPath = Annotated[str, PathOption("output")]
"""A file or folder the option writes (a cache, a log); relative to the config file; need not exist yet."""
DataSpec = Annotated[str, DataSpecOption()]
"""``scheme:arg`` (``builtin:NAME``, ``hf:ID[:config][::split]``, a plugin's scheme) or a path (as :data:`InputPath`)."""


@dataclass
class PreflightContext:
    """What an options model's ``preflight(self, ctx)`` may check itself against, before anything loads."""

    config_file: Path
    base_dir: Path
    section: str  # e.g. "trainer" or "arms.aop"
    iterations: int = 1
    records_per_iteration: int = 1
    passes: int = 1
    seeds: list[int] = field(default_factory=lambda: [0])
    categories: list[str] = field(default_factory=list)  # of the held-out questions, after the data were read
    arms: dict[str, str] = field(default_factory=dict)  # arm -> curriculum name

    @property
    def total_records(self) -> int:
        """Prompts one arm trains on over the whole run."""
        return self.iterations * self.records_per_iteration


def run_preflight(options: BaseModel, ctx: PreflightContext) -> list[str]:
    """Call ``options.preflight``: new style ``preflight(ctx)``, or the older ``preflight(base_dir)``."""
    check = getattr(options, "preflight", None)
    if not callable(check):
        return []
    params = list(inspect.signature(check).parameters.values())
    wants_dir = bool(params) and (params[0].name == "base_dir" or params[0].annotation in (Path, "Path"))
    return list(check(ctx.base_dir if wants_dir else ctx) or [])


def option_kind(field_info: Any) -> str | None:
    """``"path"``/``"file"``/``"folder"``/``"data"`` for the framework's option types, for the reference docs."""
    import typing

    candidates = [field_info.metadata]
    for arg in typing.get_args(field_info.annotation):
        candidates.append(getattr(arg, "__metadata__", ()))
    for meta in candidates:
        for m in meta:
            if isinstance(m, PathOption):
                return {"any": "path", "file": "file", "folder": "folder", "output": "output path"}[m.kind]
            if isinstance(m, DataSpecOption):
                return "data"
    return None
