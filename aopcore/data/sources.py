"""The questions of a data spec, from whichever plugin registered its scheme, checked before any model loads.

A spec is ``scheme:arg`` (``builtin:heldout``, ``hf:Anthropic/hh-rlhf:harmless-base:test``, a third
party's ``testbed:heldout``) or a path, which goes to the ``file`` scheme. The core imports no plugin
family for this: it asks the registry. Sources hand back questions lazily, so category and size limits
are applied while reading and a large file is never held as raw rows.
"""

from __future__ import annotations

import inspect
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aopcore.data.rows import FieldMap
from aopcore.errors import InputError
from aopcore.options import split_scheme
from aopcore.records import Question

FILE_SCHEME = "file"
Problem = tuple[str, str]  # (config key, message)


@dataclass(frozen=True)
class SourceSpec:
    """A ``[data]`` entry: a spec string, or a table with ``source`` and a field mapping."""

    spec: str
    fields: FieldMap | None = None

    @classmethod
    def from_config(cls, value: Any) -> SourceSpec:
        if isinstance(value, str):
            return cls(value)
        data = value if isinstance(value, dict) else value.model_dump()
        mapping = FieldMap(data.get("text"), data.get("id"), data.get("category"), data.get("default_category"))
        spec = data.get("source") or data.get("path")
        if not isinstance(spec, str):
            raise InputError("a data table needs source = the data (a path, or scheme:ARG)")
        return cls(spec, mapping if any(vars(mapping).values()) else None)


@dataclass
class LoadedSource:
    key: str
    spec: str
    questions: list[Question] = field(default_factory=list)

    def summary(self) -> str:
        counts = Counter(q.category for q in self.questions)
        cats = ", ".join(f"{c} {n}" for c, n in sorted(counts.items()))
        noun = "category" if len(counts) == 1 else "categories"
        return f"{self.key}: {len(self.questions)} questions from {self.spec} ({len(counts)} {noun}: {cats})"


def _loader(registry: Any, spec: str) -> tuple[Callable[..., Iterable[Question]], str]:
    scheme, arg = split_scheme(spec)
    if scheme is None:
        scheme, arg = FILE_SCHEME, spec
    sources = registry.implementations.get("data", {})
    if scheme not in sources:
        if scheme == FILE_SCHEME:
            raise InputError(
                "no data source reads local files: the Hugging Face family registers 'file' (pip install 'aopcore[hf]')"
            )
        raise InputError(
            f"unknown data source {scheme!r} (installed: {', '.join(sorted(sources)) or 'none'}); a path needs no scheme"
        )
    return sources[scheme].factory, arg


def _call(
    load: Callable[..., Iterable[Question]], arg: str, base_dir: Path, fields: FieldMap | None
) -> Iterable[Question]:
    """``load(arg, base_dir)`` (the simplest form a plugin may register), plus ``fields=`` where it takes one."""
    if fields is None:
        return load(arg, base_dir)
    params = inspect.signature(load).parameters
    if "fields" not in params and not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        raise InputError("this data source takes no field mapping (text/id/category)")
    return load(arg, base_dir, fields=fields)


