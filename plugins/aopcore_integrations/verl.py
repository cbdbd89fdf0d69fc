"""veRL adapter: an aopcore curriculum chooses the prompts of veRL's ``RayPPOTrainer``, through ``data.custom_cls``.

veRL 0.9.1 has no curriculum API (its sampler and data-generation hooks were removed in verl PR #6302). Two
duck-typed extension points remain, and this module uses exactly those:

- ``data.custom_cls.{path,name}`` names the dataset class ``create_rl_dataset`` instantiates (as
  ``cls(data_files=, tokenizer=, processor=, config=data_config, max_samples=)``), for the training *and* the
  validation files. :class:`AopcoreDataset` subclasses veRL's ``RLHFDataset``: for ``data.val_files`` it *is*
  ``RLHFDataset``; for ``data.train_files`` (not read) its rows come from a :class:`~aopcore.CurriculumSession`.
- ``RayPPOTrainer.fit`` calls ``train_dataset.on_batch_end(batch=batch)`` after every step but the last, with the
  step's rewarded ``DataProto``. :meth:`AopcoreDataset.on_batch_end` sums ``token_level_scores`` over the response
  mask (the sequence reward), groups the ``rollout.n`` responses of each prompt (one row per prompt position,
  carried in ``extra_info``, which veRL keeps in the batch through generation and ``balance_batch``), and
  reports them to the round's :class:`~aopcore.steps.PromptStream`.

Each dataloader batch is one stream draw (``__getitems__``, the hook torch's map-style fetcher calls with a
batch's indices; the sampler's indices only size the epoch). Every ``steps_per_round`` draws a round ends
(``session.end_round``) and the next round's prompts are chosen (``session.next_prompts``) from the evaluation
the config names: the training rollouts of the round just trained (``evaluation = "rollouts"``, default), or
the held-out questions answered by a ``generate`` function (``evaluation = "generate"``).

veRL's V1 trainer (verl 0.9.1's default, ``trainer.use_v1: true``) never calls ``on_batch_end``: there the same
dataset serves the rows and :mod:`aopcore_integrations.verl_v1`'s replay buffer reports the rewards (and refills what
``keep`` drops). The constructor reads the whole config (the data config's root) and refuses, in one line naming the
key, a trainer in which neither hook would fire (:func:`aopcore_integrations.verl_trainer_check.check_trainer_config`).

Resume. veRL saves ``train_dataloader.state_dict()`` into ``global_step_N/data.pt``; torchdata's
``StatefulDataLoader`` includes the dataset's :meth:`state_dict` (round, draws made) when it runs in the main
process (``data.dataloader_num_workers=0``, which this class requires: worker processes would hold copies whose
state ``on_batch_end`` never reaches). On resume, :meth:`load_state_dict` reopens that round (stored prompts,
no curriculum call) and replays the round's stream log up to the checkpoint, so the resumed run draws the prompts
the interrupted one drew. The module imports veRL only when :class:`AopcoreDataset` is first looked up.
"""

from __future__ import annotations

import importlib
import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from aopcore.errors import InputError, RuntimeFailure
from aopcore.records import EvalRecord, Prompt, read_jsonl
from aopcore.steps import PlannedSelector, PromptStream, RolloutGroup, read_batches
from aopcore.storage.rundir import order_seed_key, stage_seed

log = logging.getLogger("aopcore")

#: ``extra_info`` keys a row carries, so they come back in ``on_batch_end``'s batch
ID, CATEGORY, ROUND, DRAW, POSITION, TEXT = (
    "aopcore_id",
    "aopcore_category",
    "aopcore_round",
    "aopcore_draw",
    "aopcore_pos",
    "aopcore_text",
)
SIZE = "aopcore_n"  # the draw's size (V1 rows): the sampler reports a draw once that many groups finished
STATE_VERSION = 1


