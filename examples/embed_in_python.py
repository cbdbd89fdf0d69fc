"""Embed the AOP loop in another stack: plain Python objects, no config file, no entry points.

The trainer here is a deliberately tiny stand-in for "your own trainer" (it learns which
of three answer styles earns reward); swap in a wrapper around your real one. The
curricula are aopcore's own, used as a library.

    .venv/bin/python examples/embed_in_python.py
"""
from __future__ import annotations

import json
import math
import random
import tempfile
from pathlib import Path

from aopcore import Budget, Experiment, Prompt, Question, TrainStats, Verdict

STYLES = ["No.", "It depends.", "Here is a step-by-step answer with the details you need."]


class MyTrainer:
    """Your trainer, wrapped: a policy is a folder; here it holds softmax logits over answer styles."""

    def initial_policy(self, out: Path, *, seed: int) -> None:
        (out / "logits.json").write_text(json.dumps([1.0, 1.0, 0.0]))

    def _probs(self, policy: Path) -> list[float]:
        logits = json.loads((policy / "logits.json").read_text())
        e = [math.exp(x) for x in logits]
        return [v / sum(e) for v in e]

    def generate(self, policy: Path, prompts, *, seed: int, sample: bool = False) -> list[str]:
        rng = random.Random(seed)
        probs = self._probs(policy)
        return [STYLES[rng.choices(range(3), probs)[0]] for _ in prompts]

    def train(self, policy: Path, prompts, reward, *, passes: int, out: Path, seed: int) -> TrainStats:
        logits = json.loads((policy / "logits.json").read_text())
        rng = random.Random(seed)
        scores = []
        for _ in range(passes):
            for p in prompts:
                probs = [math.exp(x) / sum(math.exp(y) for y in logits) for x in logits]
                k = rng.choices(range(3), probs)[0]
                r = reward.score([p.text], [STYLES[k]])[0]
                scores.append(r)
                for j in range(3):
                    logits[j] += 0.3 * r * ((j == k) - probs[j])
        (out / "logits.json").write_text(json.dumps(logits))
        return TrainStats(steps=len(scores), episodes=len(scores), metrics=[{"objective/scores": s} for s in scores])


class MyReward:
    """Your reward function: here, longer answers are better, minus a constant baseline."""

    def score(self, prompts, responses) -> list[float]:
        return [len(r.split()) / 10 - 0.3 for r in responses]


class LowestRewardReplayCurriculum:
    """A curriculum written inline: rephrase the categories that scored lowest."""

    def prompts(self, ctx) -> list[Prompt]:
        by_cat: dict[str, list[float]] = {}
        for rec in ctx.evaluation:
            by_cat.setdefault(rec.category, []).append(rec.reward)
        weakest = sorted(by_cat, key=lambda c: sum(by_cat[c]) / len(by_cat[c]))[:2]
        return [Prompt(f"{ctx.iteration}-{n}", f"Another question about {weakest[n % 2]} ({n})?", weakest[n % 2])
                for n in range(ctx.budget)]


class MyJudge:
    def judge(self, items):
        return [Verdict(it.id, "A" if len(it.answer_a) > len(it.answer_b) else "B" if len(it.answer_b) > len(it.answer_a) else "C")
                for it in items]


def main() -> None:
    heldout = [Question(f"h{i}", f"question {i}?", c) for i, c in enumerate(["cooking", "cars", "law", "pets"] * 3)]
    out = Path(tempfile.mkdtemp(prefix="aopcore-embed-"))
    experiment = Experiment(
        name="embedded", output_dir=out, trainer=MyTrainer(), reward=MyReward(), judge=MyJudge(),
        arms={"replay": LowestRewardReplayCurriculum()}, heldout=heldout, test_prompts=heldout[:6],
        budget=Budget(iterations=3, records_per_iteration=16, passes=2), seed=0,
    )
    result = experiment.run()
    print(f"run directory: {result.run_dir}")
    print((result.run_dir / "report.md").read_text().split("## Prompt categories")[0])


if __name__ == "__main__":
    main()
