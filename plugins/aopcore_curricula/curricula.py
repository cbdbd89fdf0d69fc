"""The curricula: vanilla, SOP and AOP (the paper), eva and pool (beyond it).

All use only the public plugin API (``CurriculumContext`` in, ``Prompt`` list out),
exactly as a third-party curriculum would.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np

from aopcore import (
    CurriculumContext,
    InputError,
    Prompt,
    Provenance,
    RuntimeFailure,
    stage_seed,
)
from aopcore.records import read_jsonl, write_jsonl
from aopcore.storage.rundir import curriculum_log_name, curriculum_seed_key
from aopcore_curricula.generators import (
    ScoreBasedGenerator,
    generate_vanilla_pool,
    save_json,
)
from aopcore_curricula.heldout import book, heldout_keys, without_copies
from aopcore_curricula.options import (
    EvaOptions,
    PoolOptions,
    ScoreBasedOptions,
    VanillaGenerationOptions,
    load_pool,
)

BUILTIN_POOL = Path(__file__).parent / "data" / "candidate-pool.jsonl"


def _slice(pool_path: Path, ctx: CurriculumContext) -> list[Prompt]:
    """Iteration i's share of a pool written at iteration 1, stamped with the iteration that uses it."""
    if not pool_path.exists():
        raise RuntimeFailure(f"arms.{ctx.arm}: prompt pool {pool_path} is missing; it is written at iteration 1")
    pool = read_jsonl(pool_path, Prompt)
    start = (ctx.iteration - 1) * ctx.budget
    chosen = pool[start : start + ctx.budget]
    if len(chosen) != ctx.budget:
        raise RuntimeFailure(
            f"arms.{ctx.arm}: pool holds {len(pool)} prompts, iteration {ctx.iteration} needs {start + ctx.budget}"
        )
    return [
        dataclasses.replace(p, provenance=dataclasses.replace(p.provenance, iteration=ctx.iteration))
        if p.provenance
        else p
        for p in chosen
    ]


def _need_feedback(ctx: CurriculumContext):
    if ctx.feedback is None:
        raise InputError(f"arms.{ctx.arm}: this curriculum needs a [feedback] LLM")
    return ctx.feedback


class VanillaCurriculum:
    """Vanilla RLHF: a static pool of synthetic questions from category keywords, split over iterations."""

    Options = VanillaGenerationOptions
    requires = ("feedback",)
    uses_evaluation = False  # its evaluations are report cost, not choosing cost
    needs_iterations = True  # writes one pool of budget x iterations and splits it

    def __init__(self, options: VanillaGenerationOptions) -> None:
        self.options = options

    def prompts(self, ctx: CurriculumContext) -> list[Prompt]:
        pool_path = ctx.workdir / "pool.jsonl"
        if ctx.iteration == 1 or not pool_path.exists():
            seed = stage_seed(ctx.base_seed, "vanilla/pool")
            triples, gen_log = generate_vanilla_pool(
                _need_feedback(ctx),
                ctx.embedder,
                ctx.categories,
                ctx.budget * ctx.iterations,
                self.options,
                seed,
                heldout=heldout_keys(ctx),
            )
            pool = [
                Prompt(f"vanilla-{n:05d}", text, cat, Provenance("vanilla", 0, "generated", feedback_call=call))
                for n, (text, cat, call) in enumerate(triples)
            ]
            write_jsonl(pool_path, pool)
            save_json(ctx.workdir / "pool.log.json", gen_log.as_dict())
        return _slice(pool_path, ctx)


class SOPCurriculum:
    """Starts-On-Policy: score-based prompts written once from the SFT policy's evaluation, split over iterations."""

    Options = ScoreBasedOptions
    requires = ("feedback",)
    uses_evaluation = "first"  # only the SFT policy's
    needs_iterations = True  # writes one pool of budget x iterations from the first evaluation and splits it

    def __init__(self, options: ScoreBasedOptions) -> None:
        self.options = options
        self.generator = ScoreBasedGenerator(options, "sop")

    def prompts(self, ctx: CurriculumContext) -> list[Prompt]:
        pool_path = ctx.workdir / "pool.jsonl"
        if ctx.iteration == 1:
            # same seed as AOP's first iteration: with a deterministic or cached feedback LLM, AOP iteration 1 == SOP iteration 1
            prompts, gen_log = self.generator.generate(
                ctx.evaluation,
                ctx.budget * ctx.iterations,
                feedback=_need_feedback(ctx),
                embedder=ctx.embedder,
                categories=ctx.categories,
                history=[],
                iteration=1,
                seed=stage_seed(ctx.base_seed, curriculum_seed_key("score-based", 1)),
                solve=ctx.solve,
                heldout=ctx.heldout,
                stride=ctx.budget,  # its rounds up to one iteration's budget are AOP's first iteration's
            )
            write_jsonl(pool_path, prompts)
            save_json(ctx.workdir / "pool.log.json", gen_log.as_dict())
        return _slice(pool_path, ctx)


