"""``mopps``: Model Predictive Prompt Selection (Qu et al., arXiv 2507.04632; code thu-rllab/MoPPS, also
volcengine/verl ``recipe/mopps/mopps.py``).

Each prompt's success rate is a latent variable with a Beta posterior, updated from the rollouts the training
already makes, so choosing costs no extra generation. Per draw, as in MoPPS's ``topk`` sampler:

1. ``candidates_factor`` x n candidates are drawn uniformly from the pool (MoPPS's ``ts_ratio``);
2. one success rate is sampled from each candidate's posterior (Thompson sampling);
3. the n candidates whose sampled rate is nearest ``target`` (0.5) are trained on.

Update (MoPPS's ``train``), for a prompt with ``s`` successes out of ``k`` rollouts:
``alpha <- decay * alpha + (1 - decay) * prior_alpha + s`` and ``beta <- decay * beta + (1 - decay) * prior_beta
+ (k - s)``. (The reference code adds ``success_rate * k`` for groups of k > 1 completions, the same thing; for
k = 1 it sets 8, which we read as a slip and do not copy: one completion adds one observation.)

State: the posteriors are rebuilt from ``ctx.steps`` (earlier iterations) and, within an iteration, from the
stream's replayed reports, so a resumed run has the same posteriors without saving them.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence

from aopcore import CurriculumContext, InputError, Prompt, Provenance
from aopcore.steps import StepBatch
from aopcore_curricula.online import _stamp
from aopcore_curricula.options import MoppsOptions, load_pool


class BetaPosteriors:
    """A Beta posterior per prompt id, with MoPPS's decayed update."""

    def __init__(self, *, prior_alpha: float, prior_beta: float, decay: float, threshold: float) -> None:
        self.prior = (prior_alpha, prior_beta)
        self.decay = decay
        self.threshold = threshold
        self.params: dict[str, tuple[float, float]] = {}

    def get(self, prompt_id: str) -> tuple[float, float]:
        return self.params.get(prompt_id, self.prior)

    def mean(self, prompt_id: str) -> float:
        a, b = self.get(prompt_id)
        return a / (a + b)

    def update(self, prompt_id: str, rewards: Sequence[float]) -> None:
        s = sum(1.0 for r in rewards if r >= self.threshold)
        a, b = self.get(prompt_id)
        a0, b0 = self.prior
        d = self.decay
        self.params[prompt_id] = (d * a + (1 - d) * a0 + s, d * b + (1 - d) * b0 + (len(rewards) - s))

    def add_batches(self, batches: Iterable[StepBatch]) -> None:
        for batch in batches:
            for g in batch.groups:
                self.update(g.prompt_id, g.rewards)


class MoppsSelector:
    """Per draw: uniform candidates, one Thompson sample each, the n nearest the target success rate."""

    def __init__(
        self,
        candidates: Sequence[Prompt],
        posteriors: BetaPosteriors,
        *,
        seed: int,
        target: float,
        factor: float,
        iteration: int,
    ) -> None:
        self.candidates = list(candidates)
        self.posteriors = posteriors
        self.rng = random.Random(seed)
        self.target, self.factor, self.iteration = target, factor, iteration

    def choose(self, n: int) -> list[tuple[Prompt, float]]:
        """``n`` distinct prompts (fewer only if the pool is smaller) with the rate sampled for each."""
        m = min(len(self.candidates), max(n, int(round(n * self.factor))))
        pool = self.rng.sample(self.candidates, m)
        scored = [(p, self.rng.betavariate(*self.posteriors.get(p.id))) for p in pool]
        scored.sort(key=lambda t: (t[1] - self.target) ** 2)
        return scored[:n]

    def draw(self, n: int, draw: int) -> list[Prompt]:
        out: list[Prompt] = []
        while len(out) < n:  # a pool smaller than the draw: sample again (a prompt may repeat)
            out += [
                _stamp(p, "mopps", self.iteration, draw=draw, sampled_rate=round(r, 4))
                for p, r in self.choose(n - len(out))
            ]
        return out

    def observe(self, batch: StepBatch) -> None:
        self.posteriors.add_batches([batch])


class MoppsCurriculum:
    """MoPPS (arXiv 2507.04632, thu-rllab/MoPPS): Beta posteriors per prompt from the rollouts, Thompson sampling
    towards a target success rate; no extra rollouts."""

    Options = MoppsOptions
    uses_evaluation = False  # the posteriors come from the training rollouts alone

    def __init__(self, options: MoppsOptions) -> None:
        self.options = options
        self.pool = [Prompt(q.id, q.text, q.category, Provenance("mopps", 0, "pool")) for q in load_pool(options.pool)]

    def _selector(self, ctx: CurriculumContext, seed: int) -> MoppsSelector:
        o = self.options
        allowed = set(ctx.categories)
        cands = [p for p in self.pool if p.category in allowed]
        if len(cands) < ctx.budget:
            raise InputError(
                f"arms.{ctx.arm}.pool: {len(cands)} candidates in the experiment's categories, the budget is {ctx.budget}"
            )
        post = BetaPosteriors(
            prior_alpha=o.prior_alpha, prior_beta=o.prior_beta, decay=o.decay, threshold=o.success_threshold
        )
        post.add_batches(ctx.steps)
        return MoppsSelector(
            cands, post, seed=seed, target=o.target, factor=o.candidates_factor, iteration=ctx.iteration
        )

    def prompts(self, ctx: CurriculumContext) -> list[Prompt]:
        """The plan: one MoPPS draw of ``budget`` distinct prompts from the posteriors after earlier iterations."""
        sel = self._selector(ctx, ctx.seed)
        return [_stamp(p, "mopps", ctx.iteration, sampled_rate=round(r, 4)) for p, r in sel.choose(ctx.budget)]

    def selector(self, ctx: CurriculumContext, planned: Sequence[Prompt]) -> MoppsSelector:
        return self._selector(ctx, ctx.seed + 5)
