"""aopcore's curricula inside TRL's ``GRPOTrainer`` and ``RLOOTrainer``, through TRL's own extension points.

TRL has no curriculum API (trl#2801); what it does support is an :class:`datasets.IterableDataset` as
``train_dataset`` (with ``max_steps``), reward functions that receive the dataset's columns, and trainer
callbacks. :class:`TRLCurriculum` uses exactly those three::

    aop = TRLCurriculum(session, every=K)                     # a CurriculumSession: AOP, an online curriculum, ...
    trainer = GRPOTrainer(model, reward_funcs=aop.reward(my_reward), args=GRPOConfig(..., max_steps=N, shuffle_dataset=False),
                          train_dataset=aop.dataset(), callbacks=[aop.callback])

How it works, and why it is deterministic:

- **Rounds are epochs.** The dataset yields one *round* (``every`` optimiser steps) per pass and then ends; the
  Trainer (``max_steps`` set, so epochs are unbounded) starts the next pass, which asks the session for the next
  round's prompts. At that moment every rollout of the round has been rewarded and the model has taken exactly
  ``round x every`` steps: the evaluation on the held-out questions (``generate`` over the live model) sees the
  model at the round's end, whatever TRL's loader prefetches.
- **Draws are generation batches.** Each of TRL's generation batches is one draw of the round's
  :class:`~aopcore.steps.PromptStream` (``generation_batch_size / num_generations`` prompts). A curriculum
  that is not online gets its round's prompts in a seeded order, ``passes`` times; an online one chooses every
  draw from the rollouts reported so far (one draw of lag: TRL's loader fetches one batch ahead).
- **The reward wrapper reports.** :meth:`TRLCurriculum.reward` wraps the user's reward function(s): the rows
  carry ``aopcore_id``, ``aopcore_category`` and ``aopcore_draw`` columns, so each generation's rewards go back
  to the stream as one :class:`~aopcore.steps.RolloutGroup` per row: ``num_generations`` completions each, also
  when a selector repeats a prompt in a row.
  A group the curriculum's ``keep`` rejects gets its mean reward for every completion: a zero-variance group,
  whose group-relative advantage is 0 (GRPO and RLOO), so it adds no policy gradient (see :data:`KEEP_LIMIT`).
- **Checkpoints carry the curriculum.** The callback is an ``ExportableState``: each TRL checkpoint's
  ``trainer_state.json`` keeps the data position (rollouts reported), and the checkpoint folder keeps a copy of
  the round's stream log. ``trainer.train(resume_from_checkpoint=...)`` then resumes the round where the
  checkpoint stood (the session returns the recorded prompts; the stream replays its log). The callback sets
  ``ignore_data_skip`` (the stream is the data position, so the Trainer must not fast-forward the loader, which
  would draw and discard prompts), and restores the checkpoint's random state once more just before the first
  resumed step (the loader's new iterator consumed a random number), so a resumed run draws what an
  uninterrupted one draws.

Several processes (``torchrun``/``accelerate launch``, see :mod:`aopcore_integrations.trl_ranks`): TRL reads the
dataset in every process and gives each a contiguous slice of each generation batch. Rank 0 alone opens the rounds
and the stream, draws, and broadcasts each draw's rows, so every process trains on its share of the same draws; the
reward wrapper gathers every process's rewards to rank 0, which reports the whole draw once and sends back the
rewards each process trains on. Rank 0 alone writes the session's files and the checkpoint's extra files; every
process resumes from the checkpoint's position (``trainer_state.json``) and its own random state. A run draws
what a one-process run with the same ``generation_batch_size`` draws (when the rewards agree).
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from aopcore.errors import InputError, RuntimeFailure
from aopcore.records import Prompt, category_counts, read_jsonl
from aopcore.steps import PlannedSelector, PromptStream, group_rollouts
from aopcore.storage.rundir import stage_id

log = logging.getLogger("aopcore")

ID, CATEGORY, DRAW = "aopcore_id", "aopcore_category", "aopcore_draw"
STREAM_LOG = "stream.jsonl"  # the name CurriculumSession.stream() gives the round's log in session.scratch(r)
CHECKPOINT_LOG = "aopcore_stream.jsonl"
KEEP_LIMIT = (
    "TRL computes advantages inside the trainer, so in a TRL script a dropped group is not removed from the "
    "batch and not refilled: its completions get the group's mean reward (advantage 0, no policy gradient); "
    "the KL term (beta > 0) still sees them and they count in the loss normaliser. aopcore's own grpo and "
    "rloo refill them (RefillFeed)."
)


class _Feed:
    """The shared machinery: rows from prompt streams, rewards reported back, the position saved and restored.

    ``open_round(r, completed)`` returns round ``r``'s stream positioned after ``completed`` reported draws;
    ``end_round(r, stream)`` closes it. :class:`TRLCurriculum` (a CurriculumSession's rounds) and aopcore's own
    ``grpo``/``rloo`` trainers (one stream per training stage) supply the two.
    """

    def __init__(
        self, *, row: Callable[[str], dict[str, Any]] | None, every: int | None, answer_column: str | None = "answer"
    ) -> None:
        self.row = row or (lambda text: {"prompt": text})
        self.answer_column = answer_column
        self.every = every
        self.n = 0  # prompts per draw
        self.draws_per_round = 0
        self.total_draws = 0
        self.reported = 0  # draws whose rewards came back, over all rounds: the data position
        self._resume_from: int | None = None
        self._streams: dict[int, PromptStream] = {}
        self._configured = False
        self._checkpoint_rng: str | None = None
        self.args: Any = None
        self.last_kept: list[bool] = []  # the last report's keep decisions, per group
        self.model: Any = None
        self.tokenizer: Any = None
        self.rank, self.world = 0, 1  # set by configure() from the process group

    # ---- hooks the owner supplies ---------------------------------------------------------
    def open_round(self, r: int, completed: int) -> PromptStream:
        raise NotImplementedError

    def end_round(self, r: int, stream: PromptStream) -> None:
        raise NotImplementedError

    def save(self, folder: Path) -> None:
        """Extra files for a checkpoint folder (the session copies its round's stream log)."""

    def restore_files(self, folder: Path | None, r: int) -> None:
        """Put a checkpoint's extra files back before round ``r`` reopens."""

    # ---- configuration from the trainer's arguments -----------------------------------------
    def configure(self, args: Any, max_steps: int | None = None) -> None:
        """Sizes from TRL's config: prompts per draw, draws per round and in all."""
        if getattr(args, "shuffle_dataset", False):
            raise InputError(
                "GRPOConfig.shuffle_dataset: set shuffle_dataset=False; aopcore's curriculum orders the prompts "
                "(a shuffle buffer would draw a thousand prompts ahead of the rewards)"
            )
        from aopcore_integrations.trl_ranks import rank_and_world

        self.rank, self.world = rank_and_world()
        self._check_processes(args)
        steps = int(max_steps if max_steps is not None else args.max_steps)
        if steps <= 0:
            raise InputError(
                "GRPOConfig.max_steps: set max_steps; the curriculum's dataset is an IterableDataset without a length"
            )
        num_gen = int(args.num_generations)
        gen_batch = int(args.generation_batch_size)
        if gen_batch % num_gen:
            raise InputError(
                f"GRPOConfig: generation_batch_size ({gen_batch}) is not a multiple of num_generations ({num_gen})"
            )
        per_gen = int(args.steps_per_generation) * int(getattr(args, "num_iterations", 1))
        accum = int(args.gradient_accumulation_steps)
        if accum % per_gen:
            raise InputError(
                f"GRPOConfig: gradient_accumulation_steps ({accum}) must be a multiple of steps_per_generation x "
                f"num_iterations ({per_gen}) so that a round of optimiser steps is whole generation batches"
            )
        self.n = gen_batch // num_gen
        per_step = accum // per_gen  # generation batches (draws) per optimiser step
        every = self.every or steps
        self.draws_per_round = every * per_step
        self.total_draws = steps * per_step
        self.args = args
        self._configured = True

    def check_start(self, args: Any, *, resuming: bool) -> None:
        """Refuse a start this feed's saved state does not belong to (a session checks the trainer's settings)."""

    def _check_processes(self, args: Any) -> None:
        """Refuse a launch whose processes would not share one stream."""
        import os

        if (
            os.environ.get("ACCELERATE_USE_CPU", "").lower() == "true"
            and "MASTER_PORT" in os.environ
            and "WORLD_SIZE" not in os.environ
        ):  # accelerate's CPU launcher asked for N processes and started one
            raise InputError(
                "accelerate launch --cpu --num_processes N starts one process (its CPU launcher needs MPI): "
                "on CPU launch with torchrun --nproc_per_node N (gloo), or drop --num_processes"
            )
        expected = int(getattr(args, "world_size", 1) or 1)
        if expected != self.world:
            raise InputError(
                f"TRL reports {expected} processes but {self.world} joined the process group: launch with "
                "torchrun --nproc_per_node N (or accelerate launch --multi_gpu --num_processes N [--cpu])"
            )

    def round_of(self, draw: int) -> tuple[int, int]:
        """(round, draw within the round) of a global draw index."""
        return draw // self.draws_per_round + 1, draw % self.draws_per_round

    # ---- the dataset --------------------------------------------------------------------
    def dataset(self):
        from datasets import IterableDataset

        return IterableDataset.from_generator(self._rows)

    def _rows(self) -> Iterator[dict[str, Any]]:
        """One round's rows; with several processes rank 0 draws and every process yields the same rows."""
        if self.world == 1:
            for rows in self._draw_rows():
                yield from rows
            return
        from aopcore_integrations.trl_ranks import broadcast_from_main

        if self._resume_from is not None:
            self.reported, self._resume_from = self._resume_from, None
        if self.rank == 0:
            for rows in self._draw_rows():
                yield from broadcast_from_main(rows)
            broadcast_from_main(None)  # the round's pass ends in every process
            return
        while (rows := broadcast_from_main(None)) is not None:
            yield from rows

    def _draw_rows(self) -> Iterator[list[dict[str, Any]]]:
        """One round's draws from the round's stream, ``n`` rows each (the process that owns the stream)."""
        if not self._configured:
            raise RuntimeFailure(
                "the curriculum's dataset was read before training began: pass the adapter's callback "
                "to the trainer (callbacks=[...callback])"
            )
        if self._resume_from is not None:
            self.reported, self._resume_from = self._resume_from, None
        start = self.reported
        if start >= self.total_draws:
            return
        r, done = self.round_of(start)
        if r > 1 and done == 0:
            self._close(r - 1)
        stream = self._stream(r, done)
        last = min(self.draws_per_round, self.total_draws - (r - 1) * self.draws_per_round)
        for local in range(done, last):
            if stream.draws != local:
                raise RuntimeFailure(
                    f"round {r}: the stream is at draw {stream.draws}, the trainer asks for draw {local} "
                    "(did the Trainer skip batches on resume? the adapter's callback sets ignore_data_skip)"
                )
            prompts = stream.next(self.n)
            g = (r - 1) * self.draws_per_round + local
            yield [{**self.row(p.text), **self.answer_of(p), ID: p.id, CATEGORY: p.category, DRAW: g} for p in prompts]

    def answer_of(self, p: Prompt) -> dict[str, Any]:
        """The reference answer column of a prompt that carries one (a generating curriculum's answers, a ``solve``)."""
        if self.answer_column is None or p.metadata.get("answer") is None:
            return {}
        return {self.answer_column: p.metadata["answer"]}

    def _stream(self, r: int, completed: int) -> PromptStream:
        if r not in self._streams:
            self._streams[r] = self.open_round(r, completed)
        return self._streams[r]

    def _close(self, r: int) -> None:
        stream = self._streams.pop(r, None)
        if self.ended(r):
            return
        if stream is None:  # resumed at a round's end: reopen it from its log to close it
            stream = self.open_round(r, self.draws_per_round)
        self.end_round(r, stream)

    def ended(self, r: int) -> bool:
        """Whether round ``r`` was closed already (by an earlier attempt)."""
        return False

    def finish(self) -> None:
        """Close the last round once training reached ``max_steps`` (every draw made was reported)."""
        if self.rank == 0 and self.reported and self.reported == self.total_draws:
            self._close(self.round_of(self.reported - 1)[0])

    # ---- the reward wrapper ---------------------------------------------------------------
    def reward(
        self, *funcs: Callable[..., Sequence[float]], weights: Sequence[float] | None = None
    ) -> Callable[..., list[float]]:
        if not funcs:
            raise InputError("reward(): give the reward function(s) to wrap")
        if weights is not None and len(weights) != len(funcs):
            raise InputError(f"reward(): {len(weights)} weights for {len(funcs)} reward functions")
        w = list(weights) if weights is not None else [1.0] * len(funcs)
        feed = self

        def aopcore_reward(prompts, completions, **kwargs) -> list[float]:
            total = [0.0] * len(completions)
            for weight, fn in zip(w, funcs):
                values = fn(prompts=prompts, completions=completions, **kwargs)
                if len(values) != len(completions):
                    raise RuntimeFailure(
                        f"reward function {getattr(fn, '__name__', fn)!r} returned {len(values)} rewards "
                        f"for {len(completions)} completions"
                    )
                total = [t + weight * float(v if v is not None else math.nan) for t, v in zip(total, values)]
            return feed.report(kwargs, total) if feed.world == 1 else feed.report_across(kwargs, total)

        names = "+".join(getattr(fn, "__name__", "reward") for fn in funcs)
        aopcore_reward.__name__ = names if len(funcs) == 1 else f"aopcore({names})"
        return aopcore_reward

    def report(self, columns: dict[str, Any], rewards: list[float]) -> list[float]:
        """Report one generation batch's rewards to its draw; dropped groups get their mean (no gradient)."""
        if ID not in columns or DRAW not in columns:
            raise RuntimeFailure(
                "the reward function got no aopcore_id/aopcore_draw columns: the trainer's train_dataset "
                "is not the curriculum's dataset() (or remove_unused_columns dropped them)"
            )
        draws = sorted(set(int(d) for d in columns[DRAW]))
        if len(draws) != 1:
            raise RuntimeFailure(
                f"one generation batch holds rollouts of draws {draws}: the adapter's sizes do not match "
                "the trainer's (generation_batch_size, num_generations)"
            )
        g = draws[0]
        stream, local = self._locate(g)
        completion_ids = columns.get("completion_ids")
        tokens = [len(c) for c in completion_ids] if completion_ids is not None else None
        finite = [v if math.isfinite(v) else 0.0 for v in rewards]
        size = int(getattr(self.args, "num_generations", 0) or 0)
        groups = _row_groups(
            [str(i) for i in columns[ID]], [str(c) for c in columns[CATEGORY]], finite, tokens, size, g
        )
        kept = stream.report(local, groups)
        self.last_kept = list(kept)
        if g == self.reported:
            self.reported += 1
        out = list(rewards)
        if not all(kept):
            k = 0
            for group, keep in zip(groups, kept):
                size = len(group.rewards)
                if not keep:
                    out[k : k + size] = [group.mean] * size
                k += size
        return out

    def report_across(self, columns: dict[str, Any], rewards: list[float]) -> list[float]:
        """Every process's slice of one generation batch reported once, by rank 0; each gets its slice back."""
        from aopcore_integrations.trl_ranks import broadcast_from_main, gather_all

        keys = [k for k in (ID, CATEGORY, DRAW, "completion_ids") if k in columns]
        mine = {k: list(columns[k]) for k in keys}
        parts = gather_all((mine, list(rewards)))
        full: list[float] | None = None
        if self.rank == 0:
            merged = {k: [v for cols, _ in parts for v in cols[k]] for k in keys}
            full = self.report(merged, [v for _, values in parts for v in values])
        full, kept = broadcast_from_main((full, self.last_kept))
        self.last_kept = list(kept)
        if self.rank != 0 and int(columns[DRAW][0]) == self.reported:
            self.reported += 1
        start = sum(len(values) for _, values in parts[: self.rank])
        return list(full[start : start + len(rewards)])

    def _locate(self, draw: int) -> tuple[PromptStream, int]:
        """The open stream a global draw index belongs to, and the draw's index in it."""
        r, local = self.round_of(draw)
        stream = self._streams.get(r)
        if stream is None:
            raise RuntimeFailure(f"rewards for draw {draw} of round {r}, which is not open")
        return stream, local

    # ---- checkpoints ----------------------------------------------------------------------
    def saved_position(self) -> int:
        return self.reported

    def resume(self, position: int, checkpoint: Path | None) -> None:
        """Continue from a checkpoint taken when ``position`` draws were reported."""
        self._streams.clear()
        self._resume_from = position
        self.reported = position
        r, done = self.round_of(position)
        if self.rank != 0:  # rank 0 owns the stream and its files
            pass
        elif position and done == 0:
            self.restore_files(checkpoint, r - 1)
        else:
            self.restore_files(checkpoint, r)
        self._checkpoint_rng = str(checkpoint) if checkpoint is not None else None

    def restore_rng(self) -> None:
        """Set the checkpoint's random state again (TRL's loader drew a seed from it when its iterator was made)."""
        if self._checkpoint_rng is None or self.args is None:
            return
        from types import SimpleNamespace

        from transformers import Trainer

        Trainer._load_rng_state(SimpleNamespace(args=self.args), self._checkpoint_rng)
        self._checkpoint_rng = None


def _callback_class():
    from transformers import TrainerCallback
    from transformers.trainer_callback import ExportableState

    class AopcoreCurriculumCallback(TrainerCallback, ExportableState):
        """Sizes the feed from the trainer's config, saves its position with each checkpoint and restores it."""

        def __init__(self, feed: _Feed, max_steps: int | None = None) -> None:
            self.feed = feed
            self.max_steps = max_steps

        def state(self) -> dict[str, Any]:
            return {"args": {}, "attributes": {"reported": self.feed.saved_position()}}

        def on_init_end(self, args, state, control, **kwargs):
            # the stream is the data position: the Trainer must not skip batches on resume (that would draw prompts)
            args.ignore_data_skip = True
            return control

        def on_train_begin(self, args, state, control, model=None, processing_class=None, **kwargs):
            self.feed.configure(args, self.max_steps)
            self.feed.check_start(args, resuming=state.global_step > 0)
            self.feed.model = model
            self.feed.tokenizer = processing_class
            if state.global_step > 0:
                saved = (state.stateful_callbacks or {}).get(type(self).__name__)
                if isinstance(saved, list):
                    saved = saved[-1]
                if not saved:
                    raise RuntimeFailure(
                        f"the checkpoint at step {state.global_step} has no aopcore curriculum state "
                        "(it was saved without the adapter's callback)"
                    )
                folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
                self.feed.resume(int(saved["attributes"]["reported"]), folder if folder.is_dir() else None)
            return control

        def on_step_begin(self, args, state, control, **kwargs):
            self.feed.restore_rng()
            return control

        def on_save(self, args, state, control, **kwargs):
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if folder.is_dir() and self.feed.rank == 0:
                self.feed.save(folder)
            return control

        def on_train_end(self, args, state, control, **kwargs):
            self.feed.finish()
            return control

    return AopcoreCurriculumCallback


class TRLCurriculum(_Feed):
    """A :class:`~aopcore.CurriculumSession`'s curriculum choosing the prompts of a TRL ``GRPOTrainer``/``RLOOTrainer``.

    Args:
        session: the session (its ``budget`` is prompts per round; its ``reward`` scores the held-out answers).
        every: optimiser steps per round: the curriculum re-evaluates the model and chooses new prompts every
            ``every`` steps (AOP); an online curriculum also adapts every draw within the round.
        row: ``row(text) -> dict`` the dataset columns of one prompt, as the plain script builds them (default
            ``{"prompt": text}``); the adapter adds ``aopcore_id``, ``aopcore_category``, ``aopcore_draw``.
        generate: ``generate(texts) -> answers`` with the live model, for the held-out evaluation; default:
            greedy decoding with the trainer's model and processing class, prompts formatted by ``row``,
            ``max_completion_length`` new tokens.
        report_dir: where to write ``round-RR.json`` (prompts per category, held-out reward per category, the
            prompts' audit: held-out overlap, label agreement, answers, and what generation dropped) as each
            round ends; default ``state_dir/rounds``.
        answer_column: the column that carries a prompt's reference answer (``Prompt.metadata["answer"]``: a
            generating curriculum's ``answers = "writer"``, or the session's ``solve``), which the reward
            function receives as a keyword; default ``answer``. Prompts without one get no column.
        allow_changes: continue a state folder whose trainer settings (``state_dir/trainer.json``: learning rate,
            batch and generation settings, seed, ...) differ from this run's; default: refused in one line. A fresh
            run (no ``resume_from_checkpoint``) into a folder where a round has ended is always refused.

    Use :meth:`dataset` as ``train_dataset``, :meth:`reward` around the reward function(s), and :attr:`callback`
    in ``callbacks``; set ``max_steps`` and ``shuffle_dataset=False`` in the config.
    """

    def __init__(
        self,
        session: Any,
        *,
        every: int,
        row: Callable[[str], dict[str, Any]] | None = None,
        generate: Callable[[Sequence[str]], Sequence[str]] | None = None,
        report_dir: Path | str | None = None,
        answer_column: str = "answer",
        allow_changes: bool = False,
    ) -> None:
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise InputError(f"TRLCurriculum.every: {every!r} is not a positive number of steps per round")
        super().__init__(row=row, every=every, answer_column=answer_column)
        self.session = session
        self.allow_changes = allow_changes
        self.generate = generate
        self.report_dir = Path(report_dir) if report_dir is not None else session.store.root / "rounds"
        self.callback = _callback_class()(self)

    def check_start(self, args: Any, *, resuming: bool) -> None:
        if self.rank != 0:  # rank 0 owns the state folder (trainer.json); the others follow its draws
            return
        from aopcore_integrations.trainer_settings import check_settings

        s = self.session
        check_settings(
            s.store.root, args, resuming=resuming, ended_rounds=s._ended_rounds(), allow_changes=self.allow_changes
        )

    # ---- rounds from the session -----------------------------------------------------------
    def open_round(self, r: int, completed: int) -> PromptStream:
        s = self.session
        # the held-out evaluation needs the session's reward; a recorded round returns its prompts without one
        prompts = s.next_prompts(round=r, generate=self._generate if s.reward is not None else None)
        passes = max(1, math.ceil(self.draws_per_round * self.n / len(prompts)))
        stream = s.stream(passes=passes)
        if stream is None:  # a curriculum that takes no part in the channel: its prompts, in a seeded order
            ctx = s.context(r)
            log_path = s.scratch(r) / STREAM_LOG

            def make() -> PlannedSelector:
                return PlannedSelector(prompts, passes=passes, seed=ctx.seed)

            stream = PromptStream(make(), iteration=r, log=log_path, online=False, make_selector=make)
        if completed:
            stream.restore(completed)
        log.info(
            "round %d: %d prompts (%s), %d draws of %d",
            r,
            len(prompts),
            category_counts(prompts),
            self.draws_per_round,
            self.n,
        )
        return stream

    def ended(self, r: int) -> bool:
        return self.session.store.is_done(stage_id(self.session.name, r, "train"))

    def end_round(self, r: int, stream: PromptStream) -> None:
        s = self.session
        if s.round != r:
            s.next_prompts(round=r)  # recorded: sets the session's current round without choosing again
        s.end_round(stream)
        self._write_summary(r)

    def save(self, folder: Path) -> None:
        r, done = self.round_of(max(self.reported - 1, 0)) if self.reported else (1, 0)
        src = self.session.scratch(r) / STREAM_LOG
        if src.exists():
            shutil.copyfile(src, folder / CHECKPOINT_LOG)
        (folder / "aopcore_round.json").write_text(json.dumps({"round": r, "reported": self.reported}))

    def restore_files(self, folder: Path | None, r: int) -> None:
        saved = folder / CHECKPOINT_LOG if folder is not None else None
        if saved is not None and saved.exists() and not self.ended(r):  # an ended round is not reopened
            dest = self.session.scratch(r) / STREAM_LOG
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(saved, dest)

    # ---- evaluation with the live model ----------------------------------------------------
    def _generate(self, texts: Sequence[str]) -> list[str]:
        if self.generate is not None:
            return list(self.generate(texts))
        if self.model is None or self.tokenizer is None:
            raise RuntimeFailure("TRLCurriculum: no model to evaluate with (pass generate=fn(texts) -> answers)")
        return generate_with(
            self.model,
            self.tokenizer,
            [self.row(t)["prompt"] for t in texts],
            max_new_tokens=int(getattr(self.args, "max_completion_length", 64) or 64),
        )

    def _write_summary(self, r: int) -> None:
        s = self.session
        prompts = read_jsonl(s.layout.prompts(s.name, r), Prompt)
        drawn: dict[str, int] = {}
        steps = s.layout.steps(s.name, r)
        if steps.exists():
            from aopcore.steps import read_batches

            for b in read_batches(steps):
                for grp in b.groups:
                    drawn[grp.category] = drawn.get(grp.category, 0) + 1
        # the evaluation round r chose from (the session's layout): the start policy's, or the previous round's
        evaluation_path = s.layout.evaluation(s.name, r - 1)
        by_cat: dict[str, list[float]] = {}
        if evaluation_path.exists():
            from aopcore.records import EvalRecord

            for e in read_jsonl(evaluation_path, EvalRecord):
                by_cat.setdefault(e.category, []).append(e.reward)
        record = s.store.stage_file(stage_id(s.name, r, "prompts"))
        audit = json.loads(record.read_text()).get("audit") if record.exists() else None
        summary = {
            "round": r,
            "steps": [(r - 1) * (self.every or 0), r * (self.every or 0)],
            "prompts_by_category": category_counts(prompts),
            "draws_by_category": dict(sorted(drawn.items())),
            "heldout_reward_by_category": {c: sum(v) / len(v) for c, v in sorted(by_cat.items())},
            "prompts_audit": audit,
        }
        self.report_dir.mkdir(parents=True, exist_ok=True)
        (self.report_dir / f"round-{r:02d}.json").write_text(json.dumps(summary, indent=2) + "\n")


class StreamFeed(_Feed):
    """One aopcore training stage's :class:`~aopcore.steps.PromptStream` as a TRL dataset (aopcore's ``grpo``/``rloo``)."""

    def __init__(self, stream: PromptStream, *, row: Callable[[str], dict[str, Any]], max_steps: int) -> None:
        super().__init__(row=row, every=None)
        self.stream = stream
        self.max_steps = max_steps
        self.callback = _callback_class()(self, max_steps)

    def open_round(self, r: int, completed: int) -> PromptStream:
        if completed:
            self.stream.restore(completed)
        return self.stream

    def end_round(self, r: int, stream: PromptStream) -> None:
        stream.finish()


REFILL_STATE = "aopcore_refill.json"  # in each checkpoint folder: the generation batches made
MAX_REFILL_ROUNDS = 8  # refills per generation batch: a cap of 1.0 and a policy whose every group ties would not end


class RefillFeed(StreamFeed):
    """DAPO's dynamic sampling for aopcore's own ``grpo``/``rloo``: groups the curriculum's ``keep`` drops are replaced.

    The trainer (:func:`aopcore_hf.trl_trainers.refilling`) asks :meth:`generate` for each generation batch, so the draw
    is made when TRL generates it, not when its loader prefetches the batch: every earlier draw's rewards are in, and the
    dropped groups of a draw are replaced at once by refill draws (:meth:`PromptStream.refill`), generated, scored and
    spliced into the batch in their place. Draws and reports happen strictly in index order, as ``restore`` replays
    them, so a resumed stage draws and drops what an uninterrupted one does. The filter's cap bounds the extra
    generation (dropped groups stay within ``max_extra_fraction`` of all groups generated); after
    :data:`MAX_REFILL_ROUNDS` refills of one batch, what is still dropped stays in with its mean reward (no gradient).
    The dataset is placeholders, ``prompts_per_draw`` rows that TRL loads and :meth:`generate` replaces.
    Several processes: rank 0 draws and decides, every process generates its equal share (:meth:`_generate_across`).
    """

    def __init__(
        self, stream: PromptStream, *, row: Callable[[str], dict[str, Any]], max_steps: int, prompts_per_draw: int
    ) -> None:
        super().__init__(stream, row=row, max_steps=max_steps)
        self.prompts_per_draw = prompts_per_draw
        self.planned = 0  # generation batches made (each a planned draw and its refills)

    def dataset(self):
        """Placeholder rows for the whole stage: one epoch, so TRL's loader makes its iterator (and draws a seed from the
        random state) once, not between a checkpoint and the next generation."""
        from datasets import Dataset

        return Dataset.from_list(
            [{**self.row(""), ID: "", CATEGORY: "", DRAW: -1}] * (self.prompts_per_draw * self.max_steps)
        )

    def _locate(self, draw: int) -> tuple[PromptStream, int]:
        return self.stream, draw

    def _check_processes(self, args: Any) -> None:
        super()._check_processes(args)
        size = int(args.num_generations)
        if self.world > 1 and size % self.world:
            raise InputError(
                f"num_generations ({size}) must be a multiple of the {self.world} processes when a filtering "
                "curriculum (keep) refills dropped groups: each refilled group is generated in equal shares"
            )

    def saved_position(self) -> int:
        from aopcore_integrations.trl_ranks import rank_and_world

        return self.stream.completed if rank_and_world()[0] == 0 else 0  # rank 0 saves the state; the stream is its

    def save(self, folder: Path) -> None:
        (folder / REFILL_STATE).write_text(
            json.dumps({"planned": self.planned})
        )  # refills: counted from the stream log

    def resume(self, position: int, checkpoint: Path | None) -> None:
        state = (
            json.loads((checkpoint / REFILL_STATE).read_text())
            if checkpoint is not None and (checkpoint / REFILL_STATE).exists()
            else None
        )
        if state is None and position:
            raise RuntimeFailure(
                f"checkpoint {checkpoint} has no {REFILL_STATE}: it was not saved by a refilling stage"
            )
        self.planned = int(state["planned"]) if state else 0
        self._resume_from = position
        self._checkpoint_rng = str(checkpoint) if checkpoint is not None else None

    def finish(self) -> None:
        if self.rank == 0 and self.planned >= self.total_draws:
            self.stream.finish()

    def _rows_of(self, prompts: Sequence[Prompt], size: int) -> list[dict[str, Any]]:
        d = self.stream.draws - 1
        return [
            {**self.row(p.text), **self.answer_of(p), ID: p.id, CATEGORY: p.category, DRAW: d}
            for p in prompts
            for _ in range(size)
        ]

    def generate(
        self, score: Callable[[list[dict[str, Any]]], dict[str, Any]], rows: int, *, pad_id: int
    ) -> dict[str, Any]:
        """One generation batch of ``rows`` completions: ``score(rows) -> TRL's batch`` for the draw, then for refills."""
        if self.world > 1:
            return self._generate_across(score, rows, pad_id=pad_id)
        size = int(self.args.num_generations)
        if self._resume_from is not None:
            self.stream.restore(self._resume_from)  # the log marks refill draws: restore counts them again
            self._resume_from = None
        out = score(self._rows_of(self.stream.next(rows // size), size))
        keep_rows = [k for k in self.last_kept for _ in range(size)]
        for _ in range(MAX_REFILL_ROUNDS):
            dropped = keep_rows.count(False) // size
            if not dropped:
                break
            new = score(self._rows_of(self.stream.refill(dropped), size))
            out = splice_rows(out, keep_rows, new, pad_id=pad_id)
            keep_rows = [True] * (len(keep_rows) - size * dropped) + [k for k in self.last_kept for _ in range(size)]
        self.planned += 1
        return out

    def _generate_across(
        self, score: Callable[[list[dict[str, Any]]], dict[str, Any]], rows: int, *, pad_id: int
    ) -> dict[str, Any]:
        """:meth:`generate` with several processes (``rows`` each): rank 0 draws the batch and its refills and
        broadcasts the rows; every process generates and scores its equal share of each (TRL gathers the rewards, the
        reward wrapper reports them once). With drops, the processes' batches are gathered, spliced as one process
        splices them, and split again into equal shares (TRL slices each process's rows by equal shares)."""
        from aopcore_integrations.trl_ranks import broadcast_from_main, gather_batch, share

        size = int(self.args.num_generations)
        if self._resume_from is not None:
            if self.rank == 0:
                self.stream.restore(self._resume_from)
            self._resume_from = None

        def drawn(draw: Callable[[], list[Prompt]]) -> list[dict[str, Any]]:
            return share(broadcast_from_main(self._rows_of(draw(), size) if self.rank == 0 else None))

        out = score(drawn(lambda: self.stream.next(rows * self.world // size)))
        keep_rows = [k for k in self.last_kept for _ in range(size)]
        whole: dict[str, Any] | None = None
        for _ in range(MAX_REFILL_ROUNDS):
            dropped = keep_rows.count(False) // size
            if not dropped:
                break
            if whole is None:
                whole = _concat(gather_batch(out), pad_id=pad_id)
            new = score(drawn(lambda k=dropped: self.stream.refill(k)))
            whole = splice_rows(whole, keep_rows, _concat(gather_batch(new), pad_id=pad_id), pad_id=pad_id)
            keep_rows = [True] * (len(keep_rows) - size * dropped) + [k for k in self.last_kept for _ in range(size)]
        self.planned += 1
        if whole is None:
            return out
        mine = slice(self.rank * rows, (self.rank + 1) * rows)
        return {
            k: None if v is None else v.to(out[k].device) if k == "num_items_in_batch" else v[mine].to(out[k].device)
            for k, v in whole.items()
        }


def _concat(parts: Sequence[dict[str, Any]], *, pad_id: int) -> dict[str, Any]:
    """The processes' scored batches as one, in rank order (``num_items_in_batch`` recounted over all of it)."""
    whole = parts[0]
    for part in parts[1:]:
        whole = splice_rows(whole, [True] * len(whole["completion_ids"]), part, pad_id=pad_id)
    return whole


_LEFT_PADDED = {"prompt_ids", "prompt_mask"}
_ROW_KEYS = _LEFT_PADDED | {
    "completion_ids",
    "completion_mask",
    "tool_mask",
    "advantages",
    "old_logps",
    "old_per_token_logps",
    "ref_per_token_logps",
    "sampling_per_token_logps",
    "importance_sampling_ratio",
}


def splice_rows(batch: dict[str, Any], keep: Sequence[bool], new: dict[str, Any], *, pad_id: int) -> dict[str, Any]:
    """TRL's scored generation batch without the rows ``keep`` rejects, followed by ``new``'s rows (text-only batches).

    Prompt tensors are left-padded, per-token ones right-padded, to the wider of the two; ``num_items_in_batch`` (GRPO's
    loss normaliser) is recounted. Rows need not stay in order: TRL shuffles the batch before splitting it into steps."""
    import torch

    unknown = sorted(set(batch) - _ROW_KEYS - {"num_items_in_batch"})
    if unknown:
        raise RuntimeFailure(f"refilling dropped groups handles text-only batches; this one also has {unknown}")
    rows = torch.tensor(list(keep), dtype=torch.bool)
    out: dict[str, Any] = {}
    for key, old in batch.items():
        if key == "num_items_in_batch" or old is None:
            out[key] = old
            continue
        a, b = old[rows.to(old.device)], new[key]
        if a.dim() == 2 and a.shape[1] != b.shape[1]:
            width = max(a.shape[1], b.shape[1])
            value = pad_id if key.endswith("_ids") else 1 if key == "tool_mask" else 0
            a, b = (_pad(t, width, value, left=key in _LEFT_PADDED) for t in (a, b))
        out[key] = torch.cat([a, b.to(a.device)], dim=0)
    if "num_items_in_batch" in batch:
        mask = out["completion_mask"] * out["tool_mask"] if "tool_mask" in out else out["completion_mask"]
        out["num_items_in_batch"] = mask.sum()
    return out


def _pad(t: Any, width: int, value: float, *, left: bool) -> Any:
    import torch

    extra = torch.full((t.shape[0], width - t.shape[1]), value, dtype=t.dtype, device=t.device)
    return torch.cat([extra, t] if left else [t, extra], dim=1)


def generate_with(
    model: Any, tokenizer: Any, prompts: Sequence[Any], *, max_new_tokens: int, batch_size: int = 64
) -> list[str]:
    """Greedy answers of a live (training) model: eval mode and no gradients for the call, then back to training."""
    import torch

    was_training = model.training
    model.eval()
    out: list[str] = []
    side = getattr(tokenizer, "padding_side", "right")
    tokenizer.padding_side = "left"
    try:
        with torch.no_grad():
            for k in range(0, len(prompts), batch_size):
                chunk = list(prompts[k : k + batch_size])
                if chunk and isinstance(chunk[0], list):  # conversational rows
                    chunk = [
                        tokenizer.apply_chat_template(m, tokenize=False, add_generation_prompt=True) for m in chunk
                    ]
                enc = tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
                ids = model.generate(
                    **enc,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
                )
                out += tokenizer.batch_decode(ids[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    finally:
        tokenizer.padding_side = side
        if was_training:
            model.train()
    return [a.strip() for a in out]


def _row_groups(
    ids: list[str], categories: list[str], rewards: list[float], tokens: list[int] | None, size: int, draw: int
) -> list[Any]:
    """One group per row of the draw. TRL repeats every row ``size`` (num_generations) times in a row, so a prompt
    drawn twice in a row (selectors may repeat one) is two groups of ``size``, not one of twice that."""
    if size <= 0:
        return group_rollouts(ids, categories, rewards, tokens)
    if len(ids) % size:
        raise RuntimeFailure(f"draw {draw}: {len(ids)} completions are not whole groups of num_generations={size}")
    groups = []
    for k in range(0, len(ids), size):
        if len(set(ids[k : k + size])) != 1:
            raise RuntimeFailure(
                f"draw {draw}: completions {k}-{k + size - 1} belong to prompts {sorted(set(ids[k : k + size]))}, "
                f"not to one (TRL repeats each prompt num_generations={size} times in a row)"
            )
        groups += group_rollouts(
            ids[k : k + size],
            categories[k : k + size],
            rewards[k : k + size],
            tokens[k : k + size] if tokens is not None else None,
        )
    return groups


__all__ = ["TRLCurriculum", "StreamFeed", "RefillFeed", "splice_rows", "generate_with", "KEEP_LIMIT"]
