"""The core's data-source plugin: ``builtin:NAME``, the question sets shipped in ``aopcore/data/``.

It registers through the same ``register_data_sources`` hook a third party uses (entry point
``core = "aopcore.data.builtin"``; :mod:`aopcore.registry` loads it even where that entry point is missing).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from aopcore.data.rows import FieldMap, questions_from_jsonl
from aopcore.errors import InputError
from aopcore.hookspecs import hookimpl
from aopcore.records import Question

BUILTIN_DIR = Path(__file__).parent


def builtin_names() -> list[str]:
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.jsonl"))


def load_builtin(arg: str, base_dir: Path, *, fields: FieldMap | None = None) -> Iterable[Question]:
    """Questions shipped with aopcore: `builtin:heldout` (5 per SHP category), `builtin:test-prompts`."""
    if arg not in builtin_names():
        raise InputError(f"no built-in data set {arg!r} (built-ins: {', '.join(builtin_names())})")
    return questions_from_jsonl(BUILTIN_DIR / f"{arg}.jsonl", fields)


@hookimpl
def register_data_sources(register):
    register("builtin", load_builtin)
