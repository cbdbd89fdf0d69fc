"""aopcore.testing: the helpers pass real components and catch each defect they claim to catch."""

from __future__ import annotations

import dataclasses
import itertools
import random
import sys
from pathlib import Path

import pytest

from aopcore import CurriculumContext, Prompt, Provenance, Verdict
from aopcore.testing import (
    FakeFeedbackLLM,
    FakePolicy,
    FakeReward,
    check_curriculum,
    check_embedder,
    check_feedback_llm,
    check_judge,
    check_reward_model,
    check_trainer,
    make_context,
    make_evaluation,
)
from aopcore_curricula import curricula as builtin
from aopcore_curricula.options import EvaOptions, PoolOptions, ScoreBasedOptions, VanillaGenerationOptions

from helpers.fakes import HashEmbedder, ScriptedLLM
from toy_components import (
    EchoFeedback,
    EchoFeedbackOptions,
    LengthJudge,
    LengthReward,
    MarginJudgeOptions,
    ToyTrainer,
    ToyTrainerOptions,
)

REWARDS = {"askbaking": 0.1, "askdocs": 0.5, "askphysics": 0.9}


def test_make_context_builds_what_the_experiment_would(tmp_path: Path):
    ctx = make_context(tmp_path / "w", rewards={"law": [0.1, 0.3], "cooking": 0.9}, per_category=3, budget=5)
    assert isinstance(ctx, CurriculumContext)
    assert ctx.categories == ["law", "cooking"] and ctx.budget == 5 and ctx.workdir.is_dir()
    assert [(r.category, r.reward) for r in ctx.evaluation] == [("law", 0.1), ("law", 0.3)] + [("cooking", 0.9)] * 3
    assert len({r.question_id for r in ctx.evaluation}) == 5
    assert ctx.feedback is None and ctx.reward is None and ctx.generate is None and ctx.extras == {}


def test_fakes_behave_as_told():
    policy = FakePolicy(lambda p: p.upper())
    assert policy(["a", "b"]) == ["A", "B"] and policy.calls == [["a", "b"]]
    sampled = [policy(["q"] * 6, sample=True, seed=s) for s in (1, 1, 2)]
    assert sampled[0] == sampled[1] != sampled[2]  # seeded: same seed same answers, another seed others
    assert len(set(sampled[0])) > 1  # sampled answers vary, so rewards can differ
    reward = FakeReward(by_category={"law": -1.0})
    assert reward.score(["a law question", "other"], ["one two", "one two"]) == [-0.8, 0.2]
    assert FakeFeedbackLLM(["x", "y"]).complete(["1", "2", "3"]) == ["x", "y", "x"]
    assert FakeFeedbackLLM({"bake": "bread?"}, default="").complete(["bake it", "no"]) == ["bread?", ""]
    assert FakeFeedbackLLM(lambda p: p[::-1]).complete(["abc"]) == ["cba"]


@pytest.mark.parametrize("name", ["pool", "aop", "sop", "eva", "vanilla"])
def test_builtin_curricula_pass_the_contract(name: str, tmp_path: Path):
    small = dict(draws=2, samples_per_category=2, questions_per_call=6)
    make = {
        "pool": lambda: builtin.PoolCurriculum(PoolOptions()),
        "aop": lambda: builtin.AOPCurriculum(ScoreBasedOptions(**small)),
        "sop": lambda: builtin.SOPCurriculum(ScoreBasedOptions(**small)),
        "eva": lambda: builtin.EvaCurriculum(EvaOptions(**small)),
        "vanilla": lambda: builtin.VanillaCurriculum(
            VanillaGenerationOptions(questions_per_call=5, n_clusters=2, pca_components=4)
        ),
    }[name]
    # a fresh scripted LLM per context: it words its questions by a call counter, like a live model without a cache
    contexts = lambda: make_context(
        tmp_path,
        rewards=REWARDS,
        budget=4,
        feedback=ScriptedLLM(),
        embedder=HashEmbedder(),
        reward=FakeReward(),
        generate=FakePolicy(),
    )
    iterations = check_curriculum(make, contexts)
    assert len(iterations) == 2 and all(len(it) == 4 for it in iterations)


# ---- deliberately broken curricula: each check must catch its defect