class VerlOptions(BaseModel):
    """The ``data.aopcore`` section of a veRL config (``+data.aopcore.KEY=VALUE`` on veRL's command line).

    Either ``config`` (an ``aopcore run`` TOML: its ``[experiment]``, ``[data]``, components and one arm, as
    :meth:`CurriculumSession.from_config` reads them) or ``curriculum`` with ``heldout`` and ``budget`` (and the
    components by plugin name).
    """

    model_config = ConfigDict(extra="forbid")

    state_dir: str
    config: str | None = None
    arm: str | None = None
    overrides: list[str] = []
    curriculum: str | None = None
    options: dict[str, Any] = {}
    heldout: str | None = None
    categories: list[str] | None = None
    feedback: str | None = None
    embedder: str | None = None
    reward: str | None = None
    budget: int | None = None
    rounds: int | None = None
    seed: int = 0
    name: str = "verl"
    steps_per_round: int | None = None
    evaluation: Literal["rollouts", "generate"] = "rollouts"
    initial_evaluation: str | None = None
    generate: str | None = None
    data_source: str = "aopcore"

    @field_validator("steps_per_round", "budget", "rounds")
    @classmethod
    def _positive(cls, v: int | None) -> int | None:
        if v is not None and v < 1:
            raise ValueError("must be a positive number")
        return v


def parse_options(data_config: Any) -> VerlOptions:
    """``data.aopcore`` as :class:`VerlOptions`; problems as InputError lines ``data.aopcore.KEY: ...``."""
    raw = _plain(data_config.get("aopcore") if hasattr(data_config, "get") else None)
    if not raw:
        raise InputError(
            "data.aopcore: missing; data.custom_cls is aopcore's dataset, which needs "
            "+data.aopcore.state_dir=... and a curriculum (+data.aopcore.config=curriculum.toml, or "
            "+data.aopcore.curriculum=NAME with heldout and budget)"
        )
    try:
        opts = VerlOptions.model_validate(raw)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"])
            lines.append(f"data.aopcore.{key}: {'unknown key' if err['type'] == 'extra_forbidden' else err['msg']}")
        raise InputError(*lines) from None
    problems = []
    if opts.config is None:
        for key in ("curriculum", "heldout", "budget"):
            if getattr(opts, key) is None:
                problems.append(
                    f"data.aopcore.{key}: needed without data.aopcore.config (or name an aopcore TOML in config)"
                )
    if opts.evaluation == "generate" and not opts.generate:
        problems.append(
            'data.aopcore.generate: evaluation = "generate" needs a function, "module:function" '
            "(texts -> answers with the current policy)"
        )
    if problems:
        raise InputError(*problems)
    return opts


def open_session(opts: VerlOptions, base_dir: Path | None = None) -> Any:
    """The :class:`~aopcore.CurriculumSession` the options describe."""
    from aopcore.engine.session import CurriculumSession

    if opts.config:
        return CurriculumSession.from_config(
            opts.config, arm=opts.arm, state_dir=opts.state_dir, overrides=opts.overrides
        )
    return CurriculumSession(
        opts.curriculum,
        options=opts.options or None,
        heldout=opts.heldout,
        state_dir=opts.state_dir,
        budget=opts.budget,
        categories=opts.categories,
        feedback=opts.feedback,
        embedder=opts.embedder,
        reward=opts.reward,
        seed=opts.seed,
        rounds=opts.rounds,
        name=opts.name,
        base_dir=base_dir,
    )


def import_function(spec: str, where: str) -> Callable[..., Any]:
    """``"package.module:function"`` imported, or one InputError line naming ``where``."""
    module, _, attr = spec.partition(":")
    try:
        fn = getattr(importlib.import_module(module), attr) if attr else None
    except (ImportError, AttributeError) as exc:
        raise InputError(f"{where}: cannot import {spec!r} ({exc})") from None
    if not callable(fn):
        raise InputError(f'{where}: {spec!r} is not "module:function" naming a function')
    return fn


def sequence_rewards(batch: Any) -> tuple[list[float], list[int]]:
    """Per response: the sequence reward (``token_level_scores`` summed over the response mask) and its token count.

    ``token_level_scores`` is the reward stage's output before any KL penalty (``token_level_rewards`` adds it).
    """
    tensors = batch.batch
    key = "token_level_scores" if "token_level_scores" in tensors.keys() else "token_level_rewards"
    if key not in tensors.keys():
        raise RuntimeFailure("on_batch_end: the batch has no token_level_scores (veRL's reward stage did not run?)")
    scores = tensors[key]
    mask = tensors["response_mask"] if "response_mask" in tensors.keys() else None
    if mask is None:
        return [float(s) for s in scores.sum(-1).tolist()], [int(scores.shape[-1])] * int(scores.shape[0])
    mask = mask.to(scores.dtype)
    return [float(s) for s in (scores * mask).sum(-1).tolist()], [int(t) for t in mask.sum(-1).tolist()]


