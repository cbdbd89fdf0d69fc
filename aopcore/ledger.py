"""Cost accounting per stage: wall time, tokens generated, feedback and judge calls.

Components report usage with :func:`record_usage` wherever they do the work
(any thread); the experiment opens a :class:`StageMeter` around each stage and
stores its totals with the stage record. That is what lets a report set the
cost of choosing prompts beside the cost of training (the paper's trade-off).
"""
from __future__ import annotations

import threading
import time
from collections import Counter

_lock = threading.Lock()
_active: list["StageMeter"] = []  # stages run one at a time; the last one is current


def record_usage(**counts: float) -> None:
    """Add counts (e.g. ``tokens_generated=640``) to the stage that is running, if any."""
    with _lock:
        if _active:
            _active[-1].counts.update(counts)


class StageMeter:
    """Context manager that collects wall time and usage counts for one stage."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.counts: Counter[str] = Counter()
        self.wall_s = 0.0

    def __enter__(self) -> "StageMeter":
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
