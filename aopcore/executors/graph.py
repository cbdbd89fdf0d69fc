"""What the dependency graph allows: the critical path, i.e. the wall time with unlimited workers.

Used by the benchmark (ideal against measured) and to tell users what a cluster can gain: with every
stage's duration, the critical path is the best any executor can do; the sum is what one process does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any


def critical_path(
    stages: Sequence[Any], duration: Callable[[Any], float] | Mapping[str, float]
) -> tuple[float, list[str]]:
    """Length and stage ids of the longest dependency chain; ``stages`` are in a topological order (as ``stages()``)."""
    cost = duration if callable(duration) else (lambda s: duration.get(s.kind, 0.0))
    finish: dict[str, float] = {}
    via: dict[str, str | None] = {}
    for stage in stages:
        before = max(stage.deps, key=lambda d: finish.get(d, 0.0), default=None)
        finish[stage.id] = (finish.get(before, 0.0) if before else 0.0) + float(cost(stage))
        via[stage.id] = before
    if not finish:
        return 0.0, []
    end = max(finish, key=finish.__getitem__)
    chain: list[str] = []
    node: str | None = end
    while node is not None:
        chain.append(node)
        node = via[node]
    return finish[end], chain[::-1]


def expected_wall_time(stages: Sequence[Any], seconds_per_kind: Mapping[str, float]) -> dict[str, float]:
    """One process (the sum) against unlimited parallel workers (the critical path), for per-kind stage times."""
    serial = sum(seconds_per_kind.get(s.kind, 0.0) for s in stages)
    parallel, _ = critical_path(stages, seconds_per_kind)
    return {"serial_s": serial, "critical_path_s": parallel, "speedup": serial / parallel if parallel else 1.0}


def simulate(
    stages: Sequence[Any], duration: Callable[[Any], float], slots: Callable[[Any], int], capacity: int
) -> float:
    """Wall time when stages start in ``stages()`` order as soon as their deps are done and ``slots`` of
    ``capacity`` (e.g. GPUs) are free, as the Ray executor hands them out; stages needing 0 slots never wait."""
    import heapq

    done: set[str] = set()
    pending = list(stages)
    running: list[tuple[float, int, Any]] = []  # (finish time, tie-breaker, stage)
    now, free = 0.0, capacity
    while pending or running:
        for stage in list(pending):
            need = slots(stage)
            if all(d in done for d in stage.deps) and need <= free:
                free -= need
                heapq.heappush(running, (now + float(duration(stage)), id(stage), stage))
                pending.remove(stage)
        if not running:
            raise ValueError(f"stage {pending[0].id} needs more than {capacity} slots")
        now, _, stage = heapq.heappop(running)
        free += slots(stage)
        done.add(stage.id)
    return now
