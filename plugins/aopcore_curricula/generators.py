"""Question generation with a FeedbackLLM: from keywords (vanilla) and from scored evaluations (SOP/AOP)."""

from __future__ import annotations

import json
import logging
import math
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aopcore import (
    Embedder,
    EvalRecord,
    FeedbackLLM,
    Prompt,
    Provenance,
    RuntimeFailure,
)
from aopcore_curricula import templates
from aopcore_curricula.dedup import IncrementalDeduper, cluster_dedup, normalise_text
from aopcore_curricula.heldout import HELDOUT_COPY
from aopcore_curricula.options import ScoreBasedOptions, VanillaGenerationOptions
from aopcore_curricula.parsing import parse_questions

log = logging.getLogger("aopcore")


@dataclass
class GenerationLog:
    """What generation cost and what parsing dropped; stored beside the prompts and shown in reports."""

    calls: int = 0
    parsed: int = 0
    accepted: int = 0
    dropped: Counter = field(default_factory=Counter)
    targets: Counter = field(default_factory=Counter)
    inferred_domains: int = 0  # unlabeled questions given the nearest domain

    def as_dict(self) -> dict:
        return {
            "calls": self.calls,
            "parsed": self.parsed,
            "accepted": self.accepted,
            "dropped": dict(self.dropped),
            "targets": dict(self.targets),
            "inferred_domains": self.inferred_domains,
        }


def generate_vanilla_pool(
    feedback: FeedbackLLM,
    embedder: Embedder | None,
    categories: Sequence[str],
    total: int,
    opts: VanillaGenerationOptions,
    seed: int,
    heldout: set[str] | frozenset[str] = frozenset(),
) -> tuple[list[tuple[str, str, str]], GenerationLog]:
    """(text, category, call id) triples: questions per category and keyword, de-duplicated down to ``total``;
    a copy of a held-out question (``heldout``: normalised texts) is dropped (``dropped["held-out question"]``)."""
    gen_log = GenerationLog()
    requests = [(c, k) for c in categories for k in templates.keywords(c, opts.keywords)[: opts.keywords_per_category]]
    seen: set[str] = set()
    candidates: list[tuple[str, str, str]] = []
    for round_no in range(opts.max_rounds):
        prompts = [
            templates.vanilla_prompt(c, k, opts.questions_per_call, opts.prompt_style, opts.category_wording)
            + (f"\nThis is batch {round_no + 1}; write new questions." if round_no else "")
            for c, k in requests
        ]
        responses = feedback.complete(prompts)
        gen_log.calls += len(prompts)
        for (category, _), response, n in zip(requests, responses, range(len(requests))):
            parsed = parse_questions(response, list(categories))
            gen_log.dropped.update(parsed.dropped)
            gen_log.parsed += len(parsed.items)
            for item in parsed.items:
                key = normalise_text(item.text)
                if key in heldout:
                    gen_log.dropped[HELDOUT_COPY] += 1
                    continue
                if key in seen:
                    gen_log.dropped["exact duplicate"] += 1
                    continue
                seen.add(key)
                candidates.append((item.text, category, f"vanilla-r{round_no}-c{n}"))
        if len(candidates) >= total * opts.oversample:
            break
    if len(candidates) < total:
        raise RuntimeFailure(
            f"vanilla generation produced {len(candidates)} usable questions, needs {total} "
            f"(dropped: {dict(gen_log.dropped)}); raise max_rounds or questions_per_call"
        )
    if embedder is not None:
        keep = cluster_dedup(
            np.asarray(embedder.embed([c[0] for c in candidates])),
            total,
            n_clusters=opts.n_clusters,
            pca_components=opts.pca_components,
            seed=seed,
        )
        gen_log.dropped["near duplicate"] += len(candidates) - len(keep)
        candidates = [candidates[i] for i in keep]
    else:
        # without sentence embeddings there is no near-duplicate clustering: the pool is cut to its first questions
        log.warning(
            "vanilla: no embedder, so the pool is not de-duplicated by meaning (the paper's clustering); "
            "%d questions beyond the target are cut, not chosen",
            len(candidates) - total,
        )
        gen_log.dropped["over target (no embedder: truncated)"] += len(candidates) - total
        candidates = candidates[:total]
    gen_log.accepted = len(candidates)
    random.Random(seed).shuffle(candidates)  # mix categories before the pool is split over iterations
    return candidates, gen_log


# calls asked for beyond the yield so far: later calls keep fewer questions (more of theirs are near duplicates)
EXTRA_ROUND_MARGIN = 1.5


