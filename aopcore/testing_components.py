"""Contract checks for the components other than curricula: reward model, judge, feedback LLM, embedder, trainer.

Part of :mod:`aopcore.testing` (import them from there); kept apart so each module has one job.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from aopcore.records import JudgeItem, Prompt, TrainStats, Verdict


def _name(component: Any) -> str:
    return type(component).__name__


def _fail(message: str) -> None:
    raise AssertionError(message)


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-5)


DEFAULT_PAIRS: list[tuple[str, str]] = [
    ("How do I keep bread from going stale?", "Store it in a paper bag at room temperature, or freeze slices."),
    ("How do I keep bread from going stale?", ""),
    ("Why is the sky blue?", "Rayleigh scattering: shorter wavelengths scatter more. ünïcödé ✓"),
    ("Can my landlord keep my deposit?", "no. " * 60),
    ("Explain like I'm five: what is a virus?", "A tiny thing that makes copies of itself inside cells."),
]


def check_reward_model(model: Any, pairs: Sequence[tuple[str, str]] | None = None) -> list[float]:
    """Check the :class:`~aopcore.protocols.RewardModel` contract: one finite float per pair, deterministic.

    Scores ``pairs`` (default: a few varied pairs, including an empty and a long response) and
    checks: a list of one finite real number per pair; the same scores on a second call, in
    reversed order and one pair at a time (a score must not depend on its batch); an empty
    batch gives an empty list.

    Returns:
        The scores of ``pairs``.
    """
    pairs = list(pairs or DEFAULT_PAIRS)
    name = _name(model)
    prompts, responses = [p for p, _ in pairs], [r for _, r in pairs]
    scores = model.score(prompts, responses)
    if not isinstance(scores, (list, tuple)) and not hasattr(scores, "__len__"):
        _fail(f"{name}.score returned {type(scores).__name__}; return a list of floats")
    scores = list(scores)
    if len(scores) != len(pairs):
        _fail(f"{name}.score returned {len(scores)} scores for {len(pairs)} (prompt, response) pairs")
    for k, s in enumerate(scores):
        if isinstance(s, bool) or not isinstance(s, numbers.Real) or not math.isfinite(float(s)):
            _fail(f"{name}.score: score {k} is {s!r}; each score must be a finite float")
    scores = [float(s) for s in scores]
    again = [float(s) for s in model.score(prompts, responses)]
    if not all(map(_close, scores, again)):
        _fail(f"{name}.score is not deterministic: {scores} then {again}")
    rev = [float(s) for s in model.score(prompts[::-1], responses[::-1])][::-1]
    if not all(map(_close, scores, rev)):
        _fail(f"{name}.score depends on the order of the batch: {scores} vs reversed {rev}")
    single = [float(model.score([p], [r])[0]) for p, r in pairs]
    if not all(map(_close, scores, single)):
        _fail(f"{name}.score depends on the batch: {scores} batched vs {single} one at a time")
    if list(model.score([], [])) != []:
        _fail(f"{name}.score of an empty batch must be an empty list")
    return scores


DEFAULT_ITEMS: list[JudgeItem] = [
    JudgeItem("j1", "How do I keep bread from going stale?", "Freeze slices; toast them from frozen.", "no."),
    JudgeItem("j2", "Why is the sky blue?", "Because.", "Sunlight scatters off air molecules; blue scatters most."),
    JudgeItem(
        "j3",
        "What is a virus?",
        "A tiny thing that copies itself inside cells.",
        "A tiny thing that copies itself inside cells.",
    ),
]


def check_judge(
    judge: Any, items: Sequence[JudgeItem] | None = None, *, allow_all_unusable: bool = False
) -> list[Verdict]:
    """Check the :class:`~aopcore.protocols.Judge` contract: one valid verdict per item, in order.

    Each result must be a :class:`~aopcore.records.Verdict` whose ``item_id`` is its item's id
    and whose ``choice`` is ``"A"``, ``"B"``, ``"C"`` or None; not every choice may be None
    (a judge that can never decide is broken) unless ``allow_all_unusable``; ``judge([])`` must be ``[]``.

    Without ``items`` it judges ``aopcore.testing.DEFAULT_ITEMS``, three :class:`~aopcore.records.JudgeItem`
    objects: ``j1`` (a helpful answer as A, ``"no."`` as B), ``j2`` (``"Because."`` as A, an explanation as
    B: the better answer is B here) and ``j3`` (the same answer twice: a tie, ``"C"``, is the sensible
    verdict). The check asserts the contract, not which answer wins: assert the choices your judge
    should make in your own tests. Pass your own items when your judge needs particular questions
    (a verifier, a domain), and ``bind`` a judge that uses other components before calling this.

    Returns:
        The verdicts.
    """
    items = list(items or DEFAULT_ITEMS)
    name = _name(judge)
    verdicts = list(judge.judge(items))
    if len(verdicts) != len(items):
        _fail(f"{name}.judge returned {len(verdicts)} verdicts for {len(items)} items")
    for item, v in zip(items, verdicts):
        if not isinstance(v, Verdict):
            _fail(f"{name}.judge: item {item.id!r}: got {type(v).__name__}; return aopcore.Verdict")
        if v.item_id != item.id:
            _fail(
                f"{name}.judge: verdict for item {item.id!r} has item_id {v.item_id!r}; keep the items' order and ids"
            )
        if v.choice not in ("A", "B", "C", None):
            _fail(f"{name}.judge: item {item.id!r}: choice {v.choice!r} is not 'A', 'B', 'C' (tie) or None (unusable)")
    if not allow_all_unusable and items and all(v.choice is None for v in verdicts):
        _fail(f"{name}.judge: every verdict is None (unusable); a judge must decide at least sometimes")
    if list(judge.judge([])) != []:
        _fail(f"{name}.judge of no items must be an empty list")
    return verdicts


def check_feedback_llm(llm: Any, prompts: Sequence[str] | None = None) -> list[str]:
    """Check the :class:`~aopcore.protocols.FeedbackLLM` contract: one string per prompt, in order.

    ``""`` is allowed (a failed or blocked call), None is not; an empty batch gives an empty list.

    Returns:
        The completions.
    """
    prompts = list(prompts or ["Write 3 questions about baking, one per line.", "Say hello.", ""])
    name = _name(llm)
    out = list(llm.complete(prompts))
    if len(out) != len(prompts):
        _fail(f"{name}.complete returned {len(out)} completions for {len(prompts)} prompts")
    for k, text in enumerate(out):
        if not isinstance(text, str):
            _fail(f'{name}.complete: completion {k} is {type(text).__name__}; return str ("" for a failed call)')
    if list(llm.complete([])) != []:
        _fail(f"{name}.complete of no prompts must be an empty list")
    return out


def check_embedder(embedder: Any, texts: Sequence[str] | None = None) -> list[list[float]]:
    """Check the :class:`~aopcore.protocols.Embedder` contract: a (len(texts), dim) array of finite floats.

    Also checks the same text embeds the same way twice and alone vs in a batch.

    Returns:
        The embeddings as nested lists.
    """
    texts = list(texts or ["How do I bake bread?", "Why is the sky blue?", "ünïcödé ✓", ""])
    name = _name(embedder)

    def rows(batch: Sequence[str]) -> list[list[float]]:
        raw = embedder.embed(list(batch))
        data = raw.tolist() if hasattr(raw, "tolist") else [list(r) for r in raw]
        if len(data) != len(batch):
            _fail(f"{name}.embed returned {len(data)} rows for {len(batch)} texts")
        return [[float(x) for x in r] for r in data]

    vectors = rows(texts)
    dims = {len(r) for r in vectors}
    if len(dims) != 1 or 0 in dims:
        _fail(f"{name}.embed: rows have lengths {sorted(dims)}; every row needs the same dimension > 0")
    if not all(math.isfinite(x) for r in vectors for x in r):
        _fail(f"{name}.embed returned a non-finite value")
    for k, t in enumerate(texts):
        alone = rows([t])[0]
        if not all(map(_close, vectors[k], alone)):
            _fail(f"{name}.embed: text {k} embeds differently alone than in a batch (or not deterministically)")
    return vectors


class FakeReward:
    """A deterministic :class:`~aopcore.protocols.RewardModel` whose scores the test controls.

    Args:
        fn: ``(prompt, response) -> float``. Default: response length in words / 10, so
            longer answers score higher (what a sampled-answer curriculum can exploit).
        by_category: category -> base score, added where the prompt mentions the category
            (matches :func:`make_evaluation`'s texts): lets a test make some categories weak.

    ``pairs`` records every scored (prompt, response).
    """

    def __init__(
        self, fn: Callable[[str, str], float] | None = None, *, by_category: Mapping[str, float] | None = None
    ) -> None:
        self.fn = fn or (lambda prompt, response: len(response.split()) / 10)
        self.by_category = dict(by_category or {})
        self.pairs: list[tuple[str, str]] = []

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
        out = []
        for p, r in zip(prompts, responses):
            self.pairs.append((p, r))
            base = next((v for c, v in self.by_category.items() if c in p), 0.0)
            out.append(float(base + self.fn(p, r)))
        return out


def check_trainer(
    trainer: Any, workdir: Path | str, *, prompts: Sequence[Prompt] | None = None, reward: Any = None, passes: int = 1
) -> TrainStats:
    """Check the :class:`~aopcore.protocols.PolicyTrainer` contract on a small job.

    Writes policy_0 into an empty folder, answers prompts with it (one string each, the same
    answers for the same seed with ``sample=False``), trains one round against ``reward``
    (default :class:`FakeReward`) into an empty ``out`` folder, and checks the result is a
    :class:`~aopcore.records.TrainStats`, that ``out`` is not empty and that the new policy answers.

    Returns:
        The training stats.
    """
    root = Path(workdir)
    name = _name(trainer)
    prompts = list(prompts or [Prompt(f"p{k}", t, "general") for k, (t, _) in enumerate(DEFAULT_PAIRS[:4])])
    texts = [p.text for p in prompts]
    policy0 = root / "policy-0"
    policy0.mkdir(parents=True, exist_ok=False)
    trainer.initial_policy(policy0, seed=0)
    if not any(policy0.iterdir()):
        _fail(f"{name}.initial_policy wrote nothing into {policy0}")
    answers = list(trainer.generate(policy0, texts, seed=1))
    if len(answers) != len(texts) or not all(isinstance(a, str) for a in answers):
        _fail(f"{name}.generate returned {answers!r} for {len(texts)} prompts; return one str per prompt")
    if list(trainer.generate(policy0, texts, seed=1)) != answers:
        _fail(f"{name}.generate is not deterministic for the same seed (sample=False)")

    out = root / "policy-1"
    out.mkdir()
    stats = trainer.train(policy0, prompts, reward or FakeReward(), passes=passes, out=out, seed=2)
    if not isinstance(stats, TrainStats):
        _fail(f"{name}.train returned {type(stats).__name__}; return aopcore.TrainStats")
    if not any(out.iterdir()):
        _fail(f"{name}.train saved nothing into out={out}")
    if len(list(trainer.generate(out, texts, seed=1))) != len(texts):
        _fail(f"{name}.generate with the trained policy does not answer every prompt")
    return stats
