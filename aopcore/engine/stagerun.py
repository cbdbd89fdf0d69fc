"""The commit protocol of a stage, shared by :class:`~aopcore.Experiment` and :class:`~aopcore.CurriculumSession`.

A stage is done when its record ``stages/<id>.json`` exists. The record is written last and holds the sha256 of
every output (:mod:`aopcore.storage.integrity`), the cost ledger of the work (:class:`~aopcore.ledger.StageMeter`) and the
wall time of earlier, interrupted attempts, so a crash at any moment leaves a finished stage or one run again.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Sequence
from typing import Any

from aopcore.ledger import Attempt, StageMeter
from aopcore.memory import release_freed_memory
from aopcore.storage import integrity
from aopcore.storage.rundir import RunLayout
from aopcore.storage.store import RunStore

log = logging.getLogger("aopcore")

Work = Callable[[], "dict[str, Any] | None"]


# stage kinds that hold a model's training state: the full collection runs before them too, so garbage a lighter
# stage left (a cached model it replaced, whose modules refer to each other) is gone before their peak
TRAINING_KINDS = frozenset({"sft", "train"})


def commit_stage(
    store: RunStore,
    stage_id: str,
    kind: str,
    work: Work,
    *,
    outputs: Callable[[dict[str, Any]], Sequence[str]],
    order: int,
    arm: str | None,
    worker: str,
    removes: Sequence[str] = (),
    say_skip: bool = True,
) -> bool:
    """Run ``work`` unless the stage is done, then write its record last; returns True if it ran.

    ``outputs(extra)`` names what the work wrote (relative to the run directory), given the values the work
    returned; ``removes`` are paths the caller removes right after (a pruned checkpoint is not damage).
    """
    if store.is_done(stage_id):
        if say_skip:
            log.info("skip  %-40s (done)", stage_id)
        return False
    layout = RunLayout.of(store.root)
    log.info("start %s", stage_id)
    attempt = Attempt(layout.attempt(stage_id)).start()
    if attempt.lost_wall_s:
        log.info(
            "      %s: %.1fs of earlier, interrupted attempts booked as lost_wall_s", stage_id, attempt.lost_wall_s
        )
    training = kind in TRAINING_KINDS
    if training:
        release_freed_memory(idle_models=True)
    try:
        with StageMeter(kind) as meter:
            extra = work() or {}
    except BaseException:
        attempt.stop()  # the next attempt books this one's wall time as lost
        raise
    finally:
        release_freed_memory(full=training)
    hashes = integrity.output_hashes(store.root, list(outputs(extra)))
    record = {
        "order": order,
        "arm": arm,
        "host": socket.gethostname(),
        "worker": worker,
        **meter.as_record(),
        **attempt.as_record(),
        **extra,
        "outputs": hashes,
        **({"removes": list(removes)} if removes else {}),
    }
    store.mark_done(stage_id, record)
    attempt.finish()
    log.info("done  %-40s %.1fs", stage_id, meter.wall_s)
    return True
