"""What the parts of :class:`~aopcore.Experiment` share: the :class:`Stage` record, and the state and methods each
part reads from the others, declared once so that a type checker follows every part on its own."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aopcore.engine.collaborators import Collaborators
from aopcore.engine.settings import ExperimentSettings
from aopcore.storage.rundir import RunLayout
from aopcore.storage.store import RunStore

if TYPE_CHECKING:
    from aopcore.analysis.stats import WinRate
    from aopcore.protocols import CurriculumContext


@dataclass(frozen=True)
class Stage:
    """One unit of work in the run directory; done when its record ``stages/<id>.json`` exists."""

    id: str
    kind: str  # sft | evaluate | prompts | train | answers | judge | report
    arm: str | None
    deps: tuple[str, ...]  # stage ids that must be done first
    work: Callable[[], dict[str, Any] | None] = field(compare=False, repr=False)
    iteration: int | None = None


class ExperimentBase:
    """The state every part of the experiment reads (set by ``Experiment.__post_init__``)."""

    settings: ExperimentSettings  # immutable: budget, seed, judging plan, categories, snapshot
    parts: Collaborators  # trainer, reward, arms, data, as the stages use them
    layout: RunLayout
    store: RunStore
    worker: str  # where this process runs stages (an executor sets e.g. "ray:<pid>"); kept in stage records
    _graph: list[Stage] | None
    _written: dict[str, list[str]]  # outputs a stage's work names for its record (e.g. the train index)

    def _rel(self, path: Path) -> str:
        return self.layout.rel(path)

    def _policy_dir(self, arm: str | None, iteration: int) -> Path:
        return self.layout.policy_dir(arm, iteration)

    def _iter_dir(self, arm: str, iteration: int) -> Path:
        return self.layout.iteration_dir(arm, iteration)

    def _evaluation_path(self, arm: str, iteration: int) -> Path:
        return self.layout.evaluation(arm, iteration)

    if TYPE_CHECKING:  # defined by the other parts (stagegraph, stage_work, training, twins)

        def stages(self) -> list[Stage]: ...
        def stage(self, stage_id: str) -> Stage: ...
        def _pairs(self) -> list[tuple[str, str]]: ...
        def _stage_outputs(self, stage_id: str, kind: str, extra: dict[str, Any]) -> list[str]: ...
        def _make_policy_0(self) -> dict[str, Any] | None: ...
        def _evaluate_policy_0(self) -> dict[str, Any]: ...
        def _choose_prompts(self, arm: str, curriculum: Any, i: int) -> dict[str, Any]: ...
        def _train(self, arm: str, i: int) -> dict[str, Any]: ...
        def _evaluate_iteration(self, arm: str, i: int) -> dict[str, Any]: ...
        def _answer_tests(self, arm: str, i: int) -> dict[str, Any]: ...
        def _judge_stage(self, a: str, b: str, i: int, stage_id: str) -> dict[str, Any]: ...
        def _winrates(self) -> list[WinRate]: ...
        def _write_tables(self, winrates: list[WinRate]) -> dict[str, Any]: ...
        def _write_report(self) -> dict[str, Any]: ...
        def _context(self, arm: str, i: int, *, generate: Any = None, counted: bool = True) -> CurriculumContext: ...
        def _check_prompts(self, arm: str, i: int, prompts: Sequence[Any]) -> None: ...
        def _twin(self, arm: str, i: int) -> Path | None: ...
        def _verified(self, stage_id: str) -> bool: ...
        def _channel_key(self, arm: str, i: int) -> Any: ...
        def _lineage(self, arm: str, iteration: int) -> list[list[str]]: ...
