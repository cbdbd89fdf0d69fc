"""``sws``: Self-aware Weakness-driven problem Synthesis (Liang et al., arXiv 2506.08989, "SwS: Self-aware
Weakness-driven Problem Synthesis in Reinforcement Learning for LLM Reasoning"; code MasterVito/SwS).

SwS's pipeline (``src/extract_concepts.py``, ``concept_sampling.py``, ``problem_generation.py``, ``prompts/``):

1. **Weakness identification**: the problems the policy fails during RL (low pass rate), grouped by category;
   each category's failure ratio.
2. **Concept extraction**: an LLM lists the foundational concepts each failed problem tests.
3. **Budget allocation**: the synthesis budget is split over categories in proportion to their failure ratio.
4. **Problem generation** from the concepts, by the LLM, in the weak category.
5. **Filtering**: SwS keeps problems with a verified answer whose difficulty suits the policy (its accuracy on
   sampled answers is neither 0 nor 1).

Here, through the ``[feedback]`` LLM (the testbed writer, a real LLM in production): the failed problems are the
prompts whose pass rate in this arm's training rollouts (``ctx.steps``, earlier iterations) is below
``fail_threshold`` -- the start policy's failed held-out answers at iteration 1, before any rollout, or the current
held-out answers every iteration with ``weakness_from = "evaluation"``. For every category with failures, one
concept call shows up to ``examples_per_call`` failed problems and asks for ``concepts_per_call`` concepts;
generation calls show the concepts and failed problems and ask for ``questions_per_call`` new problems in that
category, until the category's share of ``budget x candidates_factor`` is met. The difficulty filter samples
``filter_samples`` answers per problem (``ctx.generate``, booked as choosing compute) and keeps first those
answered right sometimes, nearest a 0.5 rate. Every feedback call is choosing compute too. Answers: the testbed's
verifier reads them from the question; elsewhere pair it with a ``solve`` function as the score-based curricula do.

The testbed writer cannot extract concepts (it answers every request with questions in the named category), so
on the testbed step 2 costs tokens without adding information; a real feedback LLM answers it.

State: the failed problems come from ``ctx.steps`` and ``ctx.history`` (earlier iterations' records); nothing is
kept in memory, so a resume writes the same prompts from the same (cached or deterministic) feedback replies.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Sequence

from aopcore import CurriculumContext, InputError, Prompt, Provenance, RuntimeFailure
from aopcore_curricula import templates
from aopcore_curricula.dedup import IncrementalDeduper, normalise_text
from aopcore_curricula.options import SwSOptions
from aopcore_curricula.parsing import parse_questions

CONCEPTS = """As an expert in educational assessment, look at these problems a student failed, all from {venue}:
{examples}
Write {n} foundational concepts these problems test: precise, measurable knowledge points needed to solve them,
not problem-specific tricks. Return them as a numbered list, one per line."""

GENERATE = """You write practice problems for a student who is weak in the domain "{category}" ({venue}).
Problems the student failed:
{examples}
{concepts}Write {n} new problems in the domain "{category}" that test the same concepts, each solvable with a short,
checkable answer, different from the problems above and from each other. Return only the problems as a numbered
list, one per line."""


def _allocate(ratios: dict[str, float], total: int) -> dict[str, int]:
    """``total`` over categories in proportion to ``ratios`` (largest remainder, ties by name)."""
    z = sum(ratios.values())
    exact = {c: total * r / z for c, r in ratios.items()}
    counts = {c: int(x) for c, x in exact.items()}
    for c in sorted(ratios, key=lambda c: (-(exact[c] - counts[c]), c))[: total - sum(counts.values())]:
        counts[c] += 1
    return counts


class SwSCurriculum:
    """SwS (arXiv 2506.08989, MasterVito/SwS): new problems written by the feedback LLM from the concepts of the
    problems the policy failed, allocated over categories by failure ratio, filtered by the policy's accuracy."""

    Options = SwSOptions
    requires = ("feedback",)

    def __init__(self, options: SwSOptions) -> None:
        self.options = options
        # the weakness comes from the held-out answers only at iteration 1 (rollouts after), unless told otherwise
        self.uses_evaluation = True if options.weakness_from == "evaluation" else "first"

    def observe_step(self, batch: object) -> None:
        """A watcher in the per-step channel: training is unchanged, and the rollouts come back as ``ctx.steps``."""

    # ---- 1. weakness identification
    def failed_problems(self, ctx: CurriculumContext) -> tuple[dict[str, list[str]], dict[str, float], str]:
        """Failed problem texts per category, the failure ratio per category, and where they came from."""
        o = self.options
        per_prompt: dict[str, list[float]] = {}  # id -> [successes, trials]
        categories: dict[str, str] = {}
        if o.weakness_from == "rollouts" and ctx.iteration > 1:
            if not ctx.steps:
                raise InputError(
                    f"arms.{ctx.arm}: sws reads the failed problems from the training rollouts, and iteration "
                    f'{ctx.iteration - 1} left none (the trainer takes no per-step stream); set weakness_from = "evaluation"'
                )
            texts = {p.id: p.text for p in ctx.history}
            for b in ctx.steps:
                for g in b.groups:
                    cell = per_prompt.setdefault(g.prompt_id, [0.0, 0.0])
                    cell[0] += sum(1.0 for r in g.rewards if r >= 0.5)
                    cell[1] += len(g.rewards)
                    categories[g.prompt_id] = g.category
            source = "rollouts"
        else:
            texts = {r.question_id: r.question for r in ctx.evaluation}
            for r in ctx.evaluation:
                cell = per_prompt.setdefault(r.question_id, [0.0, 0.0])
                cell[0] += float(r.reward >= 0.5)
                cell[1] += 1
                categories[r.question_id] = r.category
            source = "evaluation"
        failed: dict[str, list[str]] = {}
        tried: dict[str, int] = {}
        for pid, (s, n) in sorted(per_prompt.items()):
            cat = categories[pid]
            if cat not in ctx.categories or pid not in texts:
                continue
            tried[cat] = tried.get(cat, 0) + 1
            if s / n < o.fail_threshold:
                failed.setdefault(cat, []).append(texts[pid])
        ratios = {c: len(failed.get(c, [])) / tried[c] for c in sorted(tried) if failed.get(c)}
        return failed, ratios, source

    # ---- 2-4. concepts, allocation, generation
    def prompts(self, ctx: CurriculumContext) -> list[Prompt]:
        o = self.options
        if ctx.feedback is None:
            raise InputError(f"arms.{ctx.arm}: sws needs a [feedback] LLM")
        rng = random.Random(ctx.seed)
        failed, ratios, source = self.failed_problems(ctx)
        if not ratios:  # nothing failed: every category alike, from whatever problems there are
            raise RuntimeFailure(f"arms.{ctx.arm}: sws found no failed problem in the {source} to synthesise from")
        wanted = math.ceil(ctx.budget * (o.candidates_factor if o.filter_samples else 1.0))
        share = _allocate(ratios, wanted)
        deduper = IncrementalDeduper(
            ctx.embedder, o.max_similarity, [*(p.text for p in ctx.history), *(r.question for r in ctx.evaluation)]
        )
        heldout = {normalise_text(r.question) for r in ctx.evaluation}
        out: list[tuple[str, str, str]] = []  # (text, category, call id)
        calls = 0
        for cat in sorted(share):
            if not share[cat]:
                continue
            venue = templates.venue(cat, o.category_wording)
            examples_pool = failed[cat]
            concepts = ""
            if o.concepts_per_call:
                shown = rng.sample(examples_pool, min(o.examples_per_call, len(examples_pool)))
                reply = ctx.feedback.complete(
                    [CONCEPTS.format(venue=venue, examples=_numbered(shown), n=o.concepts_per_call)]
                )[0]
                calls += 1
                lines = _list_items(reply)
                concepts = ("Concepts they test:\n" + _numbered(lines[: o.concepts_per_call]) + "\n") if lines else ""
            got = 0
            need_calls = math.ceil(share[cat] / o.questions_per_call)
            for k in range(int(need_calls * o.max_calls_factor)):
                if got >= share[cat]:
                    break
                shown = rng.sample(examples_pool, min(o.examples_per_call, len(examples_pool)))
                prompt = GENERATE.format(
                    category=cat, venue=venue, examples=_numbered(shown), concepts=concepts, n=o.questions_per_call
                )
                if k:
                    prompt += f"\nThis is request {k + 1}: write problems different from before."
                reply = ctx.feedback.complete([prompt])[0]
                calls += 1
                items = [it.text for it in parse_questions(reply, list(ctx.categories)).items]
                items = [t for t in items if normalise_text(t) not in heldout]
                for text, ok in zip(items, deduper.accept(items) if items else []):
                    if ok and got < share[cat]:
                        out.append((text, cat, f"sws-i{ctx.iteration:02d}-{cat}-c{k}"))
                        got += 1
        if len(out) < ctx.budget:
            raise RuntimeFailure(
                f"arms.{ctx.arm}: sws wrote {len(out)} usable problems in {calls} feedback calls, the budget is "
                f"{ctx.budget}; raise max_calls_factor or questions_per_call"
            )
        chosen = self._filter(ctx, out)
        return [
            Prompt(
                f"sws-i{ctx.iteration:02d}-{n:05d}",
                text,
                cat,
                Provenance(
                    "sws",
                    ctx.iteration,
                    "generated",
                    feedback_call=call,
                    extra={"weakness_from": source, "failure_ratio": round(ratios[cat], 4), **extra},
                ),
            )
            for n, (text, cat, call, extra) in enumerate(chosen)
        ]

    # ---- 5. difficulty filter
    def _filter(self, ctx: CurriculumContext, out: list[tuple[str, str, str]]) -> list[tuple[str, str, str, dict]]:
        o = self.options
        if not o.filter_samples or ctx.generate is None or ctx.reward is None:
            return [(t, c, call, {}) for t, c, call in out[: ctx.budget]]
        texts = [t for t, _, _ in out for _ in range(o.filter_samples)]
        rewards = ctx.reward.score(texts, ctx.generate(texts, sample=True, seed=ctx.seed))
        rates = [
            sum(1 for r in rewards[k * o.filter_samples : (k + 1) * o.filter_samples] if r >= 0.5) / o.filter_samples
            for k in range(len(out))
        ]
        order = sorted(range(len(out)), key=lambda k: (not 0 < rates[k] < 1, abs(rates[k] - 0.5), k))[: ctx.budget]
        return [(*out[k], {"filter_pass_rate": rates[k]}) for k in sorted(order)]


def _list_items(reply: str | None) -> list[str]:
    """The items of a numbered or bulleted list in a reply (concepts are not questions: no parser of questions)."""
    out = []
    for line in (reply or "").splitlines():
        m = re.match(r"^\s*(?:\d+[.)]|[-*•])\s+(.+?)\s*$", line)
        if m:
            out.append(m.group(1).strip("\"' "))
    return [t for t in out if t]


def _numbered(lines: Sequence[str]) -> str:
    return "\n".join(f"{i}. {t}" for i, t in enumerate(lines, start=1))
