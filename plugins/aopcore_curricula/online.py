"""Online curricula: choose every training step's prompts from the rollouts themselves (the per-step channel).

- ``learnability`` samples prompts with weight p(1 - p) of their pass rate (arXiv 2502.12272), over a candidate
  pool or an inner curriculum's generated candidates;
- ``dynamic-filter`` wraps any curriculum: drops groups whose completions all got the same reward (DAPO's dynamic
  sampling) and, for one-completion groups (PPO), skips prompts predicted from their history to give no signal
  (GRESO, arXiv 2506.02177);
- ``category-bandit`` is SEC (arXiv 2505.14970): a softmax bandit over categories, rewarded by the mean absolute
  advantage of each category's rollouts.

Each also plans a whole iteration with :meth:`prompts` (what a trainer without the channel trains on, and the
``planned`` argument of :meth:`selector`). Pass rates and bandit values are rebuilt from ``ctx.steps`` (earlier
iterations' rollouts) every iteration, so nothing is kept in memory across a resume. All randomness comes from
``ctx.seed``: a replayed stream draws the same prompts.

Budget: a selector draws exactly what the trainer asks for, so an online arm trains the same steps and episodes as
a static one. Rollouts the filter drops are booked by the stream as choosing compute (``dropped_rollouts``,
``dropped_tokens``); predicted skips cost no rollout and are counted (``predicted_skips``).
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Iterable, Sequence
from typing import Any

from aopcore import CurriculumContext, InputError, Prompt, Provenance
from aopcore.ledger import record_usage
from aopcore.steps import PlannedSelector, RolloutGroup, StepBatch, is_online
from aopcore_curricula.heldout import book, heldout_keys, without_copies
from aopcore_curricula.options import (
    CategoryBanditOptions,
    DynamicFilterOptions,
    LearnabilityOptions,
    load_pool,
)

PLANNED_BLOCKS = 64  # a wrapped static curriculum's planned order: this many shuffled passes before it repeats

# ---------------------------------------------------------------------------- pass rates


class PassRates:
    """Per-prompt and per-category pass rates from observed rollouts, with a prior for unseen prompts.

    A prompt's rate is ``(successes + k * prior) / (trials + k)`` where ``prior`` is its category's rate (itself
    shrunk towards ``base``, e.g. the category's held-out accuracy) and ``k`` the prior's strength in pseudo-trials.
    """

    def __init__(
        self, *, threshold: float, strength: float, base: dict[str, float] | None = None, default: float = 0.5
    ) -> None:
        self.threshold = threshold
        self.strength = strength
        self.base = dict(base or {})
        self.default = default
        self.prompt: dict[str, list[float]] = {}  # id -> [successes, trials]
        self.category: dict[str, list[float]] = {}
        self.recent: dict[str, list[float]] = {}  # id -> rewards in order (for zero-variance prediction)

    def add(self, group: RolloutGroup) -> None:
        self.add_counts(
            group.prompt_id, group.category, sum(1.0 for r in group.rewards if r >= self.threshold), len(group.rewards)
        )
        self.recent.setdefault(group.prompt_id, []).extend(group.rewards)

    def add_counts(self, prompt_id: str, category: str, successes: float, trials: float) -> None:
        """Successes out of trials for a prompt (and its category) seen some other way, e.g. measured by sampling."""
        for table, key in ((self.prompt, prompt_id), (self.category, category)):
            cell = table.setdefault(key, [0.0, 0.0])
            cell[0] += successes
            cell[1] += trials

    def add_batches(self, batches: Iterable[StepBatch]) -> None:
        for b in batches:
            for g in b.groups:
                self.add(g)

    def category_rate(self, category: str) -> float:
        base = self.base.get(category, self.default)
        s, n = self.category.get(category, (0.0, 0.0))
        return (s + self.strength * base) / (n + self.strength)

    def rate(self, prompt_id: str, category: str) -> float:
        prior = self.category_rate(category)
        s, n = self.prompt.get(prompt_id, (0.0, 0.0))
        return (s + self.strength * prior) / (n + self.strength)


def _evaluation_base(ctx: CurriculumContext) -> dict[str, float]:
    """Held-out accuracy per category: the prior for prompts no rollout has shown yet."""
    by: dict[str, list[float]] = {}
    for r in ctx.evaluation:
        by.setdefault(r.category, []).append(float(r.reward))
    return {c: sum(v) / len(v) for c, v in by.items()}


def _weighted_sample(rng: random.Random, items: Sequence[Any], weights: Sequence[float], n: int) -> list[Any]:
    """``n`` distinct items (fewer if there are fewer), weighted, without replacement (Gumbel top-k)."""
    keys = []
    for _k, w in enumerate(weights):
        u = rng.random()
        keys.append((math.log(w) - math.log(-math.log(u or 1e-300))) if w > 0 else -math.inf)
    order = sorted(range(len(items)), key=lambda k: -keys[k])
    return [items[k] for k in order[:n]]


def _stamp(p: Prompt, curriculum: str, iteration: int, **extra: Any) -> Prompt:
    base = p.provenance
    prov = Provenance(
        curriculum,
        iteration,
        base.source if base else "pool",
        base.feedback_call if base else None,
        base.draw if base else None,
        base.sample_ids if base else (),
        {**(base.extra if base else {}), **extra},
    )
    return Prompt(p.id, p.text, p.category, prov, dict(p.metadata))


class _Candidates:
    """Where an online curriculum's candidates come from: a pool (data spec), or an inner curriculum asked for more."""

    def __init__(self, pool: str | None, inner: tuple[str, dict[str, Any]] | None, factor: float, name: str) -> None:
        self.name = name
        self.pool = (
            [Prompt(q.id, q.text, q.category, Provenance(name, 0, "pool")) for q in load_pool(pool)] if pool else None
        )
        self.inner = _build_curriculum(*inner) if inner else None
        self.factor = factor
        self.requires = tuple(getattr(self.inner, "requires", ())) if self.inner is not None else ()

    def get(self, ctx: CurriculumContext, *, booked: bool = False) -> list[Prompt]:
        """The candidates; a pool's copies of held-out questions left out (and, when ``booked``, counted in the
        iteration's generation log; an inner curriculum drops and counts its own)."""
        if self.pool is not None:
            allowed = set(ctx.categories)
            out, copies = without_copies([p for p in self.pool if p.category in allowed], heldout_keys(ctx))
            if booked:
                book(ctx, copies, candidates=len(out))
            if not out:
                raise InputError(
                    f"arms.{ctx.arm}.pool: no candidate in the experiment's categories {ctx.categories}"
                    + (f" that is not a held-out question ({copies} left out)" if copies else "")
                )
            return out
        n = max(ctx.budget, int(round(ctx.budget * self.factor)))
        return list(self.inner.prompts(dataclasses.replace(ctx, budget=n)))


def _build_curriculum(name: str, options: dict[str, Any]) -> Any:
    from aopcore.registry import load_registry

    impl = load_registry().get("curriculum", name)
    try:
        return impl.build(options)
    except Exception as exc:  # pydantic ValidationError: name the nested field
        if type(exc).__name__ == "ValidationError":
            raise InputError(
                f"options of the wrapped curriculum {name!r}: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}"
            ) from None
        raise


# ---------------------------------------------------------------------------- learnability


class LearnabilitySelector:
    """Draws distinct prompts per draw with weight p(1 - p) (+ ``explore`` times the mean weight, so none starves)."""

    def __init__(
        self, candidates: Sequence[Prompt], rates: PassRates, *, seed: int, explore: float, name: str, iteration: int
    ) -> None:
        self.candidates = list(candidates)
        self.rates = rates
        self.rng = random.Random(seed)
        self.explore = explore
        self.name, self.iteration = name, iteration

    def weights(self) -> list[float]:
        w = [(p := self.rates.rate(c.id, c.category)) * (1.0 - p) for c in self.candidates]
        floor = self.explore * (sum(w) / len(w) if w else 0.0) + 1e-9
        return [x + floor for x in w]

    def draw(self, n: int, draw: int) -> list[Prompt]:
        w = self.weights()
        out: list[Prompt] = []
        while len(out) < n:  # more than the candidates: draw again (a prompt may repeat across rounds)
            out += _weighted_sample(self.rng, self.candidates, w, n - len(out))
        return [_stamp(p, self.name, self.iteration, draw=draw) for p in out]

    def observe(self, batch: StepBatch) -> None:
        self.rates.add_batches([batch])


class LearnabilityCurriculum:
    """Learnability sampling: prompts whose pass rate is near 1/2 teach the most (weight p(1 - p))."""

    Options = LearnabilityOptions
    uses_evaluation = True  # held-out accuracy per category is the prior for unseen prompts

    def __init__(self, options: LearnabilityOptions) -> None:
        self.options = options
        inner = (options.generate_with, dict(options.generate_options)) if options.generate_with else None
        self.source = _Candidates(None if inner else options.pool, inner, options.candidates_factor, "learnability")
        self.requires = self.source.requires

    def _rates(self, ctx: CurriculumContext) -> PassRates:
        o = self.options
        rates = PassRates(threshold=o.success_threshold, strength=o.prior_strength, base=_evaluation_base(ctx))
        rates.add_batches(ctx.steps)
        return rates

    def _candidates(self, ctx: CurriculumContext, *, booked: bool = False) -> list[Prompt]:
        cands = self.source.get(ctx, booked=booked)
        if len(cands) < ctx.budget:
            raise InputError(
                f"arms.{ctx.arm}: {len(cands)} candidates in the experiment's categories, the budget is {ctx.budget}"
            )
        return cands

    def prompts(self, ctx: CurriculumContext) -> list[Prompt]:
        """The plan: ``budget`` distinct candidates sampled by learnability from what earlier iterations showed."""
        sel = LearnabilitySelector(
            self._candidates(ctx, booked=True),
            self._rates(ctx),
            seed=ctx.seed,
            explore=self.options.explore,
            name="learnability",
            iteration=ctx.iteration,
        )
        chosen = _weighted_sample(sel.rng, sel.candidates, sel.weights(), ctx.budget)
        return [_stamp(p, "learnability", ctx.iteration) for p in chosen]

    def selector(self, ctx: CurriculumContext, planned: Sequence[Prompt]) -> LearnabilitySelector:
        cands = self._candidates(ctx) if self.options.draw_from == "candidates" else list(planned)
        return LearnabilitySelector(
            cands,
            self._rates(ctx),
            seed=ctx.seed + 1,
            explore=self.options.explore,
            name="learnability",
            iteration=ctx.iteration,
        )


# ---------------------------------------------------------------------------- dynamic filter


class DynamicFilterSelector:
    """Wraps a selector: drops zero-variance groups (group size >= 2) and skips prompts predicted to give none.

    Extra generation is capped: a group is dropped only while the groups dropped so far stay below
    ``max_extra_fraction`` of all groups reported, and a draw skips at most ``max_extra_fraction`` of its size
    (so a draw always ends, and at most that share of generation is spent only to choose).
    """

    def __init__(
        self,
        inner: Any,
        rates: PassRates,
        *,
        seed: int,
        window: int,
        skip_probability: float,
        max_extra_fraction: float,
    ) -> None:
        self.inner = inner
        self.rates = rates
        self.rng = random.Random(seed)
        self.window, self.skip_probability = window, skip_probability
        self.max_extra_fraction = max_extra_fraction
        self.dropped = 0  # groups dropped this iteration
        self.seen = 0  # groups reported this iteration
        self.skips = 0

    def predicted_zero_variance(self, prompt_id: str) -> bool:
        last = self.rates.recent.get(prompt_id, [])[-self.window :]
        return len(last) >= self.window and max(last) == min(last)

    def draw(self, n: int, draw: int) -> list[Prompt]:
        out: list[Prompt] = []
        skipped, max_skips = 0, int(self.max_extra_fraction * n)
        while len(out) < n:
            for p in self.inner.draw(n - len(out), draw):
                if (
                    skipped < max_skips
                    and self.predicted_zero_variance(p.id)
                    and self.rng.random() < self.skip_probability
                ):
                    skipped += 1
                    continue
                out.append(p)
        self.skips += skipped
        if skipped:
            record_usage(predicted_skips=skipped)
        return out

    def keep(self, group: RolloutGroup) -> bool:
        self.seen += 1
        if len(group.rewards) < 2 or not group.zero_variance or self.dropped + 1 > self.max_extra_fraction * self.seen:
            return True
        self.dropped += 1
        return False

    def observe(self, batch: StepBatch) -> None:
        self.rates.add_batches([batch])
        self.inner.observe(batch)


class DynamicFilterCurriculum:
    """Dynamic sampling around any curriculum: the inner one chooses, the filter drops what cannot teach."""

    Options = DynamicFilterOptions

    def __init__(self, options: DynamicFilterOptions) -> None:
        self.options = options
        self.inner = _build_curriculum(options.wrap, dict(options.wrap_options))
        self.requires = tuple(getattr(self.inner, "requires", ()))
        self.uses_evaluation = getattr(self.inner, "uses_evaluation", True)
        self.needs_iterations = bool(getattr(self.inner, "needs_iterations", False))

    def prompts(self, ctx: CurriculumContext) -> list[Prompt]:
        return list(self.inner.prompts(ctx))

    def selector(self, ctx: CurriculumContext, planned: Sequence[Prompt]) -> DynamicFilterSelector:
        o = self.options
        if is_online(self.inner):
            inner = self.inner.selector(ctx, planned)
        else:  # the planned prompts, each block of len(planned) draws reshuffled (what a static arm's passes do)
            inner = PlannedSelector(
                planned, passes=PLANNED_BLOCKS, seed=ctx.seed, watch=getattr(self.inner, "observe_step", None)
            )
        rates = PassRates(threshold=o.success_threshold, strength=1.0)
        rates.add_batches(ctx.steps)
        return DynamicFilterSelector(
            inner,
            rates,
            seed=ctx.seed + 2,
            window=o.window,
            skip_probability=o.skip_probability,
            max_extra_fraction=o.max_extra_fraction,
        )


# ---------------------------------------------------------------------------- category bandit (SEC)


class CategoryBanditSelector:
    """SEC: a category per prompt from softmax(Q / temperature); Q <- (1 - rate) Q + rate * mean |advantage|.

    A group's advantage is each reward minus the group's mean (groups of two or more), or, for one-completion
    groups, minus the prompt's pass-rate estimate before this rollout. Within a category prompts are dealt from
    a shuffled deck, least-used first.
    """

    def __init__(
        self,
        candidates: Sequence[Prompt],
        *,
        seed: int,
        temperature: float,
        rate: float,
        name: str,
        iteration: int,
        history: Iterable[StepBatch] = (),
    ) -> None:
        self.rng = random.Random(seed)
        self.by_cat: dict[str, list[Prompt]] = {}
        for p in candidates:
            self.by_cat.setdefault(p.category, []).append(p)
        self.cats = sorted(self.by_cat)
        self.decks: dict[str, list[Prompt]] = {c: [] for c in self.cats}
        self.q = {c: 0.0 for c in self.cats}
        self.temperature, self.rate = temperature, rate
        self.rates = PassRates(threshold=0.5, strength=1.0)
        self.name, self.iteration = name, iteration
        for b in history:
            self.observe(b)

    def probabilities(self) -> dict[str, float]:
        top = max(self.q.values())
        e = {c: math.exp((v - top) / self.temperature) for c, v in self.q.items()}
        z = sum(e.values())
        return {c: v / z for c, v in e.items()}

    def _deal(self, cat: str) -> Prompt:
        if not self.decks[cat]:
            deck = list(self.by_cat[cat])
            self.rng.shuffle(deck)
            self.decks[cat] = deck
        return self.decks[cat].pop()

    def draw(self, n: int, draw: int) -> list[Prompt]:
        probs = self.probabilities()
        cats = self.rng.choices(self.cats, weights=[probs[c] for c in self.cats], k=n)
        return [_stamp(self._deal(c), self.name, self.iteration, draw=draw, bandit_q=round(self.q[c], 4)) for c in cats]

    def observe(self, batch: StepBatch) -> None:
        per_cat: dict[str, list[float]] = {}
        for g in batch.groups:
            if len(g.rewards) >= 2:
                adv = [abs(r - g.mean) for r in g.rewards]
            else:
                adv = [abs(r - self.rates.rate(g.prompt_id, g.category)) for r in g.rewards]
            per_cat.setdefault(g.category, []).extend(adv)
            self.rates.add(g)
        for c, adv in per_cat.items():
            if c in self.q:
                self.q[c] = (1 - self.rate) * self.q[c] + self.rate * (sum(adv) / len(adv))


class CategoryBanditCurriculum:
    """SEC-style self-evolving curriculum: categories whose rollouts have large |advantage| get more prompts."""

    Options = CategoryBanditOptions
    uses_evaluation = False  # Q-values come from the rollouts alone

    def __init__(self, options: CategoryBanditOptions) -> None:
        self.options = options
        self.pool = [
            Prompt(q.id, q.text, q.category, Provenance("category-bandit", 0, "pool")) for q in load_pool(options.pool)
        ]

    def _selector(self, ctx: CurriculumContext, seed: int, *, booked: bool = False) -> CategoryBanditSelector:
        allowed = set(ctx.categories)
        cands, copies = without_copies([p for p in self.pool if p.category in allowed], heldout_keys(ctx))
        if booked:
            book(ctx, copies, candidates=len(cands))
        if len(cands) < ctx.budget:
            raise InputError(
                f"arms.{ctx.arm}.pool: {len(cands)} candidates in the experiment's categories, the budget is {ctx.budget}"
            )
        return CategoryBanditSelector(
            cands,
            seed=seed,
            temperature=self.options.temperature,
            rate=self.options.learning_rate,
            name="category-bandit",
            iteration=ctx.iteration,
            history=ctx.steps,
        )

    def prompts(self, ctx: CurriculumContext) -> list[Prompt]:
        """The plan: ``budget`` distinct prompts from the bandit's category probabilities after earlier iterations."""
        sel = self._selector(ctx, ctx.seed, booked=True)
        out: dict[str, Prompt] = {}
        for _ in range(50 * ctx.budget):
            if len(out) == ctx.budget:
                break
            p = sel.draw(1, 0)[0]
            out.setdefault(p.id, p)
        if len(out) < ctx.budget:  # a category ran dry: fill from the rest, in pool order
            for c in sel.cats:
                for p in sel.by_cat[c]:
                    if len(out) < ctx.budget and p.id not in out:
                        out[p.id] = _stamp(p, "category-bandit", ctx.iteration)
        return list(out.values())

    def selector(self, ctx: CurriculumContext, planned: Sequence[Prompt]) -> CategoryBanditSelector:
        return self._selector(ctx, ctx.seed + 3)
