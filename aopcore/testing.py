"""Helpers for testing aopcore plugins: a context in a few lines, fakes, and one-call contract checks.

Plugin authors use these the way pytest's own plugin authors use ``pytester``: build a
:class:`~aopcore.protocols.CurriculumContext` without running an experiment, stand in for
the policy, the reward model and the feedback LLM with deterministic fakes whose behaviour
the test controls, and check that a component honours its protocol's contract with one call:

    from aopcore.testing import check_curriculum, make_context

    def test_contract(tmp_path):
        ctx = make_context(tmp_path, rewards={"cooking": 0.1, "law": 0.9}, budget=4)
        check_curriculum(lambda: MyCurriculum(MyCurriculum.Options()), ctx)

Every check raises ``AssertionError`` with a message that names the component, the
iteration and what was wrong, so a failing test reads like a bug report. Everything here
is pure Python (no torch) and never touches the network.
"""

from __future__ import annotations

import dataclasses
import hashlib
import numbers
import random
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from aopcore.protocols import CurriculumContext, PromptCurriculum
from aopcore.records import EvalRecord, Prompt, read_jsonl, write_jsonl
from aopcore.testing_components import (  # noqa: F401 - part of this module's API
    DEFAULT_ITEMS,
    DEFAULT_PAIRS,
    FakeReward,
    check_embedder,
    check_feedback_llm,
    check_judge,
    check_reward_model,
    check_trainer,
)

__all__ = [
    "FakeFeedbackLLM",
    "FakePolicy",
    "FakeReward",
    "check_curriculum",
    "check_embedder",
    "check_feedback_llm",
    "check_judge",
    "check_reward_model",
    "check_trainer",
    "make_context",
    "make_evaluation",
]


def _stable_seed(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256(":".join(map(str, parts)).encode()).digest()[:4], "big")


# --------------------------------------------------------------------------- contexts


def make_evaluation(rewards: Mapping[str, float | Sequence[float]], *, per_category: int = 3) -> list[EvalRecord]:
    """Synthetic evaluation records: one per held-out question, grouped by category.

    Args:
        rewards: category -> reward of every question in it (a float), or one reward per
            question (a list; its length sets that category's question count).
        per_category: questions per category where a single float is given.

    Returns:
        ``EvalRecord``s with ids ``<category>-<k>``, a question and an answer that mention
        the category (so embedding-based curricula see related texts), in category order.
    """
    records = []
    for category, value in rewards.items():
        values = (
            [float(value)] * per_category
            if isinstance(value, (int, float, numbers.Real))
            else [float(v) for v in value]
        )
        for k, reward in enumerate(values):
            records.append(
                EvalRecord(
                    f"{category}-{k}",
                    f"A question about {category}, number {k}: how does it work?",
                    category,
                    f"An answer about {category} ({k}).",
                    reward,
                )
            )
    return records


def make_context(
    workdir: Path | str | None = None,
    *,
    rewards: Mapping[str, float | Sequence[float]] | None = None,
    categories: Sequence[str] | None = None,
    budget: int = 4,
    iteration: int = 1,
    iterations: int = 2,
    seed: int = 0,
    base_seed: int = 0,
    per_category: int = 3,
    arm: str = "test",
    history: Sequence[Prompt] = (),
    evaluation: Sequence[EvalRecord] | None = None,
    feedback: Any = None,
    embedder: Any = None,
    reward: Any = None,
    generate: Callable[..., list[str]] | None = None,
    extras: dict[str, Any] | None = None,
    heldout: Sequence[str] | None = None,
) -> CurriculumContext:
    """A :class:`CurriculumContext` as the experiment would build it, from a few arguments.

    Args:
        workdir: the arm's private folder (created if missing); pass pytest's ``tmp_path``.
            Default: a new temporary folder.
        rewards: category -> reward(s) for the synthetic evaluation (see :func:`make_evaluation`).
            Default: three categories, ``alpha`` weakest (0.1), ``beta`` 0.5, ``gamma`` 0.9.
        categories: the experiment's categories; default: the keys of ``rewards``.
        evaluation: use these records instead of synthetic ones.
        heldout: the held-out questions' texts; default: the evaluation's questions, as in an experiment.
        feedback, embedder, reward, generate: the components (None, as in an experiment
            whose config lacks them). ``generate`` may be a :class:`FakePolicy`.
        Other arguments set the context field of the same name.
    """
    rewards = dict(rewards) if rewards is not None else {"alpha": 0.1, "beta": 0.5, "gamma": 0.9}
    evaluation = list(evaluation) if evaluation is not None else make_evaluation(rewards, per_category=per_category)
    cats = list(categories) if categories is not None else list(rewards) or sorted({r.category for r in evaluation})
    folder = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="aopcore-ctx-"))
    folder.mkdir(parents=True, exist_ok=True)
    return CurriculumContext(
        arm=arm,
        iteration=iteration,
        iterations=iterations,
        budget=budget,
        seed=seed,
        categories=cats,
        evaluation=evaluation,
        history=list(history),
        workdir=folder,
        feedback=feedback,
        embedder=embedder,
        reward=reward,
        generate=generate,
        base_seed=base_seed,
        extras=dict(extras or {}),
        heldout=list(heldout) if heldout is not None else [r.question for r in evaluation],
    )