def extra_round(kept: int, calls: int, needed: int, widest: int) -> int:
    """Calls in a round after the ``draws``: enough, at the yield of the calls made so far, for the questions still
    missing with a margin, and at most ``widest`` (parallel_calls). A local model decodes a round as one batch, whose
    time grows with its rows, so a round of 16 calls for the last 3 questions cost as much as the draws did."""
    if kept == 0 or calls == 0:
        return widest
    return max(1, min(widest, math.ceil((needed - kept) * calls / kept * EXTRA_ROUND_MARGIN)))


class ScoreBasedGenerator:
    """Shows the feedback LLM (question, answer, domain, score) samples and collects the questions it writes."""

    def __init__(self, opts: ScoreBasedOptions, name: str) -> None:
        self.opts = opts
        self.name = name

    def _draw(self, by_cat: dict[str, list[EvalRecord]], rng: random.Random) -> list[EvalRecord]:
        sample: list[EvalRecord] = []
        for cat in sorted(by_cat):
            recs = by_cat[cat]
            sample.extend(rng.sample(recs, min(self.opts.samples_per_category, len(recs))))
        rng.shuffle(sample)
        return sample

    def _prompt(self, sample: Sequence[EvalRecord], draw: int, categories: Sequence[str]) -> tuple[str, str | None]:
        text, target = self._instructions(sample, draw, categories)
        return (templates.with_answer_request(text) if self.opts.answers == "writer" else text), target

    def _instructions(
        self, sample: Sequence[EvalRecord], draw: int, categories: Sequence[str]
    ) -> tuple[str, str | None]:
        o = self.opts
        text = templates.format_samples(sample, o.max_answer_chars)
        summary = templates.domain_summary(sample)
        if o.targeting == "per-category":
            weak = [c for c, _ in summary[: o.weak_categories]]
            target = weak[draw % len(weak)]
            conv = templates.convention(target)
            if o.prompt_style == "compact":
                return templates.SCORE_BASED_COMPACT.format(
                    examples=templates.compact_examples(sample, target),
                    n=o.questions_per_call,
                    venue=templates.venue(target, o.category_wording),
                    convention=f"{conv} " if conv else "",
                ), target
            return templates.SCORE_BASED_TARGETED.format(
                samples=text,
                target=target,
                n=o.questions_per_call,
                venue=templates.venue(target, o.category_wording),
                convention=f"{conv} " if conv else "",
            ), target
        lines = "\n".join(f"{c}: {m:.3f}" for c, m in summary)
        return templates.SCORE_BASED.format(
            n=o.questions_per_call, samples=text, summary=lines, domains=", ".join(categories)
        ), None

    def generate(
        self,
        evaluation: Sequence[EvalRecord],
        needed: int,
        *,
        feedback: FeedbackLLM,
        embedder: Embedder | None,
        categories: Sequence[str],
        history: Sequence[str],
        iteration: int,
        seed: int,
        solve: Callable[[str], Any] | None = None,
        heldout: Sequence[str] = (),
        stride: int | None = None,
    ) -> tuple[list[Prompt], GenerationLog]:
        """``needed`` prompts; with ``opts.answers == "writer"`` or a ``solve`` each carries ``metadata["answer"]``,
        and a question whose answer cannot be established is dropped (``dropped["no answer"]``). Copies of a
        held-out question (the evaluation's, and ``heldout``: all of them where the evaluation is a part) are
        dropped (``dropped["held-out question"]``).

        ``stride``: rounds after the draws aim at the next multiple of it first, not at ``needed``. SOP writes every
        iteration's prompts at once and passes its per-iteration budget: its calls up to that budget are then the
        ones AOP's first iteration makes (same seed, same rounds), so the two arms' first iterations stay equal."""
        o = self.opts
        rng = random.Random(seed)
        gen_log = GenerationLog()
        by_cat: dict[str, list[EvalRecord]] = {}
        for r in evaluation:
            by_cat.setdefault(r.category, []).append(r)
        if not by_cat:
            raise RuntimeFailure(f"{self.name}: the evaluation is empty; nothing to generate prompts from")
        # never train on a held-out question (small models like to copy the examples they are shown)
        questions = list(dict.fromkeys([*(r.question for r in evaluation), *heldout]))
        deduper = IncrementalDeduper(embedder, o.max_similarity, [*history, *questions])
        heldout_keys = {normalise_text(q) for q in questions}
        want_answers = o.answers == "writer" or solve is not None
        if embedder is None:
            log.warning(
                "%s: no embedder, so questions are de-duplicated by exact text only (max_similarity is unused)%s",
                self.name,
                "; questions without a valid domain are dropped"
                if o.targeting == "llm" and o.unlabeled == "nearest"
                else "",
            )
        cat_vectors = None
        if o.targeting == "llm" and o.unlabeled == "nearest" and embedder is not None:
            descr = [f"{c}: {', '.join(templates.keywords(c, o.keywords))}" for c in categories]
            cat_vectors = np.asarray(embedder.embed(descr), dtype=np.float32)
        out: list[Prompt] = []
        seen_prompts: Counter[str] = Counter()
        max_draws = int(o.draws * o.max_draws_factor)
        draw = 0
        # `draws` calls are always made (in batches of parallel_calls); more only while the budget is not met, in
        # rounds sized from the yield so far
        while draw < max_draws and (draw < o.draws or len(out) < needed):
            batch = []
            if draw < o.draws:
                size = min(o.parallel_calls, o.draws - draw)
            else:
                target = needed if stride is None else min(needed, stride * (len(out) // stride + 1))
                size = min(extra_round(len(out), draw, target, o.parallel_calls), max_draws - draw)
            for _ in range(size):
                sample = self._draw(by_cat, rng)
                prompt, target = self._prompt(sample, draw, categories)
                if seen_prompts[
                    prompt
                ]:  # few held-out questions: draws repeat; ask for new questions, not a cached reply
                    prompt += f"\nThis is request {seen_prompts[prompt] + 1} with these examples: write questions different from before."
                seen_prompts[prompt.split("\nThis is request ")[0]] += 1
                batch.append((draw, sample, prompt, target))
                draw += 1
            responses = feedback.complete([b[2] for b in batch])
            gen_log.calls += len(batch)
            for (d, sample, _, target), response in zip(batch, responses):
                parsed = parse_questions(response, list(categories), answers=o.answers == "writer")
                gen_log.dropped.update(parsed.dropped)
                gen_log.parsed += len(parsed.items)
                items = self._label(parsed.items, target, sample, categories, cat_vectors, embedder, gen_log)
                copied = [normalise_text(t) in heldout_keys for t, _, _ in items]
                gen_log.dropped[HELDOUT_COPY] += sum(copied)
                items = [it for it, c in zip(items, copied) if not c]
                if want_answers:
                    items = self._answered(items, solve, gen_log)
                accepted = deduper.accept([t for t, _, _ in items]) if items else []
                for (text, cat, answer), ok in zip(items, accepted):
                    if not ok:
                        gen_log.dropped["near duplicate"] += 1
                        continue
                    if len(out) >= needed:
                        gen_log.dropped["over budget"] += 1
                        continue
                    gen_log.targets[cat] += 1
                    out.append(
                        Prompt(
                            id=f"{self.name}-i{iteration:02d}-{len(out):05d}",
                            text=text,
                            category=cat,
                            provenance=Provenance(
                                self.name,
                                iteration,
                                "generated",
                                feedback_call=f"{self.name}-i{iteration:02d}-d{d}",
                                draw=d,
                                sample_ids=tuple(r.question_id for r in sample),
                            ),
                            metadata={"answer": answer} if want_answers else {},
                        )
                    )
        gen_log.accepted = len(out)
        if len(out) < needed:
            raise RuntimeFailure(
                f"{self.name}: {draw} feedback calls gave {len(out)} usable questions, iteration needs {needed} "
                f"(dropped: {dict(gen_log.dropped)}); raise draws, questions_per_call or max_draws_factor"
            )
        log.info(
            "%s: %d calls, %d parsed, %d kept; targets %s",
            self.name,
            gen_log.calls,
            gen_log.parsed,
            len(out),
            dict(gen_log.targets),
        )
        return out, gen_log

    @staticmethod
    def _answered(
        items: list[tuple[str, str, str | None]], solve: Callable[[str], Any] | None, gen_log: GenerationLog
    ) -> list[tuple[str, str, str]]:
        """The items whose answer is established: the solver's (when given) or the writer's; the rest counted as dropped."""
        out = []
        for text, cat, answer in items:
            if solve is not None:
                solved = solve(text)
                answer = None if solved is None else str(solved).strip() or None
            if answer is None:
                gen_log.dropped["no answer"] += 1
                continue
            out.append((text, cat, answer))
        return out

    def _label(
        self, items, target, sample, categories, cat_vectors, embedder, gen_log
    ) -> list[tuple[str, str, str | None]]:
        if target is not None:
            return [(it.text, target, it.answer) for it in items]
        labelled = [(it.text, it.category, it.answer) for it in items if it.category]
        missing_items = [it for it in items if not it.category]
        missing = [it.text for it in missing_items]
        if missing and cat_vectors is not None:
            allowed = sorted({r.category for r in sample} & set(categories)) or list(categories)
            idx = [list(categories).index(c) for c in allowed]
            emb = np.asarray(embedder.embed(missing), dtype=np.float32)
            best = (emb @ cat_vectors[idx].T).argmax(axis=1)
            labelled += [(it.text, allowed[b], it.answer) for it, b in zip(missing_items, best)]
            gen_log.inferred_domains += len(missing)
        elif missing:
            gen_log.dropped["no domain"] += len(missing)
        return labelled


def save_json(path, data) -> None:
    from aopcore.storage.store import atomic_write_text

    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
