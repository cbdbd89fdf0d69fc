"""Embed the AOP loop in another stack: your own torch trainer, plain functions, no config file, no entry points.

What a user of another RLHF stack already has, handed to aopcore as is:

- a trainer (here ``TinyTorchTrainer``: a small torch policy trained with REINFORCE; it keeps its own
  mid-stage checkpoints in the ``scratch`` folder the experiment gives it, so a killed stage resumes);
- a TRL-style reward function ``(prompts, completions, **kwargs) -> list[float]``; aopcore passes the
  prompts' categories as ``categories=[...]``;
- an LLM call ``prompt -> text`` (here a deterministic stand-in; put your client call there), a judge
  function ``(question, answer_a, answer_b) -> "A" | "B" | "C"`` and an embedding function;
- aopcore's own curricula (vanilla, SOP, AOP) used as a library, beside a curriculum written inline.

    .venv/bin/python examples/embed_in_python.py [RUN_PARENT_DIR]

Run it twice: the second run resumes and recomputes nothing. Change the learning rate and run again: the run
directory refuses, listing what changed (``allow_changes=True`` continues anyway and records it).
"""

from __future__ import annotations

import hashlib
import re
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

import aopcore
from aopcore import Budget, Experiment, Prompt, Question, TrainStats
from aopcore_curricula.curricula import AOPCurriculum, SOPCurriculum, VanillaCurriculum
from aopcore_curricula.options import ScoreBasedOptions, VanillaGenerationOptions

# ---- the task: each category has one answer that helps ------------------------------------------------------
CATEGORIES = {
    "cooking": ("bread", "oven", "dough"),
    "cycling": ("bike", "chain", "tyre"),
    "gardening": ("tomato", "soil", "seeds"),
}
ANSWERS = [
    "No idea, sorry.",
    "It depends on many things.",
    "Check the oven temperature and let the dough rest longer.",
    "Check the tyre pressure and oil the chain.",
    "Test the soil and water the plants less often.",
]
HELPS = {"cooking": 2, "cycling": 3, "gardening": 4}


def helpfulness(prompts, completions, categories=None, **kwargs) -> list[float]:
    """A TRL-style reward function: 1 for the answer that helps in the prompt's category, 0.2 for a hedge."""
    out = []
    for prompt, completion, category in zip(prompts, completions, categories or [None] * len(prompts)):
        category = category or guess_category(prompt)
        out.append(1.0 if completion == ANSWERS[HELPS.get(category, 1)] else 0.2 if completion == ANSWERS[1] else 0.0)
    return out


def guess_category(text: str) -> str | None:
    words = set(re.findall(r"\w+", text.lower()))
    return next((c for c, topic in CATEGORIES.items() if words & {c, *topic}), None)


# ---- your trainer -----------------------------------------------------------------------------------------
def features(texts) -> torch.Tensor:
    """Hashed bag of words: what the tiny policy sees of a prompt."""
    x = torch.zeros(len(texts), 256)
    for row, text in enumerate(texts):
        for word in re.findall(r"\w+", text.lower()):
            x[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % 256] = 1.0
    return x


class TinyTorchTrainer:
    """A policy is a folder holding a torch state dict; train() is REINFORCE with a mean baseline."""

    def __init__(self, learning_rate: float = 0.05, batch_size: int = 4, save_every_steps: int = 2) -> None:
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.save_every_steps = save_every_steps

    def _model(self) -> torch.nn.Module:
        return torch.nn.Linear(256, len(ANSWERS))  # a softmax policy over answers, from the prompt's words

    def _load(self, policy: Path) -> torch.nn.Module:
        model = self._model()
        model.load_state_dict(torch.load(policy / "policy.pt"))
        return model

    def initial_policy(self, out: Path, *, seed: int) -> None:
        torch.manual_seed(seed)
        model = self._model()
        with torch.no_grad():
            model.weight.mul_(0.1)  # close to uniform: the policy has everything to learn
        torch.save(model.state_dict(), out / "policy.pt")

    def check_policy(
        self, path: Path
    ) -> str | None:  # optional: lets the experiment refuse a folder generate() cannot load
        return None if (path / "policy.pt").is_file() else "no policy.pt"

    def generate(self, policy: Path, prompts, *, seed: int, sample: bool = False) -> list[str]:
        with torch.no_grad():
            logits = self._load(policy)(features(prompts))
        if sample:
            picks = torch.multinomial(logits.softmax(-1), 1, generator=torch.Generator().manual_seed(seed)).squeeze(1)
        else:
            picks = logits.argmax(-1)
        aopcore.record_usage(tokens_generated=sum(len(ANSWERS[k].split()) for k in picks.tolist()))
        return [ANSWERS[k] for k in picks.tolist()]

    def train(self, policy: Path, prompts, reward, *, passes: int, out: Path, seed: int, scratch: Path) -> TrainStats:
        model = self._load(policy)
        optimizer = torch.optim.Adam(model.parameters(), lr=self.learning_rate)
        rng = torch.Generator().manual_seed(seed)
        order = [p for _ in range(passes) for p in prompts]
        batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        step, metrics, tokens = 0, [], 0
        checkpoint = scratch / "checkpoint.pt"
        if checkpoint.exists():  # a killed attempt of this stage: continue after its last save
            saved = torch.load(checkpoint, weights_only=False)
            model.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            rng.set_state(saved["rng"])
            step, metrics, tokens = saved["step"], saved["metrics"], saved["tokens"]
        for batch in batches[step:]:
            texts = [p.text for p in batch]
            logp = model(features(texts)).log_softmax(-1)
            picks = torch.multinomial(logp.exp().detach(), 1, generator=rng).squeeze(1)
            answers = [ANSWERS[k] for k in picks.tolist()]
            scores = torch.tensor(reward.score(texts, answers))
            loss = -((scores - scores.mean()) * logp.gather(1, picks[:, None]).squeeze(1)).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            tokens += sum(len(a.split()) for a in answers)
            metrics.append({"step": step, "objective/scores": float(scores.mean()), "loss/policy_avg": loss.item()})
            if step % self.save_every_steps == 0:
                torch.save(
                    {
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "rng": rng.get_state(),
                        "step": step,
                        "metrics": metrics,
                        "tokens": tokens,
                    },
                    checkpoint,
                )
        torch.save(model.state_dict(), out / "policy.pt")
        return TrainStats(steps=step, episodes=len(order), tokens_generated=tokens, metrics=metrics)


