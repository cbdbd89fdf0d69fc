"""The six component protocols. Anything with these methods plugs into the loop.

They are structural (``typing.Protocol``): an RLHF stack can hand its own objects
to :class:`aopcore.Experiment` without subclassing or registering anything.
Policies are identified by checkpoint directories, which is what makes every
stage resumable and lets a trainer keep its own on-disk format.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from aopcore.records import EvalRecord, JudgeItem, Prompt, TrainStats, Verdict


@runtime_checkable
class RewardModel(Protocol):
    """Scores answers; the signal every trainer optimises and every evaluation reports."""

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        """Score each (prompt, response) pair.

        Args:
            prompts: the questions, as plain text (no chat template applied).
            responses: the answers, ``responses[k]`` answering ``prompts[k]``; same length.

        Returns:
            One float per pair, in order; higher is better. Must be deterministic (the same
            pairs score the same in any batch), since evaluations are compared across arms.
        """
        ...


@runtime_checkable
class PolicyTrainer(Protocol):
    """Owns the policy: writes policy_0, answers prompts with a checkpoint, RL-trains a new one.

    Policies are checkpoint directories in the trainer's own format; the experiment only
    passes paths around, which is what makes every stage resumable.
    """

    def initial_policy(self, out: Path, *, seed: int) -> None:
        """Write policy_0 (the SFT model every arm starts from) into the empty directory ``out``.

        ``out`` is renamed into place only when this returns (a crash leaves nothing behind).
        """
        ...

    def generate(self, policy: Path, prompts: Sequence[str], *, seed: int, sample: bool = False) -> list[str]:
        """Answer each prompt with the policy stored at ``policy``.

        Args:
            policy: a checkpoint directory written by :meth:`initial_policy` or :meth:`train`.
            prompts: the questions, as plain text; the trainer applies its own chat template.
            seed: seeds any sampling, so the same call gives the same answers.
            sample: False for the trainer's evaluation decoding (typically greedy); True to
                sample as during training (curricula that need several answers per prompt).

        Returns:
            One answer (text, without the prompt) per prompt, in order.
        """
        ...

    def train(
        self,
        policy: Path,
        prompts: Sequence[Prompt],
        reward: RewardModel,
        *,
        passes: int,
        out: Path,
        seed: int,
    ) -> TrainStats:
        """RL-train ``policy`` on ``prompts`` (each seen ``passes`` times); save the result in ``out``.

        ``out`` is an empty temporary directory that the experiment renames into place only
        when this returns, so a crash never leaves a half-written policy; the stage is recorded
        only if ``out`` is non-empty and, where the trainer has ``check_policy(path) -> str | None``
        (a problem, or None), loadable. Return a :class:`~aopcore.records.TrainStats` (anything
        else is an error naming the trainer). Report tokens either there or with
        ``record_usage(tokens_generated=...)``: the stage books TrainStats' figure only when it
        recorded none itself.

        Mid-stage resume: a ``train`` that also takes a keyword ``scratch: Path`` receives a
        folder that belongs to this training stage, survives a crash and is the same on every
        attempt (``<run>/scratch/<stage>/``); keep your own checkpoints there and continue from
        the latest when it is not empty. It is removed once the stage is recorded. Trainers
        without the keyword are called as above.
        """
        ...


@runtime_checkable
class FeedbackLLM(Protocol):
    """Text in, text out: the model that writes new prompts (and, wrapped, an LLM judge)."""

    def complete(self, prompts: Sequence[str]) -> list[str]:
        """Answer each prompt.

        Args:
            prompts: complete prompts (instructions included), sent as independent calls.

        Returns:
            One string per prompt, in order. A failed or blocked call yields ``""`` and is
            counted (``record_usage``), never raised mid-batch; raise
            :class:`~aopcore.errors.RuntimeFailure` only when the service is unusable.
        """
        ...


@runtime_checkable
class Judge(Protocol):
    """Pairwise comparisons of two arms' answers to the test prompts (the win-rate tables).

    A judge that needs another component of the experiment (the ``reward-margin`` judge scores both
    answers with the reward model) defines ``bind(self, components: dict) -> None`` besides ``judge``.
    When a config's judge is built, it is called once with the experiment's components by section,
    ``{"trainer": ..., "reward": ..., "feedback": ..., "judge": ..., "embedder": ...}`` (a section the
    config leaves out is absent); each is a stand-in that loads its model on first use, so keep the
    references and call them in ``judge``. ``bind`` is optional and not part of the ``isinstance``
    check. :func:`aopcore.testing.check_judge` calls ``judge`` only: ``bind`` your judge first.
    """

    def judge(self, items: Sequence[JudgeItem]) -> list[Verdict]:
        """One :class:`~aopcore.records.Verdict` per item, in order, with ``item_id`` = the item's ``id``.

        ``choice`` is ``"A"``, ``"B"``, ``"C"`` (tie) or None when the judge's output was unusable.
        """
        ...


@runtime_checkable
class Embedder(Protocol):
    """Texts to vectors, for de-duplication and similarity-based curricula."""

    def embed(self, texts: Sequence[str]) -> Any:
        """A (len(texts), dim) array-like of floats (numpy array or nested lists).

        Rows should be L2-normalised, so a dot product is a cosine similarity; the same text
        must embed the same way every time.
        """
        ...


@dataclass
class CurriculumContext:
    """Everything a curriculum may use to choose an iteration's prompts.

    What a curriculum spends through ``feedback``, ``embedder``, ``reward`` and ``generate`` is
    choosing compute, booked in the prompts stage's ledger by the experiment (feedback calls,
    embedder calls and reward calls one per item, policy samples one per text, the trainer's
    tokens): book nothing yourself (a second ``record_usage`` of the same calls counts them twice).

    Attributes:
        arm: the arm's name (``[arms.NAME]``); use it in error messages.
        iteration: the iteration being prepared, 1-based.
        iterations: the experiment's number of iterations (a pool split over iterations needs it).
        budget: how many prompts to return: exactly this many, with unique ids.
        seed: derived from the experiment seed and this stage; use it for every random choice,
            so a rerun (resume) chooses the same prompts.
        categories: the experiment's categories (``[data] categories``, or those of the held-out
            data); prompts should carry one of them.
        evaluation: the current policy's answers and rewards on the held-out questions (the
            SFT policy's at iteration 1).
        history: this arm's prompts of earlier iterations, oldest first (for de-duplication).
        workdir: the arm's private folder for curriculum state that must survive a resume;
            write to it atomically (``aopcore.records.write_jsonl``). It exists already.
        feedback: the ``[feedback]`` LLM, or None when the config has none. Declare
            ``requires = ("feedback",)`` on the curriculum class so ``validate`` reports it missing.
            A context built by hand may be given plain callables for ``feedback`` (``fn(prompt) -> str``),
            ``embedder`` and ``reward``: they are adapted (:func:`aopcore.contracts.adapt`).
        embedder: the ``[embedder]``, or None when the config has none (``requires = ("embedder",)``).
        reward: the experiment's reward model. None when the context is built outside an
            experiment (library use, tests); check before use.
        generate: ``generate(texts, sample=False, seed=0) -> list[str]`` answers with the current
            policy (:meth:`PolicyTrainer.generate` bound to it), one answer per text, in order.
            ``sample=True`` samples with the trainer's rollout settings, every text on its own: a
            prompt that appears k times in one call gets k independent samples (one call with
            each candidate repeated k times is how to estimate pass rates); ``sample=False`` is
            greedy, so repeats get the same answer. The same texts and seed give the same answers
            again (a resume chooses alike). None outside an experiment.
        base_seed: the experiment's seed: lets arms that should agree (AOP and SOP at
            iteration 1) draw alike.
        extras: free-form objects passed by whoever builds the context: the experiment leaves it
            empty; a program that embeds the loop (or a test) may put its own objects here for
            its own curriculum. Not stored, so nothing in it survives a resume.
        steps: this arm's per-step rollout batches of earlier iterations, oldest first
            (:class:`aopcore.steps.StepBatch`; empty unless the curriculum takes part in the
            per-step channel, see :mod:`aopcore.steps`): per-prompt pass rates carried across iterations.
        solve: ``solve(question) -> answer or None``, the user's solver (``CurriculumSession(solve=...)``):
            a generating curriculum puts each question's answer in ``Prompt.metadata["answer"]`` and drops
            (and counts) the questions it returns None for. None when nobody gave one.
        heldout: the held-out questions' texts, whether or not ``evaluation`` was made: a prompt that repeats one
            (once case, punctuation and spacing are normalised, :func:`aopcore.engine.prompt_audit.normalised`) would
            train on the evaluation; the built-in curricula drop such copies and count them.
    """

    arm: str
    iteration: int
    iterations: int
    budget: int
    seed: int
    categories: list[str]
    evaluation: list[EvalRecord]
    history: list[Prompt]
    workdir: Path
    feedback: FeedbackLLM | None = None
    embedder: Embedder | None = None
    reward: RewardModel | None = None
    generate: Callable[..., list[str]] | None = None  # generate(texts, sample=False, seed=0) with the current policy
    base_seed: int = 0  # the experiment's seed: lets arms that should agree (AOP and SOP at iteration 1) draw alike
    extras: dict[str, Any] = field(default_factory=dict)
    steps: list[Any] = field(default_factory=list)  # aopcore.steps.StepBatch of earlier iterations
    solve: Callable[[str], Any] | None = None  # solve(question) -> reference answer or None (a session's `solve`)
    heldout: list[str] = field(default_factory=list)  # the held-out questions' texts: never to train on

    def __post_init__(self) -> None:
        # plain callables work here as they do for Experiment: fn(prompt) -> str, fn(texts) -> array, a TRL reward fn
        from aopcore.contracts import adapt

        self.feedback = adapt("feedback", self.feedback)
        self.embedder = adapt("embedder", self.embedder)
        self.reward = adapt("reward", self.reward)
        self.workdir = Path(self.workdir)


@runtime_checkable
class PromptCurriculum(Protocol):
    """Chooses the prompts each iteration of an arm trains on: the thing aopcore compares.

    Optional class attributes the experiment reads:

    - ``uses_evaluation``: whether ``prompts`` chooses from ``ctx.evaluation``: ``True`` (every
      iteration; the default when absent), ``False`` (never, as vanilla), or ``"first"`` (only the
      SFT policy's, as SOP). It decides whether an evaluation is booked as choosing compute, so
      set it to ``False`` when the curriculum ignores the evaluation.
    - ``requires``: components it needs, e.g. ``("feedback", "embedder")``; ``validate`` reports
      any the config lacks.

    A data source named in the curriculum's options (``pool = "testbed:pool"``, a file): declare
    the option as :data:`aopcore.options.DataSpec`, so ``validate`` checks it (a plain path is
    resolved against the config file's folder and arrives absolute; a ``scheme:`` must be
    installed), and read it with ``aopcore.data.sources.load_source(spec, Path.cwd())``, as the
    built-in pool curriculum does. The base folder only matters for a relative path inside a
    scheme's argument (``file:data/x.jsonl``), which is then read from the working directory:
    write such paths plainly (``data/x.jsonl``) or absolute.
    """

    def prompts(self, ctx: CurriculumContext) -> list[Prompt]:
        """Exactly ``ctx.budget`` prompts for iteration ``ctx.iteration``.

        Contract (checked by :func:`aopcore.testing.check_curriculum`): exactly ``ctx.budget``
        prompts with unique ids; categories from ``ctx.categories``; the same prompts for the
        same context and seed, also from a fresh instance reading the same ``workdir`` (that is
        what a resume does).

        Raises:
            InputError: the curriculum cannot meet its budget for a reason the user fixes in the
                config or the data (a pool too small for ``records_per_iteration``): exit status 2.
            RuntimeFailure: something failed while running (a feedback LLM that keeps failing,
                state missing from ``workdir``): exit status 1.

        Per step (optional): a curriculum that also has ``selector(ctx, planned) -> StepSelector``
        chooses every training step's prompts from the rollouts of earlier steps (``planned``, the
        list returned here, is its default plan or candidate set); one with only
        ``observe_step(batch)`` watches every step's rewarded rollouts and keeps its plan. See
        :mod:`aopcore.steps`.
        """
        ...
