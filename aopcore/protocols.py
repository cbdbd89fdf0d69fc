"""The six component protocols. Anything with these methods plugs into the loop.

They are structural (``typing.Protocol``): an RLHF stack can hand its own objects
to :class:`aopcore.Experiment` without subclassing or registering anything.
Policies are identified by checkpoint directories, which is what makes every
stage resumable and lets a trainer keep its own on-disk format.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from aopcore.records import EvalRecord, JudgeItem, Prompt, TrainStats, Verdict


@runtime_checkable
class RewardModel(Protocol):
    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        """One scalar per (prompt, response) pair; higher is better. Must be deterministic."""
        ...


@runtime_checkable
class PolicyTrainer(Protocol):
    def initial_policy(self, out: Path, *, seed: int) -> None:
        """Write policy_0 (the SFT model every arm starts from) into the empty directory ``out``."""
        ...

    def generate(self, policy: Path, prompts: Sequence[str], *, seed: int, sample: bool = False) -> list[str]:
        """Answer each prompt with the policy stored at ``policy``.

        ``sample=False`` is the trainer's evaluation decoding (typically greedy);
        ``sample=True`` samples as during training (curricula that need several answers).
        """
        ...

    def train(
        self,
        policy: Path,
        prompts: Sequence[Prompt],
        reward: RewardModel,
        *,
        passes: int,
        out: Path,
        seed: int,
    ) -> TrainStats:
        """RL-train ``policy`` on ``prompts`` (each seen ``passes`` times); save the result in ``out``."""
        ...


@runtime_checkable
class FeedbackLLM(Protocol):
    def complete(self, prompts: Sequence[str]) -> list[str]:
        """Answer each prompt. A failed or blocked call yields "" and is counted, never raised mid-batch."""
        ...


@runtime_checkable
class Judge(Protocol):
    def judge(self, items: Sequence[JudgeItem]) -> list[Verdict]:
        """A verdict per item: A, B, C (tie) or None when the judge's output was unusable."""
        ...


@runtime_checkable
class Embedder(Protocol):
    def embed(self, texts: Sequence[str]) -> Any:
        """A (len(texts), dim) array-like of floats (numpy array or nested lists)."""
        ...


@dataclass
class CurriculumContext:
    """Everything a curriculum may use to choose an iteration's prompts.

    ``evaluation`` is the current policy's answers and rewards on the held-out
    questions (the SFT policy's at iteration 1). ``history`` holds the prompts
    of earlier iterations of this arm, for de-duplication. ``workdir`` is the
    arm's private folder for curriculum state that must survive a resume.
    """

    arm: str
    iteration: int
    iterations: int
    budget: int
    seed: int
    categories: list[str]
    evaluation: list[EvalRecord]
    history: list[Prompt]
    workdir: Path
    feedback: FeedbackLLM | None = None
    embedder: Embedder | None = None
    reward: RewardModel | None = None
    generate: Callable[..., list[str]] | None = None  # generate(texts, sample=False, seed=0) with the current policy
    base_seed: int = 0  # the experiment's seed: lets arms that should agree (AOP and SOP at iteration 1) draw alike
    extras: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class PromptCurriculum(Protocol):
    def prompts(self, ctx: CurriculumContext) -> list[Prompt]:
        """Exactly ``ctx.budget`` prompts for iteration ``ctx.iteration``."""
        ...
