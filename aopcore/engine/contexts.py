"""The one place that builds a curriculum's :class:`~aopcore.CurriculumContext` for an arm's iteration (round).

Shared by :class:`~aopcore.Experiment` (the prompts stage and the per-step stream) and
:class:`~aopcore.CurriculumSession`, so a session's round ``r`` sees what an experiment's iteration ``r`` sees:
the seed ``stage_seed(base_seed, arms/<arm>/iter-RR/prompts)``, the arm's earlier prompts as history, its
curriculum workdir, and the per-step batches of earlier iterations (for curricula in the per-step channel).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from aopcore import contracts
from aopcore.capabilities import observes_steps
from aopcore.ledger import counted_context
from aopcore.protocols import CurriculumContext
from aopcore.records import EvalRecord, Prompt, read_jsonl
from aopcore.steps import read_batches
from aopcore.storage.rundir import RunLayout, stage_id, stage_seed


def prompts_seed(base_seed: int, arm: str, i: int) -> int:
    """The seed of an arm's iteration ``i`` context (and of its per-step stream)."""
    return stage_seed(base_seed, stage_id(arm, i, "prompts"))


def history(layout: RunLayout, arm: str, i: int) -> list[Prompt]:
    """The prompts of the arm's iterations before ``i``."""
    return [p for j in range(1, i) for p in read_jsonl(layout.prompts(arm, j), Prompt)]


def earlier_steps(layout: RunLayout, arm: str, i: int, curriculum: Any) -> list[Any]:
    """``ctx.steps``: the per-step batches of iterations before ``i`` (empty outside the per-step channel)."""
    if not observes_steps(curriculum):
        return []
    return [b for j in range(1, i) if layout.steps(arm, j).exists() for b in read_batches(layout.steps(arm, j))]


def curriculum_context(
    layout: RunLayout,
    curriculum: Any,
    arm: str,
    i: int,
    *,
    iterations: int,
    budget: int,
    base_seed: int,
    categories: Sequence[str],
    evaluation: Sequence[EvalRecord],
    feedback: Any,
    embedder: Any,
    reward: Any,
    generate: Callable[[int], Callable[..., Any]] | None = None,
    counted: bool = True,
    solve: Callable[[str], Any] | None = None,
    heldout: Sequence[str] = (),
) -> CurriculumContext:
    """The context of ``arm``'s iteration ``i``.

    ``heldout``: the held-out questions' texts (``ctx.heldout``), given also when no evaluation is made, so a
    curriculum that reads none still drops copies of them. ``generate(seed)`` makes ``ctx.generate`` (the policy's sampler, defaulting to that seed). ``counted``: every
    call through ``ctx`` is booked in the running stage's ledger as choosing compute (:mod:`aopcore.ledger`);
    the per-step stream's context is not (its stage books the training).
    """
    seed = prompts_seed(base_seed, arm, i)
    checked = contracts.checked_reward(reward)
    sampler = generate(seed) if generate is not None else None
    components = (
        counted_context(feedback=feedback, embedder=embedder, reward=checked, generate=sampler)
        if counted
        else {"feedback": feedback, "embedder": embedder, "reward": checked}
    )
    ctx = CurriculumContext(
        arm=arm,
        iteration=i,
        iterations=iterations,
        budget=budget,
        seed=seed,
        categories=list(categories or []),
        evaluation=list(evaluation),
        history=history(layout, arm, i),
        workdir=layout.curriculum_dir(arm),
        **components,
        base_seed=base_seed,
        steps=earlier_steps(layout, arm, i, curriculum),
        solve=solve,
        heldout=list(heldout),
    )
    ctx.workdir.mkdir(parents=True, exist_ok=True)
    return ctx
