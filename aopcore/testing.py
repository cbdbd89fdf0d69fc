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
import math
import numbers
import random
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from aopcore.protocols import CurriculumContext, PromptCurriculum
from aopcore.records import EvalRecord, JudgeItem, Prompt, TrainStats, Verdict, read_jsonl, write_jsonl

__all__ = [
    "FakeFeedbackLLM", "FakePolicy", "FakeReward", "check_curriculum", "check_embedder", "check_feedback_llm",
    "check_judge", "check_reward_model", "check_trainer", "make_context", "make_evaluation",
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
        values = [float(value)] * per_category if isinstance(value, numbers.Real) else [float(v) for v in value]
        for k, reward in enumerate(values):
            records.append(EvalRecord(f"{category}-{k}", f"A question about {category}, number {k}: how does it work?",
                                      category, f"An answer about {category} ({k}).", reward))
    return records


def make_context(workdir: Path | str | None = None, *, rewards: Mapping[str, float | Sequence[float]] | None = None,
                 categories: Sequence[str] | None = None, budget: int = 4, iteration: int = 1, iterations: int = 2,
                 seed: int = 0, base_seed: int = 0, per_category: int = 3, arm: str = "test",
                 history: Sequence[Prompt] = (), evaluation: Sequence[EvalRecord] | None = None,
                 feedback: Any = None, embedder: Any = None, reward: Any = None,
                 generate: Callable[..., list[str]] | None = None, extras: dict[str, Any] | None = None) -> CurriculumContext:
    """A :class:`CurriculumContext` as the experiment would build it, from a few arguments.

    Args:
        workdir: the arm's private folder (created if missing); pass pytest's ``tmp_path``.
            Default: a new temporary folder.
        rewards: category -> reward(s) for the synthetic evaluation (see :func:`make_evaluation`).
            Default: three categories, ``alpha`` weakest (0.1), ``beta`` 0.5, ``gamma`` 0.9.
        categories: the experiment's categories; default: the keys of ``rewards``.
        evaluation: use these records instead of synthetic ones.
        feedback, embedder, reward, generate: the components (None, as in an experiment
            whose config lacks them). ``generate`` may be a :class:`FakePolicy`.
        Other arguments set the context field of the same name.
    """
    rewards = dict(rewards) if rewards is not None else {"alpha": 0.1, "beta": 0.5, "gamma": 0.9}
    evaluation = list(evaluation) if evaluation is not None else make_evaluation(rewards, per_category=per_category)
    cats = list(categories) if categories is not None else list(rewards) or sorted({r.category for r in evaluation})
    folder = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="aopcore-ctx-"))
    folder.mkdir(parents=True, exist_ok=True)
    return CurriculumContext(arm=arm, iteration=iteration, iterations=iterations, budget=budget, seed=seed,
                             categories=cats, evaluation=evaluation, history=list(history), workdir=folder,
                             feedback=feedback, embedder=embedder, reward=reward, generate=generate,
                             base_seed=base_seed, extras=dict(extras or {}))


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

    def __init__(self, answer: Callable[[str], str] | str | None = None, *,
                 variants: Sequence[str] = ("", " Briefly.", " In detail, step by step, with an example.")) -> None:
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
        return [self.answer(t) + random.Random(_stable_seed(seed, t, k)).choice(self.variants) for k, t in enumerate(texts)]

    def generate(self, policy: Path, prompts: Sequence[str], *, seed: int, sample: bool = False) -> list[str]:
        """The :class:`~aopcore.protocols.PolicyTrainer` signature; ``policy`` is ignored."""
        return self(prompts, sample=sample, seed=seed)


