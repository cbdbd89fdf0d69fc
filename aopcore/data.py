"""Question sources: JSONL files, data shipped with aopcore (``builtin:NAME``) and hub datasets (``hf:ID``)."""
from __future__ import annotations

import importlib
from pathlib import Path

from aopcore.errors import InputError
from aopcore.records import Question, load_questions

BUILTIN_DIR = Path(__file__).parent / "data"


def builtin_names() -> list[str]:
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.jsonl"))


def source_problem(spec: str, base_dir: Path) -> str | None:
    """Why ``spec`` cannot be loaded, or None; cheap, for ``aopcore validate``."""
    if spec.startswith("builtin:"):
        name = spec.split(":", 1)[1]
        if name not in builtin_names():
            return f"no built-in data set {name!r} (built-ins: {', '.join(builtin_names())})"
        return None
    if spec.startswith("hf:"):
        if importlib.util.find_spec("aopcore_hf") is None or importlib.util.find_spec("datasets") is None:
            return "hub data sets need the Hugging Face plugin family: pip install 'aopcore[hf]'"
        return None
    path = Path(spec) if Path(spec).is_absolute() else base_dir / spec
    if not path.is_file():
        return f"data file not found: {path}"
    return None


def load_source(spec: str, base_dir: Path, *, limit: int | None = None, per_category: int | None = None) -> list[Question]:
    problem = source_problem(spec, base_dir)
    if problem:
        raise InputError(problem)
    if spec.startswith("builtin:"):
        questions = load_questions(BUILTIN_DIR / f"{spec.split(':', 1)[1]}.jsonl")
    elif spec.startswith("hf:"):
        from aopcore_hf.datasets import load_hub_questions  # type: ignore[import-not-found]

        questions = load_hub_questions(spec[3:], limit=limit)
    else:
        path = Path(spec) if Path(spec).is_absolute() else base_dir / spec
        questions = load_questions(path)
    if per_category is not None:
        seen: dict[str, int] = {}
        kept = []
        for q in questions:
            if seen.get(q.category, 0) < per_category:
                kept.append(q)
                seen[q.category] = seen.get(q.category, 0) + 1
        questions = kept
    if limit is not None:
        questions = questions[:limit]
    ids = [q.id for q in questions]
    if len(set(ids)) != len(ids):
        raise InputError(f"{spec}: question ids are not unique")
    return questions
