"""The experiment's stage graph: every stage with its dependencies, and what each stage writes.

A mixin of :class:`~aopcore.Experiment`; the stage ids and paths come from :mod:`aopcore.storage.rundir`.
"""

from __future__ import annotations

import functools
import itertools
import logging
from typing import Any

from aopcore.engine.experiment_base import ExperimentBase, Stage
from aopcore.protocols import PromptCurriculum
from aopcore.storage.rundir import SFT_EVALUATION, SFT_POLICY, judge_stage_id
from aopcore.storage.rundir import stage_id as arm_stage

log = logging.getLogger("aopcore")


class StageGraph(ExperimentBase):
    """``stages()``: sft, then per iteration and arm prompts -> train -> evaluation -> answers, judging, tables, report."""

    def _judged_iterations(self) -> list[int]:
        return self.settings.judged_iterations()

    def _pairs(self) -> list[tuple[str, str]]:
        return self.settings.judging.pairs or list(itertools.combinations(self.parts.arms, 2))

    def stages(self) -> list[Stage]:
        """Every stage of the run with its dependencies, in the local executor's (iteration-major) order.

        An arm's chain (prompts -> train -> evaluation -> answers) depends only on its own previous iteration;
        judging needs both arms of a pair at one iteration. Executors may run independent stages together.
        """
        if self._graph is not None:
            return self._graph
        stages: list[Stage] = [
            Stage(SFT_POLICY, "sft", None, (), self._make_policy_0),
            Stage(SFT_EVALUATION, "evaluate", None, (SFT_POLICY,), self._evaluate_policy_0),
        ]
        judged = set(self._judged_iterations()) if self.parts.judge is not None else set()
        for i in range(1, self.settings.budget.iterations + 1):
            for arm, curriculum in self.parts.arms.items():
                stages += self._iteration_stages(arm, curriculum, i, answers=i in judged)
        judge_ids = []
        if self.parts.judge is not None:
            for a, b in self._pairs():
                for i in self._judged_iterations():
                    stage_id = judge_stage_id(a, b, i)
                    judge_ids.append(stage_id)
                    stages.append(
                        Stage(
                            stage_id,
                            "judge",
                            None,
                            (arm_stage(a, i, "answers"), arm_stage(b, i, "answers")),
                            functools.partial(self._judge_stage, a, b, i, stage_id),
                            iteration=i,
                        )
                    )
        stages.append(Stage("tables", "report", None, tuple(judge_ids), lambda: self._write_tables(self._winrates())))
        stages.append(Stage("report", "report", None, tuple(s.id for s in stages), self._write_report))
        self._graph = stages
        return stages

    def _iteration_stages(self, arm: str, curriculum: PromptCurriculum, i: int, *, answers: bool) -> list[Stage]:
        prev_train = arm_stage(arm, i - 1, "train") if i > 1 else SFT_POLICY
        prev_eval = arm_stage(arm, i - 1, "evaluation") if i > 1 else SFT_EVALUATION
        eval_deps = [arm_stage(arm, i, "train")]
        if (
            self.settings.keep_checkpoints == "last"
            and i > 1
            and (i - 1) in (set(self._judged_iterations()) if self.parts.judge else set())
        ):
            eval_deps.append(arm_stage(arm, i - 1, "answers"))  # the previous policy is removed after this evaluation
        out = [
            Stage(
                arm_stage(arm, i, "prompts"),
                "prompts",
                arm,
                (prev_eval, prev_train),
                functools.partial(self._choose_prompts, arm, curriculum, i),
                iteration=i,
            ),
            Stage(
                arm_stage(arm, i, "train"),
                "train",
                arm,
                (arm_stage(arm, i, "prompts"), prev_train),
                functools.partial(self._train, arm, i),
                iteration=i,
            ),
            Stage(
                arm_stage(arm, i, "evaluation"),
                "evaluate",
                arm,
                tuple(eval_deps),
                functools.partial(self._evaluate_iteration, arm, i),
                iteration=i,
            ),
        ]
        if answers:
            out.append(
                Stage(
                    arm_stage(arm, i, "answers"),
                    "answers",
                    arm,
                    (arm_stage(arm, i, "train"),),
                    functools.partial(self._answer_tests, arm, i),
                    iteration=i,
                )
            )
        return out

    def stage(self, stage_id: str) -> Stage:
        for s in self.stages():
            if s.id == stage_id:
                return s
        raise KeyError(stage_id)

    def _stage_outputs(self, stage_id: str, kind: str, extra: dict[str, Any]) -> list[str]:
        """What a stage writes, relative to the run directory (hashed into its record)."""
        try:
            stage = self.stage(stage_id)
        except KeyError:
            return []
        arm, i = stage.arm, stage.iteration or 0
        if kind == "sft":
            return [self._rel(self._policy_dir(None, 0))]
        if kind == "evaluate":
            return [self._rel(self._evaluation_path(arm or "", i))]
        if kind == "prompts" and arm is not None:
            return [self._rel(self.layout.prompts(arm, i)), *self.layout.curriculum_logs(arm, i)]
        if kind == "train" and arm is not None:
            return [
                self._rel(self._policy_dir(arm, i)),
                self._rel(self.layout.train_record(arm, i)),
                *self._written.pop(stage_id, []),
            ]
        if kind == "answers" and arm is not None:
            return [self._rel(self.layout.test_answers(arm, i))]
        if kind == "judge":
            return [*self._written.pop(stage_id, [])]
        if stage_id == "tables":
            return list(extra.get("files", []))
        return []  # the report: rewritten from the rest by `aopcore report`, and it holds wall times


__all__ = ["Stage", "StageGraph"]