def read_source(
    registry: Any,
    source: SourceSpec,
    base_dir: Path,
    *,
    limit: int | None = None,
    per_category: int | None = None,
    categories: list[str] | None = None,
    seen: set[str] | None = None,
) -> list[Question]:
    """Questions of one spec: kept categories only, at most ``per_category`` each and ``limit`` in all; ids unique.

    Reading stops as soon as the limits are met; ``seen`` collects every category read.
    Raises InputError with every problem found.
    """
    load, arg = _loader(registry, source.spec)
    wanted = set(categories) if categories else None
    kept: list[Question] = []
    per: Counter[str] = Counter()
    ids: set[str] = set()
    duplicates: list[str] = []
    try:
        for q in _call(load, arg, base_dir, source.fields):
            if not isinstance(q, Question):
                raise InputError(f"data source returned {type(q).__name__}, not aopcore.Question")
            if seen is not None:
                seen.add(q.category)
            if wanted is not None and q.category not in wanted:
                continue
            if per_category is not None and per[q.category] >= per_category:
                if wanted is not None and all(per[c] >= per_category for c in wanted):
                    break
                continue
            if q.id in ids:
                duplicates.append(q.id)
                continue
            ids.add(q.id)
            kept.append(q)
            per[q.category] += 1
            if limit is not None and len(kept) >= limit:
                break
    except InputError:
        raise
    except Exception as exc:  # a third-party source must not end in a traceback
        raise InputError(f"data source failed: {type(exc).__name__}: {exc}") from None
    if duplicates:
        shown = ", ".join(repr(d) for d in duplicates[:3]) + (
            f" and {len(duplicates) - 3} more" if len(duplicates) > 3 else ""
        )
        raise InputError(
            f'{source.spec}: duplicate question ids {shown} (ids must be unique; map another column with id = "...")'
        )
    return kept


def load_data(registry: Any, data: Any, base_dir: Path) -> tuple[list[LoadedSource], list[Problem]]:
    """Read and check the held-out questions and test prompts of a validated ``[data]`` section.

    Finds: unreadable or malformed data (file:line), empty sets, duplicate ids, configured categories
    that the held-out data lack, a ``test_size`` larger than the test prompts.
    """
    problems: list[Problem] = []
    loaded: list[LoadedSource] = []
    for key, value, kwargs in (
        ("heldout", data.heldout, dict(per_category=data.heldout_per_category, categories=data.categories)),
        ("test_prompts", data.test_prompts, dict(limit=data.test_size)),
    ):
        source = SourceSpec.from_config(value)
        seen: set[str] = set()
        try:
            questions = read_source(registry, source, base_dir, seen=seen, **kwargs)
        except InputError as exc:
            problems += [(f"data.{key}", p) for p in exc.problems]
            continue
        if not questions:
            where = f" in the categories {', '.join(data.categories)}" if key == "heldout" and data.categories else ""
            problems.append((f"data.{key}", f"{source.spec}: no questions{where}"))
            continue
        if key == "heldout" and data.categories:
            missing = sorted(set(data.categories) - {q.category for q in questions})
            if missing:
                found = sorted(seen)
                more = f" and {len(found) - 12} more" if len(found) > 12 else ""
                problems.append(
                    (
                        "data.categories",
                        f"no held-out questions for {', '.join(missing)} in {source.spec} "
                        f"(its categories: {', '.join(found[:12])}{more})",
                    )
                )
        if key == "test_prompts" and data.test_size is not None and len(questions) < data.test_size:
            problems.append(
                ("data.test_size", f"{data.test_size} is more than the {len(questions)} test prompts in {source.spec}")
            )
        loaded.append(LoadedSource(f"data.{key}", source.spec, questions))
    return loaded, problems


_TOML_KEY = re.compile(r'\b(source|path|text|id|category|default_category) = "')


def in_python_terms(problem: str) -> str:
    """A problem line whose hint shows TOML (``{source = "f", text = "COLUMN"}``), in Python's dict syntax instead."""
    return _TOML_KEY.sub(r'"\1": "', problem)


def load_source(
    spec: str | dict[str, Any] | SourceSpec,
    base_dir: Path,
    *,
    limit: int | None = None,
    per_category: int | None = None,
    registry: Any = None,
) -> list[Question]:
    """Library and benchmark use: the questions of ``spec`` (a registry is loaded when none is given).

    ``spec`` is a spec string or, as a ``[data]`` table is in a config, a mapping with ``source`` and the columns:
    ``{"source": "q.jsonl", "text": "question", "category": "topic"}``."""
    if registry is None:
        from aopcore.registry import load_registry

        registry = load_registry()
    source = spec if isinstance(spec, SourceSpec) else SourceSpec.from_config(spec)
    return read_source(registry, source, base_dir, limit=limit, per_category=per_category)
