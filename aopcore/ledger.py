"""Cost accounting per stage: wall time, tokens generated, feedback and judge calls.

Components report usage with :func:`record_usage` wherever they do the work
(any thread); the experiment opens a :class:`StageMeter` around each stage and
stores its totals with the stage record. That is what lets a report set the
cost of choosing prompts beside the cost of training (the paper's trade-off).

Booking rules that keep the ledger honest:

- **Tokens of a training stage are booked once.** A trainer may call
  ``record_usage(tokens_generated=...)`` itself or return ``TrainStats.tokens_generated``; the
  experiment books the TrainStats figure only when the stage recorded no tokens itself
  (:func:`book_train_tokens`): a stage that records tokens itself is trusted.
- **Calls to plain-object feedback LLMs and judges are counted by the experiment**, through a
  :class:`CallCounter` proxy, unless the component reports them itself: a call during which the
  component recorded ``feedback_calls``/``judge_calls`` (or ``cached_calls``) is not counted again.
- **What a curriculum does through its context is choosing compute, booked by the experiment.** Its
  ``ctx.generate`` books ``policy_samples`` (one per text; the trainer books its own tokens), ``ctx.reward``
  books ``reward_calls``, ``ctx.embedder`` books ``embedder_calls`` (one per text), ``ctx.feedback`` books
  ``feedback_calls`` (:func:`counted_context`), each under the same rule as above: a call during which the
  component booked that key itself is not counted again. A curriculum books nothing itself.
- **Time lost to interrupted attempts is booked.** An attempt file under ``attempts/`` marks a
  stage that started; a heartbeat keeps its modification time current. When the stage starts
  again, the wall time of the attempts that never finished is booked as ``lost_wall_s``
  (:class:`Attempt`).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_lock = threading.Lock()
_active: list[StageMeter] = []  # stages run one at a time; the last one is current


def record_usage(**counts: float) -> None:
    """Add counts to the stage that is running, if any (outside a stage it does nothing).

    Call it where the work happens, from any thread: ``record_usage(tokens_generated=640)``,
    ``record_usage(feedback_calls=1, prompt_tokens=812, cost_usd=0.0004)``. Counts add up per
    stage and are stored with the stage record; the report's compute ledger shows
    ``tokens_generated``, ``prompt_tokens``, ``feedback_calls``, ``judge_calls``,
    ``cached_calls`` and ``cost_usd``, and any other key is kept in the stage record.
    """
    with _lock:
        if _active:
            _active[-1].counts.update(counts)


def current_count(key: str) -> float:
    """The running stage's count of ``key`` so far (0 outside a stage)."""
    with _lock:
        return _active[-1].counts[key] if _active else 0.0


def book_train_tokens(tokens_generated: int) -> bool:
    """Book a training stage's TrainStats.tokens_generated unless it recorded tokens itself (never both); True if booked."""
    with _lock:
        if not _active or _active[-1].counts["tokens_generated"]:
            return False
        _active[-1].counts["tokens_generated"] += tokens_generated
        return True


def counted_call(fn: Any, keys: Sequence[str]) -> Any:
    """``fn(batch, ...)``, booking ``len(batch)`` as ``keys[0]`` unless ``fn`` booked any of ``keys`` during the call."""

    def counted(batch: Any, *args: Any, **kwargs: Any) -> Any:
        if not hasattr(batch, "__len__"):
            batch = list(batch)  # a generator: counted as it is consumed
        before = [current_count(k) for k in keys]
        out = fn(batch, *args, **kwargs)
        if [current_count(k) for k in keys] == before:
            record_usage(**{keys[0]: len(batch)})
        return out

    counted.__wrapped__ = fn  # type: ignore[attr-defined]
    return counted


class CallCounter:
    """Counts calls to a component (feedback LLM, judge, reward model, embedder) that does not count them itself.

    ``method`` (``complete``, ``judge``, ``score``, ``embed``) is forwarded; when the component recorded none
    of ``keys`` during the call, ``len(batch)`` calls are booked as ``keys[0]``. Every other
    attribute is the component's own. Wrapping a CallCounter again counts nothing twice.
    """

    def __init__(self, inner: Any, method: str, keys: Sequence[str], *, rng_neutral: bool = False) -> None:
        self.inner = inner
        self._method = method
        self._keys = tuple(keys)
        self._rng_neutral = rng_neutral  # leave the global random streams as found (aopcore.rngguard)

    def __getattr__(self, name: str) -> Any:
        if name == "inner" or name.startswith("__"):  # not set yet (unpickling), or a protocol lookup
            raise AttributeError(name)
        attr = getattr(self.inner, name)
        if name != self._method:
            return attr
        if self.__dict__.get("_rng_neutral"):
            from aopcore.rngguard import rng_neutral

            attr = rng_neutral(attr)
        return counted_call(attr, self._keys)

    def fingerprint(self) -> Any:
        from aopcore.storage.fingerprint import describe

        return describe(self.inner)


