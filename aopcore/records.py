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
    """Where a prompt came from: enough to trace it back to the feedback call and draw.

    Stored with every prompt in ``arms/<arm>/iter-NN/prompts.jsonl`` and read back on
    resume, so all fields must be JSON values.

    Attributes:
        curriculum: name of the curriculum that chose the prompt.
        iteration: the iteration (1-based) that trains on it; 0 for a pool written up front.
        source: ``generated`` (written by a feedback LLM), ``seed``, ``pool`` (drawn from a
            fixed set) or ``external``; free text, shown in the report.
        feedback_call: id of the :class:`~aopcore.protocols.FeedbackLLM` call that wrote it.
        draw: which random draw of evaluation samples fed that call.
        sample_ids: ids of the evaluation questions shown to the feedback LLM.
        extra: the plugin's own per-prompt data (scores, the reason it was chosen, ...):
            JSON values only, round-tripped through the run store unchanged. Keep it small:
            it is written once per prompt.
    """

    curriculum: str
    iteration: int
    source: str = "generated"  # generated | seed | pool | external
    feedback_call: str | None = None  # id of the FeedbackLLM call that wrote it
    draw: int | None = None  # which random draw of evaluation samples fed that call
    sample_ids: tuple[str, ...] = ()  # evaluation questions shown to the feedback LLM
    extra: dict[str, Any] = field(default_factory=dict, hash=False)  # plugin data; JSON values only

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Provenance:
        data = dict(data)
        data["sample_ids"] = tuple(data.get("sample_ids", ()))
        data["extra"] = dict(data.get("extra") or {})
        return cls(**data)


@dataclass(frozen=True)
class Prompt:
    """One training prompt chosen by a curriculum.

    Attributes:
        id: unique within an arm's iteration (the experiment rejects duplicates); keep ids
            stable across a resume, since they key the report and the training index.
        text: the prompt the policy is trained on.
        category: one of the experiment's categories (``ctx.categories``) where the curriculum
            targets categories; reports group prompts by it.
        provenance: where it came from; None for prompts with no story to tell.
        metadata: data that travels with the prompt to the trainer's rows and the reward (JSON values):
            ``answer`` is the reference answer of a generated question (a curriculum's ``answers``
            option or a session's ``solve``), which a verifiable reward checks. Empty by default and
            then not written, so prompts without it are stored as before.
    """

    id: str
    text: str
    category: str
    provenance: Provenance | None = None
    metadata: dict[str, Any] = field(default_factory=dict, hash=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Prompt:
        prov = data.get("provenance")
        return cls(
            id=data["id"],
            text=data["text"],
            category=data["category"],
            provenance=Provenance.from_dict(prov) if prov else None,
            metadata=dict(data.get("metadata") or {}),
        )


@dataclass(frozen=True)
class Question:
    """A held-out or test question (no provenance: it is data, not generated).

    Attributes:
        id: unique within its data set (read as a string).
        text: the question.
        category: its category; ``general`` when the data give none.
    """

    id: str
    text: str
    category: str = "general"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Question:
        return cls(id=str(data["id"]), text=data["text"], category=data.get("category", "general"))


@dataclass(frozen=True)
class EvalRecord:
    """One held-out question answered by a policy and scored by the reward model.

    A curriculum reads these as ``ctx.evaluation``: the current policy's answers, one per
    held-out question. ``reward`` is the reward model's score (higher is better; its scale
    is the reward model's own, so compare rewards, do not threshold them).

    Attributes:
        question_id: the held-out question's id.
        question: its text.
        category: its category (one of ``ctx.categories``).
        answer: the policy's answer (evaluation decoding, typically greedy).
        reward: the reward model's score of the answer.
    """

    question_id: str
    question: str
    category: str
    answer: str
    reward: float

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvalRecord:
        return cls(**data)


Choice = Literal["A", "B", "C"]


@dataclass(frozen=True)
class JudgeItem:
    """One pairwise comparison for a :class:`~aopcore.protocols.Judge`: a question and two answers.

    The experiment randomises which arm is A and which is B per item and undoes it afterwards,
    so a judge never needs to know the arms.

    Attributes:
        id: the item's id; the verdict must carry it as ``item_id``.
        question: the test prompt.
        answer_a: the first answer.
        answer_b: the second answer.
    """

    id: str
    question: str
    answer_a: str
    answer_b: str


@dataclass(frozen=True)
class Verdict:
    """A judge's answer for one item.

    Attributes:
        item_id: the :class:`JudgeItem`'s ``id``.
        choice: ``"A"``, ``"B"``, ``"C"`` (a tie) or None when the judge's output was unusable
            (counted, not guessed).
        raw: the judge's raw output, kept for audit.
    """

    item_id: str
    choice: Choice | None
    raw: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Verdict:
        return cls(**data)


@dataclass(frozen=True)
class TrainStats:
    """What a training stage reports: per-step metrics in TRL's vocabulary plus totals.

    Attributes:
        steps: optimiser steps taken.
        episodes: (prompt, response) pairs trained on, over all passes.
        tokens_generated: response tokens sampled during training (the compute ledger books it).
        metrics: one dict per logged step, with TRL's keys where they apply (``loss``,
            ``reward``, ``kl``, ...); the report plots them.
    """

    steps: int
    episodes: int
    tokens_generated: int = 0
    metrics: list[dict[str, float]] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainStats:
        return cls(**data)


def category_counts(prompts: Iterable[Prompt]) -> dict[str, int]:
    """Prompts per category, sorted by category: what stage records, round records and logs show."""
    counts: dict[str, int] = {}
    for p in prompts:
        counts[p.category] = counts.get(p.category, 0) + 1
    return dict(sorted(counts.items()))


def to_dict(record: Any) -> dict[str, Any]:
    """A record as plain JSON-able data (the inverse of its ``from_dict``)."""
    data = dataclasses.asdict(record)
    if isinstance(record, Prompt) and not data.get("metadata"):
        data.pop("metadata", None)  # prompts without metadata are stored as before it existed
    return data


def write_jsonl(path: Path, records: Iterable[Any]) -> None:
    """Atomically write records as JSON lines (temp file + rename)."""
    from aopcore.storage.store import atomic_write_text

    lines = [
        json.dumps(to_dict(r) if dataclasses.is_dataclass(r) else r, ensure_ascii=False, sort_keys=True)
        for r in records
    ]
    atomic_write_text(path, "".join(line + "\n" for line in lines))


class JSONLDecodeError(json.JSONDecodeError):
    """A bad line in a JSONL file; ``lineno`` is the line in the file, not within the one JSON text."""

    def __init__(self, path: Path | str, file_lineno: int, exc: json.JSONDecodeError) -> None:
        super().__init__(exc.msg, exc.doc, exc.pos)
        self.path = str(path)
        self.lineno = file_lineno

    def __str__(self) -> str:
        return f"{self.path}:{self.lineno}: not valid JSON ({self.msg}, column {self.colno})"


def iter_jsonl(path: Path | str) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) pairs; blank lines are skipped.

    Raises:
        JSONLDecodeError: a line is not JSON; its ``lineno`` is the file's line number.
    """
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if line.strip():
                try:
                    obj = json.loads(line.rstrip("\r\n"))
                except json.JSONDecodeError as exc:
                    raise JSONLDecodeError(path, lineno, exc) from None
                yield lineno, obj


def read_jsonl(path: Path | str, cls: type[T]) -> list[T]:
    """Every line of ``path`` as a ``cls`` record (any record class here with ``from_dict``)."""
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
