"""``speed``: Selective Prompting with Efficient Estimation of Difficulty (Zhang, Arora, Mei, Zanette,
arXiv 2506.09016, "SPEED-RL: Faster Training of Reasoning Models via Online Curriculum Learning"; project page
and code Zanette-Labs/speed-rl).

SPEED splits inference in two: a cheap **screening** phase samples ``N_init`` (4) answers per candidate prompt and
excludes the prompts whose screening pass rate is 0% or 100% (their advantage, hence their gradient, is zero); only
the prompts in between go on to the full rollouts that train. Candidates are screened in uniformly random batches
until enough pass.

Here: at the start of each iteration (the prompts stage) candidates from the pool (unused ones first, in a seeded
order) are screened in rounds of ``screen_batch`` with ``n_init`` answers each from the current policy, through
``ctx.generate`` and ``ctx.reward``, so the experiment books every screening answer as choosing compute
(``policy_samples``, ``reward_calls``, the trainer's tokens), as it books the oracle's measurement. Screening stops
once ``keep_factor`` x budget prompts passed (or ``max_screen_fraction`` of the pool was screened; then the
prompts nearest a 0.5 screening rate fill up). The plan is the first ``budget`` of them; in the per-step channel
the training steps deal all of them in order, so every episode trains on a freshly screened prompt, as in SPEED's
streaming batches. The difference from the paper: our per-step channel gives a selector no policy to sample from,
so the screening uses the policy at the iteration's start, not the one at the step (and on our one-completion PPO
the screening answers are not reused for training, which SPEED does for the prompts that pass).

State: the screened prompts go to the workdir (``speed-screened-iter-NN.json``), which the training stage's
selector reads; a resume reads the same file.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path

from aopcore import CurriculumContext, InputError, Prompt, Provenance, RuntimeFailure
from aopcore.steps import StepBatch
from aopcore_curricula.online import _stamp
from aopcore_curricula.options import SpeedOptions, load_pool


def _screened_path(ctx: CurriculumContext) -> Path:
    from aopcore.storage.rundir import iteration_name

    return Path(ctx.workdir) / f"speed-screened-{iteration_name(ctx.iteration)}.json"


class SpeedSelector:
    """Deals the iteration's screened-in prompts in order, cycling when the steps outnumber them."""

    def __init__(self, kept: Sequence[Prompt], *, iteration: int) -> None:
        self.kept = list(kept)
        self.next = 0
        self.iteration = iteration

    def draw(self, n: int, draw: int) -> list[Prompt]:
        out = [self.kept[(self.next + k) % len(self.kept)] for k in range(n)]
        self.next += n
        return [_stamp(p, "speed", self.iteration, draw=draw) for p in out]

    def observe(self, batch: StepBatch) -> None:
        """Nothing: SPEED chooses by screening, not from the training rollouts."""


class SpeedCurriculum:
    """SPEED-RL (arXiv 2506.09016): screen candidates with a few sampled answers, train on those with a pass rate
    strictly between 0 and 1; the screening is choosing compute."""

    Options = SpeedOptions
    uses_evaluation = False  # it screens with the policy instead

    def __init__(self, options: SpeedOptions) -> None:
        self.options = options
        self.pool = load_pool(options.pool)

    def _screen(self, ctx: CurriculumContext) -> tuple[list[tuple[Prompt, float]], dict[str, int]]:
        """(prompt, screening pass rate) of the prompts kept, in order; and counts for the log."""
        o = self.options
        if ctx.generate is None or ctx.reward is None:
            raise InputError(
                f"arms.{ctx.arm}: speed screens with the policy: it needs generate and the reward in its context"
            )
        allowed = set(ctx.categories)
        cands = [q for q in self.pool if q.category in allowed]
        if len(cands) < ctx.budget:
            raise InputError(
                f"arms.{ctx.arm}.pool: {len(cands)} candidates in the experiment's categories, the budget is {ctx.budget}"
            )
        rng = random.Random(ctx.seed)
        rng.shuffle(cands)
        used = {p.id for p in ctx.history}
        cands.sort(key=lambda q: q.id in used)  # unused first (stable: the shuffled order within each part)
        want = max(ctx.budget, int(round(o.keep_factor * ctx.budget)))
        limit = max(ctx.budget, int(o.max_screen_fraction * len(cands)))
        batch = o.screen_batch or ctx.budget
        kept: list[tuple[Prompt, float]] = []
        rejected: list[tuple[Prompt, float]] = []
        screened = 0
        while len(kept) < want and screened < min(limit, len(cands)):
            chunk = cands[screened : min(screened + batch, limit)]
            texts = [q.text for q in chunk for _ in range(o.n_init)]
            answers = ctx.generate(texts, sample=True, seed=ctx.seed + screened)
            rewards = ctx.reward.score(texts, answers)
            for k, q in enumerate(chunk):
                wins = sum(1 for r in rewards[k * o.n_init : (k + 1) * o.n_init] if r >= o.success_threshold)
                rate = wins / o.n_init
                p = Prompt(q.id, q.text, q.category, Provenance("speed", ctx.iteration, "pool"))
                (kept if 0 < wins < o.n_init else rejected).append((p, rate))
            screened += len(chunk)
        counts = {"screened": screened, "passed": len(kept), "answers": screened * o.n_init}
        if len(kept) < ctx.budget:  # too few in between: the nearest to a 0.5 rate fill the plan
            rejected.sort(key=lambda t: abs(t[1] - 0.5))
            kept += rejected[: ctx.budget - len(kept)]
        counts["filled"] = max(0, len(kept) - counts["passed"])
        return kept[:want], counts

    def prompts(self, ctx: CurriculumContext) -> list[Prompt]:
        from aopcore.storage.store import atomic_write_json

        kept, counts = self._screen(ctx)
        atomic_write_json(
            _screened_path(ctx),
            {
                **counts,
                "n_init": self.options.n_init,
                "kept": [{"id": p.id, "text": p.text, "category": p.category, "rate": r} for p, r in kept],
            },
        )
        return [_stamp(p, "speed", ctx.iteration, screen_pass_rate=r) for p, r in kept[: ctx.budget]]

    def selector(self, ctx: CurriculumContext, planned: Sequence[Prompt]) -> SpeedSelector:
        path = _screened_path(ctx)
        if not path.exists():
            raise RuntimeFailure(
                f"arms.{ctx.arm}: SPEED's screened prompts {path} are missing (written by the prompts stage of "
                f"iteration {ctx.iteration}); delete that iteration's prompts.jsonl and rerun to screen again"
            )
        kept = [
            Prompt(
                k["id"],
                k["text"],
                k["category"],
                Provenance("speed", ctx.iteration, "pool", extra={"screen_pass_rate": k["rate"]}),
            )
            for k in json.loads(path.read_text())["kept"]
        ]
        return SpeedSelector(kept, iteration=ctx.iteration)
