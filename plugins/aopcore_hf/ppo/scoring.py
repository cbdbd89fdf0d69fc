"""Scoring a PPO batch and booking the reward calls: shared by the trainer (one process) and its launcher (a group)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from aopcore import RewardModel, record_usage

Score = Callable[[Sequence[str], Sequence[str]], list[float]]


def score_and_book(reward: RewardModel, prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
    """Score rollouts and book the calls in the running stage's ledger (in one process, or for a whole group)."""
    scores = [float(s) for s in reward.score(prompts, responses)]
    record_usage(reward_calls=len(prompts))
    return scores