class Good:
    """Takes the first unused ids of a fixed list, seeded shuffle; state lives only in ctx."""

    def prompts(self, ctx):
        used = {p.id for p in ctx.history}
        cands = [
            Prompt(
                f"{c}-{k}", f"question {k} about {c}", c, Provenance("good", ctx.iteration, "pool", extra={"rank": k})
            )
            for c in ctx.categories
            for k in range(10)
            if f"{c}-{k}" not in used
        ]
        random.Random(ctx.seed).shuffle(cands)
        return cands[: ctx.budget]


class OneShort(Good):
    def prompts(self, ctx):
        return super().prompts(ctx)[:-1]


class DuplicateIds(Good):
    def prompts(self, ctx):
        out = super().prompts(ctx)
        return out[:-1] + [Prompt(out[0].id, "another text", out[0].category)]


class ForeignCategory(Good):
    def prompts(self, ctx):
        out = super().prompts(ctx)
        return out[:-1] + [Prompt("x-1", "a question", "not-a-category")]


class Unseeded(Good):
    def prompts(self, ctx):
        return super().prompts(_with_seed(ctx, random.randrange(10**9)))


def _with_seed(ctx, seed):
    return dataclasses.replace(ctx, seed=seed)


class StateInInstance(Good):
    """Deterministic from a fresh start, but remembers iterations in memory: a resumed run differs."""

    def __init__(self):
        self.calls = itertools.count()

    def prompts(self, ctx):
        return super().prompts(_with_seed(ctx, next(self.calls)))


class NotJSON(Good):
    def prompts(self, ctx):
        return [
            Prompt(p.id, p.text, p.category, Provenance("x", 1, extra={"when": object()})) for p in super().prompts(ctx)
        ]


class TupleInExtra(Good):
    def prompts(self, ctx):
        return [
            Prompt(p.id, p.text, p.category, Provenance("x", 1, extra={"pair": (1, 2)})) for p in super().prompts(ctx)
        ]


def test_a_correct_curriculum_passes(tmp_path: Path):
    out = check_curriculum(Good, make_context(tmp_path))
    assert [len(it) for it in out] == [4, 4]
    assert not {p.id for p in out[0]} & {p.id for p in out[1]}  # history reached iteration 2


@pytest.mark.parametrize(
    "broken, message",
    [
        (OneShort, r"OneShort: iteration 1: returned 3 prompts, the budget is exactly 4"),
        (DuplicateIds, r"DuplicateIds: iteration 1: duplicate prompt ids \['.*'\]"),
        (ForeignCategory, r"ForeignCategory: iteration 1: categories \['not-a-category'\] are not in ctx.categories"),
        (Unseeded, r"Unseeded: iteration 1: not deterministic"),
        (StateInInstance, r"StateInInstance: iteration 2: not resume-safe"),
        (NotJSON, r"NotJSON: iteration 1: prompts cannot be stored as JSON lines"),
        (TupleInExtra, r"TupleInExtra: iteration 1: prompt .* changes when stored and read back"),
    ],
)
def test_each_broken_curriculum_is_caught(broken, message: str, tmp_path: Path):
    with pytest.raises(AssertionError, match=message):
        check_curriculum(broken, make_context(tmp_path))


def test_category_check_can_be_turned_off_for_untargeted_curricula(tmp_path: Path):
    check_curriculum(ForeignCategory, make_context(tmp_path), categories=False)


# ---- reward models, judges, feedback LLMs, embedders, trainers


class BatchDependentReward:
    def score(self, prompts, responses):
        return [len(r) / max(1, len(responses)) for r in responses]  # normalised by batch size: wrong


class ShortReward:
    def score(self, prompts, responses):
        return [1.0 for _ in responses[:-1]]


class NaNReward:
    def score(self, prompts, responses):
        return [float("nan") for _ in responses]


class NoisyReward:
    def score(self, prompts, responses):
        return [random.random() for _ in responses]


def test_reward_checks(tmp_path: Path):
    assert len(check_reward_model(LengthReward())) == 5
    check_reward_model(FakeReward())
    for broken, message in [
        (ShortReward(), "returned 4 scores for 5"),
        (NaNReward(), "score 0 is nan"),
        (NoisyReward(), "not deterministic"),
        (BatchDependentReward(), "depends on the batch"),
    ]:
        with pytest.raises(AssertionError, match=message):
            check_reward_model(broken)