def batch_groups(batch: Any) -> dict[int, list[RolloutGroup]]:
    """The rewarded responses of a veRL batch as :class:`RolloutGroup` lists, per draw, in draw order.

    Responses belong to a prompt by its position in the draw (``extra_info["aopcore_pos"]``; veRL's ``uid`` is one
    per row too, but ``balance_batch`` may reorder rows, so grouping uses the position, not adjacency).
    """
    infos = batch.non_tensor_batch.get("extra_info")
    if infos is None:
        raise RuntimeFailure("on_batch_end: the batch carries no extra_info (were these rows made by AopcoreDataset?)")
    rewards, tokens = sequence_rewards(batch)
    return group_by_position(list(infos), rewards, tokens)


def group_by_position(
    infos: Sequence[Any], rewards: Sequence[float], tokens: Sequence[int]
) -> dict[int, list[RolloutGroup]]:
    """Responses (each with its row's ``extra_info``, reward and token count) as :class:`RolloutGroup` lists per draw,
    each draw's groups in prompt-position order: what both veRL trainers hand back, however they ordered the rows."""
    by_key: dict[tuple[int, int], list[int]] = {}
    meta: dict[tuple[int, int], tuple[str, str]] = {}
    for k, info in enumerate(infos):
        if not isinstance(info, dict) or ID not in info:
            raise RuntimeFailure(
                f"on_batch_end: row {k}'s extra_info has no {ID!r} (a row AopcoreDataset did not make)"
            )
        key = (int(info[DRAW]), int(info[POSITION]))
        by_key.setdefault(key, []).append(k)
        meta[key] = (str(info[ID]), str(info[CATEGORY]))
    out: dict[int, list[RolloutGroup]] = {}
    for key in sorted(by_key):
        rows = by_key[key]
        pid, cat = meta[key]
        out.setdefault(key[0], []).append(
            RolloutGroup(pid, cat, tuple(rewards[k] for k in rows), sum(tokens[k] for k in rows))
        )
    return out


def rollout_evaluation(
    batches: Sequence[Any], prompts: Sequence[Prompt], previous: Sequence[EvalRecord]
) -> list[EvalRecord]:
    """An evaluation made from a round's training rollouts: one record per prompt trained (mean reward over all its
    responses), plus the previous evaluation's records of categories the round did not train (so a category the
    round skipped keeps its last evidence instead of vanishing from the curriculum's view).
    """
    text = {p.id: p.text for p in prompts}
    sums: dict[str, list[float]] = {}
    cats: dict[str, str] = {}
    for b in batches:
        for g in b.groups:
            if g.rewards:
                sums.setdefault(g.prompt_id, []).extend(g.rewards)
                cats[g.prompt_id] = g.category
    records = [EvalRecord(pid, text.get(pid, pid), cats[pid], "", sum(r) / len(r)) for pid, r in sums.items()]
    seen = {r.category for r in records}
    return records + [r for r in previous if r.category not in seen]


