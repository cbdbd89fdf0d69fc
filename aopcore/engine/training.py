"""The training stage: common random numbers, the train index that reuses a twin's policy, the per-step stream.

A mixin of :class:`~aopcore.Experiment`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from aopcore import contracts
from aopcore.capabilities import observes_steps, train_accepts
from aopcore.engine.contexts import curriculum_context
from aopcore.engine.experiment_base import ExperimentBase
from aopcore.engine.stage_work import _link_tree
from aopcore.errors import RuntimeFailure
from aopcore.ledger import book_train_tokens
from aopcore.protocols import CurriculumContext
from aopcore.records import EvalRecord, Prompt, read_jsonl, to_dict
from aopcore.steps import open_stream, write_batches
from aopcore.storage import integrity
from aopcore.storage.fingerprint import describe
from aopcore.storage.rundir import TRAIN_RECORD, stage_seed, train_seed_key
from aopcore.storage.rundir import stage_id as arm_stage
from aopcore.storage.store import atomic_directory, atomic_write_json, atomic_write_text

log = logging.getLogger("aopcore")


class TrainingStage(ExperimentBase):
    """Train an arm's iteration (or link the identical twin's policy) and record its per-step batches."""

    def _train(self, arm: str, i: int) -> dict[str, Any]:
        prompts = read_jsonl(self.layout.prompts(arm, i), Prompt)
        prev_policy = self._policy_dir(arm, i - 1)
        out = self._policy_dir(arm, i)
        # Common random numbers: the seed depends on what is trained (start policy and prompts), not on the
        # arm's name, so arms that see the same prompts from the same policy (AOP and SOP at iteration 1)
        # train the same model, and other arms are compared under the same sampling noise.
        # an arm in the per-step channel trains on what its curriculum draws, not only on the planned prompts
        channel = self._channel_key(arm, i)
        key = [self._lineage(arm, i - 1), [(p.id, p.text) for p in prompts]] + (
            [channel] if channel is not None else []
        )
        digest = hashlib.sha256(json.dumps(key).encode()).hexdigest()
        index = self.layout.train_index(digest)
        known = integrity.read_record(index)
        twin = self.store.path(known.get("iteration_dir", "")) if known else None
        twin_stage = f"{twin.relative_to(self.store.root).as_posix()}/train" if twin is not None else ""
        if (
            twin is not None
            and twin != self._iter_dir(arm, i)
            and self._verified(twin_stage)
            and (twin / "policy").exists()
        ):
            # the same start policy trained on the same prompts with the same seed: the result is known
            with atomic_directory(out) as tmp:
                _link_tree(twin / "policy", tmp)
            atomic_write_text(self.layout.train_record(arm, i), (twin / TRAIN_RECORD).read_text())
            return {"reused_from": str(twin.relative_to(self.store.root))}
        if isinstance(self.parts.reward, contracts.RewardFunction):
            self.parts.reward.learn_categories((p.text, p.category) for p in prompts)
        # a stable folder for the trainer's own mid-stage checkpoints: it survives a crash, so a resumed stage finds them
        scratch = self.layout.train_scratch(arm, i)
        extra: dict[str, Any] = {"scratch": scratch} if train_accepts(self.parts.trainer, "scratch") else {}
        stream = self._open_stream(arm, i, prompts, scratch)
        if stream is not None:
            extra["stream"] = stream
        if extra:
            scratch.mkdir(parents=True, exist_ok=True)
        try:
            with atomic_directory(out) as tmp:
                stats = contracts.train_stats(
                    self.parts.trainer,
                    self.parts.trainer.train(
                        prev_policy,
                        prompts,
                        contracts.checked_reward(self.parts.reward),
                        passes=self.settings.budget.passes,
                        out=tmp,
                        seed=stage_seed(self.settings.seed, train_seed_key(digest)),
                        **extra,
                    ),
                )
                if problem := contracts.policy_problem(self.parts.trainer, tmp, "train"):
                    raise RuntimeFailure(problem)  # the stage stays unfinished; a fixed trainer completes it
        except contracts.BadComponentOutput:
            shutil.rmtree(
                scratch, ignore_errors=True
            )  # checkpoints written up to a bad value must not seed the next attempt
            raise
        book_train_tokens(stats.tokens_generated)  # unless train() recorded its tokens itself: never both
        written = [self._rel(index)]
        record: dict[str, Any] = {"steps": stats.steps, "episodes": stats.episodes}
        if stream is not None:  # the iteration's per-step batches, beside its prompts: the next iterations' ctx.steps
            stream.finish()
            write_batches(self.layout.steps(arm, i), stream.batches())
            written.append(self._rel(self.layout.steps(arm, i)))
            record["stream"] = stream.summary()
        shutil.rmtree(scratch, ignore_errors=True)
        atomic_write_json(self.layout.train_record(arm, i), to_dict(stats))
        atomic_write_json(index, {"iteration_dir": str(self._iter_dir(arm, i).relative_to(self.store.root))})
        self._written[arm_stage(arm, i, "train")] = written
        return record

    def _context(self, arm: str, i: int, *, generate: Any = None, counted: bool = True) -> CurriculumContext:
        """The arm's iteration-``i`` context (:mod:`aopcore.engine.contexts`, shared with CurriculumSession)."""
        return curriculum_context(
            self.layout,
            self.parts.arms[arm],
            arm,
            i,
            iterations=self.settings.budget.iterations,
            budget=self.settings.budget.records_per_iteration,
            base_seed=self.settings.seed,
            categories=list(self.settings.categories),
            evaluation=read_jsonl(self._evaluation_path(arm, i - 1), EvalRecord),
            feedback=self.parts.counted_feedback,
            embedder=self.parts.embedder,
            reward=self.parts.reward,
            generate=generate,
            counted=counted,
            heldout=[q.text for q in self.parts.heldout],
        )

    def _channel_key(self, arm: str, i: int) -> Any:
        """What, beyond the planned prompts, decides an arm's training in the per-step channel: its curriculum and
        the stream's seed (None outside the channel). Two arms are training twins only if this agrees too."""
        curriculum = self.parts.arms[arm]
        if not observes_steps(curriculum):
            return None
        given = self.settings.configured
        configured = given.get("arms", {}).get(arm) if isinstance(given, Mapping) else None
        return {
            "curriculum": configured if configured is not None else describe(curriculum),
            "seed": stage_seed(self.settings.seed, arm_stage(arm, i, "prompts")),
        }

    def _open_stream(self, arm: str, i: int, prompts: Sequence[Prompt], scratch: Path) -> Any:
        """The stream the trainer draws iteration ``i``'s steps from, for a curriculum in the channel and a trainer
        whose ``train`` takes ``stream``; None otherwise (the trainer then trains on ``prompts`` as always)."""
        curriculum = self.parts.arms[arm]
        if not observes_steps(curriculum) or not train_accepts(self.parts.trainer, "stream"):
            return None
        ctx = self._context(arm, i, counted=False)  # the prompts stage's context: same seed, evaluation, history, steps
        return open_stream(curriculum, ctx, prompts, passes=self.settings.budget.passes, log=scratch / "stream.jsonl")
