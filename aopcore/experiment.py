"""The AOP experiment: arms x iterations under one budget, resumable stage by stage.

Library first: build an :class:`Experiment` from any objects that satisfy the
protocols. The CLI only turns a config file into such objects.
"""
from __future__ import annotations

import functools
import hashlib
import itertools
import json
import logging
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aopcore import contracts, integrity, tables
from aopcore.capabilities import (
    chooses_per_step,
    observes_steps,
    reads_evaluation,
    required_components,
    train_accepts,
    trains_from_stream,
)
from aopcore.contexts import curriculum_context
from aopcore.errors import InputError, RuntimeFailure
from aopcore.fingerprint import check_run_dir, describe, experiment_fingerprint
from aopcore.judging import PairVerdict, judge_pair, tally
from aopcore.ledger import (
    book_train_tokens,
    counted_feedback,
    counted_judge,
    record_usage,
)
from aopcore.protocols import (
    CurriculumContext,
    Embedder,
    FeedbackLLM,
    Judge,
    PolicyTrainer,
    PromptCurriculum,
    RewardModel,
)
from aopcore.rundir import (
    EVALUATION,
    TEST_ANSWERS,
    TRAIN_RECORD,
    SFT_EVALUATION,
    SFT_POLICY,
    RunLayout,
    answers_seed_key,
    evaluation_seed_key,
    judge_stage_id,
    stage_id as arm_stage,
    stage_seed,
    train_seed_key,
)
from aopcore.records import (
    EvalRecord,
    Prompt,
    Question,
    category_counts,
    iter_jsonl,
    read_jsonl,
    to_dict,
    write_jsonl,
)
from aopcore.stagerun import commit_stage
from aopcore.stats import WinRate
from aopcore.steps import open_stream, write_batches
from aopcore.store import (
    RunStore,
    atomic_directory,
    atomic_write_json,
    atomic_write_text,
    clean_temporaries,
)

log = logging.getLogger("aopcore")


@dataclass(frozen=True)
class Stage:
    """One unit of work in the run directory; done when its record ``stages/<id>.json`` exists."""

    id: str
    kind: str  # sft | evaluate | prompts | train | answers | judge | report
    arm: str | None
    deps: tuple[str, ...]  # stage ids that must be done first
    work: Callable[[], dict[str, Any] | None] = field(compare=False, repr=False)
    iteration: int | None = None


@dataclass
class Budget:
    """Identical for every arm: that is what makes the comparison fair."""

    iterations: int = 4
    records_per_iteration: int = 2000
    passes: int = 2


@dataclass
class JudgingPlan:
    pairs: list[tuple[str, str]] | None = None  # default: every pair of arms
    iterations: list[int] | None = None  # default: all
    both_orders: bool = True


@dataclass
class ExperimentResult:
    run_dir: Path
    winrates: list[WinRate]
    ledger: list[dict[str, Any]]


