"""A curriculum held across the rounds of a training loop aopcore does not own.

:class:`~aopcore.Experiment` drives the user's trainer. A :class:`CurriculumSession` is the other way
round: the user's loop (a TRL or veRL script, a loop of their own) keeps training, and asks the session
for each round's prompts. The session does for one arm what the experiment does: it builds the
:class:`~aopcore.CurriculumContext` (seeds from :func:`aopcore.stage_seed`, history, workdir, the
per-step batches of earlier rounds), evaluates the current policy when given a ``generate`` function,
keeps everything in ``state_dir`` in run-directory formats (stage records with the cost ledger,
``arms/<name>/iter-RR/prompts.jsonl``, ``fingerprint.json``), refuses a changed setup, and resumes: a
round whose prompts are recorded returns them again without calling the curriculum.

Layout of ``state_dir`` (the arm is ``name``)::

    fingerprint.json, config.json                 what the session answers; a changed setup refuses
    stages/<stage>.json                           one record per finished stage (the ledger)
    sft/evaluation.jsonl                          the evaluation round 1 chose from (policy before training)
    arms/<name>/iter-RR/prompts.jsonl             round RR's prompts, with provenance
    arms/<name>/iter-RR/evaluation.jsonl          the evaluation round RR+1 chose from
    arms/<name>/iter-RR/steps.jsonl               round RR's per-step batches (end_round)
    arms/<name>/curriculum/                       the curriculum's workdir, one for every round
    scratch/arms__<name>__iter-RR__train/         the round's prompt-stream log until end_round
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from aopcore import contracts
from aopcore.engine.contexts import curriculum_context
from aopcore.engine.prompt_audit import audit, generation_log, label_checker
from aopcore.engine.session_build import bind_lazy, heldout_questions, policy_generate, session_component
from aopcore.engine.session_eval import round_evaluation
from aopcore.engine.session_state import keep_round_steps, open_state_dir, session_config
from aopcore.engine.stagerun import commit_stage
from aopcore.engine.validation import chosen_prompts_problem, raise_problems, session_problems, session_setting_problems
from aopcore.errors import InputError, RuntimeFailure
from aopcore.ledger import counted_feedback
from aopcore.protocols import CurriculumContext
from aopcore.records import EvalRecord, Prompt, Question, category_counts, read_jsonl, write_jsonl
from aopcore.steps import DEFAULT_LAG, PromptStream, open_stream
from aopcore.storage.fingerprint import describe, normalise, package_versions, questions_digest
from aopcore.storage.rundir import SFT_EVALUATION, RunLayout
from aopcore.storage.rundir import stage_id as arm_stage
from aopcore.storage.store import RunStore

log = logging.getLogger("aopcore")

ROLES = ("feedback", "embedder", "reward")  # the components a session may be given besides its curriculum


class CurriculumSession:
    """One curriculum across the rounds of someone else's training loop.

    Args:
        curriculum: a :class:`~aopcore.PromptCurriculum` object (or a plain ``fn(ctx) -> list[Prompt]``), or a
            registered curriculum plugin name (``"aop"``, ``"pool"``; ``aopcore plugins`` lists them).
        options: that plugin's options (a dict validated by its pydantic ``Options``, as in a config; or the
            model itself). Only with a plugin name.
        heldout: the held-out questions the policy is evaluated on: a list of :class:`~aopcore.Question` or a
            data spec (``"testbed:heldout"``, ``"builtin:heldout"``, a file path), or a spec with its columns as a
            dict, as a ``[data]`` table is in a config: ``{"source": "q.jsonl", "text": "question", "category": "topic"}``.
        state_dir: the folder that keeps everything (run-directory formats, see the module doc). One folder
            serves every round; reopening it resumes.
        budget: prompts per round (``ctx.budget``).
        categories: the curriculum's categories (default: those of ``heldout``).
        feedback, embedder, reward: objects, plugin names (built with default options when first used), or
            plain callables (adapted as in :mod:`aopcore.contracts`: ``fn(prompt) -> str``,
            ``fn(texts) -> array``, a TRL-style ``fn(prompts, completions, **kw) -> list[float]``).
        seed: the base seed; round ``r``'s context seed is ``stage_seed(seed, f"arms/{name}/iter-{r:02d}/prompts")``,
            exactly as an :class:`~aopcore.Experiment` with that seed derives it for that arm and iteration.
        rounds: the number of rounds, when known (``ctx.iterations``). ``None`` is an open-ended loop: every
            round's context says ``iterations = round`` (as far as the curriculum knows, the current round is
            the last), and curricula that write one pool for all iterations and split it (``vanilla``, ``sop``: they say
            so with ``needs_iterations = True``) are refused, since they cannot size it.
        name: the arm name (``ctx.arm``, seeds, paths).
        allow_changes: continue a ``state_dir`` whose fingerprint differs (recorded, as for a run directory).
        base_dir: where relative data specs are resolved (default: the current folder).
        solve: ``solve(question) -> answer or None``: a generating curriculum (aop, sop, eva) gives each question
            this answer (``Prompt.metadata["answer"]``, the rows' ``answer`` column in TRL) and drops, counted,
            those it returns None for. Part of the fingerprint.
    """

    def __init__(
        self,
        curriculum: Any,
        *,
        options: dict[str, Any] | BaseModel | None = None,
        heldout: Sequence[Question] | str | dict[str, Any],
        state_dir: Path | str,
        budget: int,
        categories: Sequence[str] | None = None,
        feedback: Any = None,
        embedder: Any = None,
        reward: Any = None,
        seed: int = 0,
        rounds: int | None = None,
        name: str = "session",
        allow_changes: bool = False,
        base_dir: Path | str | None = None,
        passes: int = 1,
        solve: Callable[[str], Any] | None = None,
        _registry: Any = None,
        _described: dict[str, Any] | None = None,
        _snapshot: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.seed = int(seed)
        self.rounds = rounds
        self.budget = budget
        self.passes = passes
        self.base_dir = Path(base_dir) if base_dir is not None else Path.cwd()
        self.layout = RunLayout(Path(state_dir))
        self.store = RunStore(self.layout.root)
        self._registry = _registry
        raise_problems(
            session_setting_problems(
                budget=budget, rounds=rounds, name=name, options=options, curriculum=curriculum, solve=solve
            )
        )
        described = dict(_described or {})
        self.curriculum, described["curriculum"] = self._component(
            "curriculum", curriculum, options, lazy=False, described=described
        )
        built = {"feedback": feedback, "embedder": embedder, "reward": reward}
        for role, value in built.items():
            built[role], described[role] = self._component(role, value, None, lazy=True, described=described)
        bind_lazy(built)
        self.feedback, self.embedder, self.reward = built["feedback"], built["embedder"], built["reward"]
        self.solve = solve
        if solve is not None:
            described["solve"] = describe(solve)
        self.heldout = heldout_questions(heldout, self.base_dir, self._registry_)
        self.categories = list(categories) if categories else sorted({q.category for q in self.heldout})
        if isinstance(self.reward, contracts.RewardFunction):
            self.reward.learn_categories((q.text, q.category) for q in self.heldout)
        self._check()
        self._described = described
        self._snapshot = _snapshot
        self._open(allow_changes)
        self.feedback = counted_feedback(self.feedback)
        self._contexts: dict[int, CurriculumContext] = {}
        self.round = self._ended_rounds()

    # ---- construction -----------------------------------------------------------------------
    @classmethod
    def from_config(
        cls,
        path: Path | str,
        *,
        arm: str | None = None,
        state_dir: Path | str | None = None,
        overrides: Sequence[str] = (),
    ) -> CurriculumSession:
        """A session from the sections of an ``aopcore run`` config, checked by the same preflight.

        ``[experiment]`` gives ``seed``, ``records_per_iteration`` (the budget), ``iterations`` (the rounds) and
        ``passes``; ``[data]`` the held-out questions and categories; ``[feedback]``, ``[embedder]``,
        ``[reward]`` the components; ``[arms.NAME]`` the curriculum (``arm`` chooses one when there are several).
        ``[trainer]`` and ``[judge]`` are not needed (present ones are validated, not used). ``state_dir``
        defaults to the run directory ``<output_dir>/<name>``. Problems are InputError lines naming
        ``file:line: key``, all at once.
        """
        from aopcore.engine.session_build import session_arguments

        curriculum, kwargs = session_arguments(path, arm=arm, state_dir=state_dir, overrides=overrides, roles=ROLES)
        return cls(curriculum, **kwargs)

    def _registry_(self) -> Any:
        if self._registry is None:
            from aopcore.registry import load_registry

            self._registry = load_registry()
        return self._registry

    def _component(
        self, role: str, value: Any, options: Any, *, lazy: bool, described: dict[str, Any]
    ) -> tuple[Any, Any]:
        return session_component(
            role, value, options, lazy=lazy, described=described, base_dir=self.base_dir, registry=self._registry_
        )

    def _check(self) -> None:
        raise_problems(session_problems(self.curriculum, {role: getattr(self, role) for role in ROLES}, self.rounds))

    def fingerprint(self) -> dict[str, Any]:
        """Everything that shapes the session's prompts (compared with ``state_dir/fingerprint.json`` on open)."""
        return normalise(
            {
                "session": {"arm": self.name, "seed": self.seed, "rounds": self.rounds, "budget": self.budget},
                "data": {"heldout": questions_digest(self.heldout), "categories": list(self.categories)},
                **{role: self._described.get(role) for role in ("curriculum", *ROLES)},
                **({"solve": self._described["solve"]} if "solve" in self._described else {}),
                "versions": package_versions(),
            }
        )

    def _open(self, allow_changes: bool) -> None:
        open_state_dir(
            self.layout,
            self.fingerprint,
            allow_changes=allow_changes,
            config=self._snapshot or session_config(self.name, self.seed, self.rounds, self.budget, self.curriculum),
        )

    # ---- rounds ----------------------------------------------------------------------------
    def _id(self, r: int, kind: str) -> str:
        return arm_stage(self.name, r, kind)

    def _ended_rounds(self) -> int:
        r = 0
        while self.store.is_done(self._id(r + 1, "train")):
            r += 1
        return r

    def _chosen_rounds(self) -> int:
        r = 0
        while self.store.is_done(self._id(r + 1, "prompts")):
            r += 1
        return r

    def next_prompts(
        self,
        *,
        evaluation: Sequence[EvalRecord] | None = None,
        generate: Callable[..., Sequence[str]] | None = None,
        round: int | None = None,
    ) -> list[Prompt]:
        """The prompts of round ``session.round + 1`` (or of ``round``): exactly ``budget`` of them.

        Args:
            evaluation: the current policy's answers and rewards on the held-out questions (EvalRecords).
            generate: instead, ``generate(texts) -> answers`` with the current policy (it may take ``seed`` and
                ``sample`` keywords); the session answers the held-out questions with it and scores them with
                ``reward``. Also the curriculum's ``ctx.generate`` (eva samples with it).
            round: which round (default: the next); a round already recorded returns its stored prompts (a
                loop that resumes from its own checkpoint asks for the round that checkpoint is in).

        A curriculum that chooses from the evaluation (``uses_evaluation``) needs one of the two, except for a
        round whose evaluation or prompts are recorded already: a resumed round never calls the curriculum again.
        """
        r = self.round + 1 if round is None else int(round)
        chosen = self._chosen_rounds()
        if r < 1 or r > chosen + 1:
            raise InputError(
                f"session.next_prompts: round {r} is not available (rounds 1..{chosen} are recorded; the next is {chosen + 1})"
            )
        if self.rounds is not None and r > self.rounds:
            raise InputError(f"session.next_prompts: round {r} is past the session's rounds={self.rounds}")
        stage_id = self._id(r, "prompts")
        path = self.layout.prompts(self.name, r)
        if self.store.is_done(stage_id):
            if evaluation is not None or generate is not None:
                log.info("skip  %-40s (done: stored prompts returned)", stage_id)
            self.round = r
            return read_jsonl(path, Prompt)
        records = round_evaluation(self, r, evaluation, generate)  # recorded, given, or made with generate
        ctx = self.context(r, evaluation=records, generate=generate)

        def work() -> dict[str, Any]:
            prompts = list(self.curriculum.prompts(ctx))
            self._check_prompts(r, prompts)
            write_jsonl(path, prompts)
            return {
                "n_prompts": len(prompts),
                "categories": category_counts(prompts),
                "audit": audit(
                    prompts,
                    (q.text for q in self.heldout),
                    label_checker(self.feedback),
                    generation_log(ctx.workdir, r),
                ),
            }

        self._stage(stage_id, "prompts", work, outputs=[self._rel(path), *self.layout.curriculum_logs(self.name, r)])
        self.round = r
        return read_jsonl(path, Prompt)

    def context(
        self,
        r: int,
        *,
        evaluation: Sequence[EvalRecord] | None = None,
        generate: Callable[..., Sequence[str]] | None = None,
    ) -> CurriculumContext:
        """Round ``r``'s :class:`CurriculumContext`, built exactly as the experiment builds an arm's (seed, history, steps)."""
        if evaluation is None:
            path = self._evaluation_path(r)
            evaluation = read_jsonl(path, EvalRecord) if path.exists() else []
        ctx = curriculum_context(
            self.layout,
            self.curriculum,
            self.name,
            r,
            iterations=self.rounds if self.rounds is not None else r,
            budget=self.budget,
            base_seed=self.seed,
            categories=self.categories,
            evaluation=evaluation,
            # every call a curriculum makes through these is booked in the round's ledger as choosing compute
            feedback=self.feedback,
            embedder=self.embedder,
            reward=self.reward,
            generate=(lambda seed: policy_generate(generate, seed)) if generate is not None else None,
            solve=self.solve,
            heldout=[q.text for q in self.heldout],
        )
        self._contexts[r] = ctx
        return ctx

    def _evaluation_path(self, r: int) -> Path:
        return self.layout.evaluation(self.name, r - 1)

    def _check_prompts(self, r: int, prompts: Sequence[Prompt]) -> None:
        who, when = type(self.curriculum).__name__, f"round {r}"
        if problem := chosen_prompts_problem(prompts, self.budget, where="session.curriculum", who=who, when=when):
            raise RuntimeFailure(problem)

    # ---- the per-step channel --------------------------------------------------------------
    def scratch(self, r: int | None = None) -> Path:
        """The current round's crash-surviving folder (the stream log lives there); removed by end_round."""
        return self.layout.train_scratch(self.name, r or self.round)

    def stream(self, *, passes: int | None = None, lag: int = DEFAULT_LAG) -> PromptStream | None:
        """The per-step channel for the current round (:mod:`aopcore.steps`), or None for a curriculum that takes no part.

        Draws come from the round's prompts (``planned``); the log is kept in :meth:`scratch`, so a resumed
        round that calls ``stream.restore(completed)`` (``completed`` saved with the trainer's checkpoint) draws
        what the interrupted one drew. ``passes`` defaults to the session's (1; a config's ``experiment.passes``).
        ``lag``: draws a trainer may run ahead of the rewards (:class:`~aopcore.steps.PromptStream`); a loop with
        many groups in flight at once needs as many.
        """
        r = self.round
        if r < 1:
            raise RuntimeFailure(
                "session.stream(): call next_prompts() first (the stream draws from the round's prompts)"
            )
        planned = read_jsonl(self.layout.prompts(self.name, r), Prompt)
        ctx = self._contexts.get(r) or self.context(r)
        return open_stream(
            self.curriculum, ctx, planned, passes=passes or self.passes, log=self.scratch(r) / "stream.jsonl", lag=lag
        )

    def end_round(self, stream: PromptStream | None = None) -> None:
        """Close the current round: keep its per-step batches as ``steps.jsonl`` (from ``stream.batches()``) and
        record it, so a reopened session continues with the next round. Call it after training on the round.

        Dropped groups (a selector's ``keep``) are booked in the round's record as choosing compute.
        """
        r = self.round
        if r < 1:
            raise RuntimeFailure("session.end_round(): no round was started (call next_prompts() first)")
        stage_id = self._id(r, "train")
        steps = self.layout.steps(self.name, r)

        self._stage(stage_id, "train", lambda: keep_round_steps(stream, steps), outputs=[self._rel(steps)])
        shutil.rmtree(self.scratch(r), ignore_errors=True)
        try:
            self.layout.scratch_root.rmdir()
        except OSError:
            pass

    def ledger(self) -> list[dict[str, Any]]:
        """Every stage record (wall time, feedback calls, tokens, dropped rollouts), in order: the choosing compute."""
        return self.store.stage_records()

    # ---- stage machinery -------------------------------------------------------------------
    def _rel(self, path: Path) -> str:
        return self.layout.rel(path)

    def _stage(self, stage_id: str, kind: str, work: Callable[[], dict[str, Any]], *, outputs: Sequence[str]) -> None:
        """Run ``work`` and write the stage record last (as :class:`~aopcore.Experiment` does): the commit point."""
        arm = self.name if kind != "evaluate" or stage_id != SFT_EVALUATION else None
        if commit_stage(
            self.store,
            stage_id,
            kind,
            work,
            outputs=lambda extra: outputs,
            order=len(self.store.stage_records()) + 1,
            arm=arm,
            worker="session",
            say_skip=False,
        ):
            try:
                self.layout.attempts_root.rmdir()
            except OSError:
                pass


__all__ = ["CurriculumSession"]
