"""Plain records that cross component boundaries and the run store.

Every record is a frozen dataclass with a JSON-lines round trip, so what a
stage wrote can be read back byte-for-byte on resume and compared across runs.
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Provenance:
    """Where a prompt came from: enough to trace it back to the feedback call and draw."""

    curriculum: str
    iteration: int
    source: str = "generated"  # generated | seed | pool | external
    feedback_call: str | None = None  # id of the FeedbackLLM call that wrote it
    draw: int | None = None  # which random draw of evaluation samples fed that call
    sample_ids: tuple[str, ...] = ()  # evaluation questions shown to the feedback LLM

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Provenance":
        data = dict(data)
        data["sample_ids"] = tuple(data.get("sample_ids", ()))
        return cls(**data)


@dataclass(frozen=True)
class Prompt:
    id: str
    text: str
    category: str
    provenance: Provenance | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Prompt":
        prov = data.get("provenance")
        return cls(
            id=data["id"],
            text=data["text"],
            category=data["category"],
            provenance=Provenance.from_dict(prov) if prov else None,
        )


@dataclass(frozen=True)
class Question:
    """A held-out or test question (no provenance: it is data, not generated)."""

    id: str
    text: str
    category: str = "general"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Question":
        return cls(id=str(data["id"]), text=data["text"], category=data.get("category", "general"))


@dataclass(frozen=True)
class EvalRecord:
    """One held-out question answered by a policy and scored by the reward model."""

    question_id: str
    question: str
    category: str
    answer: str
    reward: float

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EvalRecord":
        return cls(**data)


Choice = Literal["A", "B", "C"]


@dataclass(frozen=True)
class JudgeItem:
    id: str
    question: str
    answer_a: str
    answer_b: str


@dataclass(frozen=True)
class Verdict:
    """A judge's answer for one item; ``choice`` is None when the judge's output was unusable."""

    item_id: str
    choice: Choice | None
    raw: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Verdict":
        return cls(**data)


@dataclass(frozen=True)
class TrainStats:
    """What a training stage reports: per-step metrics in TRL's vocabulary plus totals."""

    steps: int
    episodes: int
    tokens_generated: int = 0
    metrics: list[dict[str, float]] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainStats":
        return cls(**data)


def to_dict(record: Any) -> dict[str, Any]:
    data = dataclasses.asdict(record)
    return data


def write_jsonl(path: Path, records: Iterable[Any]) -> None:
    """Atomically write records as JSON lines (temp file + rename)."""
    from aopcore.store import atomic_write_text

    lines = [json.dumps(to_dict(r) if dataclasses.is_dataclass(r) else r, ensure_ascii=False, sort_keys=True) for r in records]
    atomic_write_text(path, "".join(line + "\n" for line in lines))


def iter_jsonl(path: Path | str) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) pairs; blank lines are skipped."""
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if line.strip():
                yield lineno, json.loads(line)


def read_jsonl(path: Path | str, cls: type[T]) -> list[T]:
    return [cls.from_dict(obj) for _, obj in iter_jsonl(path)]  # type: ignore[attr-defined]


def load_records(path: Path | str, required: tuple[str, ...], what: str) -> list[dict[str, Any]]:
    """JSON objects from a JSONL file, each checked for string ``required`` fields; errors name file and line."""
    from aopcore.errors import InputError

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} file not found: {path}")
    rows = []
    try:
        for lineno, row in iter_jsonl(path):
            missing = [f for f in required if not isinstance(row, dict) or not isinstance(row.get(f), (str, int))]
            if missing:
                raise InputError(f"{path}:{lineno}: {what} record needs field(s) {', '.join(missing)}")
            rows.append(row)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    return rows


def load_questions(path: Path | str) -> list[Question]:
    """Load questions from JSONL, failing with the file and line of the first bad record."""
    from aopcore.errors import InputError

    out: list[Question] = []
    try:
        for lineno, obj in iter_jsonl(path):
            if not isinstance(obj, dict) or not isinstance(obj.get("text"), str) or "id" not in obj:
                raise InputError(f"{path}:{lineno}: a question needs string 'text' and an 'id'")
            out.append(Question.from_dict(obj))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not out:
        raise InputError(f"{path}: no questions")
    return out


