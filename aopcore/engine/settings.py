"""An experiment's settings: what shapes its results and where its run directory lives, immutable.

Kept apart from the objects the run works with (:mod:`aopcore.engine.collaborators`), as TRL keeps ``GRPOConfig`` apart
from ``GRPOTrainer``: a setting cannot change under a running experiment, and copying one with
:func:`dataclasses.replace` (a seed of a multi-seed run) touches no component.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Budget:
    """Identical for every arm: that is what makes the comparison fair."""

    iterations: int = 4
    records_per_iteration: int = 2000
    passes: int = 2


@dataclass(frozen=True)
class JudgingPlan:
    pairs: list[tuple[str, str]] | None = None  # default: every pair of arms
    iterations: list[int] | None = None  # default: all
    both_orders: bool = True


@dataclass(frozen=True)
class ExperimentSettings:
    """The settings of one run, resolved (``categories`` filled in, ``snapshot`` what ``config.json`` records).

    ``snapshot`` is the CLI's resolved config, which also describes the components in the fingerprint, or for an
    experiment built in Python a record of the basics (``"source": "library"``; the objects describe themselves).
    """

    name: str
    output_dir: Path
    budget: Budget = field(default_factory=Budget)
    judging: JudgingPlan = field(default_factory=JudgingPlan)
    categories: tuple[str, ...] = ()
    seed: int = 0
    keep_checkpoints: str = "all"  # "all" | "last"
    initial_policy: Path | None = None  # an existing policy_0 folder (linked, not trained)
    allow_changes: bool = False  # continue a run directory whose fingerprint differs (recorded)
    snapshot: Mapping[str, Any] | None = None

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir) / self.name

    @property
    def configured(self) -> Mapping[str, Any] | None:
        """The given config that describes the components (the CLI's), or None for objects built in Python."""
        return None if is_library_snapshot(self.snapshot) else self.snapshot

    def judged_iterations(self) -> list[int]:
        return self.judging.iterations or list(range(1, self.budget.iterations + 1))


def is_library_snapshot(snapshot: Mapping[str, Any] | None) -> bool:
    """No config was given (or the record made for objects built in Python, e.g. carried over by replace())."""
    return snapshot is None or snapshot.get("source") == "library"


def library_snapshot(
    name: str, seed: int, budget: Budget, arms: Mapping[str, Any], components: Mapping[str, Any]
) -> dict[str, Any]:
    """config.json of an experiment built in Python: the basics, and the class of every object."""
    return {
        "source": "library",
        "experiment": {
            "name": name,
            "seed": seed,
            "iterations": budget.iterations,
            "records_per_iteration": budget.records_per_iteration,
            "passes": budget.passes,
        },
        "arms": {arm: type(c).__name__ for arm, c in arms.items()},
        "components": {role: type(c).__name__ for role, c in components.items()},
    }


def resolved_categories(categories: Sequence[str] | None, heldout: Sequence[Any]) -> tuple[str, ...]:
    """The given categories, or those of the held-out questions."""
    return tuple(categories) if categories is not None else tuple(sorted({q.category for q in heldout}))