class RoundDriver:
    """The veRL-free part of the adapter: rounds, draws and reports over a session (testable without veRL).

    Args:
        session: the :class:`~aopcore.CurriculumSession`.
        batch_size: prompts per draw (veRL's ``data.train_batch_size``, or ``gen_batch_size``).
        steps_per_round: draws per round (default: one pass over a round's prompts).
        evaluation, initial_evaluation, generate: where each round's evaluation comes from (see :class:`VerlOptions`).
    """

    def __init__(
        self,
        session: Any,
        *,
        batch_size: int,
        steps_per_round: int | None = None,
        evaluation: str = "rollouts",
        initial_evaluation: Sequence[EvalRecord] | None = None,
        generate: Callable[..., Any] | None = None,
    ) -> None:
        self.session = session
        self.batch_size = int(batch_size)
        self.steps_per_round = steps_per_round or max(
            1, math.ceil(session.budget * getattr(session, "passes", 1) / self.batch_size)
        )
        self.passes = max(1, math.ceil(self.steps_per_round * self.batch_size / session.budget))
        self.evaluation = evaluation
        self.initial_evaluation = list(initial_evaluation) if initial_evaluation else None
        self.generate = generate
        self.round = 0
        self.prompts: list[Prompt] = []
        self.stream: PromptStream | None = None
        self.draws_in_round = 0  # draws made in the current round (the stream's count)
        if session.rounds is None:
            raise InputError(
                "data.aopcore.rounds: veRL sizes its run from the dataset's length, so the number of rounds "
                "is needed (or [experiment] iterations in the aopcore config)"
            )

    @property
    def total_draws(self) -> int:
        """Draws over all rounds: the dataset's length is this times ``batch_size`` (one veRL epoch)."""
        return self.session.rounds * self.steps_per_round

    # ---- rounds ------------------------------------------------------------------------------
    def _evaluation_for(self, r: int) -> dict[str, Any]:
        if self.evaluation == "generate":
            return {"generate": self.generate}
        if r == 1:
            if self.initial_evaluation is not None:
                return {"evaluation": self.initial_evaluation}
            return {"generate": self.generate} if self.generate is not None else {}
        batches = read_batches(self.session.layout.steps(self.session.name, r - 1))
        prev_path = self.session._evaluation_path(r - 1)
        previous = read_jsonl(prev_path, EvalRecord) if prev_path.exists() else []
        prompts = read_jsonl(self.session.layout.prompts(self.session.name, r - 1), Prompt)
        return {"evaluation": rollout_evaluation(batches, prompts, previous) or None}

    def open_round(self, r: int) -> None:
        """Start (or reopen) round ``r``: its prompts from the session, its stream with the round's log."""
        if r > self.session.rounds:
            raise InputError(
                f"data.aopcore.rounds: veRL asked for round {r} of {self.session.rounds} "
                "(set trainer.total_epochs=1: the dataset's length covers every round)"
            )
        stored = r <= self.session._chosen_rounds()
        self.prompts = self.session.next_prompts(round=r, **({} if stored else self._evaluation_for(r)))
        self.round = r
        log_path = self.session.scratch(r) / "stream.jsonl"
        steps = self.session.layout.steps(self.session.name, r)
        if not log_path.exists() and steps.exists():
            _rebuild_log(log_path, read_batches(steps))  # the round was ended (its log removed): resume from its record
        stream = self.session.stream(passes=self.passes)
        if stream is None:  # a curriculum without the per-step channel: its prompts in a seeded order, still logged
            seed = stage_seed(self.session.seed, order_seed_key(self.session.name, r))
            planned = list(self.prompts)

            def make() -> PlannedSelector:
                return PlannedSelector(planned, passes=self.passes, seed=seed)

            stream = PromptStream(make(), iteration=r, log=log_path, online=False, make_selector=make)
        self.stream = stream
        self.draws_in_round = 0

    def end_round(self) -> None:
        if self.stream is not None:
            self.session.end_round(self.stream)

    # ---- draws and reports -----------------------------------------------------------------
    def draw(self, n: int) -> tuple[int, int, list[Prompt]]:
        """(round, draw index in the round, prompts) of the next draw; rounds advance every ``steps_per_round`` draws."""
        if self.stream is None:
            self.open_round(1)
        elif self.draws_in_round >= self.steps_per_round:
            self.end_round()
            self.open_round(self.round + 1)
        assert self.stream is not None
        prompts = self.stream.next(n)
        self.draws_in_round += 1
        return self.round, self.stream.draws - 1, prompts

    def peek(self, k: int) -> tuple[int, Prompt]:
        """(round, prompt ``k`` of the current round's prompts), opening round 1 if no round is open yet."""
        if self.stream is None:
            self.open_round(1)
        return self.round, self.prompts[k % len(self.prompts)]

    def refill(self, n: int) -> tuple[int, int, list[Prompt]]:
        """(round, draw index, prompts) of a refill draw replacing ``n`` dropped groups (it does not advance the round)."""
        if self.stream is None:
            raise RuntimeFailure("aopcore: a refill was asked for before any draw")
        prompts = self.stream.refill(n)
        return self.round, self.stream.draws - 1, prompts

    def report(self, r: int, draw: int, groups: Sequence[RolloutGroup]) -> list[bool]:
        if r != self.round or self.stream is None:
            log.warning(
                "aopcore: ignored the rollouts of round %d draw %d (the dataset is at round %d)", r, draw, self.round
            )
            return [True] * len(groups)
        return self.stream.report(draw, groups)

    # ---- checkpoint ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        # stream_draws: the stream's draws, refills included (V1 refills dropped groups; legacy: equal to draws)
        return {
            "version": STATE_VERSION,
            "round": self.round,
            "draws": self.draws_in_round,
            "stream_draws": self.stream.draws if self.stream is not None else 0,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Back to a checkpoint taken after ``draws`` draws of round ``round`` (veRL saves it before the step's
        ``on_batch_end``, so the last of those draws may be unreported; see :func:`_restore`)."""
        if not state or int(state.get("version", 0)) != STATE_VERSION:
            raise RuntimeFailure(f"aopcore dataset state {state!r} is not one this version wrote")
        r, d = int(state["round"]), int(state["draws"])
        if r == 0:
            self.stream, self.round, self.draws_in_round = None, 0, 0
            return
        self.open_round(r)
        assert self.stream is not None
        _restore(self.stream, int(state.get("stream_draws", d)))
        self.draws_in_round = d


_REWARDS: dict[str, Any] = {}


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: Any = None,
    extra_info: dict[str, Any] | None = None,
    *,
    reward: str = "verifier",
    **_: Any,
) -> float:
    """A veRL custom reward function that scores a response with an aopcore reward plugin.

    ``reward.custom_reward_function.path=pkg://aopcore_integrations.verl``, ``name=compute_score``,
    ``+reward.custom_reward_function.reward_kwargs.reward=PLUGIN`` (default ``verifier``, the testbed's). The
    question is the row's ``extra_info["aopcore_text"]`` (rows of :class:`AopcoreDataset`) or
    ``extra_info["question"]`` (a validation parquet's rows). The plugin is built once per process, with its
    default options.
    """
    info = extra_info or {}
    question = info.get(TEXT) or info.get("question")
    if question is None:
        raise RuntimeFailure(
            f"aopcore compute_score: a row of data_source {data_source!r} has no extra_info "
            f"{TEXT!r} or 'question' to score the response against"
        )
    model = _REWARDS.get(reward)
    if model is None:
        from aopcore.engine.build import LazyComponent
        from aopcore.registry import load_registry

        registry = load_registry()
        impl = registry.implementations["reward"].get(reward)
        if impl is None:
            raise InputError(
                f"reward.custom_reward_function.reward_kwargs.reward: {registry.unknown_message('reward', reward)}"
            )
        model = _REWARDS[reward] = LazyComponent(impl, impl.options.model_validate({}))
    return float(model.score([str(question)], [solution_str])[0])


def _restore(stream: PromptStream, d: int) -> None:
    """``stream.restore(d)``; when the log lacks draw ``d - 1``'s report (a crash between veRL's checkpoint and
    that step's ``on_batch_end``), restore ``d - 1``, redraw draw ``d - 1`` (the same prompts: veRL trained on
    them) and report it empty: later draws then see one batch fewer than an uninterrupted run would have."""
    try:
        stream.restore(d)
    except RuntimeFailure:
        if d == 0:
            raise
        n = _logged_size(stream, d - 1)  # read before restore() rewrites the log
        stream.restore(d - 1)
        stream.next(n)
        stream.report(d - 1, [])
        log.warning("aopcore: the rollouts of draw %d were not reported before the crash; resumed without them", d - 1)


def _logged_size(stream: PromptStream, draw: int) -> int:
    from aopcore.steps import _read_log

    for e in _read_log(stream._log_path):
        if e.get("event") == "draw" and e.get("draw") == draw:
            return int(e["n"])
    raise RuntimeFailure(f"aopcore: the prompt stream log has no draw {draw} to resume from")


def _rebuild_log(path: Path, batches: Sequence[Any]) -> None:
    """A stream log (draw and report events, as :class:`PromptStream` writes them) from a round's ``steps.jsonl``."""
    import json

    from aopcore.storage.store import atomic_write_text

    lines = []
    for b in batches:
        lines.append({"event": "draw", "draw": b.draw, "n": len(b.groups), "ids": [g.prompt_id for g in b.groups]})
        lines.append({"event": "report", **b.to_dict()})
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, "".join(json.dumps(e, sort_keys=True) + "\n" for e in lines))


def _plain(value: Any) -> Any:
    """An OmegaConf node as plain Python (dicts, lists), anything else unchanged."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf
    except ImportError:
        return value
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    return value


def _same_files(a: Any, b: Any) -> bool:
    def norm(x: Any) -> list[str]:
        x = _plain(x)
        return [str(v) for v in (x if isinstance(x, (list, tuple)) else [x])] if x is not None else []

    return norm(a) == norm(b)


def _build_class() -> type:
    import torch
    from verl.utils.dataset.rl_dataset import RLHFDataset

    class AopcoreDataset(RLHFDataset):
        """veRL's ``RLHFDataset`` whose training rows come from an aopcore curriculum (see the module doc).

        For ``data.val_files`` it is a plain ``RLHFDataset`` (veRL builds the validation set with the same class).
        For ``data.train_files`` (not read: the rows are the curriculum's) each row is a chat prompt
        ``[{"role": "user", "content": prompt.text}]`` with ``data_source = data.aopcore.data_source``,
        ``ability`` = the prompt's category, ``reward_model = {"style": "aopcore", "ground_truth": ""}`` and
        ``extra_info`` holding the aopcore prompt id, category, round, draw and position (a custom reward
        function receives them too).
        """

        def __init__(
            self, data_files: Any, tokenizer: Any, config: Any, processor: Any = None, max_samples: int = -1
        ) -> None:
            from aopcore_integrations.verl_trainer_check import check_trainer_config

            train, val = config.get("train_files"), config.get("val_files")
            self._aopcore = _same_files(data_files, train)
            self._v1 = False
            self._queue: list[dict[str, Any]] = []  # V1: rows of the current draw not fetched yet
            self._refill_wanted = 0
            if self._aopcore and _same_files(train, val):
                raise InputError(
                    "data.val_files: must differ from data.train_files (veRL builds both with data.custom_cls; "
                    "aopcore's dataset serves the training files' rows from the curriculum)"
                )
            if self._aopcore:
                workers = config.get("dataloader_num_workers", 0)
                if workers:
                    raise InputError(
                        f"data.dataloader_num_workers: {workers}; aopcore's dataset needs 0 (worker processes "
                        "would hold copies of the dataset that on_batch_end cannot update)"
                    )
                # the full config (the data config's root): refuse a trainer in which no aopcore hook would fire
                self._v1 = check_trainer_config(config)
                opts = parse_options(config)
                self._opts = opts
                # V1 fetches data.gen_batch_size (1) prompts at a time: a draw is the step's train_batch_size prompts
                draw_size = (
                    config.get("train_batch_size")
                    if self._v1
                    else (config.get("gen_batch_size") or config.get("train_batch_size"))
                )
                self._driver = RoundDriver(
                    open_session(opts),
                    batch_size=int(draw_size),
                    steps_per_round=opts.steps_per_round,
                    evaluation=opts.evaluation,
                    initial_evaluation=read_jsonl(Path(opts.initial_evaluation), EvalRecord)
                    if opts.initial_evaluation
                    else None,
                    generate=import_function(opts.generate, "data.aopcore.generate") if opts.generate else None,
                )
            super().__init__(data_files, tokenizer, config, processor, max_samples)

        # the training files are not read: the curriculum is the data
        def _download(self, use_origin_parquet: bool = False) -> None:
            if not self._aopcore:
                super()._download(use_origin_parquet)

        def _read_files_and_tokenize(self) -> None:
            if self._aopcore:
                self.dataframe = []
            else:
                super()._read_files_and_tokenize()

        def __len__(self) -> int:
            if not self._aopcore:
                return super().__len__()
            return self._driver.total_draws * self._driver.batch_size

        def _row(self, p: Prompt, r: int, draw: int, pos: int, n: int = 0) -> dict[str, Any]:
            row = {
                "data_source": self._opts.data_source,
                self.prompt_key: [{"role": "user", "content": p.text}],
                "ability": p.category,
                "reward_model": {"style": "aopcore", "ground_truth": ""},
                "extra_info": {
                    "index": pos,
                    ID: p.id,
                    CATEGORY: p.category,
                    ROUND: r,
                    DRAW: draw,
                    POSITION: pos,
                    TEXT: p.text,
                    **({SIZE: n} if n else {}),
                },
            }
            self.dataframe = [row]
            return RLHFDataset.__getitem__(self, 0)

        def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
            """One draw of ``len(indices)`` prompts from the round's stream (the indices only count the batch)."""
            if not self._aopcore:
                return [self[i] for i in indices]
            if not self._v1:
                r, draw, prompts = self._driver.draw(len(indices))
                return [self._row(p, r, draw, k) for k, p in enumerate(prompts)]
            out = []
            for _ in indices:  # V1: rows of one draw (or refill draw) across as many fetches as it takes
                if not self._queue:
                    if self._refill_wanted:
                        r, draw, prompts = self._driver.refill(self._refill_wanted)
                        self._refill_wanted = 0
                    else:
                        r, draw, prompts = self._driver.draw(self._driver.batch_size)
                    self._queue = [self._row(p, r, draw, k, len(prompts)) for k, p in enumerate(prompts)]
                out.append(self._queue.pop(0))
            return out

        def expect_refill(self, n: int) -> None:
            """V1: the next ``n`` prompts fetched replace dropped groups (aopcore's sampler calls this before refill_fn)."""
            if self._queue:
                raise RuntimeFailure(
                    f"aopcore: a refill of {n} was asked for while {len(self._queue)} rows of a draw were unfetched"
                )
            self._refill_wanted += int(n)

        def __getitem__(self, item: int) -> dict[str, Any]:
            """A look at the current round's prompt ``item`` (modulo the budget), not a draw: the loader draws through
            ``__getitems__``, so looking at ``dataset[0]`` changes nothing that training sees."""
            if not self._aopcore:
                return super().__getitem__(item)
            r, p = self._driver.peek(int(item))
            return self._row(p, r, -1, int(item))

        def on_batch_end(self, batch: Any) -> None:
            """veRL's per-step hook: report the step's rewarded responses, grouped per prompt, to the stream."""
            if not self._aopcore:
                return
            infos = batch.non_tensor_batch.get("extra_info")
            r = int(infos[0][ROUND]) if infos is not None and len(infos) else self._driver.round
            for draw, groups in batch_groups(batch).items():
                self._driver.report(r, draw, groups)

        # torchdata's StatefulDataLoader saves and restores these with veRL's data.pt
        def state_dict(self) -> dict[str, Any]:
            if self._aopcore and self._queue:
                raise RuntimeFailure("aopcore: veRL saved the dataloader mid-draw (rows fetched but not all submitted)")
            return self._driver.state_dict() if self._aopcore else {}

        def load_state_dict(self, state: dict[str, Any]) -> None:
            if self._aopcore:
                self._driver.load_state_dict(state)

        @property
        def driver(self) -> RoundDriver:
            return self._driver

        @property
        def session(self) -> Any:
            """The :class:`~aopcore.CurriculumSession` (state folder, ledger)."""
            return self._driver.session

    del torch
    AopcoreDataset.__module__, AopcoreDataset.__qualname__ = __name__, "AopcoreDataset"
    return AopcoreDataset


_CLASS: type | None = None


def __getattr__(name: str) -> Any:
    """``AopcoreDataset`` is built on first lookup (it subclasses veRL's ``RLHFDataset``; veRL is imported then)."""
    global _CLASS
    if name == "AopcoreDataset":
        if _CLASS is None:
            _CLASS = _build_class()
        return _CLASS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AopcoreDataset",  # noqa: F822 (defined lazily by __getattr__)
    "RoundDriver",
    "compute_score",
    "VerlOptions",
    "batch_groups",
    "parse_options",
    "rollout_evaluation",
    "sequence_rewards",
]
