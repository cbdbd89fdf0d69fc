"""The one-line verdict on a difference between two arms, shared by every comparison the aggregate makes.

Its own module so that the aggregate and its equal-compute part (:mod:`aopcore.analysis.aggregate_compute`) both use it
without importing each other.
"""

from __future__ import annotations

from collections.abc import Sequence

from aopcore.analysis.stats import Interval

MIN_SEEDS = 3  # fewer seeds give a seed-level interval too unstable to call a difference on


def _seeds(n: int) -> str:
    return f"{n} seed{'s' if n != 1 else ''}"


def verdict(a: str, b: str, diff: Interval, *, seeds: int, seeds_vary: bool = True, higher: str = "is higher") -> str:
    """Which arm comes out ahead, 'no detectable difference' when the interval covers zero, or 'no conclusion'.

    No conclusion from fewer than MIN_SEEDS seeds, or when the per-seed values do not vary or the interval has zero
    width: such an interval only says the few seeds agreed, not that another seed would.
    """
    if seeds < MIN_SEEDS:
        return f"no conclusion ({_seeds(seeds)}; the interval needs >= {MIN_SEEDS})"
    if not seeds_vary or not diff.defined or diff.high - diff.low <= 0.0:
        return f"no conclusion ({_seeds(seeds)}; the seeds do not vary)"
    if diff.covers_zero():
        return "no detectable difference"
    return f"{a if diff.estimate > 0 else b} {higher}"


def _varies(values: Sequence[float]) -> bool:
    return len({round(v, 12) for v in values}) > 1
