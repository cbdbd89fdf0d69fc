"""The held-out evaluation a session's round chooses from: recorded, given by the loop, or made with its
``generate`` function and the session's reward (then recorded as the stage an experiment would write)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from aopcore import contracts
from aopcore.capabilities import reads_evaluation
from aopcore.engine.session_build import call_generate, eval_record, fn_name
from aopcore.errors import InputError
from aopcore.ledger import record_usage
from aopcore.records import EvalRecord, Question, read_jsonl, write_jsonl
from aopcore.storage.rundir import SFT_EVALUATION, evaluation_seed_key, stage_seed
from aopcore.storage.store import RunStore

log = logging.getLogger("aopcore")


class RoundOwner(Protocol):
    """What the evaluation reads from its :class:`~aopcore.CurriculumSession`."""

    store: RunStore
    curriculum: Any
    seed: int
    heldout: list[Question]
    reward: Any

    def _id(self, r: int, kind: str) -> str: ...
    def _evaluation_path(self, r: int) -> Path: ...
    def _rel(self, path: Path) -> str: ...
    def _stage(
        self, stage_id: str, kind: str, work: Callable[[], dict[str, Any]], *, outputs: Sequence[str]
    ) -> None: ...


def round_evaluation(
    session: RoundOwner,
    r: int,
    evaluation: Sequence[EvalRecord] | None,
    generate: Callable[..., Sequence[str]] | None,
) -> list[EvalRecord]:
    """The evaluation round ``r`` chooses from: recorded, given, or made with ``generate`` (then recorded)."""
    stage_id = SFT_EVALUATION if r == 1 else session._id(r - 1, "evaluation")
    path = session._evaluation_path(r)
    if session.store.is_done(stage_id):
        return read_jsonl(path, EvalRecord)
    reads = reads_evaluation(session.curriculum, r)
    if evaluation is not None and not list(evaluation):
        evaluation = None  # an empty evaluation is none
    if evaluation is None and not reads:
        return []  # the curriculum does not read it (uses_evaluation): evaluating would be cost without use
    if evaluation is None and generate is None:
        raise InputError(
            f"session.next_prompts: {type(session.curriculum).__name__} chooses round {r}'s prompts from the "
            "current policy's evaluation; pass evaluation=[EvalRecord, ...] or generate=fn(texts) -> answers"
        )
    seed = stage_seed(session.seed, evaluation_seed_key(r - 1))

    def work() -> dict[str, Any]:
        if evaluation is not None:
            records = [eval_record(e, k) for k, e in enumerate(evaluation)]
            how = "given"
        else:
            assert generate is not None  # one of the two, checked above
            records = score_heldout(session.heldout, session.reward, generate, seed)
            how = "generate"
        write_jsonl(path, records)
        warning = (
            contracts.uniform_reward_warning(session.reward, [e.reward for e in records]) if how == "generate" else None
        )
        if warning:
            log.warning("%s: %s", stage_id, warning)
        return {
            "mean_reward": sum(e.reward for e in records) / len(records),
            "used_for_choosing": reads,
            "evaluation": how,
            **({"warning": warning} if warning else {}),
        }

    session._stage(stage_id, "evaluate", work, outputs=[session._rel(path)])
    return read_jsonl(path, EvalRecord)


def score_heldout(
    heldout: Sequence[Question], reward: Any, generate: Callable[..., Sequence[str]], seed: int
) -> list[EvalRecord]:
    """The held-out questions answered with ``generate`` and scored with ``reward`` (each output checked)."""
    if reward is None:
        raise InputError(
            "session.reward: next_prompts(generate=...) scores the held-out answers, and the session has no reward"
        )
    texts = [q.text for q in heldout]
    answers = list(call_generate(generate, texts, seed=seed, sample=False))
    if len(answers) != len(texts):
        raise contracts.BadComponentOutput(
            f"generate ({fn_name(generate)}) returned {len(answers)} answers for {len(texts)} questions"
        )
    rewards = contracts.checked_rewards(reward, reward.score(texts, answers), texts, ids=[q.id for q in heldout])
    record_usage(reward_calls=len(texts))
    return [EvalRecord(q.id, q.text, q.category, str(a), r) for q, a, r in zip(heldout, answers, rewards)]