@dataclass
class Experiment:
    """Everything one run needs, as plain objects.

    ``arms`` maps an arm name to its curriculum. Components are checked against
    their protocols here, before any stage (plain callables are adapted, see
    :mod:`aopcore.contracts`). A rerun whose fingerprint (everything that shapes
    results, :mod:`aopcore.fingerprint`) differs refuses to touch the existing run
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
    initial_policy: Path | None = None  # an existing policy_0 folder (linked, not trained): seeds sharing one SFT, own SFT models
    allow_changes: bool = False  # continue a run directory whose fingerprint differs (recorded in fingerprint-changes.jsonl)
    source: tuple[Path, tuple[str, ...]] | None = None  # (config file, --set overrides) the components were built from
    rebuild: Callable[..., Any] | None = None  # rebuild(config, overrides, carried) -> Experiment: how executors' workers build it again

    def __post_init__(self) -> None:
        self.layout = RunLayout(Path(self.output_dir) / self.name)
        self.store = RunStore(self.layout.root)
        self._graph: list[Stage] | None = None
        self._written: dict[str, list[str]] = {}  # outputs a stage's work names for its record (e.g. the train index)
        self.worker = "local"  # where this process runs stages (an executor sets e.g. "ray:<pid>"); kept in stage records
        if self.categories is None:
            self.categories = sorted({q.category for q in self.heldout})
        library = self.snapshot is None or self.snapshot.get("source") == "library"  # (re)made here, e.g. after replace()
        self._configured = None if library else self.snapshot  # a given config (the CLI's) describes the components
        self._adapt_components()
        if library:  # library use: the fingerprint describes the objects; config.json records the basics
            self.snapshot = {
                "source": "library",
                "experiment": {"name": self.name, "seed": self.seed, "iterations": self.budget.iterations,
                               "records_per_iteration": self.budget.records_per_iteration, "passes": self.budget.passes},
                "arms": {arm: type(c).__name__ for arm, c in self.arms.items()},
                "components": {k: type(getattr(self, k)).__name__ for k in ("trainer", "reward", "judge", "feedback", "embedder")},
            }
        self._check()

    # ---- checks -------------------------------------------------------------------------
    def _adapt_components(self) -> None:
        """Plain callables become components (a TRL-style reward function, ...); see aopcore.contracts."""
        self.reward = contracts.adapt("reward", self.reward)
        self.feedback = contracts.adapt("feedback", self.feedback)
        self.judge = contracts.adapt("judge", self.judge)
        self.embedder = contracts.adapt("embedder", self.embedder)
        self.arms = {arm: contracts.adapt("curriculum", c) for arm, c in self.arms.items()}
        if isinstance(self.reward, contracts.RewardFunction):
            self.reward.learn_categories((q.text, q.category) for q in [*self.heldout, *self.test_prompts])

    def _check(self) -> None:
        problems = []
        for role in ("trainer", "reward", "judge", "feedback", "embedder"):  # before any stage: one line per problem
            if getattr(self, role) is not None:
                problems += contracts.check_component(role, getattr(self, role))
        for arm, curriculum in self.arms.items():
            problems += contracts.check_component("curriculum", curriculum, f"arms.{arm}")
        if not self.arms:
            problems.append("experiment has no arms")
        for arm in self.arms:
            if not arm or "/" in arm or arm.startswith("."):
                problems.append(f"arms.{arm}: arm names must be plain folder names")
        for arm, curriculum in self.arms.items():
            needs = required_components(curriculum)
            if "feedback" in needs and self.feedback is None:
                problems.append(f"arms.{arm}: curriculum needs a [feedback] LLM and none is configured")
            if "embedder" in needs and self.embedder is None:
                problems.append(f"arms.{arm}: curriculum needs an [embedder] and none is configured")
            if chooses_per_step(curriculum) and not trains_from_stream(self.trainer):
                problems.append(f"arms.{arm}: curriculum {type(curriculum).__name__} chooses every training step's prompts "
                                f"(selector), and {contracts.component_name('trainer', self.trainer)} takes no stream "
                                "(its train() has no `stream` keyword): use a trainer that does (ppo, grpo, rloo) or a curriculum "
                                "that chooses per iteration")
        if self.judging.pairs:
            for a, b in self.judging.pairs:
                for arm in (a, b):
                    if arm not in self.arms:
                        problems.append(f"evaluation.pairs: unknown arm {arm!r} (arms: {', '.join(self.arms)})")
        for i in self.judging.iterations or []:
            if not 1 <= i <= self.budget.iterations:
                problems.append(f"evaluation.iterations: {i} is outside 1..{self.budget.iterations}")
        if not self.heldout:
            problems.append("data.heldout: no held-out questions")
        if problems:
            raise InputError(*problems)
        # calls are counted by the experiment unless the component books them itself (counted only now, so the
        # checks above name the user's own objects)
        self.feedback = counted_feedback(self.feedback)
        self.judge = counted_judge(self.judge)

    def fingerprint(self) -> dict[str, Any]:
        """Everything that shapes this run's results (see :mod:`aopcore.fingerprint`)."""
        return experiment_fingerprint(self, self._configured)

    def _check_fingerprint(self) -> None:
        """Refuse a rerun with a different setup (one line listing what changed) unless ``allow_changes``."""
        config = self.layout.config
        if config.exists() and not self.store.path("fingerprint.json").exists() and self._configured is not None:
            self._check_snapshot()  # a run directory from before fingerprints: the old, coarser check
        changed = check_run_dir(self.store.root, self.fingerprint(), allow_changes=self.allow_changes)
        if changed:  # mid-stage checkpoints of the old setup must not seed the new one
            shutil.rmtree(self.layout.scratch_root, ignore_errors=True)
        if self.snapshot is not None and (changed or not config.exists()):
            atomic_write_json(config, self.snapshot)

    def _check_snapshot(self) -> None:
        if self.snapshot is None:
            return
        path = self.layout.config
        if path.exists():
            old = json.loads(path.read_text())
            if old != json.loads(json.dumps(self.snapshot, sort_keys=True)):
                raise InputError(
                    f"{self.store.root}: this run directory holds a run with a different config; "
                    "choose another experiment.name (finished work is never overwritten)"
                )
        else:
            atomic_write_json(path, self.snapshot)

    # ---- stage machinery ----------------------------------------------------------------
    def _stage(self, stage_id: str, kind: str, work: Callable[[], dict[str, Any] | None], *, arm: str | None = None,
               order: int = 0, removes: Sequence[str] = ()) -> bool:
        """Run ``work`` unless the stage is done; returns True if it ran.

        The record, written last, holds the sha256 of every output (:mod:`aopcore.integrity`) and the paths the
        stage removes right after (``removes``: a pruned checkpoint is not damage).
        """
        ran = commit_stage(self.store, stage_id, kind, work, outputs=lambda extra: self._stage_outputs(stage_id, kind, extra),
                           order=order, arm=arm, worker=self.worker, removes=removes)
        if ran and self.after_stage:
            self.after_stage(stage_id)
        return ran

    def _policy_dir(self, arm: str | None, iteration: int) -> Path:
        return self.layout.policy_dir(arm, iteration)

    def _iter_dir(self, arm: str, iteration: int) -> Path:
        return self.layout.iteration_dir(arm, iteration)

    def _evaluation_path(self, arm: str, iteration: int) -> Path:
        return self.layout.evaluation(arm, iteration)

    def _evaluate(self, policy: Path, out: Path, seed: int) -> dict[str, Any]:
        texts = [q.text for q in self.heldout]
        answers = self.trainer.generate(policy, texts, seed=seed)
        if problem := contracts.count_problem("trainer", self.trainer, "generate", answers, len(texts)):
            raise contracts.BadComponentOutput(problem)
        rewards = contracts.checked_rewards(self.reward, self.reward.score(texts, answers), texts, ids=[q.id for q in self.heldout])
        record_usage(reward_calls=len(texts))
        records = [EvalRecord(q.id, q.text, q.category, a, r) for q, a, r in zip(self.heldout, answers, rewards)]
        write_jsonl(out, records)
        return {"mean_reward": sum(r.reward for r in records) / len(records)}

    def _judged_iterations(self) -> list[int]:
        return self.judging.iterations or list(range(1, self.budget.iterations + 1))

    def _pairs(self) -> list[tuple[str, str]]:
        return self.judging.pairs or list(itertools.combinations(self.arms, 2))

    # ---- the stage graph ------------------------------------------------------------------
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
        judged = set(self._judged_iterations()) if self.judge is not None else set()
        for i in range(1, self.budget.iterations + 1):
            for arm, curriculum in self.arms.items():
                stages += self._iteration_stages(arm, curriculum, i, answers=i in judged)
        judge_ids = []
        if self.judge is not None:
            for a, b in self._pairs():
                for i in self._judged_iterations():
                    stage_id = judge_stage_id(a, b, i)
                    judge_ids.append(stage_id)
                    stages.append(Stage(stage_id, "judge", None, (arm_stage(a, i, "answers"), arm_stage(b, i, "answers")),
                                        functools.partial(self._judge_stage, a, b, i, stage_id), iteration=i))
        stages.append(Stage("tables", "report", None, tuple(judge_ids), lambda: self._write_tables(self._winrates())))
        stages.append(Stage("report", "report", None, tuple(s.id for s in stages), self._write_report))
        self._graph = stages
        return stages

    def _iteration_stages(self, arm: str, curriculum: PromptCurriculum, i: int, *, answers: bool) -> list[Stage]:
        prev_train = arm_stage(arm, i - 1, "train") if i > 1 else SFT_POLICY
        prev_eval = arm_stage(arm, i - 1, "evaluation") if i > 1 else SFT_EVALUATION
        eval_deps = [arm_stage(arm, i, "train")]
        if self.keep_checkpoints == "last" and i > 1 and (i - 1) in (set(self._judged_iterations()) if self.judge else set()):
            eval_deps.append(arm_stage(arm, i - 1, "answers"))  # the previous policy is removed after this evaluation
        out = [
            Stage(arm_stage(arm, i, "prompts"), "prompts", arm, (prev_eval, prev_train),
                  functools.partial(self._choose_prompts, arm, curriculum, i), iteration=i),
            Stage(arm_stage(arm, i, "train"), "train", arm, (arm_stage(arm, i, "prompts"), prev_train),
                  functools.partial(self._train, arm, i), iteration=i),
            Stage(arm_stage(arm, i, "evaluation"), "evaluate", arm, tuple(eval_deps), functools.partial(self._evaluate_iteration, arm, i),
                  iteration=i),
        ]
        if answers:
            out.append(Stage(arm_stage(arm, i, "answers"), "answers", arm, (arm_stage(arm, i, "train"),),
                             functools.partial(self._answer_tests, arm, i), iteration=i))
        return out

    def stage(self, stage_id: str) -> Stage:
        for s in self.stages():
            if s.id == stage_id:
                return s
        raise KeyError(stage_id)

    def prepare(self) -> None:
        """Create the run directory, refuse a different config, sweep partial writes. Once per run, before any stage."""
        self.store.root.mkdir(parents=True, exist_ok=True)
        self._check_fingerprint()
        from aopcore.executors.lock import wait_for_stages

        wait_for_stages(self.store.root)  # stages a killed driver left running on workers end before the sweep
        removed = clean_temporaries(self.store.root)
        if removed:
            log.info("removed %d partial writes left by an interrupted run", removed)
        self._recompute_damaged()

    def _recompute_damaged(self) -> list[str]:
        """Check every finished stage's outputs against its record; forget a damaged stage and every stage that
        depends on it (their records are removed, so they run again), saying which and why. Returns their ids."""
        graph = self.stages()
        known = {s.id for s in graph}
        result = integrity.verify_run(self.store.root, [s.id for s in graph if self.store.is_done(s.id)])
        if result.ok:
            return []
        for damage in result.damage:
            log.warning("damaged: %s", damage.line(self.store.root))
        redo = [sid for sid in integrity.dependents(graph, result.damaged_stages()) if self.store.is_done(sid)]
        later = [sid for sid in redo if sid not in set(result.damaged_stages())]
        log.warning("recomputing %s%s", ", ".join(result.damaged_stages()),
                    f" and the {len(later)} finished stage(s) that depend on it: {', '.join(later)}" if later else "")
        for sid in redo:
            if sid in known:
                self.store.stage_file(sid).unlink(missing_ok=True)
        return redo

    def _rel(self, path: Path) -> str:
        return self.layout.rel(path)

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
            return [self._rel(self._policy_dir(arm, i)), self._rel(self.layout.train_record(arm, i)),
                    *self._written.pop(stage_id, [])]
        if kind == "answers" and arm is not None:
            return [self._rel(self.layout.test_answers(arm, i))]
        if kind == "judge":
            return [*self._written.pop(stage_id, [])]
        if stage_id == "tables":
            return list(extra.get("files", []))
        return []  # the report: rewritten from the rest by `aopcore report`, and it holds wall times

    def _verified(self, stage_id: str) -> bool:
        """A finished stage whose outputs still match its record (what twin reuse may copy from)."""
        return self.store.is_done(stage_id) and integrity.verify_run(self.store.root, [stage_id]).ok

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
        prunes = stage.kind == "evaluate" and stage.arm is not None and self.keep_checkpoints == "last" and bool(stage.iteration) \
            and (stage.iteration or 0) > 1
        removes = [self._rel(self._policy_dir(stage.arm, (stage.iteration or 0) - 1))] if prunes else []
        ran = self._stage(stage.id, stage.kind, stage.work, arm=stage.arm, order=index + 1, removes=removes)
        if prunes:
            shutil.rmtree(self._policy_dir(stage.arm, (stage.iteration or 0) - 1), ignore_errors=True)
        return ran

    # ---- the loop -------------------------------------------------------------------------
    def run(self, executor: Any = None, *, wait: bool = False) -> ExperimentResult:
        """Run (or resume) every stage; ``executor`` (default: in this process, in ``stages()`` order) decides how:
        an executor object, or a name ("local", "ray").

        One driver per run directory (:mod:`aopcore.runlock`): while another driver runs it, this raises
        :class:`~aopcore.runlock.RunDirectoryBusy` naming the holder, or with ``wait=True`` waits for it to end.
        """
        if isinstance(executor, str):
            from aopcore.executors import named_executor

            executor = named_executor(executor)
        if executor is not None and hasattr(executor, "check"):
            executor.check(self)  # before the run directory is touched: e.g. Ray refuses live objects
        from aopcore.runlock import driver_lock

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
    def _make_policy_0(self) -> dict[str, Any] | None:
        with atomic_directory(self._policy_dir(None, 0)) as tmp:
            if self.initial_policy is not None:
                if not Path(self.initial_policy).is_dir():
                    raise InputError(f"initial_policy: {self.initial_policy} is not a policy folder")
                _link_tree(Path(self.initial_policy), tmp)
                return {"reused_from": os.path.relpath(self.initial_policy, self.store.root)}
            self.trainer.initial_policy(tmp, seed=stage_seed(self.seed, SFT_POLICY))
            if problem := contracts.policy_problem(self.trainer, tmp, "initial_policy"):
                raise RuntimeFailure(problem)  # the stage stays unfinished; a fixed trainer completes it
        return None

    def _evaluate_policy_0(self) -> dict[str, Any]:
        return {**self._evaluate(self._policy_dir(None, 0), self._evaluation_path("", 0), stage_seed(self.seed, evaluation_seed_key(0))),
                "used_for_choosing": any(reads_evaluation(c, 1) for c in self.arms.values())}

    def _choose_prompts(self, arm: str, curriculum: PromptCurriculum, i: int) -> dict[str, Any]:
        prev_policy = self._policy_dir(arm, i - 1)
        ctx = self._context(arm, i, generate=lambda seed: (
            lambda texts, sample=False, seed=seed: self.trainer.generate(prev_policy, texts, seed=seed, sample=sample)))
        prompts = list(curriculum.prompts(ctx))
        self._check_prompts(arm, i, prompts)
        write_jsonl(self.layout.prompts(arm, i), prompts)
        return {"n_prompts": len(prompts), "categories": category_counts(prompts)}

    def _train(self, arm: str, i: int) -> dict[str, Any]:
        prompts = read_jsonl(self.layout.prompts(arm, i), Prompt)
        prev_policy = self._policy_dir(arm, i - 1)
        out = self._policy_dir(arm, i)
        # Common random numbers: the seed depends on what is trained (start policy and prompts), not on the
        # arm's name, so arms that see the same prompts from the same policy (AOP and SOP at iteration 1)
        # train the same model, and other arms are compared under the same sampling noise.
        # an arm in the per-step channel trains on what its curriculum draws, not only on the planned prompts
        channel = self._channel_key(arm, i)
        key = [self._lineage(arm, i - 1), [(p.id, p.text) for p in prompts]] + ([channel] if channel is not None else [])
        digest = hashlib.sha256(json.dumps(key).encode()).hexdigest()
        index = self.layout.train_index(digest)
        twin = self.store.path(integrity.read_record(index).get("iteration_dir", "")) if integrity.read_record(index) else None
        twin_stage = f"{twin.relative_to(self.store.root).as_posix()}/train" if twin is not None else ""
        if twin is not None and twin != self._iter_dir(arm, i) and self._verified(twin_stage) and (twin / "policy").exists():
            # the same start policy trained on the same prompts with the same seed: the result is known
            with atomic_directory(out) as tmp:
                _link_tree(twin / "policy", tmp)
            atomic_write_text(self.layout.train_record(arm, i), (twin / TRAIN_RECORD).read_text())
            return {"reused_from": str(twin.relative_to(self.store.root))}
        if isinstance(self.reward, contracts.RewardFunction):
            self.reward.learn_categories((p.text, p.category) for p in prompts)
        # a stable folder for the trainer's own mid-stage checkpoints: it survives a crash, so a resumed stage finds them
        scratch = self.layout.train_scratch(arm, i)
        extra: dict[str, Any] = {"scratch": scratch} if train_accepts(self.trainer, "scratch") else {}
        stream = self._open_stream(arm, i, prompts, scratch)
        if stream is not None:
            extra["stream"] = stream
        if extra:
            scratch.mkdir(parents=True, exist_ok=True)
        try:
            with atomic_directory(out) as tmp:
                stats = contracts.train_stats(self.trainer, self.trainer.train(
                    prev_policy, prompts, contracts.checked_reward(self.reward), passes=self.budget.passes, out=tmp,
                    seed=stage_seed(self.seed, train_seed_key(digest)), **extra))
                if problem := contracts.policy_problem(self.trainer, tmp, "train"):
                    raise RuntimeFailure(problem)  # the stage stays unfinished; a fixed trainer completes it
        except contracts.BadComponentOutput:
            shutil.rmtree(scratch, ignore_errors=True)  # checkpoints written up to a bad value must not seed the next attempt
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

    # ---- the per-step channel (aopcore.steps) ----------------------------------------------------
    def _context(self, arm: str, i: int, *, generate: Any = None, counted: bool = True) -> CurriculumContext:
        """The arm's iteration-``i`` context (:mod:`aopcore.contexts`, shared with CurriculumSession)."""
        return curriculum_context(
            self.layout, self.arms[arm], arm, i, iterations=self.budget.iterations, budget=self.budget.records_per_iteration,
            base_seed=self.seed, categories=self.categories or [], evaluation=read_jsonl(self._evaluation_path(arm, i - 1), EvalRecord),
            feedback=self.feedback, embedder=self.embedder, reward=self.reward, generate=generate, counted=counted)

    def _channel_key(self, arm: str, i: int) -> Any:
        """What, beyond the planned prompts, decides an arm's training in the per-step channel: its curriculum and
        the stream's seed (None outside the channel). Two arms are training twins only if this agrees too."""
        curriculum = self.arms[arm]
        if not observes_steps(curriculum):
            return None
        configured = (self._configured or {}).get("arms", {}).get(arm) if isinstance(self._configured, dict) else None
        return {"curriculum": configured if configured is not None else describe(curriculum),
                "seed": stage_seed(self.seed, arm_stage(arm, i, "prompts"))}

    def _open_stream(self, arm: str, i: int, prompts: Sequence[Prompt], scratch: Path) -> Any:
        """The stream the trainer draws iteration ``i``'s steps from, for a curriculum in the channel and a trainer
        whose ``train`` takes ``stream``; None otherwise (the trainer then trains on ``prompts`` as always)."""
        curriculum = self.arms[arm]
        if not observes_steps(curriculum) or not train_accepts(self.trainer, "stream"):
            return None
        ctx = self._context(arm, i, counted=False)  # the prompts stage's context: same seed, evaluation, history, steps
        return open_stream(curriculum, ctx, prompts, passes=self.budget.passes, log=scratch / "stream.jsonl")

    def _evaluate_iteration(self, arm: str, i: int) -> dict[str, Any]:
        # booked as choosing cost only where the next iteration's prompts are chosen from it (see aopcore.report)
        used = {"used_for_choosing": i < self.budget.iterations and reads_evaluation(self.arms[arm], i + 1)}
        twin = self._twin(arm, i)
        if twin is not None and self._verified(f"{self._rel(twin)}/evaluation"):  # same policy, same seed: same evaluation
            atomic_write_text(self._evaluation_path(arm, i), (twin / EVALUATION).read_text())
            return {"reused_from": str(twin.relative_to(self.store.root)), **used}
        return {**self._evaluate(self._policy_dir(arm, i), self._evaluation_path(arm, i), stage_seed(self.seed, evaluation_seed_key(i))),
                **used}

    def _answer_tests(self, arm: str, i: int) -> dict[str, Any]:
        twin = self._twin(arm, i)
        if twin is not None and self._verified(f"{self._rel(twin)}/answers"):
            atomic_write_text(self.layout.test_answers(arm, i), (twin / TEST_ANSWERS).read_text())
            return {"reused_from": str(twin.relative_to(self.store.root))}
        texts = [q.text for q in self.test_prompts]
        answers = self.trainer.generate(self._policy_dir(arm, i), texts, seed=stage_seed(self.seed, answers_seed_key(i)))
        if problem := contracts.count_problem("trainer", self.trainer, "generate", answers, len(texts)):
            raise contracts.BadComponentOutput(problem)
        write_jsonl(self.layout.test_answers(arm, i),
                    [{"id": q.id, "question": q.text, "answer": a} for q, a in zip(self.test_prompts, answers)])
        return {"n_answers": len(answers)}

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
                shares = earlier.kind == stage.kind and earlier.iteration == stage.iteration and (
                    stage.kind == "judge" or self._writes_with_feedback(earlier.arm))
                if shares and not self.store.is_done(earlier.id):
                    return [earlier.id]
        if stage.arm is None or stage.iteration is None:
            return []
        arms, i = list(self.arms), stage.iteration
        if stage.kind == "train":
            for earlier in arms[: arms.index(stage.arm)]:
                same = self._same_lineage(stage.arm, earlier, i)
                if isinstance(same, str):
                    return [same]
                if same and not self.store.is_done(arm_stage(earlier, i, "train")):
                    return [arm_stage(earlier, i, "train")]
        if stage.kind in ("evaluate", "answers") and (twin := self._twin(stage.arm, i)) is not None:
            twin_stage = f"{twin.relative_to(self.store.root)}/{stage_id.rsplit('/', 1)[1]}"
            if not self.store.is_done(twin_stage):
                return [twin_stage]
        if stage.kind == "evaluate" and self.keep_checkpoints == "last" and i > 1:  # this stage removes policy(i - 1)
            for later in arms[arms.index(stage.arm) + 1:]:
                train = arm_stage(later, i - 1, "train")
                same = False if self.store.is_done(train) else self._same_lineage(later, stage.arm, i - 1)
                if isinstance(same, str):
                    return [same]
                if same:
                    return [train]
        return []

    def _writes_with_feedback(self, arm: str | None) -> bool:
        return arm in self.arms and "feedback" in required_components(self.arms[arm])

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
        return [[f"{p.id}:{p.text}" for p in read_jsonl(self.layout.prompts(arm, j), Prompt)] for j in range(1, iteration + 1)]

    def _check_prompts(self, arm: str, i: int, prompts: Sequence[Prompt]) -> None:
        want = self.budget.records_per_iteration
        if len(prompts) != want:
            raise RuntimeFailure(f"arms.{arm}: curriculum returned {len(prompts)} prompts for iteration {i}, budget is {want}")
        ids = [p.id for p in prompts]
        if len(set(ids)) != len(ids):
            raise RuntimeFailure(f"arms.{arm}: curriculum returned duplicate prompt ids at iteration {i}")

    def _judge_path(self, a: str, b: str, i: int) -> Path:
        return self.layout.verdicts(a, b, i)

    def _judge_stage(self, a: str, b: str, i: int, stage_id: str) -> dict[str, Any]:
        assert self.judge is not None
        ans_a = [o["answer"] for _, o in iter_jsonl(self.layout.test_answers(a, i))]
        ans_b = [o["answer"] for _, o in iter_jsonl(self.layout.test_answers(b, i))]
        raw: list[dict[str, Any]] = []
        verdicts = judge_pair(self.judge, self.test_prompts, ans_a, ans_b,
                              both_orders=self.judging.both_orders, seed=stage_seed(self.seed, stage_id), raw=raw)
        raw_path = self.layout.raw_verdicts(a, b, i)  # what the judge said, for audit
        write_jsonl(raw_path, raw)
        write_jsonl(self._judge_path(a, b, i), verdicts)
        self._written[stage_id] = [self._rel(self._judge_path(a, b, i)), self._rel(raw_path)]
        return {"dropped": sum(v.choice is None for v in verdicts)}

    def _winrates(self) -> list[WinRate]:
        """Win rates of every judged pair and iteration whose judge stage is done, in the stage order."""
        if self.judge is None:
            return []
        out = []
        for a, b in self._pairs():
            for i in self._judged_iterations():
                path = self._judge_path(a, b, i)
                if self.store.is_done(judge_stage_id(a, b, i)) and path.exists():
                    out.append(tally(a, b, i, read_jsonl(path, PairVerdict)))
        return out

    def _write_tables(self, winrates: list[WinRate]) -> dict[str, Any]:
        return {"files": tables.write_winrate_tables(self.layout.tables, winrates)}

    def _write_report(self) -> dict[str, Any]:
        from aopcore.report import write_reports

        return {"files": write_reports(self.store.root)}


def _link_tree(src: Path, dst: Path) -> None:
    """Hard-link (or copy, across filesystems) every file of ``src`` into ``dst``."""
    for path in src.rglob("*"):
        target = dst / path.relative_to(src)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, target)
        except OSError:
            shutil.copy2(path, target)


def configure_logging(verbose: bool = False) -> None:
    from aopcore.progress import enable_console_progress

    enable_console_progress(verbose, sys.stderr)
