"""``adarft``: Adaptive Curriculum Reinforcement Finetuning (Shi et al., arXiv 2504.05520, "Efficient
Reinforcement Finetuning via Adaptive Curriculum Learning").

Every problem has a fixed difficulty on a 0-100 scale, estimated once before training. A target difficulty ``T``
moves with the reward: each step trains on the ``n`` problems whose difficulty is nearest ``T``; after the step,
with ``R`` the batch's average reward,

    T <- clip(T + eta * tanh(alpha * (R - beta)), d_min, d_max)

so ``T`` rises while the policy does better than the target reward ``beta`` and falls while it does worse
(the paper's eta = 50, alpha = 2, beta = 0.5 are the defaults).

Difficulty here: AdaRFT scores each problem by a reference model's pass rate. The testbed's pool has no per-prompt
estimate, so a prompt's difficulty is its **category's**: 100 x (1 - the start policy's held-out accuracy in the
category), read from the iteration-1 evaluation and kept in the workdir (``adarft-difficulty.json``) so it stays
fixed as in the paper; or the ``difficulties`` option. Prompts of equal difficulty are dealt least-used first, in a
seeded order, so a step near one category cycles through its prompts.

State: ``T`` is rebuilt by replaying the update over ``ctx.steps`` (earlier iterations, in order) and the stream's
replayed reports, so a resume continues from the same target.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterable, Sequence
from pathlib import Path

from aopcore import CurriculumContext, InputError, Prompt, Provenance, RuntimeFailure
from aopcore.steps import StepBatch
from aopcore_curricula.online import _stamp
from aopcore_curricula.options import AdaRFTOptions, load_pool

DIFFICULTY_FILE = "adarft-difficulty.json"


class TargetDifficulty:
    """AdaRFT's target: T <- clip(T + eta tanh(alpha (R - beta)), lo, hi) after every batch."""

    def __init__(self, start: float, *, eta: float, alpha: float, beta: float, lo: float, hi: float) -> None:
        self.value = min(max(start, lo), hi)
        self.eta, self.alpha, self.beta, self.lo, self.hi = eta, alpha, beta, lo, hi
        self.history: list[float] = [self.value]

    def update(self, mean_reward: float) -> float:
        step = self.eta * math.tanh(self.alpha * (mean_reward - self.beta))
        self.value = min(max(self.value + step, self.lo), self.hi)
        self.history.append(self.value)
        return self.value

    def add_batches(self, batches: Iterable[StepBatch]) -> None:
        for b in batches:
            rewards = [r for g in b.groups for r in g.rewards]
            if rewards:
                self.update(sum(rewards) / len(rewards))


class AdaRFTSelector:
    """Per draw: the n prompts nearest the target difficulty (least used first among ties)."""

    def __init__(
        self,
        candidates: Sequence[Prompt],
        difficulty: dict[str, float],
        target: TargetDifficulty,
        *,
        seed: int,
        iteration: int,
    ) -> None:
        rng = random.Random(seed)
        self.candidates = list(candidates)
        self.order = {p.id: rng.random() for p in self.candidates}  # seeded tie-break within a difficulty
        self.difficulty = difficulty
        self.target = target
        self.uses: dict[str, int] = {}
        self.iteration = iteration

    def _key(self, p: Prompt) -> tuple[float, int, float]:
        return (abs(self.difficulty[p.category] - self.target.value), self.uses.get(p.id, 0), self.order[p.id])

    def choose(self, n: int) -> list[Prompt]:
        out: list[Prompt] = []
        while len(out) < n:
            batch = sorted(self.candidates, key=self._key)[: n - len(out)]
            for p in batch:
                self.uses[p.id] = self.uses.get(p.id, 0) + 1
            out += batch
        return out

    def draw(self, n: int, draw: int) -> list[Prompt]:
        t = round(self.target.value, 3)
        return [_stamp(p, "adarft", self.iteration, draw=draw, target_difficulty=t) for p in self.choose(n)]

    def observe(self, batch: StepBatch) -> None:
        self.target.add_batches([batch])


class AdaRFTCurriculum:
    """AdaRFT (arXiv 2504.05520): train on the problems nearest a target difficulty that the reward moves."""

    Options = AdaRFTOptions
    uses_evaluation = "first"  # the start policy's held-out accuracy per category is the difficulty (unless given)

    def __init__(self, options: AdaRFTOptions) -> None:
        self.options = options
        self.pool = [Prompt(q.id, q.text, q.category, Provenance("adarft", 0, "pool")) for q in load_pool(options.pool)]

    def _difficulty(self, ctx: CurriculumContext) -> dict[str, float]:
        """Per category, 0-100: the option's, else measured from the iteration-1 evaluation and kept."""
        if self.options.difficulties:
            missing = sorted(set(ctx.categories) - set(self.options.difficulties))
            if missing:
                raise InputError(f"arms.{ctx.arm}.difficulties: no difficulty for categories {missing}")
            return dict(self.options.difficulties)
        path = Path(ctx.workdir) / DIFFICULTY_FILE
        if path.exists():
            return json.loads(path.read_text())["difficulty"]
        if ctx.iteration != 1:
            raise RuntimeFailure(
                f"arms.{ctx.arm}: AdaRFT's difficulties {path} are missing (written at iteration 1 from the start "
                "policy's evaluation); rerun the arm from iteration 1 or give `difficulties`"
            )
        by: dict[str, list[float]] = {}
        for r in ctx.evaluation:
            by.setdefault(r.category, []).append(float(r.reward))
        missing = sorted(set(ctx.categories) - set(by))
        if missing:
            raise InputError(f"arms.{ctx.arm}: the evaluation has no answers in {missing} to measure their difficulty")
        difficulty = {c: round(100.0 * (1.0 - sum(by[c]) / len(by[c])), 4) for c in ctx.categories}
        from aopcore.storage.store import atomic_write_json

        atomic_write_json(path, {"difficulty": difficulty, "from": "start policy's held-out accuracy per category"})
        return difficulty

    def _selector(self, ctx: CurriculumContext, seed: int) -> AdaRFTSelector:
        o = self.options
        allowed = set(ctx.categories)
        cands = [p for p in self.pool if p.category in allowed]
        if len(cands) < ctx.budget:
            raise InputError(
                f"arms.{ctx.arm}.pool: {len(cands)} candidates in the experiment's categories, the budget is {ctx.budget}"
            )
        difficulty = self._difficulty(ctx)
        lo, hi = min(difficulty[c] for c in allowed), max(difficulty[c] for c in allowed)
        start = lo if o.initial_target is None else o.initial_target
        target = TargetDifficulty(start, eta=o.eta, alpha=o.alpha, beta=o.beta, lo=lo, hi=hi)
        target.add_batches(ctx.steps)
        return AdaRFTSelector(cands, difficulty, target, seed=seed, iteration=ctx.iteration)

    def prompts(self, ctx: CurriculumContext) -> list[Prompt]:
        """The plan: the ``budget`` prompts nearest the target difficulty reached after earlier iterations."""
        sel = self._selector(ctx, ctx.seed)
        t = round(sel.target.value, 3)
        return [_stamp(p, "adarft", ctx.iteration, target_difficulty=t) for p in sel.choose(ctx.budget)]

    def selector(self, ctx: CurriculumContext, planned: Sequence[Prompt]) -> AdaRFTSelector:
        return self._selector(ctx, ctx.seed + 6)