class FakeReward:
    """A deterministic :class:`~aopcore.protocols.RewardModel` whose scores the test controls.

    Args:
        fn: ``(prompt, response) -> float``. Default: response length in words / 10, so
            longer answers score higher (what a sampled-answer curriculum can exploit).
        by_category: category -> base score, added where the prompt mentions the category
            (matches :func:`make_evaluation`'s texts): lets a test make some categories weak.

    ``pairs`` records every scored (prompt, response).
    """

    def __init__(self, fn: Callable[[str, str], float] | None = None, *, by_category: Mapping[str, float] | None = None) -> None:
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

    def __init__(self, script: Callable[[str], str] | Mapping[str, str] | Sequence[str] = (), *, default: str = "") -> None:
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


def _context_factory(ctx: CurriculumContext | Callable[[], CurriculumContext] | None) -> Callable[[], CurriculumContext]:
    if ctx is None:
        return lambda: make_context()
    if isinstance(ctx, CurriculumContext):
        return lambda: ctx
    return ctx


def _iteration_context(base: CurriculumContext, i: int, history: list[Prompt], workdir: Path) -> CurriculumContext:
    from aopcore.rundir import stage_id, stage_seed  # the experiment's own seeding, so checks see what a run sees

    workdir.mkdir(parents=True, exist_ok=True)
    return dataclasses.replace(base, iteration=i, history=list(history), workdir=workdir,
                               seed=stage_seed(base.base_seed, stage_id(base.arm, i, "prompts")))


def _run_curriculum(make: Callable[[], PromptCurriculum], contexts: Callable[[], CurriculumContext], workdir: Path,
                    iterations: int, *, fresh_each: bool) -> list[list[Prompt]]:
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


def check_curriculum(make: Callable[[], PromptCurriculum],
                     ctx: CurriculumContext | Callable[[], CurriculumContext] | None = None, *,
                     iterations: int | None = None, categories: bool = True) -> list[list[Prompt]]:
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
        from aopcore.rundir import iteration_name

        store = root / "check-store" / f"{iteration_name(i)}.jsonl"
        try:
            write_jsonl(store, prompts)
            back = read_jsonl(store, Prompt)
        except (TypeError, ValueError) as exc:
            _fail(f"{where}: prompts cannot be stored as JSON lines ({exc}); provenance.extra takes JSON values only")
        if back != prompts:
            diff = next(k for k, (a, b) in enumerate(zip(prompts, back)) if a != b)
            _fail(f"{where}: prompt {prompts[diff].id!r} changes when stored and read back: {prompts[diff]!r} -> {back[diff]!r}")

    again = _run_curriculum(make, contexts, root / "check-again", n, fresh_each=False)
    for i, (a, b) in enumerate(zip(first, again), start=1):
        if [_key(p) for p in a] != [_key(p) for p in b]:
            _fail(f"{name}: iteration {i}: not deterministic: a second instance with the same seed chose different "
                  f"prompts ({_first_difference(a, b)}); draw every random choice from ctx.seed")

    history: list[Prompt] = []
    for i, expected in enumerate(first, start=1):
        resumed = list(make().prompts(_iteration_context(contexts(), i, history, root / "check-run")))
        if [_key(p) for p in resumed] != [_key(p) for p in expected]:
            _fail(f"{name}: iteration {i}: not resume-safe: a fresh instance reading the same workdir chose different "
                  f"prompts ({_first_difference(expected, resumed)}); keep state in ctx.workdir, not in the instance")
        history += expected
    return first


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
    JudgeItem("j3", "What is a virus?", "A tiny thing that copies itself inside cells.", "A tiny thing that copies itself inside cells."),
]


def check_judge(judge: Any, items: Sequence[JudgeItem] | None = None, *, allow_all_unusable: bool = False) -> list[Verdict]:
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
            _fail(f"{name}.judge: verdict for item {item.id!r} has item_id {v.item_id!r}; keep the items' order and ids")
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
            _fail(f"{name}.complete: completion {k} is {type(text).__name__}; return str (\"\" for a failed call)")
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


def check_trainer(trainer: Any, workdir: Path | str, *, prompts: Sequence[Prompt] | None = None,
                  reward: Any = None, passes: int = 1) -> TrainStats:
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
