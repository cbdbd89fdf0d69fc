"""The per-step feedback channel: curricula that see every training step's rewarded rollouts.

Between iterations a curriculum returns a list of prompts (:meth:`PromptCurriculum.prompts`).
Within an iteration, the field's strongest prompt-selection methods (learnability sampling,
dynamic filtering, category bandits) choose per step from the rollouts themselves. This module
is the channel for that, shared by aopcore's own trainers and the TRL/veRL adapters:

- a trainer draws each step's prompts from a :class:`PromptStream` (``stream.next(n)``) and
  reports the step's rewarded completions back (``stream.report(draw, groups)``), one
  :class:`RolloutGroup` per prompt (GRPO/RLOO: ``num_generations`` completions; PPO: one);
- a curriculum opts in by having ``selector(ctx, planned) -> StepSelector`` (an *online*
  curriculum: it chooses what later steps draw) or only ``observe_step(batch)`` (it watches and
  keeps the planned prompts). Curricula with neither are untouched: trainers get no stream.

Determinism under resume and prefetch. A trainer's data loader may ask for draw ``d + 1`` before
the rewards of draw ``d`` exist (TRL's loader prefetches one batch). So the stream delivers
observations by *draw index*, not by arrival: before draw ``d`` the selector has seen exactly the
batches of draws ``<= d - 1 - lag`` (``lag`` = 1 by default), whatever the timing. Every call is
logged to a JSONL file; after a crash, :meth:`PromptStream.restore` replays the log into a fresh
selector up to the trainer's checkpoint, so the resumed run draws the same prompts as an
uninterrupted one, and a selector never has to serialise its own state.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from aopcore.errors import RuntimeFailure
from aopcore.ledger import record_usage
from aopcore.records import Prompt
from aopcore.step_records import RolloutGroup, StepBatch, group_rollouts  # noqa: F401 - part of this module's API

DEFAULT_LAG = 1


@runtime_checkable
class StepSelector(Protocol):
    """Chooses the prompts of each draw of one iteration from what earlier draws' rollouts showed.

    ``draw(n, draw)`` returns ``n`` prompts (ids need not be unique: a prompt may be drawn again);
    it must be a deterministic function of the calls made so far (use a ``random.Random`` seeded
    from ``ctx.seed``, never global randomness), because a resumed stream replays them.
    ``observe(batch)`` receives the rewarded rollouts of a draw ``lag + 1`` draws later.
    An optional ``keep(group) -> bool`` filters groups before training (dynamic sampling); a
    trainer that can refill draws replacements with :meth:`PromptStream.refill`.
    """

    def draw(self, n: int, draw: int) -> list[Prompt]: ...

    def observe(self, batch: StepBatch) -> None: ...


def is_online(curriculum: Any) -> bool:
    """Whether a curriculum chooses per step (has ``selector``: :class:`aopcore.capabilities.ChoosesPerStep`)."""
    from aopcore.capabilities import chooses_per_step

    return chooses_per_step(curriculum)


def observes_steps(curriculum: Any) -> bool:
    """Whether a curriculum wants the per-step channel at all (chooses per step, or only watches)."""
    from aopcore.capabilities import observes_steps as observes

    return observes(curriculum)


class PlannedSelector:
    """The planned prompts in order, ``passes`` times, each pass shuffled by ``seed``; observations go to ``watch``.

    What a stream does for a curriculum that only observes (``observe_step``): training sees
    the same multiset of prompts as without the channel.
    """

    def __init__(
        self, planned: Sequence[Prompt], *, passes: int, seed: int, watch: Callable[[StepBatch], None] | None = None
    ) -> None:
        import random

        rng = random.Random(seed)
        order: list[Prompt] = []
        for _ in range(max(1, passes)):
            block = list(planned)
            rng.shuffle(block)
            order += block
        self._order = order
        self._next = 0
        self._watch = watch

    def draw(self, n: int, draw: int) -> list[Prompt]:
        out = [self._order[(self._next + k) % len(self._order)] for k in range(n)] if self._order else []
        self._next += n
        return out

    def observe(self, batch: StepBatch) -> None:
        if self._watch is not None:
            self._watch(batch)


class PromptStream:
    """One iteration's prompts, drawn step by step, with the rollouts reported back.

    Trainers use three calls: ``next(n)`` before generating (returns ``n`` prompts; the draw's index
    is ``stream.draws - 1``), ``report(draw, groups)`` after rewarding (returns which groups to
    train on), and, on resume from their own checkpoint, ``restore(completed)`` with the
    ``completed`` value they saved beside it (:attr:`completed`).

    Args:
        selector: the curriculum's :class:`StepSelector` (or a :class:`PlannedSelector`).
        iteration: the iteration trained (stored in each :class:`StepBatch`).
        log: a JSONL file that survives a crash (the training stage's scratch folder); None keeps
            the log in memory only (no resume).
        lag: draws of staleness allowed between a draw and the rollouts it may see (see module doc).
        online: whether the selector chooses (False: the planned order; trainers may keep theirs).
        make_selector: builds a fresh selector; :meth:`restore` replays the log into it.
    """

    def __init__(
        self,
        selector: StepSelector,
        *,
        iteration: int = 0,
        log: Path | None = None,
        lag: int = DEFAULT_LAG,
        online: bool = True,
        make_selector: Callable[[], StepSelector] | None = None,
    ) -> None:
        if lag < 0:
            raise ValueError("lag must be >= 0")
        self.selector = selector
        self.iteration = iteration
        self.lag = lag
        self.online = online
        self._make = make_selector
        self._log_path = Path(log) if log is not None else None
        self._events: list[dict[str, Any]] = []
        self._pending: dict[int, StepBatch] = {}
        self._delivered = 0  # observations of draws < this were delivered to the selector
        self._sizes: list[int] = []  # n of each draw
        self._observed: set[int] = set()
        self.dropped_groups = 0
        self.dropped_rollouts = 0
        self.refills = 0
        self._booking = True  # False while restore() replays work that was booked when it first ran
        # a log left by a crashed attempt: the trainer restores from its checkpoint, or the stream starts over
        self._needs_restore = (
            self._log_path is not None and self._log_path.exists() and self._log_path.stat().st_size > 0
        )

    # ---- the trainer's side --------------------------------------------------------------
    @property
    def draws(self) -> int:
        """How many draws were made."""
        return len(self._sizes)

    @property
    def completed(self) -> int:
        """The longest prefix of draws whose rollouts were all reported: what a trainer saves with its checkpoint."""
        k = 0
        while k in self._observed:
            k += 1
        return k

    def next(self, n: int) -> list[Prompt]:
        """The prompts of the next draw (``n`` of them)."""
        return self._draw(n, refill=False)

    def refill(self, n: int) -> list[Prompt]:
        """Replacement prompts for dropped groups: a draw of its own (logged and observed like any other)."""
        return self._draw(n, refill=True)

    def _draw(self, n: int, *, refill: bool) -> list[Prompt]:
        if self._needs_restore:  # the trainer found no checkpoint of its own: the crashed attempt's draws are void
            self.restore(0)
        d = len(self._sizes)
        self._deliver_until(d - 1 - self.lag)
        prompts = list(self.selector.draw(n, d))
        if len(prompts) != n:
            raise RuntimeFailure(
                f"{_name(self.selector)}.draw returned {len(prompts)} prompts for draw {d}, asked for {n}"
            )
        self._sizes.append(n)
        self.refills += refill
        self._append(
            {"event": "draw", "draw": d, "n": n, "ids": [p.id for p in prompts], **({"refill": True} if refill else {})}
        )
        return prompts

    def report(self, draw: int, groups: Sequence[RolloutGroup]) -> list[bool]:
        """The rewarded rollouts of draw ``draw``; returns, per group, whether to train on it.

        Groups the selector's ``keep`` rejects are booked as choosing compute
        (``dropped_rollouts``, ``dropped_tokens`` in the ledger): they were generated and scored
        only to choose.
        """
        if not 0 <= draw < len(self._sizes):
            raise RuntimeFailure(f"report for draw {draw}, but only {len(self._sizes)} draws were made")
        if draw in self._observed:
            raise RuntimeFailure(f"draw {draw} was reported twice")
        for g in groups:
            for r in g.rewards:
                if not isinstance(r, (int, float)) or not math.isfinite(r):
                    raise RuntimeFailure(f"draw {draw}: reward {r!r} for prompt {g.prompt_id!r} is not a finite number")
        keep_fn = getattr(self.selector, "keep", None)
        kept = [bool(keep_fn(g)) if callable(keep_fn) else True for g in groups]
        dropped = [g for g, k in zip(groups, kept) if not k]
        if dropped and self._booking:
            self.dropped_groups += len(dropped)
            self.dropped_rollouts += sum(len(g.rewards) for g in dropped)
            record_usage(
                dropped_groups=len(dropped),
                dropped_rollouts=sum(len(g.rewards) for g in dropped),
                dropped_tokens=sum(g.tokens for g in dropped),
            )
        batch = StepBatch(self.iteration, draw, tuple(groups), tuple(kept))
        self._pending[draw] = batch
        self._observed.add(draw)
        self._append({"event": "report", **batch.to_dict()})
        return kept

    def finish(self) -> None:
        """Deliver every remaining observation (the selector's end state covers the whole iteration)."""
        self._deliver_until(len(self._sizes) - 1)

    # ---- resume --------------------------------------------------------------------------
    def restore(self, completed: int) -> None:
        """Rewind to a trainer checkpoint taken when draws ``< completed`` were reported.

        Replays the logged draws and reports before that point into a fresh selector (from
        ``make_selector``), checks that the replayed draws give the logged prompts, and forgets
        later events: the trainer draws them again, identically.
        """
        self._needs_restore = False
        events = _read_log(self._log_path) if self._log_path is not None else list(self._events)
        if completed == 0 and not events:
            return
        if self._make is None:
            raise RuntimeFailure("this prompt stream cannot be restored (no make_selector)")
        draws = {e["draw"]: e for e in events if e["event"] == "draw"}
        reports = {e["draw"]: e for e in events if e["event"] == "report"}
        missing = [d for d in range(completed) if d not in draws or d not in reports]
        if missing:
            raise RuntimeFailure(
                f"prompt stream log {self._log_path} lacks draw {missing[0]} of the checkpoint's {completed}"
            )
        self.selector = self._make()
        self._events, self._pending, self._sizes, self._observed, self._delivered = [], {}, [], set(), 0
        self.dropped_groups = self.dropped_rollouts = self.refills = 0
        if self._log_path is not None:
            self._log_path.unlink(missing_ok=True)
        self._booking = False
        try:
            for d in range(completed):
                prompts = self._draw(draws[d]["n"], refill=bool(draws[d].get("refill")))
                if [p.id for p in prompts] != draws[d]["ids"]:
                    raise RuntimeFailure(
                        f"{_name(self.selector)} is not deterministic: replaying draw {d} gave other prompts "
                        "(seed every random choice from ctx.seed)"
                    )
                self.report(d, [RolloutGroup.from_dict(g) for g in reports[d]["groups"]])
        finally:
            self._booking = True
        # counts of the replayed part, as booked when it first ran
        self.dropped_groups = sum(1 for b in self.batches() for k in b.kept if not k)
        self.dropped_rollouts = sum(len(g.rewards) for b in self.batches() for g, k in zip(b.groups, b.kept) if not k)

    def batches(self) -> list[StepBatch]:
        """Every reported batch, in draw order (what the run directory keeps as ``steps.jsonl``)."""
        events = [e for e in self._events if e["event"] == "report"]
        return [StepBatch.from_dict(e) for e in sorted(events, key=lambda e: e["draw"])]

    def summary(self) -> dict[str, Any]:
        """Counts for the stage record."""
        return {
            "draws": self.draws,
            "refills": self.refills,
            "dropped_groups": self.dropped_groups,
            "dropped_rollouts": self.dropped_rollouts,
            "online": self.online,
        }

    # ---- internals -----------------------------------------------------------------------
    def _deliver_until(self, last: int) -> None:
        while self._delivered <= last:
            batch = self._pending.pop(self._delivered, None)
            if batch is None:
                raise RuntimeFailure(
                    f"draw {len(self._sizes)} was asked for before the rollouts of draw {self._delivered} were reported: "
                    f"the trainer runs more than lag={self.lag} draws ahead (give the PromptStream a larger lag)"
                )
            self.selector.observe(batch)
            self._delivered += 1

    def _append(self, event: dict[str, Any]) -> None:
        self._events.append(event)
        if self._log_path is not None:
            self._log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self._log_path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(event, sort_keys=True) + "\n")
                fh.flush()
                os.fsync(fh.fileno())


def open_stream(
    curriculum: Any,
    ctx: Any,
    planned: Sequence[Prompt],
    *,
    passes: int,
    log: Path | None = None,
    lag: int = DEFAULT_LAG,
) -> PromptStream | None:
    """The stream an iteration's trainer draws from, or None for a curriculum that takes no part in the channel.

    Online curricula (``selector``) choose every draw; watchers (``observe_step``) get the planned
    prompts in order, ``passes`` times, and every batch; others get None (trainers keep their own order).
    """
    planned = list(planned)
    if is_online(curriculum):

        def make() -> StepSelector:
            return curriculum.selector(ctx, planned)

        online = True
    elif observes_steps(curriculum):  # a watcher (ObservesSteps), since it does not choose

        def make() -> StepSelector:
            return PlannedSelector(planned, passes=passes, seed=ctx.seed, watch=curriculum.observe_step)

        online = False
    else:
        return None
    stream = PromptStream(make(), iteration=ctx.iteration, log=log, lag=lag, online=online, make_selector=make)
    return stream


def read_batches(path: Path) -> list[StepBatch]:
    """The batches of a ``steps.jsonl`` file (an iteration's record, or a stream log)."""
    return [
        StepBatch.from_dict({k: v for k, v in e.items() if k != "event"})
        for e in _read_log(path)
        if e.get("event", "report") == "report"
    ]


def write_batches(path: Path, batches: Iterable[StepBatch]) -> None:
    from aopcore.storage.store import atomic_write_text

    atomic_write_text(
        path, "".join(json.dumps({"event": "report", **b.to_dict()}, sort_keys=True) + "\n" for b in batches)
    )


def _read_log(path: Path | None) -> list[dict[str, Any]]:
    if path is None or not path.exists():
        return []
    events = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a line a crash cut short: everything before it is whole (each line is fsynced)
    return events


def _name(obj: Any) -> str:
    return type(obj).__name__
