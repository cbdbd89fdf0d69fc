"""What the per-step channel records: a prompt's rewarded rollouts (:class:`RolloutGroup`) and one draw's
(:class:`StepBatch`), as kept in ``steps.jsonl``. Part of :mod:`aopcore.steps` (import them from there)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RolloutGroup:
    """The completions one prompt got in one draw, with their rewards.

    Attributes:
        prompt_id: the :class:`~aopcore.records.Prompt`'s id.
        category: its category.
        rewards: one reward per completion, in the order generated (GRPO/RLOO: ``num_generations``
            of them; PPO: one).
        tokens: completion tokens generated for this group (0 when the trainer does not know).
    """

    prompt_id: str
    category: str
    rewards: tuple[float, ...]
    tokens: int = 0

    @property
    def mean(self) -> float:
        return sum(self.rewards) / len(self.rewards) if self.rewards else 0.0

    @property
    def zero_variance(self) -> bool:
        """All completions rewarded alike: the group gives a group-relative method no gradient."""
        return len(self.rewards) > 0 and max(self.rewards) == min(self.rewards)

    def to_dict(self) -> dict[str, Any]:
        return {
            "prompt_id": self.prompt_id,
            "category": self.category,
            "rewards": list(self.rewards),
            "tokens": self.tokens,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RolloutGroup:
        return cls(
            str(data["prompt_id"]),
            str(data["category"]),
            tuple(float(r) for r in data["rewards"]),
            int(data.get("tokens", 0)),
        )


@dataclass(frozen=True)
class StepBatch:
    """One draw's rewarded rollouts, as a curriculum observes them.

    Attributes:
        iteration: the iteration being trained (1-based; 0 outside an experiment's iterations).
        draw: the draw's index within the iteration's stream (0-based).
        groups: one group per prompt drawn, in draw order (a prompt drawn twice gives two groups).
        kept: for each group, whether the trainer trained on it (False: dropped by a filter).
    """

    iteration: int
    draw: int
    groups: tuple[RolloutGroup, ...]
    kept: tuple[bool, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "iteration": self.iteration,
            "draw": self.draw,
            "groups": [g.to_dict() for g in self.groups],
            "kept": list(self.kept or (True,) * len(self.groups)),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepBatch:
        groups = tuple(RolloutGroup.from_dict(g) for g in data["groups"])
        return cls(
            int(data.get("iteration", 0)),
            int(data["draw"]),
            groups,
            tuple(bool(k) for k in data.get("kept", [True] * len(groups))),
        )


def group_rollouts(
    prompt_ids: Sequence[str], categories: Sequence[str], rewards: Sequence[float], tokens: Sequence[int] | None = None
) -> list[RolloutGroup]:
    """Flat per-completion lists (as TRL and veRL hand them: a prompt's completions share its id) as groups.

    Completions of one prompt id that follow each other form one group; groups keep the order in
    which their prompt first appears.
    """
    if not len(prompt_ids) == len(categories) == len(rewards) or (tokens is not None and len(tokens) != len(rewards)):
        raise ValueError("prompt_ids, categories, rewards (and tokens) must have one entry per completion")
    groups: list[RolloutGroup] = []
    run_id: str | None = None
    acc: list[float] = []
    tok = 0
    cat = ""
    for k, pid in enumerate(prompt_ids):
        if pid != run_id and acc:
            groups.append(RolloutGroup(str(run_id), cat, tuple(acc), tok))
            acc, tok = [], 0
        run_id, cat = pid, categories[k]
        acc.append(float(rewards[k]))
        tok += int(tokens[k]) if tokens is not None else 0
    if acc:
        groups.append(RolloutGroup(str(run_id), cat, tuple(acc), tok))
    return groups