class WrongIdJudge:
    def judge(self, items):
        return [Verdict("x", "A") for _ in items]


class BadChoiceJudge:
    def judge(self, items):
        return [Verdict(i.id, "a") for i in items]


class NeverDecides:
    def judge(self, items):
        return [Verdict(i.id, None, "???") for i in items]


def test_judge_checks():
    verdicts = check_judge(LengthJudge(MarginJudgeOptions()))
    assert {v.choice for v in verdicts} <= {"A", "B", "C"}
    for broken, message in [
        (WrongIdJudge(), "has item_id 'x'"),
        (BadChoiceJudge(), "choice 'a' is not"),
        (NeverDecides(), "every verdict is None"),
    ]:
        with pytest.raises(AssertionError, match=message):
            check_judge(broken)
    check_judge(NeverDecides(), allow_all_unusable=True)


class NoneForEmpty:
    def complete(self, prompts):
        return [p or None for p in prompts]


class DropsOne:
    def complete(self, prompts):
        return [p for p in prompts if p]


def test_feedback_checks():
    assert check_feedback_llm(EchoFeedback(EchoFeedbackOptions()))
    check_feedback_llm(FakeFeedbackLLM(["1. a question?"]))
    with pytest.raises(AssertionError, match=r"completion 2 is NoneType"):
        check_feedback_llm(NoneForEmpty())
    with pytest.raises(AssertionError, match=r"returned 2 completions for 3 prompts"):
        check_feedback_llm(DropsOne())


class RaggedEmbedder:
    def embed(self, texts):
        return [[1.0] * (len(t) % 3 + 1) for t in texts]


class BatchNormalisedEmbedder:
    """Scales by the batch's largest norm: a text's vector depends on what it is embedded with."""

    def embed(self, texts):
        rows = [[float(len(t)), 1.0] for t in texts]
        top = max((r[0] for r in rows), default=1.0) or 1.0
        return [[r[0] / top, r[1]] for r in rows]


def test_embedder_checks():
    assert len(check_embedder(HashEmbedder())[0]) == 256
    with pytest.raises(AssertionError, match="rows have lengths"):
        check_embedder(RaggedEmbedder())
    with pytest.raises(AssertionError, match="embeds differently alone than in a batch"):
        check_embedder(BatchNormalisedEmbedder())


def test_trainer_check_on_the_toy_trainer(tmp_path: Path):
    stats = check_trainer(ToyTrainer(ToyTrainerOptions()), tmp_path, reward=LengthReward())
    assert stats.steps > 0

    class Forgetful(ToyTrainer):
        def train(self, policy, prompts, reward, *, passes, out, seed):
            return super().train(policy, prompts, reward, passes=passes, out=out.parent / "elsewhere", seed=seed)

    (tmp_path / "b" / "elsewhere").mkdir(parents=True)
    with pytest.raises(AssertionError, match="saved nothing into out="):
        check_trainer(Forgetful(ToyTrainerOptions()), tmp_path / "b", reward=LengthReward())

    class DictStats(ToyTrainer):
        def train(self, *args, **kwargs):
            return dataclasses.asdict(super().train(*args, **kwargs))

    with pytest.raises(AssertionError, match="train returned dict; return aopcore.TrainStats"):
        check_trainer(DictStats(ToyTrainerOptions()), tmp_path / "c", reward=LengthReward())

    class Drifting(ToyTrainer):
        """Greedy answers that change from call to call (state outside the policy folder)."""

        calls = itertools.count()

        def generate(self, policy, prompts, *, seed, sample=False):
            n = next(self.calls)
            return [f"{a} ({n})" for a in super().generate(policy, prompts, seed=seed, sample=sample)]

    with pytest.raises(AssertionError, match="generate is not deterministic"):
        check_trainer(Drifting(ToyTrainerOptions()), tmp_path / "d", reward=LengthReward())


def test_evaluation_helper_gives_one_record_per_reward():
    assert [r.reward for r in make_evaluation({"a": [1, 2, 3]})] == [1.0, 2.0, 3.0]


def test_example_plugin_package_passes_its_own_tests():
    """examples/plugin-weakness-sampler/tests, written with these helpers, run in CI through this test."""
    import subprocess

    from helpers import ROOT

    folder = ROOT / "examples" / "plugin-weakness-sampler"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(folder / "tests")],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout and "failed" not in result.stdout