class AOPCurriculum:
    """Always-On-Policy: prompts rewritten every iteration from the current policy's evaluation (the paper's method)."""

    Options = ScoreBasedOptions
    requires = ("feedback",)

    def __init__(self, options: ScoreBasedOptions) -> None:
        self.options = options
        self.generator = ScoreBasedGenerator(options, "aop")

    def prompts(self, ctx: CurriculumContext) -> list[Prompt]:
        prompts, gen_log = self.generator.generate(
            ctx.evaluation,
            ctx.budget,
            feedback=_need_feedback(ctx),
            embedder=ctx.embedder,
            categories=ctx.categories,
            history=[p.text for p in ctx.history],
            iteration=ctx.iteration,
            seed=stage_seed(ctx.base_seed, curriculum_seed_key("score-based", ctx.iteration)),
            solve=ctx.solve,
            heldout=ctx.heldout,
        )
        save_json(ctx.workdir / curriculum_log_name(ctx.iteration), gen_log.as_dict())
        if ctx.iteration == 1:
            # identical ids to SOP's first slice, so the equality of the two arms at iteration 1 is visible
            prompts = [
                dataclasses.replace(
                    p,
                    id=p.id.replace("aop-", "sop-", 1),
                    provenance=dataclasses.replace(p.provenance, curriculum="aop"),
                )
                for p in prompts
            ]
        return prompts


class EvaCurriculum:
    """eva-style (Evolving Alignment via Asymmetric Self-Play): keep the candidates whose sampled answers differ most in reward."""

    Options = EvaOptions
    requires = ("feedback",)

    def __init__(self, options: EvaOptions) -> None:
        self.options = options
        self.generator = ScoreBasedGenerator(options, "eva")

    def prompts(self, ctx: CurriculumContext) -> list[Prompt]:
        o = self.options
        if ctx.generate is None or ctx.reward is None:
            raise InputError(f"arms.{ctx.arm}: eva needs the policy (generate) and the reward model in its context")
        n_candidates = math.ceil(ctx.budget * o.candidates_factor)
        candidates, gen_log = self.generator.generate(
            ctx.evaluation,
            n_candidates,
            feedback=_need_feedback(ctx),
            embedder=ctx.embedder,
            categories=ctx.categories,
            history=[p.text for p in ctx.history],
            iteration=ctx.iteration,
            seed=ctx.seed,
            solve=ctx.solve,
            heldout=ctx.heldout,
        )
        texts = [c.text for c in candidates for _ in range(o.samples_per_prompt)]
        answers = ctx.generate(texts, sample=True, seed=ctx.seed)
        rewards = np.asarray(ctx.reward.score(texts, answers), dtype=np.float64).reshape(
            len(candidates), o.samples_per_prompt
        )
        info = rewards.max(axis=1) - rewards.min(axis=1) if o.selection == "reward_gap" else rewards.std(axis=1)
        order = sorted(range(len(candidates)), key=lambda i: (-info[i], i))[: ctx.budget]
        save_json(
            ctx.workdir / curriculum_log_name(ctx.iteration),
            {
                **gen_log.as_dict(),
                "informativeness": {c.id: round(float(v), 6) for c, v in zip(candidates, info)},
                "selected": [candidates[i].id for i in sorted(order)],
            },
        )
        return [candidates[i] for i in sorted(order)]


class PoolCurriculum:
    """No feedback LLM: pick pool prompts in weak categories that resemble questions the policy already answers well."""

    Options = PoolOptions
    requires = ("embedder",)

    def __init__(self, options: PoolOptions) -> None:
        self.options = options
        self.pool = load_pool(options.pool)

    def prompts(self, ctx: CurriculumContext) -> list[Prompt]:
        o = self.options
        if ctx.embedder is None:
            raise InputError(f"arms.{ctx.arm}: the pool curriculum needs an [embedder]")
        used = {p.id for p in ctx.history}
        allowed = set(ctx.categories)
        # a pool prompt that repeats a held-out question is never trained on (it would leak the evaluation)
        free, copies = without_copies(
            [q for q in self.pool if q.id not in used and q.category in allowed], heldout_keys(ctx)
        )
        book(ctx, copies, candidates=len(free))
        if len(free) < ctx.budget:
            raise RuntimeFailure(
                f"arms.{ctx.arm}: pool has {len(free)} unused prompts in the experiment's categories, needs {ctx.budget}"
                + (f" ({copies} held-out questions left out)" if copies else "")
            )
        by_cat: dict[str, list[float]] = {}
        for r in ctx.evaluation:
            by_cat.setdefault(r.category, []).append(r.reward)
        mean = {c: sum(v) / len(v) for c, v in by_cat.items()}
        floor = min(mean.values(), default=0.0)
        log_weight = {c: -(m - floor) / o.temperature for c, m in mean.items()}
        ranked = sorted(ctx.evaluation, key=lambda r: -r.reward)
        top = ranked[: max(1, int(len(ranked) * o.top_fraction))]
        ref = np.asarray(ctx.embedder.embed([r.question for r in top]), dtype=np.float32)
        emb = np.asarray(ctx.embedder.embed([q.text for q in free]), dtype=np.float32)
        similarity = (emb @ ref.T).mean(axis=1)
        rng = np.random.default_rng(ctx.seed)
        # Gumbel top-k: a weighted sample without replacement
        scores = (
            np.array([log_weight.get(q.category, 0.0) for q in free])
            + o.similarity_weight * similarity
            + rng.gumbel(size=len(free))
        )
        chosen = np.argsort(-scores, kind="stable")[: ctx.budget]
        return [
            Prompt(free[i].id, free[i].text, free[i].category, Provenance("pool", ctx.iteration, "pool"))
            for i in sorted(chosen)
        ]
