"""The AOP experiment: arms x iterations under one budget, resumable stage by stage.

Library first: build an :class:`Experiment` from any objects that satisfy the
protocols. The CLI only turns a config file into such objects.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aopcore.analysis.stats import WinRate
from aopcore.engine.collaborators import ROLES, Collaborators
from aopcore.engine.run_prepare import RunPreparation
from aopcore.engine.settings import (
    Budget,
    ExperimentSettings,
    JudgingPlan,
    is_library_snapshot,
    library_snapshot,
    resolved_categories,
)
from aopcore.engine.stage_work import StageWork, _link_tree  # noqa: F401
from aopcore.engine.stagegraph import Stage, StageGraph
from aopcore.engine.stagerun import commit_stage
from aopcore.engine.training import TrainingStage
from aopcore.engine.twins import TwinReuse
from aopcore.engine.validation import experiment_problems, raise_problems
from aopcore.errors import RuntimeFailure
from aopcore.protocols import Embedder, FeedbackLLM, Judge, PolicyTrainer, PromptCurriculum, RewardModel
from aopcore.records import Question
from aopcore.storage.rundir import RunLayout, stage_seed  # noqa: F401 (stage_seed: published as aopcore.engine.experiment.stage_seed)
from aopcore.storage.store import RunStore

__all__ = [
    "Budget",
    "Experiment",
    "ExperimentResult",
    "ExperimentSettings",
    "JudgingPlan",
    "Stage",
    "configure_logging",
    "stage_seed",
]

log = logging.getLogger("aopcore")


@dataclass
class ExperimentResult:
    run_dir: Path
    winrates: list[WinRate]
    ledger: list[dict[str, Any]]


@dataclass
class Experiment(RunPreparation, StageGraph, StageWork, TrainingStage, TwinReuse):
    """Everything one run needs, as plain objects.

    ``arms`` maps an arm name to its curriculum. Components are checked against
    their protocols here, before any stage (plain callables are adapted, see
    :mod:`aopcore.contracts`). A rerun whose fingerprint (everything that shapes
    results, :mod:`aopcore.storage.fingerprint`) differs refuses to touch the existing run
    directory unless ``allow_changes``. ``snapshot`` (the CLI's resolved config) is
    stored as ``config.json`` and describes the components in the fingerprint.
    """

    name: str
    output_dir: Path
    trainer: PolicyTrainer
    reward: RewardModel
    arms: dict[str, PromptCurriculum]
    heldout: list[Question]
    test_prompts: list[Question]
    judge: Judge | None = None
    feedback: FeedbackLLM | None = None
    embedder: Embedder | None = None
    budget: Budget = field(default_factory=Budget)
    judging: JudgingPlan = field(default_factory=JudgingPlan)
    categories: list[str] | None = None
    seed: int = 0
    keep_checkpoints: str = "all"  # "all" | "last"
    snapshot: dict[str, Any] | None = None
    after_stage: Callable[[str], None] | None = None  # hook for progress UIs and tests
    initial_policy: Path | None = (
        None  # an existing policy_0 folder (linked, not trained): seeds sharing one SFT, own SFT models
    )
    allow_changes: bool = (
        False  # continue a run directory whose fingerprint differs (recorded in fingerprint-changes.jsonl)
    )
    source: tuple[Path, tuple[str, ...]] | None = None  # (config file, --set overrides) the components were built from
    rebuild: Callable[..., Any] | None = (
        None  # rebuild(config, overrides, carried) -> Experiment: how executors' workers build it again
    )

    def __post_init__(self) -> None:
        # the fields keep what was given (dataclasses.replace builds everything below again from them, once); the
        # stages read the immutable settings and the collaborators as adapted and counted
        configured = None if is_library_snapshot(self.snapshot) else self.snapshot  # a config (the CLI's) or none
        parts = Collaborators.adapt(
            trainer=self.trainer,
            reward=self.reward,
            arms=self.arms,
            heldout=self.heldout,
            test_prompts=self.test_prompts,
            judge=self.judge,
            feedback=self.feedback,
            embedder=self.embedder,
        )
        self.settings = ExperimentSettings(
            name=self.name,
            output_dir=Path(self.output_dir),
            budget=self.budget,
            judging=self.judging,
            categories=resolved_categories(self.categories, self.heldout),
            seed=self.seed,
            keep_checkpoints=self.keep_checkpoints,
            initial_policy=self.initial_policy,
            allow_changes=self.allow_changes,
            # library use: the fingerprint describes the objects; config.json records the basics
            snapshot=configured
            or library_snapshot(
                self.name, self.seed, self.budget, parts.arms, {role: parts.component(role) for role in ROLES}
            ),
        )
        raise_problems(experiment_problems(self.settings, parts))  # one line per problem, all at once
        self.parts = parts.counted()  # counted only now, so the checks above name the user's own objects
        self.layout = RunLayout(self.settings.run_dir)
        self.store = RunStore(self.layout.root)
        self._graph = None
        self._written = {}
        self.worker = "local"

    @classmethod
    def from_settings(
        cls,
        settings: ExperimentSettings,
        *,
        trainer: PolicyTrainer,
        reward: RewardModel,
        arms: dict[str, PromptCurriculum],
        heldout: list[Question],
        test_prompts: list[Question],
        **others: Any,
    ) -> Experiment:
        """An experiment from its settings and its collaborators, as TRL builds a trainer from its config (``others``:
        judge, feedback, embedder, after_stage, source, rebuild)."""
        return cls(
            name=settings.name,
            output_dir=settings.output_dir,
            trainer=trainer,
            reward=reward,
            arms=arms,
            heldout=heldout,
            test_prompts=test_prompts,
            budget=settings.budget,
            judging=settings.judging,
            categories=list(settings.categories) if settings.categories else None,
            seed=settings.seed,
            keep_checkpoints=settings.keep_checkpoints,
            snapshot=dict(settings.snapshot) if settings.snapshot is not None else None,
            initial_policy=settings.initial_policy,
            allow_changes=settings.allow_changes,
            **others,
        )

    @property
    def _counted_judge(self) -> Judge | None:
        return self.parts.counted_judge

    @property
    def _counted_feedback(self) -> FeedbackLLM | None:
        return self.parts.counted_feedback

    # ---- stage machinery ----------------------------------------------------------------
    def _stage(
        self,
        stage_id: str,
        kind: str,
        work: Callable[[], dict[str, Any] | None],
        *,
        arm: str | None = None,
        order: int = 0,
        removes: Sequence[str] = (),
    ) -> bool:
        """Run ``work`` unless the stage is done; returns True if it ran.

        The record, written last, holds the sha256 of every output (:mod:`aopcore.storage.integrity`) and the paths the
        stage removes right after (``removes``: a pruned checkpoint is not damage).
        """
        ran = commit_stage(
            self.store,
            stage_id,
            kind,
            work,
            outputs=lambda extra: self._stage_outputs(stage_id, kind, extra),
            order=order,
            arm=arm,
            worker=self.worker,
            removes=removes,
        )
        if ran and self.after_stage:
            self.after_stage(stage_id)
        return ran

    # ---- the stage graph ------------------------------------------------------------------
    def run_stage(self, stage_id: str) -> bool:
        """Run one stage unless it is done (its dependencies must be done); returns True if it ran."""
        graph = self.stages()
        index = next((n for n, s in enumerate(graph) if s.id == stage_id), None)
        if index is None:
            raise KeyError(f"no stage {stage_id!r} in this experiment")
        stage = graph[index]
        missing = [d for d in stage.deps if not self.store.is_done(d)]
        if missing and not self.store.is_done(stage_id):
            raise RuntimeFailure(f"stage {stage_id} cannot run before {', '.join(missing)}")
        prunes = (
            stage.kind == "evaluate"
            and stage.arm is not None
            and self.settings.keep_checkpoints == "last"
            and bool(stage.iteration)
            and (stage.iteration or 0) > 1
        )
        removes = [self._rel(self._policy_dir(stage.arm, (stage.iteration or 0) - 1))] if prunes else []
        ran = self._stage(stage.id, stage.kind, stage.work, arm=stage.arm, order=index + 1, removes=removes)
        self._remove_pruned(removes)  # after the commit; a driver opening the run finishes one a kill cut off
        return ran

    # ---- the loop -------------------------------------------------------------------------
    def run(self, executor: Any = None, *, wait: bool = False) -> ExperimentResult:
        """Run (or resume) every stage; ``executor`` (default: in this process, in ``stages()`` order) decides how:
        an executor object, or a name ("local", "ray").

        One driver per run directory (:mod:`aopcore.storage.runlock`): while another driver runs it, this raises
        :class:`~aopcore.storage.runlock.RunDirectoryBusy` naming the holder, or with ``wait=True`` waits for it to end.
        """
        if isinstance(executor, str):
            from aopcore.executors import named_executor

            executor = named_executor(executor)
        if executor is not None and hasattr(executor, "check"):
            executor.check(self)  # before the run directory is touched: e.g. Ray refuses live objects
        from aopcore.storage.runlock import driver_lock

        with driver_lock(self.store.root, wait=wait):
            self.prepare()
            if executor is None:
                for stage in self.stages():
                    self.run_stage(stage.id)
            else:
                executor.run(self)
            self._remove_empty_work_folders()
            return ExperimentResult(self.store.root, self._winrates(), self.store.stage_records())

    def _remove_empty_work_folders(self) -> None:
        """A finished run keeps ``attempts/`` and ``scratch/`` only while they hold something (a crash's traces)."""
        for folder in (self.layout.attempts_root, self.layout.scratch_root):
            try:
                folder.rmdir()  # only removes an empty folder
            except OSError:
                pass

    # ---- the stages' work -------------------------------------------------------------------
    # ---- the per-step channel (aopcore.steps) ----------------------------------------------------


def configure_logging(verbose: bool = False) -> None:
    from aopcore.progress import enable_console_progress

    enable_console_progress(verbose, sys.stderr)