def counted_feedback(feedback: Any) -> Any:
    """``complete`` booked, and neutral to the global random streams: a cached reply and a generated one leave the
    policy's sampling alike (see :mod:`aopcore.rngguard`)."""
    return (
        None
        if feedback is None
        else CallCounter(feedback, "complete", ("feedback_calls", "cached_calls"), rng_neutral=True)
    )


def counted_judge(judge: Any) -> Any:
    return None if judge is None else CallCounter(judge, "judge", ("judge_calls", "cached_calls"))


def counted_reward(reward: Any) -> Any:
    """``score`` books ``reward_calls`` (one per response) unless the reward model books them itself."""
    return None if reward is None else CallCounter(reward, "score", ("reward_calls",))


def counted_embedder(embedder: Any) -> Any:
    """``embed`` books ``embedder_calls`` (one per text) unless the embedder books them itself."""
    return None if embedder is None else CallCounter(embedder, "embed", ("embedder_calls",))


def counted_generate(generate: Any) -> Any:
    """A policy's ``generate(texts, ...)`` booking ``policy_samples`` (one per text) unless it books them itself.

    Tokens are the trainer's to book (it knows them; the HF trainers do): nothing is added for them here.
    """
    return None if generate is None else counted_call(generate, ("policy_samples",))


def counted_context(
    *, feedback: Any = None, embedder: Any = None, reward: Any = None, generate: Any = None
) -> dict[str, Any]:
    """The CurriculumContext components with every call a curriculum makes through them booked (see the rules above).

    An already counted feedback LLM (the experiment counts its own once) is not wrapped again.
    """
    return {
        "feedback": feedback if feedback is None or isinstance(feedback, CallCounter) else counted_feedback(feedback),
        "embedder": counted_embedder(embedder),
        "reward": counted_reward(reward),
        "generate": counted_generate(generate),
    }


class Attempt:
    """The attempt file of a running stage: books the wall time of earlier attempts a crash cut short.

    ``start()`` reads what an earlier, unfinished attempt left and writes a new one; ``lost_wall_s``
    is the total wall time of all unfinished attempts. An attempt that ended with an error (or
    Ctrl-C, SIGTERM) wrote its end time (``stop()``): booked exactly. One killed outright (SIGKILL,
    power loss) left only its last heartbeat (the file's modification time, refreshed every
    ``heartbeat_s``): it ended somewhere in the heartbeat interval after it, so half an interval is
    added (a crash shorter than one heartbeat is not booked as 0 s). ``finish()`` removes the file
    once the stage record is written.
    """

    heartbeat_s = 2.0

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.lost_wall_s = 0.0
        self.attempts = 1
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Attempt:
        if self.path.exists():
            try:
                old = json.loads(self.path.read_text(encoding="utf-8"))
                if old.get("ended") is not None:
                    last = float(old["ended"])
                else:  # killed: some time in the heartbeat interval after the last beat
                    last = self.path.stat().st_mtime + float(old.get("heartbeat_s", self.heartbeat_s)) / 2
                self.lost_wall_s = float(old.get("lost_wall_s", 0.0)) + max(0.0, last - float(old["started"]))
                self.attempts = int(old.get("attempts", 1)) + 1
            except (OSError, ValueError, KeyError):
                pass  # an unreadable attempt file: nothing can be booked from it
        from aopcore.storage.store import atomic_write_json

        self._record = {
            "started": time.time(),
            "lost_wall_s": round(self.lost_wall_s, 3),
            "attempts": self.attempts,
            "pid": os.getpid(),
            "heartbeat_s": self.heartbeat_s,
        }
        atomic_write_json(self.path, self._record)
        self._thread = threading.Thread(target=self._beat, daemon=True, name=f"aopcore-heartbeat-{self.path.stem}")
        self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            try:
                os.utime(self.path)
            except OSError:
                return

    def stop(self) -> None:
        """Stop the heartbeat (the stage ended, finished or not) and write the end time; the file stays until finish().

        Best effort: on a full disk the end time may not be written (the heartbeat still bounds it)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        from aopcore.storage.store import atomic_write_json

        try:
            atomic_write_json(self.path, {**getattr(self, "_record", {}), "ended": time.time()})
        except OSError:
            try:
                os.utime(self.path)
            except OSError:
                pass

    def finish(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.path.unlink(missing_ok=True)

    def as_record(self) -> dict[str, float | int]:
        """What the stage record books: nothing when the first attempt finished."""
        return {"lost_wall_s": round(self.lost_wall_s, 3), "attempts": self.attempts} if self.attempts > 1 else {}


class StageMeter:
    """Context manager that collects wall time and usage counts for one stage."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.counts: Counter[str] = Counter()
        self.wall_s = 0.0

    def __enter__(self) -> StageMeter:
        with _lock:
            _active.append(self)
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall_s = time.perf_counter() - self._start
        with _lock:
            _active.remove(self)

    def as_record(self) -> dict[str, float | str]:
        return {"kind": self.kind, "wall_s": round(self.wall_s, 3), **{k: self.counts[k] for k in sorted(self.counts)}}
