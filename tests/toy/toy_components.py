"""Small, pure-Python components for the core's tests: fast, deterministic, and really learning.

The toy policy picks one of a few answer templates per category from a softmax
over logits stored in ``policy.json``; training is REINFORCE against any
RewardModel. Loaded by tests through ``experiment.plugins = ["toy_components"]``.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from aopcore import (
    CurriculumContext,
    Prompt,
    Provenance,
    TrainStats,
    Verdict,
    hookimpl,
    record_usage,
)

TEMPLATES = [
    "no.",
    "maybe, it depends on the details.",
    "Here is a careful answer: first check the basics, then try the simple fix, and ask again if it persists.",
]


class ToyTrainerOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    learning_rate: float = 0.5
    step_delay_s: float = 0.0  # sleep per training step, so tests can kill a run mid-stage
    initial_logits: list[float] = [2.0, 1.0, 0.0]


def _softmax(xs: Sequence[float]) -> list[float]:
    m = max(xs)
    e = [math.exp(x - m) for x in xs]
    s = sum(e)
    return [v / s for v in e]


class ToyTrainer:
    """Template-choosing policy trained with REINFORCE."""

    Options = ToyTrainerOptions

    def __init__(self, options: ToyTrainerOptions) -> None:
        self.options = options

    def _load(self, policy: Path) -> dict[str, list[float]]:
        return json.loads((policy / "policy.json").read_text())

    def initial_policy(self, out: Path, *, seed: int) -> None:
        (out / "policy.json").write_text(json.dumps({"*": list(self.options.initial_logits)}))

    def _choose(self, logits: dict[str, list[float]], rng: random.Random) -> int:
        probs = _softmax(logits["*"])
        return rng.choices(range(len(probs)), probs)[0]

    def generate(self, policy: Path, prompts: Sequence[str], *, seed: int, sample: bool = False) -> list[str]:
        logits = self._load(policy)
        rng = random.Random(seed)
        out = [TEMPLATES[self._choose(logits, rng)] for p in prompts]
        record_usage(tokens_generated=sum(len(a.split()) for a in out))
        return out

    def train(
        self, policy: Path, prompts: Sequence[Prompt], reward, *, passes: int, out: Path, seed: int
    ) -> TrainStats:
        logits = self._load(policy)
        rng = random.Random(seed)
        metrics = []
        steps = 0
        for _ in range(passes):
            for p in prompts:
                row = list(logits["*"])
                probs = _softmax(row)
                k = rng.choices(range(len(probs)), probs)[0]
                r = reward.score([p.text], [TEMPLATES[k]])[0]
                baseline = sum(pr * reward.score([p.text], [t])[0] for pr, t in zip(probs, TEMPLATES))
                for j in range(len(row)):
                    row[j] += self.options.learning_rate * (r - baseline) * ((1.0 if j == k else 0.0) - probs[j])
                logits["*"] = row
                steps += 1
                metrics.append({"step": steps, "objective/scores": r})
                if self.options.step_delay_s:
                    time.sleep(self.options.step_delay_s)
        (out / "policy.json").write_text(json.dumps(logits, sort_keys=True))
        return TrainStats(steps=steps, episodes=steps, tokens_generated=steps * 5, metrics=metrics)


class LengthReward:
    """Reward = words in the response / 10: longer template answers score higher."""

    def __init__(self, options: BaseModel | None = None) -> None:
        pass

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        return [len(r.split()) / 10.0 for r in responses]


class StaticOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pool: list[str] = ["How do I fix it?", "What should I do?", "Why does this happen?", "Any tips?"]


class StaticCurriculum:
    """Cycles through a fixed pool of questions over the held-out categories."""

    Options = StaticOptions

    def __init__(self, options: StaticOptions) -> None:
        self.options = options

    def prompts(self, ctx: CurriculumContext) -> list[Prompt]:
        out = []
        for n in range(ctx.budget):
            k = (ctx.iteration - 1) * ctx.budget + n
            cat = ctx.categories[k % len(ctx.categories)]
            text = f"{cat} {self.options.pool[k % len(self.options.pool)]}"
            out.append(
                Prompt(f"{ctx.arm}-{ctx.iteration}-{n}", text, cat, Provenance("toy-static", ctx.iteration, "pool"))
            )
        return out


class WeakestCurriculum:
    """Puts the whole budget on the categories with the lowest mean held-out reward."""

    requires = ()

    def __init__(self, options: BaseModel | None = None) -> None:
        pass

    def prompts(self, ctx: CurriculumContext) -> list[Prompt]:
        by_cat: dict[str, list[float]] = {}
        for r in ctx.evaluation:
            by_cat.setdefault(r.category, []).append(r.reward)
        ranked = sorted(by_cat, key=lambda c: (sum(by_cat[c]) / len(by_cat[c]), c))
        weakest = ranked[: max(1, len(ranked) // 3)]
        return [
            Prompt(
                f"{ctx.arm}-{ctx.iteration}-{n}",
                f"{weakest[n % len(weakest)]} help me?",
                weakest[n % len(weakest)],
                Provenance("toy-weakest", ctx.iteration, "generated"),
            )
            for n in range(ctx.budget)
        ]


class MarginJudgeOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    margin: float = 0.0


class LengthJudge:
    """Prefers the longer answer; a tie within ``margin`` words/10."""

    Options = MarginJudgeOptions

    def __init__(self, options: MarginJudgeOptions) -> None:
        self.margin = options.margin

    def judge(self, items):
        out = []
        for it in items:
            d = (len(it.answer_a.split()) - len(it.answer_b.split())) / 10.0
            choice = "C" if abs(d) <= self.margin else ("A" if d > 0 else "B")
            out.append(Verdict(it.id, choice, raw=choice))
        record_usage(judge_calls=len(items))
        return out


@hookimpl
def register_trainers(register):
    register("toy", ToyTrainer)


@hookimpl
def register_reward_models(register):
    register("toy-length", LengthReward)


@hookimpl
def register_curricula(register):
    register("toy-static", StaticCurriculum)
    register("toy-weakest", WeakestCurriculum)


@hookimpl
def register_judges(register):
    register("toy-length", LengthJudge)


class EchoFeedbackOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = "echo-1"
    api_key_env: str = "TOY_API_KEY"


class EchoFeedback:
    """A FeedbackLLM stand-in that reads its key from the environment like a real provider."""

    Options = EchoFeedbackOptions

    def __init__(self, options: EchoFeedbackOptions) -> None:
        self.options = options

    def complete(self, prompts):
        record_usage(feedback_calls=len(prompts))
        return [f"1. {p[:40]}?" for p in prompts]


@hookimpl
def register_feedback_llms(register):
    register("toy-echo", EchoFeedback)