# ---- your LLM, judge and embedder, as plain functions -------------------------------------------------------
def my_llm(prompt: str) -> str:
    """Stands in for your client call (e.g. ``lambda p: client.responses.create(model=..., input=p).output_text``).

    Deterministic: the same prompt always gets the same questions.
    """
    n = int(re.search(r"Write (\d+)", prompt).group(1))
    quoted = re.findall(r'about "([^"]+)"', prompt)
    category = quoted[0] if quoted else "cooking"
    topic = CATEGORIES.get(category, ("thing", "thing", "thing"))
    salt = int(hashlib.sha256(prompt.encode()).hexdigest(), 16)
    lines = []
    for k in range(n):
        word = topic[(salt + k) % 3]
        lines.append(
            f"{k + 1}. My {word} ({category}, case {salt % 9973}-{k}): what should I try first with the {topic[(k + 1) % 3]}?"
        )
    return "\n".join(lines)


def my_judge(question: str, answer_a: str, answer_b: str) -> str:
    a, b = helpfulness([question, question], [answer_a, answer_b])
    return "A" if a > b else "B" if b > a else "C"


def my_embedder(texts) -> np.ndarray:
    return torch.nn.functional.normalize(features(texts), dim=1).numpy()


class LowestRewardReplayCurriculum:
    """A curriculum written inline: ask again about the categories that scored lowest."""

    def prompts(self, ctx) -> list[Prompt]:
        by_cat: dict[str, list[float]] = {}
        for rec in ctx.evaluation:
            by_cat.setdefault(rec.category, []).append(rec.reward)
        weakest = sorted(by_cat, key=lambda c: sum(by_cat[c]) / len(by_cat[c]))[:2]
        return [
            Prompt(
                f"{ctx.iteration}-{n}",
                f"Another question about my {CATEGORIES[weakest[n % 2]][n % 3]} ({n})?",
                weakest[n % 2],
            )
            for n in range(ctx.budget)
        ]


def experiment(out: Path, **overrides) -> Experiment:
    heldout = [
        Question(f"h-{c}-{k}", f"How do I fix my {topic[k % 3]} problem number {k}?", c)
        for c, topic in CATEGORIES.items()
        for k in range(4)
    ]
    tests = [
        Question(f"t-{c}-{k}", f"Any advice for my {topic[k]}?", c) for c, topic in CATEGORIES.items() for k in range(3)
    ]
    scored = dict(
        samples_per_category=2,
        draws=4,
        questions_per_call=8,
        parallel_calls=4,
        targeting="per-category",
        prompt_style="compact",
        weak_categories=2,
    )
    args = dict(
        name="embedded",
        output_dir=out,
        trainer=TinyTorchTrainer(),
        reward=helpfulness,
        feedback=my_llm,
        judge=my_judge,
        embedder=my_embedder,
        heldout=heldout,
        test_prompts=tests,
        arms={
            # categories of your own: give vanilla keywords (their names alone make narrow questions; a warning says so)
            "vanilla": VanillaCurriculum(
                VanillaGenerationOptions(
                    questions_per_call=6,
                    prompt_style="compact",
                    n_clusters=3,
                    pca_components=8,
                    keywords={c: [f"{t} care" for t in topic] for c, topic in CATEGORIES.items()},
                )
            ),
            "sop": SOPCurriculum(ScoreBasedOptions(**scored)),
            "aop": AOPCurriculum(ScoreBasedOptions(**scored)),
            "replay": LowestRewardReplayCurriculum(),
        },
        budget=Budget(iterations=2, records_per_iteration=16, passes=2),
        seed=0,
    )
    args.update(overrides)
    return Experiment(**args)


def main(out: Path | None = None, **overrides) -> aopcore.ExperimentResult:
    aopcore.enable_console_progress()  # stage progress on stderr
    out = out or Path(tempfile.mkdtemp(prefix="aopcore-embed-"))
    result = experiment(out, **overrides).run()  # resumable: call again after a crash
    print(f"run directory: {result.run_dir}")
    print((result.run_dir / "report.md").read_text().split("## Prompt categories")[0])
    for w in result.winrates:
        print(
            f"{w.arm_a} vs {w.arm_b}, iteration {w.iteration}: {w.arm_a} wins {w.wins_a}, {w.arm_b} wins {w.wins_b}, ties {w.ties}"
        )
    return result


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else None)
