"""Pairwise judging of two arms' answers, with position-bias control.

In both-orders mode every pair is judged as (A=a, B=b) and (A=b, B=a); a win
counts only when both orders agree, disagreement is a tie, and an unusable
verdict in either order drops the item (counted). Otherwise each item's order
is drawn at random (seeded) and mapped back.

Identical answers are a tie without asking the judge (AOP and SOP share their
first iteration by design, so every item of that comparison is one): the verdict
says so (``identical``), and the judge calls saved are booked in the ledger. A stage whose pairs all tie
still asks the judge once, on a real item (a contract check, not tallied), so a broken judge cannot pass a
whole run unnoticed. Every verdict is checked where it enters (:func:`_checked`), and ``raw`` (when given a
list) collects what the judge said for each item, for the audit file beside the verdicts.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from aopcore.analysis.stats import WinRate
from aopcore.ledger import record_usage
from aopcore.protocols import Judge
from aopcore.records import JudgeItem, Question, Verdict

SWAP = {"A": "B", "B": "A", "C": "C", None: None}


@dataclass(frozen=True)
class PairVerdict:
    """Final verdict for one test prompt, in the frame of (arm_a, arm_b)."""

    item_id: str
    choice: str | None  # "A" (arm_a wins), "B", "C" (tie) or None (dropped)
    orders: tuple[str | None, ...]  # raw verdicts mapped back to the (a, b) frame; ("C",) when not asked
    identical: bool = False  # the answers were the same text: a tie without a judge call

    @classmethod
    def from_dict(cls, data: dict) -> PairVerdict:
        return cls(data["item_id"], data["choice"], tuple(data["orders"]), bool(data.get("identical", False)))


def same_answer(a: str, b: str) -> bool:
    """Answers no judge could tell apart: the same text up to surrounding whitespace."""
    return a.strip() == b.strip()


def judge_pair(
    judge: Judge,
    questions: Sequence[Question],
    answers_a: Sequence[str],
    answers_b: Sequence[str],
    *,
    both_orders: bool,
    seed: int,
    raw: list[dict] | None = None,
) -> list[PairVerdict]:
    if not (len(questions) == len(answers_a) == len(answers_b)):
        raise ValueError("questions and both answer lists must have the same length")
    same = [same_answer(a, b) for a, b in zip(answers_a, answers_b)]
    asked = [k for k, s in enumerate(same) if not s]
    rng = random.Random(seed)
    swapped = [rng.random() < 0.5 for _ in questions]  # drawn for every item, so a skipped one moves no other's draw
    raw = [] if raw is None else raw
    judged = _judge_distinct(
        judge,
        [questions[k] for k in asked],
        [answers_a[k] for k in asked],
        [answers_b[k] for k in asked],
        None if both_orders else [swapped[k] for k in asked],
        raw,
    )
    checked = 0
    if not asked and questions:  # every pair tied: exercise the judge once on a real item all the same
        item = JudgeItem(f"{questions[0].id}:check", questions[0].text, answers_a[0], answers_b[0])
        for v in _checked(judge.judge([item]), [item], judge):
            raw.append({"item": item.id, "choice": v.choice, "raw": v.raw, "contract_check": True})
        checked = 1
    if len(asked) < len(questions):
        record_usage(judge_calls_saved=(len(questions) - len(asked)) * (2 if both_orders else 1) - checked)
    by_index = dict(zip(asked, judged))
    return [
        by_index[k] if k in by_index else PairVerdict(q.id, "C", ("C",), identical=True)
        for k, q in enumerate(questions)
    ]


def _judge_distinct(
    judge: Judge,
    questions: Sequence[Question],
    answers_a: Sequence[str],
    answers_b: Sequence[str],
    swapped: Sequence[bool] | None,
    raw: list[dict],
) -> list[PairVerdict]:
    """Ask the judge: both orders when ``swapped`` is None, else one order per item (swapped where True)."""
    if not questions:
        return []
    if swapped is None:
        items = [JudgeItem(f"{q.id}:ab", q.text, a, b) for q, a, b in zip(questions, answers_a, answers_b)]
        items += [JudgeItem(f"{q.id}:ba", q.text, b, a) for q, a, b in zip(questions, answers_a, answers_b)]
        verdicts = _checked(judge.judge(items), items, judge, raw)
        n = len(questions)
        out = []
        for q, v_ab, v_ba in zip(questions, verdicts[:n], verdicts[n:]):
            first, second = v_ab.choice, SWAP[v_ba.choice]
            if first is None or second is None:
                choice = None
            elif first == second:
                choice = first
            else:
                choice = "C"
            out.append(PairVerdict(q.id, choice, (first, second)))
        return out
    items = [
        JudgeItem(q.id, q.text, b if s else a, a if s else b)
        for q, a, b, s in zip(questions, answers_a, answers_b, swapped)
    ]
    verdicts = _checked(judge.judge(items), items, judge, raw)
    out = []
    for q, v, s in zip(questions, verdicts, swapped):
        mapped = SWAP[v.choice] if s else v.choice  # back to the (a, b) frame
        out.append(PairVerdict(q.id, mapped, (mapped,)))
    return out


def _checked(
    verdicts: Sequence[Verdict], items: Sequence[JudgeItem], judge: Judge, raw: list[dict] | None = None
) -> list[Verdict]:
    """The verdicts, or a BadComponentOutput naming the judge, its method and the first bad item."""
    from aopcore.contracts import BadComponentOutput, component_name, output_list

    name = component_name("judge", judge)
    verdicts = output_list(verdicts, len(items), f"{name}: judge()", "Verdicts", "verdicts", "items")
    for v, item in zip(verdicts, items):
        choice = getattr(v, "choice", v)
        if not hasattr(v, "choice") or choice not in ("A", "B", "C", None):
            raise BadComponentOutput(
                f"{name}: judge() returned {'choice ' if hasattr(v, 'choice') else ''}{choice!r:.40} "
                f'for item {item.id!r}; a verdict is aopcore.Verdict with choice "A", "B", '
                '"C" (a tie) or None (unusable)'
            )
    if raw is not None:
        raw.extend({"item": it.id, "choice": v.choice, "raw": getattr(v, "raw", "")} for v, it in zip(verdicts, items))
    return verdicts


def tally(arm_a: str, arm_b: str, iteration: int, verdicts: Sequence[PairVerdict]) -> WinRate:
    counts = {"A": 0, "B": 0, "C": 0, None: 0}
    for v in verdicts:
        counts[v.choice] += 1
    return WinRate(arm_a, arm_b, iteration, counts["A"], counts["B"], counts["C"], counts[None])
