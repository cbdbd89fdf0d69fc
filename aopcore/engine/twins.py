"""Twin reuse across arms: which arms trained the same model, and what a stage run out of order waits for.

A mixin of :class:`~aopcore.Experiment`; executors ask ``waits_for`` before running a stage.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from aopcore.capabilities import required_components
from aopcore.engine.experiment_base import ExperimentBase
from aopcore.records import Prompt, read_jsonl
from aopcore.storage import integrity
from aopcore.storage.rundir import stage_id as arm_stage

log = logging.getLogger("aopcore")


class TwinReuse(ExperimentBase):
    """Arms with the same start policy and prompts share one trained model (and its evaluation and answers)."""

    def _verified(self, stage_id: str) -> bool:
        """A finished stage whose outputs still match its record (what twin reuse may copy from)."""
        return self.store.is_done(stage_id) and integrity.verify_run(self.store.root, [stage_id]).ok

    def _twin(self, arm: str, i: int) -> Path | None:
        """The iteration folder whose trained policy this arm's iteration reused, if any."""
        record = self.store.stage_file(arm_stage(arm, i, "train"))
        reused = json.loads(record.read_text()).get("reused_from") if record.exists() else None
        return self.store.path(reused) if reused else None

    def waits_for(self, stage_id: str) -> list[str]:
        """Stages beyond ``deps`` to finish first, so that a stage run out of ``stages()`` order does what it does in
        order; decided from the run directory once its deps are done (ask again when these are done; [] = ready).

        Twins (arms with the same start policy and prompts, e.g. AOP and SOP at iteration 1) must resolve as in
        order: the later arm's training reuses the earlier arm's policy (so it waits for that training), its
        evaluation and test answers copy the twin's, and with keep_checkpoints="last" a policy is not removed
        while a later arm may still reuse it. Stages of one iteration that share the response cache (prompt
        writing with the feedback LLM; judging) run in order, so the same calls are cache hits as in order
        (AOP's iteration-1 feedback calls are SOP's by design) and the same stages book them as cached.
        """
        stage = self.stage(stage_id)
        if stage.kind == "judge" or (stage.kind == "prompts" and self._writes_with_feedback(stage.arm)):
            for earlier in self.stages():
                if earlier.id == stage_id:
                    break
                shares = (
                    earlier.kind == stage.kind
                    and earlier.iteration == stage.iteration
                    and (stage.kind == "judge" or self._writes_with_feedback(earlier.arm))
                )
                if shares and not self.store.is_done(earlier.id):
                    return [earlier.id]
        if stage.arm is None or stage.iteration is None:
            return []
        arms, i = list(self.parts.arms), stage.iteration
        if stage.kind == "train":
            for earlier_arm in arms[: arms.index(stage.arm)]:
                same = self._same_lineage(stage.arm, earlier_arm, i)
                if isinstance(same, str):
                    return [same]
                if same and not self.store.is_done(arm_stage(earlier_arm, i, "train")):
                    return [arm_stage(earlier_arm, i, "train")]
        if stage.kind in ("evaluate", "answers") and (twin := self._twin(stage.arm, i)) is not None:
            twin_stage = f"{twin.relative_to(self.store.root)}/{stage_id.rsplit('/', 1)[1]}"
            if not self.store.is_done(twin_stage):
                return [twin_stage]
        if (
            stage.kind == "evaluate" and self.settings.keep_checkpoints == "last" and i > 1
        ):  # this stage removes policy(i - 1)
            for later in arms[arms.index(stage.arm) + 1 :]:
                train = arm_stage(later, i - 1, "train")
                same = False if self.store.is_done(train) else self._same_lineage(later, stage.arm, i - 1)
                if isinstance(same, str):
                    return [same]
                if same:
                    return [train]
        return []

    def _writes_with_feedback(self, arm: str | None) -> bool:
        return arm is not None and arm in self.parts.arms and "feedback" in required_components(self.parts.arms[arm])

    def _same_lineage(self, arm: str, other: str, i: int) -> bool | str:
        """Whether two arms trained on the same prompts at iterations 1..i, or the prompts stage still to wait for."""
        for j in range(1, i + 1):
            if self._channel_key(arm, j) != self._channel_key(other, j):
                return False  # per-step choices differ: the same planned prompts train other models
            mine, theirs = (self._prompt_keys(a, j) for a in (arm, other))
            if mine is None or theirs is None:
                return arm_stage(arm if mine is None else other, j, "prompts")
            if mine != theirs:
                return False
        return True

    def _prompt_keys(self, arm: str, j: int) -> list[str] | None:
        if not self.store.is_done(arm_stage(arm, j, "prompts")):
            return None
        return [f"{p.id}:{p.text}" for p in read_jsonl(self.layout.prompts(arm, j), Prompt)]

    def _lineage(self, arm: str, iteration: int) -> list[list[str]]:
        """The prompt ids that produced policy_{iteration} of this arm (empty for the shared SFT policy)."""
        return [
            [f"{p.id}:{p.text}" for p in read_jsonl(self.layout.prompts(arm, j), Prompt)]
            for j in range(1, iteration + 1)
        ]