# --------------------------------------------------------------------------- fakes


class FakePolicy:
    """Stands in for ``ctx.generate`` (and ``PolicyTrainer.generate``): answers come from a rule you choose.

    Args:
        answer: the greedy answer to a prompt: a function ``prompt -> str`` or a fixed string.
            Default: ``"answer: <prompt>"``.
        variants: suffixes that sampled answers (``sample=True``) pick from, seeded by
            ``(seed, prompt, position)``: the same call gives the same answers, another seed
            other answers. Give several to make sampled answers differ in reward.

    ``calls`` records each batch of prompts, so a test can assert how the policy was used.
    """

    def __init__(
        self,
        answer: Callable[[str], str] | str | None = None,
        *,
        variants: Sequence[str] = ("", " Briefly.", " In detail, step by step, with an example."),
    ) -> None:
        self._answer = answer
        self.variants = list(variants)
        self.calls: list[list[str]] = []

    def answer(self, prompt: str) -> str:
        if self._answer is None:
            return f"answer: {prompt}"
        return self._answer if isinstance(self._answer, str) else self._answer(prompt)

    def __call__(self, texts: Sequence[str], sample: bool = False, seed: int = 0) -> list[str]:
        self.calls.append(list(texts))
        if not sample or not self.variants:
            return [self.answer(t) for t in texts]
        return [
            self.answer(t) + random.Random(_stable_seed(seed, t, k)).choice(self.variants) for k, t in enumerate(texts)
        ]

    def generate(self, policy: Path, prompts: Sequence[str], *, seed: int, sample: bool = False) -> list[str]:
        """The :class:`~aopcore.protocols.PolicyTrainer` signature; ``policy`` is ignored."""
        return self(prompts, sample=sample, seed=seed)


class FakeFeedbackLLM:
    """A :class:`~aopcore.protocols.FeedbackLLM` that returns scripted text.

    Args:
        script: what to answer. A function ``prompt -> str`` (deterministic: the right choice
            for determinism and resume checks); a mapping from a substring of the prompt to the
            answer (first match wins, ``default`` otherwise); or a list of answers returned in
            turn, cycling (stateful, like a live model without a cache).
        default: the answer when a mapping has no match. ``""`` is what a real backend returns
            for a failed or blocked call.

    ``prompts`` records every prompt received.
    """

    def __init__(
        self, script: Callable[[str], str] | Mapping[str, str] | Sequence[str] = (), *, default: str = ""
    ) -> None:
        self.script = script
        self.default = default
        self.prompts: list[str] = []
        self._turn = 0

    def _one(self, prompt: str) -> str:
        if callable(self.script):
            return self.script(prompt)
        if isinstance(self.script, Mapping):
            return next((v for k, v in self.script.items() if k in prompt), self.default)
        if not self.script:
            return self.default
        text = self.script[self._turn % len(self.script)]
        self._turn += 1
        return text

    def complete(self, prompts: Sequence[str]) -> list[str]:
        self.prompts.extend(prompts)
        return [self._one(p) for p in prompts]


# --------------------------------------------------------------------------- contract checks


def _name(component: Any) -> str:
    return type(component).__name__


def _fail(message: str) -> None:
    raise AssertionError(message)


def _key(p: Prompt) -> tuple[str, str, str]:
    return (p.id, p.text, p.category)


def _first_difference(a: list[Prompt], b: list[Prompt]) -> str:
    for k, (x, y) in enumerate(zip(a, b)):
        if _key(x) != _key(y):
            return f"prompt {k}: {_key(x)!r} vs {_key(y)!r}"
    return f"{len(a)} vs {len(b)} prompts"


def _context_factory(
    ctx: CurriculumContext | Callable[[], CurriculumContext] | None,
) -> Callable[[], CurriculumContext]:
    if ctx is None:
        return lambda: make_context()
    if isinstance(ctx, CurriculumContext):
        return lambda: ctx
    return ctx


def _iteration_context(base: CurriculumContext, i: int, history: list[Prompt], workdir: Path) -> CurriculumContext:
    from aopcore.storage.rundir import (  # the experiment's own seeding, so checks see what a run sees
        stage_id,
        stage_seed,
    )

    workdir.mkdir(parents=True, exist_ok=True)
    return dataclasses.replace(
        base,
        iteration=i,
        history=list(history),
        workdir=workdir,
        seed=stage_seed(base.base_seed, stage_id(base.arm, i, "prompts")),
    )


