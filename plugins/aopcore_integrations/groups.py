"""A curriculum for loops that hand out one task at a time and get its finished group back later, in any order.

prime-rl's ``TaskSampler`` (``__next__`` a task, ``observe(group)`` a finished group, ``AdmissionGate.admit``) and
slime's ``DataSource`` (``get_samples(n)`` groups of samples, a dynamic-sampling filter per finished group) work
this way: many groups are in flight, they finish out of order, and some never finish (cancelled as stale,
aborted at the end of a rollout). :class:`GroupFeed` puts a :class:`~aopcore.CurriculumSession` behind that shape:

- **One prompt per draw.** :meth:`GroupFeed.next` is one draw of one prompt from the round's
  :class:`~aopcore.steps.PromptStream`, numbered globally (``g``); every ``draws_per_round`` draws a round ends
  and the next round's prompts are chosen.
- **Results by draw.** :meth:`GroupFeed.result` reports draw ``g``'s rewards and returns whether to train on the
  group (the selector's ``keep``; a rejection is booked as choosing compute). The stream delivers reports in draw
  order, ``lag`` draws behind: before draw ``g`` the curriculum has seen exactly draws ``<= g - 1 - lag``, whatever
  order they finished in.
- **Lost groups.** A draw still unreported when draw ``g + 1 + lag`` is made, or when its round ends, is reported
  with no group (``voided``): the loop cancelled it, or it is still running. A result that comes after that is
  ``late``: admitted (the loop decides), not heard by the curriculum.
- **Position.** :meth:`state_dict` holds the first unreported draw and the round's stream log (JSON-able). After
  :meth:`load_state_dict` the feed draws again from there: the stream replays its log, so the resumed run draws
  what an uninterrupted one drew. Groups in flight at the checkpoint are drawn again (both stacks drop them on
  resume anyway); groups that finished out of order past the first unfinished one (at most ``lag``) are
  generated again.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from aopcore.errors import InputError, RuntimeFailure
from aopcore.records import EvalRecord, Prompt
from aopcore.steps import PlannedSelector, PromptStream, RolloutGroup
from aopcore.storage.rundir import stage_id

log = logging.getLogger("aopcore")

STATE_VERSION = 1
STREAM_LOG = "stream.jsonl"  # the name CurriculumSession.stream() gives the round's log in session.scratch(r)


class GroupFeed:
    """Draws of one prompt each and results by draw, over a session's rounds (see the module doc).

    Args:
        session: the :class:`~aopcore.CurriculumSession` (``session.rounds`` bounds the run; None: open-ended).
        draws_per_round: draws (groups) per round; more than ``lag``.
        lag: the most groups the loop keeps in flight (drawn, not finished) at once.
        generate: ``generate(texts) -> answers`` with the current policy (e.g. a client of the loop's inference
            server): each round's held-out evaluation. Without it a round is chosen from the previous round's
            training rewards (one record per prompt, its mean reward), and round 1 from ``initial_evaluation``.
        initial_evaluation: round 1's evaluation (EvalRecords of the start policy), when there is no ``generate``.
    """

    def __init__(
        self,
        session: Any,
        *,
        draws_per_round: int,
        lag: int,
        generate: Callable[..., Sequence[str]] | None = None,
        initial_evaluation: Sequence[EvalRecord] | None = None,
    ) -> None:
        if not isinstance(lag, int) or lag < 0:
            raise InputError(f"GroupFeed.lag: {lag!r} is not a number of groups in flight (an int >= 0)")
        if not isinstance(draws_per_round, int) or draws_per_round <= lag:
            raise InputError(
                f"GroupFeed.draws_per_round: {draws_per_round!r} must be more than lag={lag} "
                "(the groups still in flight when a round ends are not heard)"
            )
        self.session = session
        self.per_round = draws_per_round
        self.lag = lag
        self.generate = generate
        self.initial_evaluation = list(initial_evaluation) if initial_evaluation else None
        self.draws = 0  # global draws made
        self.round = 0
        self.stream: PromptStream | None = None
        self.handed: dict[int, Prompt] = {}  # draws handed out whose result the stream has not had
        self.voided = 0
        self.late = 0
        self.texts: dict[str, str] = {}  # prompt id -> text of what was drawn (the rollout evaluation's questions)

    def round_of(self, g: int) -> tuple[int, int]:
        """(round, draw within the round) of global draw ``g``."""
        return g // self.per_round + 1, g % self.per_round

    # ---- the loop's side -----------------------------------------------------------------------
    def next(self) -> tuple[int, Prompt]:
        """(``g``, prompt) of the next draw: hand the prompt out and report its group with ``result(g, ...)``."""
        g = self.draws
        r, local = self.round_of(g)
        if r != self.round:
            if self.stream is not None:
                self._void_until(self.round * self.per_round - 1)
                self._close()
            self._open(r, 0)
        self._void_until(g - 1 - self.lag)
        assert self.stream is not None
        (prompt,) = self.stream.next(1)
        self.handed[g] = prompt
        self.texts[prompt.id] = prompt.text
        self.draws += 1
        return g, prompt

    def result(self, g: int, rewards: Sequence[float], *, tokens: int = 0) -> bool:
        """Draw ``g``'s finished group (one reward per completion): whether to train on it (the selector's ``keep``)."""
        if not 0 <= g < self.draws:
            raise RuntimeFailure(f"aopcore: a result for draw {g}, but {self.draws} draws were made")
        prompt = self.handed.pop(g, None)
        if prompt is None or self.stream is None:  # voided: finished too late for the curriculum
            self.late += 1
            return True
        group = RolloutGroup(prompt.id, prompt.category, tuple(float(x) for x in rewards), int(tokens))
        (kept,) = self.stream.report(self.round_of(g)[1], [group])
        return kept

    def metrics(self) -> dict[str, float]:
        """Counts for the loop's logger: draws, the round, groups dropped by ``keep`` this round, voided and late."""
        return {
            "draws": float(self.draws),
            "round": float(self.round),
            "dropped_groups": float(self.stream.dropped_groups if self.stream is not None else 0),
            "voided_groups": float(self.voided),
            "late_groups": float(self.late),
        }

    # ---- checkpoint ------------------------------------------------------------------------------
    def position(self) -> int:
        """The first draw not yet reported (every earlier one was, or was voided)."""
        if self.stream is None:
            return self.draws
        return (self.round - 1) * self.per_round + self.stream.completed

    def state_dict(self) -> dict[str, Any]:
        """The position and the round's stream log: all a resume needs besides the session's ``state_dir``."""
        events = _read_events(self._log_path(self.round)) if self.stream is not None else []
        return {
            "version": STATE_VERSION,
            "position": self.position(),
            "voided": self.voided,
            "late": self.late,
            "log": events,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Back to a checkpoint: the next draw is its ``position``, drawn as an uninterrupted run drew it."""
        if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
            raise RuntimeFailure(f"aopcore: {state!r} is not a GroupFeed state this version wrote")
        p = int(state["position"])
        self.stream, self.round, self.handed = None, 0, {}
        self.draws, self.voided, self.late = p, int(state["voided"]), int(state["late"])
        if p == 0:
            return
        r, local = self.round_of(p - 1)
        path = self._log_path(r)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(e, sort_keys=True) + "\n" for e in state["log"]), encoding="utf-8")
        self._open(r, local + 1)

    # ---- rounds ----------------------------------------------------------------------------------
    def _void_until(self, last: int) -> None:
        """Report draws ``<= last`` of the open round that are still unreported with no group (lost or too late)."""
        assert self.stream is not None
        first = (self.round - 1) * self.per_round
        for g in range(first + self.stream.completed, min(last, self.draws - 1) + 1):
            if g in self.handed:
                del self.handed[g]
                self.stream.report(g - first, [])
                self.voided += 1
                log.info("aopcore: draw %d (round %d) unreported after %d more draws: voided", g, self.round, self.lag)

    def _log_path(self, r: int) -> Path:
        return Path(self.session.scratch(r)) / STREAM_LOG

    def _open(self, r: int, completed: int) -> None:
        s = self.session
        if s.rounds is not None and r > s.rounds:
            raise InputError(
                f"session.rounds: the loop asked for round {r} of {s.rounds} ({self.per_round} draws each); "
                "give the session more rounds, or rounds=None"
            )
        chosen = s.store.is_done(stage_id(s.name, r, "prompts"))
        prompts = s.next_prompts(round=r, **({} if chosen else self._evaluation_for(r)))
        passes = max(1, math.ceil(self.per_round / len(prompts)))
        stream = s.stream(passes=passes, lag=self.lag)
        if stream is None:  # a curriculum that chooses once per round: its prompts in a seeded order
            seed = s.context(r).seed

            def make() -> PlannedSelector:
                return PlannedSelector(prompts, passes=passes, seed=seed)

            stream = PromptStream(
                make(), iteration=r, log=self._log_path(r), lag=self.lag, online=False, make_selector=make
            )
        if completed:
            stream.restore(completed)
        self.stream, self.round = stream, r

    def _close(self) -> None:
        s, stream = self.session, self.stream
        assert stream is not None
        if s.round != self.round:
            s.next_prompts(round=self.round)  # recorded: makes it the session's current round again
        s.end_round(stream)
        self.stream = None

    def _evaluation_for(self, r: int) -> dict[str, Any]:
        if self.generate is not None:
            return {"generate": self.generate}
        if r == 1:
            return {"evaluation": self.initial_evaluation} if self.initial_evaluation else {}
        from aopcore.records import read_jsonl
        from aopcore.steps import read_batches

        s = self.session
        texts = {p.id: p.text for p in read_jsonl(s.layout.prompts(s.name, r - 1), Prompt)} | self.texts
        return {"evaluation": rollout_evaluation(read_batches(s.layout.steps(s.name, r - 1)), texts)}


def rollout_evaluation(batches: Sequence[Any], texts: dict[str, str]) -> list[EvalRecord] | None:
    """One record per prompt trained, with its mean reward: the evaluation a round is chosen from without ``generate``."""
    sums: dict[str, list[float]] = {}
    cats: dict[str, str] = {}
    for b in batches:
        for grp in b.groups:
            if grp.rewards:
                sums.setdefault(grp.prompt_id, []).extend(grp.rewards)
                cats[grp.prompt_id] = grp.category
    records = [EvalRecord(pid, texts.get(pid, pid), cats[pid], "", sum(v) / len(v)) for pid, v in sums.items()]
    return records or None


def _read_events(path: Path) -> list[dict[str, Any]]:
    from aopcore.steps import _read_log

    return _read_log(path)


__all__ = ["GroupFeed", "rollout_evaluation"]