def _run_curriculum(
    make: Callable[[], PromptCurriculum],
    contexts: Callable[[], CurriculumContext],
    workdir: Path,
    iterations: int,
    *,
    fresh_each: bool,
) -> list[list[Prompt]]:
    curriculum = make()
    history: list[Prompt] = []
    out = []
    for i in range(1, iterations + 1):
        if fresh_each:
            curriculum = make()
        prompts = list(curriculum.prompts(_iteration_context(contexts(), i, history, workdir)))
        out.append(prompts)
        history += prompts
    return out


def check_curriculum(
    make: Callable[[], PromptCurriculum],
    ctx: CurriculumContext | Callable[[], CurriculumContext] | None = None,
    *,
    iterations: int | None = None,
    categories: bool = True,
) -> list[list[Prompt]]:
    """Check that a curriculum honours the :class:`~aopcore.protocols.PromptCurriculum` contract.

    Runs the curriculum over ``iterations`` iterations (default ``ctx.iterations``) as the
    experiment does (history growing, a seed per iteration) and checks, for each iteration:

    - exactly ``ctx.budget`` prompts, each a :class:`~aopcore.records.Prompt` with non-empty text;
    - unique ids;
    - every category in ``ctx.categories`` (turn off with ``categories=False`` for a curriculum
      that does not target categories);
    - the prompts survive the run store (JSONL) unchanged, ``provenance.extra`` included;
    - determinism: a second instance in a new workdir chooses the same prompts;
    - resume-safety: a fresh instance for every iteration, reading the first run's workdir (what
      a resumed run does), chooses the same prompts.

    Args:
        make: builds a new curriculum instance, e.g. ``lambda: MyCurriculum(MyOptions())``.
        ctx: the context of iteration 1 (:func:`make_context`); iteration, history, seed and
            workdir are set per iteration, under ``ctx.workdir``. Pass a zero-argument function
            returning a context when its components keep state (a scripted feedback LLM that
            cycles), so each run gets fresh ones. Default: ``make_context()``.

    Returns:
        The prompts of each iteration (first run).

    Raises:
        AssertionError: naming the curriculum, the iteration and the broken rule.
    """
    contexts = _context_factory(ctx)
    base = contexts()
    n = iterations or base.iterations
    root = base.workdir
    name = _name(make())
    first = _run_curriculum(make, contexts, root / "check-run", n, fresh_each=False)
    for i, prompts in enumerate(first, start=1):
        where = f"{name}: iteration {i}"
        if len(prompts) != base.budget:
            _fail(f"{where}: returned {len(prompts)} prompts, the budget is exactly {base.budget}")
        bad = [p for p in prompts if not isinstance(p, Prompt)]
        if bad:
            _fail(f"{where}: returned {type(bad[0]).__name__} objects; return aopcore.Prompt")
        empty = [p.id for p in prompts if not isinstance(p.text, str) or not p.text.strip()]
        if empty:
            _fail(f"{where}: prompt(s) with empty text: {empty[:3]}")
        ids = [p.id for p in prompts]
        dupes = sorted({x for x in ids if ids.count(x) > 1})
        if dupes:
            _fail(f"{where}: duplicate prompt ids {dupes[:5]}; ids must be unique within an iteration")
        if categories:
            outside = sorted({p.category for p in prompts} - set(base.categories))
            if outside:
                _fail(f"{where}: categories {outside} are not in ctx.categories {base.categories}")
        from aopcore.storage.rundir import iteration_name

        store = root / "check-store" / f"{iteration_name(i)}.jsonl"
        try:
            write_jsonl(store, prompts)
            back = read_jsonl(store, Prompt)
        except (TypeError, ValueError) as exc:
            _fail(f"{where}: prompts cannot be stored as JSON lines ({exc}); provenance.extra takes JSON values only")
        if back != prompts:
            diff = next(k for k, (a, b) in enumerate(zip(prompts, back)) if a != b)
            _fail(
                f"{where}: prompt {prompts[diff].id!r} changes when stored and read back: {prompts[diff]!r} -> {back[diff]!r}"
            )

    again = _run_curriculum(make, contexts, root / "check-again", n, fresh_each=False)
    for i, (a, b) in enumerate(zip(first, again), start=1):
        if [_key(p) for p in a] != [_key(p) for p in b]:
            _fail(
                f"{name}: iteration {i}: not deterministic: a second instance with the same seed chose different "
                f"prompts ({_first_difference(a, b)}); draw every random choice from ctx.seed"
            )

    history: list[Prompt] = []
    for i, expected in enumerate(first, start=1):
        resumed = list(make().prompts(_iteration_context(contexts(), i, history, root / "check-run")))
        if [_key(p) for p in resumed] != [_key(p) for p in expected]:
            _fail(
                f"{name}: iteration {i}: not resume-safe: a fresh instance reading the same workdir chose different "
                f"prompts ({_first_difference(expected, resumed)}); keep state in ctx.workdir, not in the instance"
            )
        history += expected
    return first
